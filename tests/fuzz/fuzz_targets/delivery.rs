//! The webhook delivery parser: random headers (content type, `aeg-event-type`, `ce-*`) and body.
#![no_main]

use kvsync::core::model::Cloud;
use kvsync::eventgrid::parse_delivery;
use kvsync_fuzz::{check_delivery, split_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (headers, body) = split_message(data);
    let cloud = match data.first().map(|b| b % 4) {
        Some(1) => Cloud::China,
        Some(2) => Cloud::UsGov,
        _ => Cloud::Public,
    };
    check_delivery(&parse_delivery(body, &headers, cloud));
});
