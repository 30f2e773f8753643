//! CloudEvents binary mode: random `ce-*` headers (percent-encoded or not) with a random body as `data`.
#![no_main]

use http::HeaderValue;
use kvsync::core::model::Cloud;
use kvsync::eventgrid::parse_delivery;
use kvsync_fuzz::{check_delivery, split_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mut headers, body) = split_message(data);
    // Always binary mode: force the marker header, and a non-CloudEvents media type when none is given.
    if !headers.contains_key("ce-specversion") {
        headers.insert("ce-specversion", HeaderValue::from_static("1.0"));
    }
    if !headers.contains_key(http::header::CONTENT_TYPE) {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let result = parse_delivery(body, &headers, Cloud::Public);
    check_delivery(&result);
});
