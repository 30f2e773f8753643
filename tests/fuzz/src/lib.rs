//! Shared pieces of kvsync's fuzz targets: the input format and the invariants every target checks.
//!
//! # Input format
//! A fuzz input is a small HTTP message without a request line, so seeds stay readable:
//!
//! ```text
//! content-type: application/json
//! aeg-event-type: Notification
//!
//! [{"id": "...", ...}]
//! ```
//!
//! Header lines (`name: value`) up to the first empty line, then the body. An input without an empty
//! line is all body. Lines whose name or value `http` refuses are skipped (the server would never
//! see them either); values may hold any other byte, including non-UTF-8.

use http::{HeaderMap, HeaderName, HeaderValue};
use kvsync::eventgrid::{Delivery, DeliveryError, Event};

/// Longest text any parser output may quote from the input (reasons, ids, messages).
pub const MAX_QUOTED_CHARS: usize = 1024;

/// Splits a fuzz input into headers and body.
pub fn split_message(data: &[u8]) -> (HeaderMap, &[u8]) {
    let mut headers = HeaderMap::new();
    let Some(end) = data.windows(2).position(|w| w == b"\n\n") else {
        return (headers, data);
    };
    for line in data[..end].split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) else {
            continue;
        };
        headers.append(name, value);
    }
    (headers, &data[end + 2..])
}

/// The invariants of a parsed delivery: bounded quotes, well-formed Key Vault events, at least one
/// usable event whenever a batch is accepted with rejected elements.
pub fn check_delivery(result: &Result<Delivery, DeliveryError>) {
    match result {
        Ok(Delivery::Events(events)) => {
            assert!(
                !events.events.is_empty() || events.rejected.is_empty(),
                "a delivery whose every element was rejected must be refused (400)"
            );
            for r in &events.rejected {
                assert!(
                    r.reason.chars().count() <= MAX_QUOTED_CHARS,
                    "rejection reason quotes too much: {} chars",
                    r.reason.chars().count()
                );
                if let Some(id) = &r.id {
                    assert!(id.chars().count() <= 129, "rejected id not cut");
                }
            }
            for e in &events.events {
                match e {
                    Event::KeyVault(kv) => {
                        if let Some(obj) = &kv.object {
                            let name = obj.name.as_str();
                            assert!(
                                !name.is_empty()
                                    && name.len() <= 127
                                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                                "object name {name:?} is not a Key Vault name"
                            );
                            assert_eq!(obj.vault, kv.vault, "object and event disagree on the vault");
                        }
                        let host = kv.vault.to_string();
                        // A normalised URL host (`url` accepts a few punctuation marks in domains,
                        // and `[v6]:port`), never anything that could change a path or a header.
                        assert!(
                            !host.is_empty()
                                && host.bytes().all(|b| b.is_ascii_graphic()
                                    && !b.is_ascii_uppercase()
                                    && !matches!(b, b'/' | b'\\' | b'@' | b'?' | b'#' | b'%')),
                            "vault {host:?} is not a normalised host"
                        );
                    }
                    Event::Other { id, event_type } => {
                        assert!(id.chars().count() <= 257 && event_type.chars().count() <= 257);
                    }
                }
            }
        }
        Ok(Delivery::Validation { code, .. }) => {
            // The code is echoed verbatim; it must at least be present.
            let _ = code.len();
        }
        Ok(Delivery::Deletion { .. }) => {}
        Err(DeliveryError::Malformed(m)) | Err(DeliveryError::UnsupportedContentType(m)) => {
            assert!(
                m.chars().count() <= MAX_QUOTED_CHARS,
                "error message quotes too much: {} chars",
                m.chars().count()
            );
        }
    }
}
