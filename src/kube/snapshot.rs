//! One-shot read of ESO's resources into an index (for `kvsync explain` against a cluster).

use kube::api::{Api, ListParams};
use kube::core::DynamicObject;

use super::convert;
use super::discovery::{self, DiscoveryError, EsoResource};
use crate::core::index::Index;
use crate::core::objects::StoreKind;

/// Why the snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Discovery failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// A list failed.
    #[error("failed to list {resource}")]
    List {
        /// The resource.
        resource: &'static str,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

/// Lists every ESO object (in `namespaces`, or everywhere) into a new index.
pub async fn load(client: &kube::Client, namespaces: &[String]) -> Result<Index, SnapshotError> {
    let versions = discovery::discover(client).await?;
    let mut index = Index::default();
    for (resource, version) in versions {
        let ar = resource.api_resource(&version);
        let apis: Vec<Api<DynamicObject>> = if resource.namespaced() && !namespaces.is_empty() {
            namespaces
                .iter()
                .map(|ns| Api::namespaced_with(client.clone(), ns, &ar))
                .collect()
        } else {
            vec![Api::all_with(client.clone(), &ar)]
        };
        for api in apis {
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(|source| SnapshotError::List {
                    resource: resource.plural(),
                    source,
                })?;
            for obj in &list.items {
                match resource {
                    EsoResource::SecretStore => {
                        index.apply_store(convert::store(StoreKind::SecretStore, obj))
                    }
                    EsoResource::ClusterSecretStore => {
                        index.apply_store(convert::store(StoreKind::ClusterSecretStore, obj))
                    }
                    EsoResource::ExternalSecret => index.apply_external_secret(convert::external_secret(obj)),
                    EsoResource::ClusterExternalSecret => {
                        index.apply_cluster_external_secret(convert::cluster_external_secret(obj))
                    }
                }
            }
        }
    }
    Ok(index)
}
