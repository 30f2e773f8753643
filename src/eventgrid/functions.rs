//! Azure Functions custom-handler invocations: `{"Data": {<binding>: event}, "Metadata": {...}}`.

use serde_json::Value;

use super::parse::{deliver, deliver_array};
use super::schema::{Schema, get, kind_of};
use super::view::{Body, Item};
use super::{Delivery, DeliveryError, Format, excerpt};
use crate::core::model::Cloud;

/// Parses the body of a custom-handler invocation for an Event Grid trigger.
///
/// The event is `Data.<binding>` (the trigger's `name` in `function.json`; matched exactly, else
/// ignoring ASCII case): an event object, an array of events, or a JSON string holding either
/// (decoded at most three times, for the host's double encoding). Each event is Event Grid schema or
/// CloudEvents by its keys. `Metadata` is ignored. A missing binding is
/// [`DeliveryError::Malformed`].
pub fn parse_functions_request(body: &[u8], binding: &str, cloud: Cloud) -> Result<Delivery, DeliveryError> {
    let malformed = DeliveryError::Malformed;
    let value: Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("Functions request is not JSON: {e}")))?;
    let Value::Object(root) = value else {
        return Err(malformed(format!(
            "Functions request is a JSON {}, expected an object",
            kind_of(&value)
        )));
    };
    let data = match get(&root, "Data") {
        Some(Value::Object(data)) => data,
        Some(other) => {
            return Err(malformed(format!(
                "Functions request Data is a JSON {}, expected an object",
                kind_of(other)
            )));
        }
        None => return Err(malformed("Functions request without Data".into())),
    };
    let mut event = get(data, binding)
        .cloned()
        .ok_or_else(|| malformed(format!("Functions request without Data.{}", excerpt(binding, 60))))?;
    for _ in 0..3 {
        match event {
            Value::String(s) => {
                event = serde_json::from_str(&s).map_err(|e| {
                    malformed(format!(
                        "Data.{} is a string that is not JSON: {e}",
                        excerpt(binding, 60)
                    ))
                })?;
            }
            _ => break,
        }
    }
    match Body::from_value(&event) {
        Ok(Body::Object(view)) => {
            let format = match view.schema() {
                Some(Schema::CloudEvents) => Format::CloudEvents,
                _ => Format::EventGrid,
            };
            deliver(vec![Item::Object(view)], format, None, cloud)
        }
        Ok(Body::Array(items)) => deliver_array(items, cloud),
        Ok(Body::Other) | Err(_) => Err(malformed(format!(
            "Data.{} is a JSON {}, expected an event object or array",
            excerpt(binding, 60),
            kind_of(&event)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventgrid::{Event, Events};
    use serde_json::json;

    fn event(name: &str) -> Value {
        json!({
            "id": format!("id-{name}"),
            "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/sample-kv",
            "subject": name,
            "eventType": "Microsoft.KeyVault.SecretNewVersionCreated",
            "data": {"Id": format!("https://sample-kv.vault.azure.net/secrets/{name}/v1"), "VaultName": "sample-kv",
                     "ObjectName": name, "Version": "v1"}
        })
    }

    fn request(binding: &str, ev: Value) -> Vec<u8> {
        json!({"Data": {binding: ev}, "Metadata": {"sys": {"MethodName": "KvSecretEvents"}}})
            .to_string()
            .into_bytes()
    }

    fn names(d: Result<Delivery, DeliveryError>) -> (Format, Vec<String>) {
        let Ok(Delivery::Events(Events { format, events, .. })) = d else {
            panic!("not events: {d:?}")
        };
        let names = events
            .iter()
            .filter_map(|e| match e {
                Event::KeyVault(kv) => kv.object.as_ref().map(|o| o.name.to_string()),
                Event::Other { .. } => None,
            })
            .collect();
        (format, names)
    }

    #[test]
    fn the_event_is_an_object_or_a_json_string() {
        let want = (Format::EventGrid, vec!["a".to_string()]);
        let b = "eventGridEvent";
        assert_eq!(
            names(parse_functions_request(&request(b, event("a")), b, Cloud::Public)),
            want
        );
        let once = json!(event("a").to_string());
        assert_eq!(
            names(parse_functions_request(
                &request(b, once.clone()),
                b,
                Cloud::Public
            )),
            want
        );
        let twice = json!(once.to_string());
        assert_eq!(
            names(parse_functions_request(&request(b, twice), b, Cloud::Public)),
            want
        );
    }

    #[test]
    fn the_binding_matches_exactly_then_ignoring_case() {
        let body = request("EventGridEvent", event("a"));
        assert_eq!(
            names(parse_functions_request(&body, "eventGridEvent", Cloud::Public)).1,
            ["a"]
        );
        let body = json!({"data": {"ev": event("a"), "EV": event("b")}}).to_string();
        assert_eq!(
            names(parse_functions_request(body.as_bytes(), "EV", Cloud::Public)).1,
            ["b"]
        );
    }

    #[test]
    fn cloudevents_and_batches_are_accepted() {
        let ce = json!({"specversion": "1.0", "id": "1", "type": "Microsoft.KeyVault.KeyNearExpiry",
                        "source": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
                        "subject": "signing-key", "data": {"VaultName": "kv", "ObjectName": "signing-key"}});
        let got = names(parse_functions_request(
            &request("e", ce.clone()),
            "e",
            Cloud::Public,
        ));
        assert_eq!(got, (Format::CloudEvents, vec!["signing-key".to_string()]));
        let got = names(parse_functions_request(
            &request("e", json!([ce.clone(), ce])),
            "e",
            Cloud::Public,
        ));
        assert_eq!(got.0, Format::CloudEventsBatch);
        let got = names(parse_functions_request(
            &request("e", json!([event("a"), event("b")])),
            "e",
            Cloud::Public,
        ));
        assert_eq!(got, (Format::EventGrid, vec!["a".to_string(), "b".to_string()]));
    }

    #[test]
    fn a_validation_event_in_functions_mode_is_still_recognised() {
        let v = json!({"id": "1", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "data": {"validationCode": "c"}});
        assert_eq!(
            parse_functions_request(&request("e", v), "e", Cloud::Public).unwrap(),
            Delivery::Validation {
                code: "c".into(),
                validation_url: None
            }
        );
    }

    #[test]
    fn missing_or_unusable_parts_are_malformed() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "e"),
            (b"[]".to_vec(), "e"),
            (b"{}".to_vec(), "e"),
            (br#"{"Data": 1}"#.to_vec(), "e"),
            (br#"{"Data": {}}"#.to_vec(), "e"),
            (request("other", event("a")), "e"),
            (request("e", event("a")), ""),
            (request("e", json!(1)), "e"),
            (request("e", json!(null)), "e"),
            (request("e", json!("not json")), "e"),
            (request("e", json!("\"\\\"\\\\\\\"x\\\\\\\"\\\"\"")), "e"),
            (request("e", json!({"foo": 1})), "e"),
        ];
        for (body, binding) in cases {
            assert!(
                matches!(
                    parse_functions_request(&body, binding, Cloud::Public),
                    Err(DeliveryError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        let long = "b".repeat(10_000);
        let Err(DeliveryError::Malformed(msg)) =
            parse_functions_request(b"{\"Data\":{}}", &long, Cloud::Public)
        else {
            panic!()
        };
        assert!(msg.len() < 150, "{msg}");
    }

    #[test]
    fn an_empty_batch_is_an_empty_delivery() {
        assert_eq!(
            names(parse_functions_request(
                &request("e", json!([])),
                "e",
                Cloud::Public
            ))
            .1
            .len(),
            0
        );
    }

    #[test]
    fn deep_nesting_is_malformed() {
        let deep = format!("{{\"Data\":{{\"e\":{}", "[".repeat(100_000));
        assert!(matches!(
            parse_functions_request(deep.as_bytes(), "e", Cloud::Public),
            Err(DeliveryError::Malformed(_))
        ));
        let inner = "[".repeat(100_000);
        assert!(matches!(
            parse_functions_request(&request("e", json!(inner)), "e", Cloud::Public),
            Err(DeliveryError::Malformed(_))
        ));
    }
}
