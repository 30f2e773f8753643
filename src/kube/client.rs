//! Builds the Kubernetes client from `KUBECONFIG` / `~/.kube/config` or the in-cluster service account.

use crate::{Error, Result};

/// Loads the client configuration the way kubectl does (kubeconfig first, then in-cluster) and
/// builds a client. This does not contact the API server: kvsync must start even when it is down.
pub async fn from_env() -> Result<::kube::Client> {
    let config = ::kube::Config::infer().await.map_err(Error::KubeConfig)?;
    ::kube::Client::try_from(config).map_err(Error::KubeClient)
}
