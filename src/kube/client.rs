//! Builds the Kubernetes client from `KUBECONFIG` / `~/.kube/config` or the in-cluster service account.

use crate::{Error, Result};

/// Loads the client configuration the way kubectl does (kubeconfig first, then in-cluster) and
/// builds a client. This does not contact the API server: kvsync must start even when it is down.
pub async fn from_env() -> Result<::kube::Client> {
    let config = ::kube::Config::infer().await.map_err(Error::KubeConfig)?;
    ::kube::Client::try_from(config).map_err(Error::KubeClient)
}

/// Builds a client from a kubeconfig file named explicitly (Functions mode: an app setting or a
/// mounted file).
pub async fn from_kubeconfig_file(path: &std::path::Path) -> Result<::kube::Client> {
    let kc = ::kube::config::Kubeconfig::read_from(path)
        .map_err(|e| Error::KubeConfigFile(path.to_path_buf(), e))?;
    let config = ::kube::Config::from_custom_kubeconfig(kc, &::kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| Error::KubeConfigFile(path.to_path_buf(), e))?;
    ::kube::Client::try_from(config).map_err(Error::KubeClient)
}
