//! kvsync's own CustomResourceDefinitions for the test API server: ESO's four resources in group
//! `external-secrets.io`, plus stand-ins for `events.k8s.io/v1` Events and `coordination.k8s.io/v1`
//! Leases (the test server has no built-in groups besides apiextensions).
//!
//! Schemas are permissive (`x-kubernetes-preserve-unknown-fields`) so every real ESO manifest is
//! accepted, but they keep what changes behaviour: the `status` subresource (so a metadata-only patch
//! does not bump `metadata.generation`, exactly like ESO's CRDs) and the `refreshInterval` default.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

/// Which versions of `external-secrets.io` the server serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EsoVersions {
    /// `v1` (storage) and `v1beta1`, as with ESO's `crds.unsafeServeV1Beta1` or ESO v0.16.
    Both,
    /// Only `v1`: ESO ≥ v0.17 defaults.
    V1Only,
    /// Only `v1beta1`: ESO < v0.16.
    V1Beta1Only,
}

fn permissive_object(spec_extra: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": spec_extra,
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        },
    })
}

fn eso_crd(plural: &str, kind: &str, scope: &str, versions: EsoVersions) -> CustomResourceDefinition {
    let spec_extra = if kind == "ExternalSecret" {
        json!({"refreshInterval": {"type": "string", "default": "1h0m0s"}})
    } else {
        json!({})
    };
    let version = |name: &str, storage: bool| {
        json!({
            "name": name,
            "served": true,
            "storage": storage,
            "schema": {"openAPIV3Schema": permissive_object(spec_extra.clone())},
            "subresources": {"status": {}},
        })
    };
    let vs = match versions {
        EsoVersions::Both => vec![version("v1", true), version("v1beta1", false)],
        EsoVersions::V1Only => vec![version("v1", true)],
        EsoVersions::V1Beta1Only => vec![version("v1beta1", true)],
    };
    let singular = kind.to_lowercase();
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.external-secrets.io")},
        "spec": {
            "group": "external-secrets.io",
            "names": {"plural": plural, "singular": singular, "kind": kind, "listKind": format!("{kind}List"),
                      "categories": ["external-secrets"]},
            "scope": scope,
            "versions": vs,
        }
    }))
    .expect("valid CRD")
}

fn stand_in_crd(group: &str, plural: &str, kind: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{plural}.{group}"),
            "annotations": {"api-approved.kubernetes.io": "unapproved, test stand-in"},
        },
        "spec": {
            "group": group,
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind, "listKind": format!("{kind}List")},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        }
    }))
    .expect("valid CRD")
}

/// Every CRD the test server gets.
pub fn all(versions: EsoVersions) -> Vec<CustomResourceDefinition> {
    vec![
        eso_crd("externalsecrets", "ExternalSecret", "Namespaced", versions),
        eso_crd("secretstores", "SecretStore", "Namespaced", versions),
        eso_crd("clustersecretstores", "ClusterSecretStore", "Cluster", versions),
        eso_crd(
            "clusterexternalsecrets",
            "ClusterExternalSecret",
            "Cluster",
            versions,
        ),
        stand_in_crd("events.k8s.io", "events", "Event"),
        stand_in_crd("coordination.k8s.io", "leases", "Lease"),
    ]
}
