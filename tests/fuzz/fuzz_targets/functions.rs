//! The Azure Functions custom-handler envelope: `{"Data": {"eventGridEvent": ...}, "Metadata": ...}`,
//! including string-encoded (double and triple encoded) events.
#![no_main]

use kvsync::core::model::Cloud;
use kvsync::eventgrid::parse_functions_request;
use kvsync::http::functions_invoke::BINDING_NAME;
use kvsync_fuzz::check_delivery;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let result = parse_functions_request(data, BINDING_NAME, Cloud::Public);
    check_delivery(&result);
    // A binding name taken from the input (case-insensitive lookup, quoted in errors).
    if let Some(nl) = data.iter().position(|b| *b == b'\n')
        && let Ok(binding) = std::str::from_utf8(&data[..nl])
    {
        check_delivery(&parse_functions_request(&data[nl + 1..], binding, Cloud::Public));
    }
});
