//! Which version of each `external-secrets.io` resource to watch, from group discovery only
//! (`GET /apis/external-secrets.io` and `GET /apis/external-secrets.io/<version>`): a full
//! `Discovery::run()` needs the root `/apis` list, which not every API server serves.
//! `v1` is preferred; `v1beta1` (ESO < v0.17, or `crds.unsafeServeV1Beta1`) is the fallback.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroup;
use kube::core::{ApiResource, GroupVersionKind};

/// The API group of ESO's resources.
pub const GROUP: &str = "external-secrets.io";

/// ESO's resources kvsync watches, in watch order.
pub const RESOURCES: [EsoResource; 4] = [
    EsoResource::SecretStore,
    EsoResource::ClusterSecretStore,
    EsoResource::ExternalSecret,
    EsoResource::ClusterExternalSecret,
];

/// One of ESO's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EsoResource {
    /// `secretstores` (namespaced).
    SecretStore,
    /// `clustersecretstores` (cluster-scoped).
    ClusterSecretStore,
    /// `externalsecrets` (namespaced).
    ExternalSecret,
    /// `clusterexternalsecrets` (cluster-scoped).
    ClusterExternalSecret,
}

impl EsoResource {
    /// The kind.
    pub fn kind(self) -> &'static str {
        match self {
            EsoResource::SecretStore => "SecretStore",
            EsoResource::ClusterSecretStore => "ClusterSecretStore",
            EsoResource::ExternalSecret => "ExternalSecret",
            EsoResource::ClusterExternalSecret => "ClusterExternalSecret",
        }
    }

    /// The plural resource name.
    pub fn plural(self) -> &'static str {
        match self {
            EsoResource::SecretStore => "secretstores",
            EsoResource::ClusterSecretStore => "clustersecretstores",
            EsoResource::ExternalSecret => "externalsecrets",
            EsoResource::ClusterExternalSecret => "clusterexternalsecrets",
        }
    }

    /// True for namespaced resources.
    pub fn namespaced(self) -> bool {
        matches!(self, EsoResource::SecretStore | EsoResource::ExternalSecret)
    }

    /// The `ApiResource` at `version`.
    pub fn api_resource(self, version: &str) -> ApiResource {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, version, self.kind()), self.plural())
    }
}

/// The versions chosen by discovery, shared by the parts that address ESO's resources; empty until
/// discovery succeeded (readiness keeps deliveries away until then).
pub type Versions = std::sync::Arc<std::sync::OnceLock<BTreeMap<EsoResource, String>>>;

/// The version to use for `r` (`v1` until discovery has answered).
pub fn version_of(versions: &Versions, r: EsoResource) -> &str {
    versions
        .get()
        .and_then(|m| m.get(&r))
        .map(String::as_str)
        .unwrap_or("v1")
}

/// Versions kvsync understands, most preferred first.
pub const PREFERRED_VERSIONS: [&str; 2] = ["v1", "v1beta1"];

/// Picks, per resource, the most preferred version that serves it. `served` maps each served
/// version of the group to the plural names it lists. Resources served by no known version are
/// absent from the result.
pub fn choose_versions(served: &BTreeMap<String, Vec<String>>) -> BTreeMap<EsoResource, String> {
    let mut out = BTreeMap::new();
    for r in RESOURCES {
        if let Some(v) = PREFERRED_VERSIONS.iter().find(|v| {
            served
                .get(**v)
                .is_some_and(|plurals| plurals.iter().any(|p| p == r.plural()))
        }) {
            out.insert(r, (*v).to_string());
        }
    }
    out
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The API server could not be asked.
    #[error("group discovery of external-secrets.io failed")]
    Request(#[source] kube::Error),
    /// The discovery request could not be built.
    #[error("failed to build the discovery request")]
    BuildRequest(#[source] http::Error),
    /// The group is not served at all (ESO's CRDs are not installed).
    #[error("the API group external-secrets.io is not served: are ESO's CRDs installed?")]
    GroupMissing,
    /// None of the versions kvsync understands serves the resource.
    #[error("no served version of external-secrets.io/{0} among v1, v1beta1")]
    NoVersion(&'static str),
}

/// Asks the API server which version to use for each of the four resources.
pub async fn discover(client: &kube::Client) -> Result<BTreeMap<EsoResource, String>, DiscoveryError> {
    let req = http::Request::get(format!("/apis/{GROUP}"))
        .body(Vec::new())
        .map_err(DiscoveryError::BuildRequest)?;
    let group: APIGroup = match client.request(req).await {
        Ok(g) => g,
        Err(kube::Error::Api(s)) if s.code == 404 => return Err(DiscoveryError::GroupMissing),
        Err(e) => return Err(DiscoveryError::Request(e)),
    };
    let mut served = BTreeMap::new();
    for gv in &group.versions {
        if !PREFERRED_VERSIONS.contains(&gv.version.as_str()) {
            continue;
        }
        let list = client
            .list_api_group_resources(&gv.group_version)
            .await
            .map_err(DiscoveryError::Request)?;
        served.insert(
            gv.version.clone(),
            list.resources.into_iter().map(|r| r.name).collect(),
        );
    }
    let chosen = choose_versions(&served);
    for r in RESOURCES {
        if !chosen.contains_key(&r) {
            return Err(DiscoveryError::NoVersion(r.plural()));
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        entries
            .iter()
            .map(|(v, ps)| (v.to_string(), ps.iter().map(|p| p.to_string()).collect()))
            .collect()
    }

    const ALL: [&str; 4] = [
        "externalsecrets",
        "secretstores",
        "clustersecretstores",
        "clusterexternalsecrets",
    ];

    #[test]
    fn prefers_v1_when_both_are_served() {
        let chosen = choose_versions(&served(&[("v1", &ALL), ("v1beta1", &ALL)]));
        assert!(chosen.values().all(|v| v == "v1"), "{chosen:?}");
        assert_eq!(chosen.len(), 4);
    }

    #[test]
    fn falls_back_to_v1beta1_per_resource() {
        let chosen = choose_versions(&served(&[("v1", &["externalsecrets"]), ("v1beta1", &ALL)]));
        assert_eq!(chosen[&EsoResource::ExternalSecret], "v1");
        assert_eq!(chosen[&EsoResource::SecretStore], "v1beta1");
    }

    #[test]
    fn ignores_unknown_versions_and_subresources() {
        let chosen = choose_versions(&served(&[
            ("v1alpha1", &ALL),
            ("v1", &["externalsecrets/status"]),
        ]));
        assert!(chosen.is_empty());
    }
}
