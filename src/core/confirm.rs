//! Confirming that ESO processed a trigger, from the ExternalSecret's status alone (eso.md §1.3,
//! §2.1): ESO writes `status.syncedResourceVersion = "<generation>-<sha3-224 of HashMeta>"` only
//! after a successful sync of the metadata it read, so seeing our marker's hash there proves a
//! sync that started after our patch.

use std::collections::BTreeMap;

use serde_json::Value;
use sha3::{Digest, Sha3_224};

use super::objects::ExternalSecretObject;

/// ESO's `GetResourceVersion(meta)`: `"<generation>-"` + lowercase hex SHA3-224 of Go's
/// `fmt.Sprintf("%+v", struct{annotations, labels})`, i.e.
/// `{annotations:map[k:v k2:v2] labels:map[k:v]}` with keys sorted bytewise and printed raw.
pub fn synced_resource_version(
    generation: i64,
    annotations: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> String {
    let text = format!(
        "{{annotations:{} labels:{}}}",
        go_map(annotations),
        go_map(labels)
    );
    format!("{generation}-{}", hex::encode(Sha3_224::digest(text.as_bytes())))
}

/// Go's `%v` of a `map[string]string`: `map[k1:v1 k2:v2]`, keys sorted bytewise (a `BTreeMap`
/// of `String` iterates in exactly that order).
fn go_map(m: &BTreeMap<String, String>) -> String {
    let body: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", body.join(" "))
}

/// Whether ESO has processed a trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirmation {
    /// ESO synced metadata containing our value, successfully.
    Confirmed,
    /// Ready=False and not confirmed: `"<reason>: <message>"` of the Ready condition.
    Failed(String),
    /// Neither yet.
    Pending,
}

/// Checks `es` (as just read) against our trigger `value` under `annotation_key`:
/// Confirmed ⇔ the annotation still holds `value`, `status.syncedResourceVersion` equals
/// [`synced_resource_version`] of the current metadata, and Ready=True; Failed ⇔ Ready=False
/// while not confirmed; else Pending.
pub fn confirmation(es: &ExternalSecretObject, annotation_key: &str, value: &str) -> Confirmation {
    let ready = ready_condition(&es.status);
    let holds_value = es.meta.annotations.get(annotation_key).map(String::as_str) == Some(value);
    let expected = synced_resource_version(
        es.meta.generation.unwrap_or(0),
        &es.meta.annotations,
        &es.meta.labels,
    );
    let synced = es.synced_resource_version() == expected;
    match ready {
        Some(c) if c.status == "True" && holds_value && synced => Confirmation::Confirmed,
        Some(c) if c.status == "False" => Confirmation::Failed(match (c.reason, c.message) {
            ("", "") => "Ready=False".to_string(),
            (r, "") => r.to_string(),
            ("", m) => m.to_string(),
            (r, m) => format!("{r}: {m}"),
        }),
        _ => Confirmation::Pending,
    }
}

/// True when the object's `Ready` condition is `False` (ESO's failure state). A trigger sent while
/// this holds cannot be blamed for it: only a later Ready=False is a failure of that refresh.
pub fn is_not_ready(status: &Value) -> bool {
    ready_condition(status).is_some_and(|c| c.status == "False")
}

struct Condition<'a> {
    status: &'a str,
    reason: &'a str,
    message: &'a str,
}

fn ready_condition(status: &Value) -> Option<Condition<'_>> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        .map(|c| {
            let s = |f: &str| c.get(f).and_then(Value::as_str).unwrap_or("");
            Condition {
                status: s("status"),
                reason: s("reason"),
                message: s("message"),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::objects::{Meta, RefreshInterval};
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn not_ready_is_read_from_the_ready_condition() {
        assert!(is_not_ready(
            &json!({"conditions": [{"type": "Ready", "status": "False"}]})
        ));
        assert!(!is_not_ready(
            &json!({"conditions": [{"type": "Ready", "status": "True"}]})
        ));
        assert!(!is_not_ready(
            &json!({"conditions": [{"type": "Other", "status": "False"}]})
        ));
        assert!(!is_not_ready(&Value::Null));
    }

    #[test]
    fn eso_test_vectors() {
        assert_eq!(
            synced_resource_version(1, &map(&[]), &map(&[])),
            "1-f47fe3c0b255b6dd8047cdffa772587bb829efe7a1cb70febeda2eb2"
        );
        assert_eq!(
            synced_resource_version(1, &map(&[("force-sync", "1700000000")]), &map(&[])),
            "1-df54e3e2e03f8455a218b1d9cbffaa2c878db6978aae0e1136007395"
        );
    }

    #[test]
    fn go_map_sorts_bytewise_and_prints_raw() {
        // Uppercase sorts before lowercase bytewise; values are not quoted or escaped.
        assert_eq!(
            go_map(&map(&[("b", "x y"), ("A", "1"), ("a/b", "{\"j\":1}")])),
            "map[A:1 a/b:{\"j\":1} b:x y]"
        );
        assert_eq!(go_map(&map(&[])), "map[]");
        // Labels count too.
        assert_ne!(
            synced_resource_version(1, &map(&[]), &map(&[("l", "v")])),
            synced_resource_version(1, &map(&[]), &map(&[]))
        );
        assert!(synced_resource_version(7, &map(&[]), &map(&[])).starts_with("7-"));
    }

    fn es(annotations: &[(&str, &str)], status: Value) -> ExternalSecretObject {
        ExternalSecretObject {
            meta: Meta {
                namespace: Some("ns".into()),
                name: "es".into(),
                generation: Some(2),
                annotations: map(annotations),
                labels: map(&[("app", "x")]),
                ..Meta::default()
            },
            spec: json!({}),
            status,
            refresh_interval: RefreshInterval::Default,
        }
    }

    fn ready(s: &str, srv: &str) -> Value {
        json!({"syncedResourceVersion": srv, "conditions": [
            {"type": "Ready", "status": s, "reason": "SecretSyncedError", "message": "could not get secret data from provider"}]})
    }

    #[test]
    fn confirmed_needs_value_hash_and_ready() {
        let ann = [("force-sync", "kv-1"), ("other", "o")];
        let good = synced_resource_version(2, &map(&ann), &map(&[("app", "x")]));
        assert_eq!(
            confirmation(&es(&ann, ready("True", &good)), "force-sync", "kv-1"),
            Confirmation::Confirmed
        );
        // Synced an older metadata version: pending.
        assert_eq!(
            confirmation(&es(&ann, ready("True", "2-old")), "force-sync", "kv-1"),
            Confirmation::Pending
        );
        // Our value was replaced (a newer trigger or someone else): not confirmed.
        let replaced = [("force-sync", "kv-2"), ("other", "o")];
        let good2 = synced_resource_version(2, &map(&replaced), &map(&[("app", "x")]));
        assert_eq!(
            confirmation(&es(&replaced, ready("True", &good2)), "force-sync", "kv-1"),
            Confirmation::Pending
        );
        // No Ready condition yet.
        assert_eq!(
            confirmation(
                &es(&ann, json!({"syncedResourceVersion": good})),
                "force-sync",
                "kv-1"
            ),
            Confirmation::Pending
        );
        assert_eq!(
            confirmation(&es(&ann, Value::Null), "force-sync", "kv-1"),
            Confirmation::Pending
        );
    }

    #[test]
    fn ready_false_while_unconfirmed_is_failed() {
        let ann = [("force-sync", "kv-1")];
        assert_eq!(
            confirmation(&es(&ann, ready("False", "1-x")), "force-sync", "kv-1"),
            Confirmation::Failed("SecretSyncedError: could not get secret data from provider".to_string())
        );
        assert_eq!(
            confirmation(&es(&ann, ready("Unknown", "1-x")), "force-sync", "kv-1"),
            Confirmation::Pending
        );
    }
}
