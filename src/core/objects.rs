//! The ESO objects the core reasons about, as plain values.
//!
//! The Kubernetes adapter builds these from watched objects (or from YAML manifests in
//! `--manifests` mode, see [`Manifest::from_json`]). `spec` and `status` stay JSON: the core reads
//! them tolerantly (unknown fields ignored, missing fields defaulted), because one ESO version's
//! shape must not stop the index from working with another's. `external-secrets.io/v1` and
//! `v1beta1` share every field the core reads.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// The metadata the core needs from any object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// `metadata.generation` (Go's `GetGeneration` is 0 when unset).
    pub generation: Option<i64>,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// The ownerReference with `controller: true`, if any.
    pub controller: Option<OwnerRef>,
}

/// An owner reference: enough to name the owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRef {
    /// The owner's kind, e.g. `ClusterExternalSecret`.
    pub kind: String,
    /// The owner's name.
    pub name: String,
}

/// The two kinds of ESO store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreKind {
    /// A namespaced `SecretStore`.
    SecretStore,
    /// A cluster-scoped `ClusterSecretStore`.
    ClusterSecretStore,
}

impl StoreKind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::SecretStore => "SecretStore",
            StoreKind::ClusterSecretStore => "ClusterSecretStore",
        }
    }

    /// The kind a store reference names, as ESO resolves it: exactly `ClusterSecretStore` is a
    /// cluster store; anything else (including missing or empty) is a `SecretStore`
    /// (`client_manager.go` `getStore`).
    pub fn from_ref_kind(kind: Option<&str>) -> StoreKind {
        match kind {
            Some("ClusterSecretStore") => StoreKind::ClusterSecretStore,
            _ => StoreKind::SecretStore,
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `SecretStore` or `ClusterSecretStore`.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreObject {
    /// Which kind.
    pub kind: StoreKind,
    /// Metadata (namespace `None` for a `ClusterSecretStore`).
    pub meta: Meta,
    /// `spec` as JSON.
    pub spec: Value,
    /// `status` as JSON (`Value::Null` when absent).
    pub status: Value,
}

/// `spec.refreshInterval` of an ExternalSecret, as parsed by the adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshInterval {
    /// Unset: ESO's CRD default `1h`.
    Default,
    /// A positive duration.
    Positive,
    /// Zero or negative (`0s`): fetch once, ignore annotation changes once synced.
    ZeroOrNegative,
    /// Not a Go duration (the text as found). ESO cannot decode such an object.
    Invalid(String),
}

impl RefreshInterval {
    /// Classifies a `spec.refreshInterval` value with Go's `time.ParseDuration` grammar
    /// (`[-+]?(\d*(\.\d*)?(ns|us|µs|μs|ms|s|m|h))+` or `0`). The Kubernetes adapter may use
    /// kube's own parser instead; both agree on what matters here (sign and validity).
    pub fn from_go_duration(text: Option<&str>) -> RefreshInterval {
        let Some(text) = text else {
            return RefreshInterval::Default;
        };
        match go_duration_seconds(text) {
            Some(s) if s > 0.0 => RefreshInterval::Positive,
            Some(_) => RefreshInterval::ZeroOrNegative,
            None => RefreshInterval::Invalid(text.to_string()),
        }
    }
}

/// Parses a Go duration into (approximate) seconds; `None` if it is not one.
fn go_duration_seconds(text: &str) -> Option<f64> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Some(if negative { -total } else { total })
}

/// An `ExternalSecret`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalSecretObject {
    /// Metadata (namespace always set for a real ES).
    pub meta: Meta,
    /// `spec` as JSON.
    pub spec: Value,
    /// `status` as JSON (`Value::Null` when absent).
    pub status: Value,
    /// `spec.refreshInterval`, classified.
    pub refresh_interval: RefreshInterval,
}

impl ExternalSecretObject {
    /// The ES's key (`namespace/name`; an absent namespace is `""`).
    pub fn key(&self) -> EsKey {
        EsKey {
            namespace: self.meta.namespace.clone().unwrap_or_default(),
            name: self.meta.name.clone(),
        }
    }

    /// `status.syncedResourceVersion` (`""` when absent).
    pub fn synced_resource_version(&self) -> &str {
        self.status
            .get("syncedResourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// A `ClusterExternalSecret`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterExternalSecretObject {
    /// Metadata (no namespace).
    pub meta: Meta,
    /// `spec` as JSON.
    pub spec: Value,
}

/// Names one ExternalSecret.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EsKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl EsKey {
    /// Builds a key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> EsKey {
        EsKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for EsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What gets patched to make ESO refresh.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// An ExternalSecret, annotated directly.
    ExternalSecret(EsKey),
    /// A ClusterExternalSecret (by name), annotated with `external-secrets.io/force-sync`; ESO
    /// copies the annotation to every child ExternalSecret.
    ClusterExternalSecret(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::ExternalSecret(key) => write!(f, "ExternalSecret {key}"),
            Target::ClusterExternalSecret(name) => write!(f, "ClusterExternalSecret {name}"),
        }
    }
}

/// One ESO object read from a manifest (`--manifests DIR`, demo mode, tests).
#[derive(Clone, Debug, PartialEq)]
pub enum Manifest {
    /// A `SecretStore` or `ClusterSecretStore`.
    Store(StoreObject),
    /// An `ExternalSecret`.
    ExternalSecret(ExternalSecretObject),
    /// A `ClusterExternalSecret`.
    ClusterExternalSecret(ClusterExternalSecretObject),
}

impl Manifest {
    /// Reads one manifest document. `None` unless it is an `external-secrets.io` store,
    /// ExternalSecret or ClusterExternalSecret (any version). Namespaced objects without
    /// `metadata.namespace` get `default_namespace`, as `kubectl apply -n` would.
    pub fn from_json(doc: &Value, default_namespace: &str) -> Option<Manifest> {
        let api_version = doc.get("apiVersion")?.as_str()?;
        if api_version.split('/').next() != Some("external-secrets.io") {
            return None;
        }
        let kind = doc.get("kind")?.as_str()?;
        let namespaced = matches!(kind, "SecretStore" | "ExternalSecret");
        let meta = meta_from_json(doc.get("metadata")?, namespaced.then_some(default_namespace));
        let spec = doc.get("spec").cloned().unwrap_or(Value::Null);
        let status = doc.get("status").cloned().unwrap_or(Value::Null);
        Some(match kind {
            "SecretStore" | "ClusterSecretStore" => Manifest::Store(StoreObject {
                kind: if kind == "SecretStore" {
                    StoreKind::SecretStore
                } else {
                    StoreKind::ClusterSecretStore
                },
                meta,
                spec,
                status,
            }),
            "ExternalSecret" => {
                let refresh_interval =
                    RefreshInterval::from_go_duration(spec.get("refreshInterval").and_then(Value::as_str));
                Manifest::ExternalSecret(ExternalSecretObject {
                    meta,
                    spec,
                    status,
                    refresh_interval,
                })
            }
            "ClusterExternalSecret" => {
                Manifest::ClusterExternalSecret(ClusterExternalSecretObject { meta, spec })
            }
            _ => return None,
        })
    }
}

/// Reads `metadata` JSON into [`Meta`]; `default_namespace` is used (only) for namespaced kinds.
fn meta_from_json(m: &Value, default_namespace: Option<&str>) -> Meta {
    let string_map = |v: Option<&Value>| -> BTreeMap<String, String> {
        v.and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let controller = m
        .get("ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        })
        .map(|r| OwnerRef {
            kind: r.get("kind").and_then(Value::as_str).unwrap_or("").to_string(),
            name: r.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
        });
    Meta {
        namespace: default_namespace.map(|d| {
            m.get("namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or(d)
                .to_string()
        }),
        name: m.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
        generation: m.get("generation").and_then(Value::as_i64),
        resource_version: m
            .get("resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        labels: string_map(m.get("labels")),
        annotations: string_map(m.get("annotations")),
        controller,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_classify_like_go() {
        use RefreshInterval::*;
        assert_eq!(RefreshInterval::from_go_duration(None), Default);
        for p in ["1h0m0s", "1h", "15s", "1.5m", "500ms", "+2h45m", "1us", "1µs"] {
            assert_eq!(RefreshInterval::from_go_duration(Some(p)), Positive, "{p}");
        }
        for z in ["0", "0s", "-1s", "0h0m0s", "-0"] {
            assert_eq!(RefreshInterval::from_go_duration(Some(z)), ZeroOrNegative, "{z}");
        }
        for bad in ["", "1", "1x", "h", "1hh", "one hour", "1..2s", "-"] {
            assert_eq!(
                RefreshInterval::from_go_duration(Some(bad)),
                Invalid(bad.to_string()),
                "{bad}"
            );
        }
    }

    #[test]
    fn store_ref_kind_defaults_to_secret_store() {
        assert_eq!(StoreKind::from_ref_kind(None), StoreKind::SecretStore);
        assert_eq!(StoreKind::from_ref_kind(Some("")), StoreKind::SecretStore);
        assert_eq!(
            StoreKind::from_ref_kind(Some("ClusterSecretStore")),
            StoreKind::ClusterSecretStore
        );
    }

    #[test]
    fn manifests_read_meta_and_skip_other_kinds() {
        let doc = serde_json::json!({
            "apiVersion": "external-secrets.io/v1beta1", "kind": "ExternalSecret",
            "metadata": {"name": "es", "generation": 3, "labels": {"a": "b"},
                "ownerReferences": [{"kind": "Other", "name": "x"},
                                    {"kind": "ClusterExternalSecret", "name": "ces", "controller": true}]},
            "spec": {"refreshInterval": "0s"}
        });
        let Some(Manifest::ExternalSecret(es)) = Manifest::from_json(&doc, "dflt") else {
            panic!("not an ES")
        };
        assert_eq!(es.key(), EsKey::new("dflt", "es"));
        assert_eq!(es.meta.generation, Some(3));
        assert_eq!(es.refresh_interval, RefreshInterval::ZeroOrNegative);
        assert_eq!(es.meta.controller.unwrap().kind, "ClusterExternalSecret");
        let sa = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}});
        assert_eq!(Manifest::from_json(&sa, "d"), None);
        let css = serde_json::json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
            "metadata": {"name": "c"}, "spec": {}});
        let Some(Manifest::Store(s)) = Manifest::from_json(&css, "d") else {
            panic!("not a store")
        };
        assert_eq!(s.meta.namespace, None);
        assert_eq!(s.kind, StoreKind::ClusterSecretStore);
    }
}
