//! Translation from Kubernetes objects (`DynamicObject`, from a watch or a YAML manifest) to the
//! core's plain input types. The only logic here is what needs a Kubernetes library: parsing the Go
//! duration in `spec.refreshInterval` (`kube::core::Duration`, Go's `time.ParseDuration`).

use kube::core::DynamicObject;

use crate::core::objects::{
    ClusterExternalSecretObject, ExternalSecretObject, Meta, OwnerRef, RefreshInterval, StoreKind,
    StoreObject,
};

/// The core's view of an object's metadata.
pub fn meta(obj: &DynamicObject) -> Meta {
    let m = &obj.metadata;
    Meta {
        namespace: m.namespace.clone(),
        name: m.name.clone().unwrap_or_default(),
        generation: m.generation,
        resource_version: m.resource_version.clone(),
        labels: m.labels.clone().unwrap_or_default(),
        annotations: m.annotations.clone().unwrap_or_default(),
        controller: m
            .owner_references
            .as_ref()
            .and_then(|refs| refs.iter().find(|r| r.controller == Some(true)))
            .map(|r| OwnerRef {
                kind: r.kind.clone(),
                name: r.name.clone(),
            }),
    }
}

fn field(obj: &DynamicObject, name: &str) -> serde_json::Value {
    obj.data.get(name).cloned().unwrap_or(serde_json::Value::Null)
}

/// Parses `spec.refreshInterval` as ESO does (Go duration).
pub fn refresh_interval(spec: &serde_json::Value) -> RefreshInterval {
    match spec.get("refreshInterval") {
        None | Some(serde_json::Value::Null) => RefreshInterval::Default,
        Some(serde_json::Value::String(s)) => {
            let t = s.trim();
            // Go's time.ParseDuration special-cases "0" and rejects ""; kube's parser takes "" as 0.
            if t == "0" {
                return RefreshInterval::ZeroOrNegative;
            }
            let unsigned = t.strip_prefix(['-', '+']).unwrap_or(t);
            if unsigned.is_empty() || unsigned.starts_with(['-', '+']) {
                return RefreshInterval::Invalid(s.clone());
            }
            match t.parse::<kube::core::Duration>() {
                Ok(d) if d.is_negative() || std::time::Duration::from(d).is_zero() => {
                    RefreshInterval::ZeroOrNegative
                }
                Ok(_) => RefreshInterval::Positive,
                Err(_) => RefreshInterval::Invalid(s.clone()),
            }
        }
        Some(other) => RefreshInterval::Invalid(other.to_string()),
    }
}

/// A SecretStore or ClusterSecretStore.
pub fn store(kind: StoreKind, obj: &DynamicObject) -> StoreObject {
    StoreObject {
        kind,
        meta: meta(obj),
        spec: field(obj, "spec"),
        status: field(obj, "status"),
    }
}

/// An ExternalSecret.
pub fn external_secret(obj: &DynamicObject) -> ExternalSecretObject {
    let spec = field(obj, "spec");
    ExternalSecretObject {
        meta: meta(obj),
        refresh_interval: refresh_interval(&spec),
        spec,
        status: field(obj, "status"),
    }
}

/// A ClusterExternalSecret.
pub fn cluster_external_secret(obj: &DynamicObject) -> ClusterExternalSecretObject {
    ClusterExternalSecretObject {
        meta: meta(obj),
        spec: field(obj, "spec"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn refresh_intervals_follow_go_durations() {
        let cases = [
            (json!({}), RefreshInterval::Default),
            (json!({"refreshInterval": "1h0m0s"}), RefreshInterval::Positive),
            (json!({"refreshInterval": "15m"}), RefreshInterval::Positive),
            (json!({"refreshInterval": "0s"}), RefreshInterval::ZeroOrNegative),
            (json!({"refreshInterval": "0"}), RefreshInterval::ZeroOrNegative),
            (json!({"refreshInterval": "-1m"}), RefreshInterval::ZeroOrNegative),
            (
                json!({"refreshInterval": "1d"}),
                RefreshInterval::Invalid("1d".into()),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(refresh_interval(&spec), want, "{spec}");
        }
    }

    #[test]
    fn go_duration_grammar_edge_cases() {
        let class = |t: &str| refresh_interval(&json!({"refreshInterval": t}));
        for p in ["1h0m0s", "1h", "15s", "1.5m", "500ms", "+2h45m", "1us", "1µs"] {
            assert_eq!(class(p), RefreshInterval::Positive, "{p}");
        }
        for z in ["0", "0s", "-1s", "0h0m0s", "-0s"] {
            assert_eq!(class(z), RefreshInterval::ZeroOrNegative, "{z}");
        }
        for bad in ["", "1", "1x", "h", "1hh", "one hour", "1..2s", "-"] {
            assert_eq!(class(bad), RefreshInterval::Invalid(bad.to_string()), "{bad}");
        }
    }

    #[test]
    fn controller_owner_is_taken_from_owner_references() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": "es", "namespace": "ns", "generation": 2,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "1"},
                    {"apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret", "name": "parent", "uid": "2", "controller": true}
                ]},
            "spec": {"refreshInterval": "1h"},
        }))
        .unwrap();
        let es = external_secret(&obj);
        assert_eq!(
            es.meta.controller,
            Some(OwnerRef {
                kind: "ClusterExternalSecret".into(),
                name: "parent".into()
            })
        );
        assert_eq!(es.meta.generation, Some(2));
        assert_eq!(es.refresh_interval, RefreshInterval::Positive);
    }
}
