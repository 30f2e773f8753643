//! The ESO objects the core reasons about, as plain values.
//!
//! The Kubernetes adapter builds these from watched objects (or from YAML manifests in
//! `--manifests` mode). `spec` and `status` stay JSON: the core reads
//! them tolerantly (unknown fields ignored, missing fields defaulted), because one ESO version's
//! shape must not stop the index from working with another's. `external-secrets.io/v1` and
//! `v1beta1` share every field the core reads.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

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
        EsKey::new(
            self.meta.namespace.as_deref().unwrap_or_default(),
            self.meta.name.as_str(),
        )
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

/// Names one ExternalSecret. Both parts are shared (`Arc<str>`): plans, triggers and Kubernetes
/// Events copy keys freely, and a copy must not allocate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EsKey {
    /// Namespace.
    pub namespace: Arc<str>,
    /// Name.
    pub name: Arc<str>,
}

impl EsKey {
    /// Builds a key.
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> EsKey {
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

/// A borrowed [`Target`], ordered and hashed like it (grouping triggers without copying keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TargetRef<'a> {
    /// [`Target::ExternalSecret`].
    ExternalSecret(&'a EsKey),
    /// [`Target::ClusterExternalSecret`].
    ClusterExternalSecret(&'a str),
}

impl TargetRef<'_> {
    /// The owned target.
    pub(crate) fn to_target(self) -> Target {
        match self {
            TargetRef::ExternalSecret(key) => Target::ExternalSecret(key.clone()),
            TargetRef::ClusterExternalSecret(name) => Target::ClusterExternalSecret(name.into()),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::ExternalSecret(key) => write!(f, "ExternalSecret {key}"),
            Target::ClusterExternalSecret(name) => write!(f, "ClusterExternalSecret {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_targets_order_like_targets() {
        let a = EsKey::new("a", "x");
        let b = EsKey::new("b", "a");
        let refs = [
            TargetRef::ClusterExternalSecret("z"),
            TargetRef::ExternalSecret(&b),
            TargetRef::ClusterExternalSecret("a"),
            TargetRef::ExternalSecret(&a),
        ];
        let mut by_ref = refs.to_vec();
        by_ref.sort();
        let mut owned: Vec<Target> = refs.iter().map(|r| r.to_target()).collect();
        owned.sort();
        let by_ref: Vec<Target> = by_ref.into_iter().map(TargetRef::to_target).collect();
        assert_eq!(by_ref, owned);
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
}
