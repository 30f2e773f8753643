//! Builds the Kubernetes client from `KUBECONFIG` / `~/.kube/config` or the in-cluster service account,
//! or (Functions mode) from a kubeconfig named explicitly.

use crate::{Error, Result};

/// Loads the client configuration the way kubectl does (kubeconfig first, then in-cluster) and
/// builds a client. This does not contact the API server: kvsync must start even when it is down.
pub async fn from_env() -> Result<::kube::Client> {
    let config = ::kube::Config::infer().await.map_err(Error::KubeConfig)?;
    ::kube::Client::try_from(config).map_err(Error::KubeClient)
}

/// Builds a client from a kubeconfig file named explicitly (Functions mode: a file mounted into
/// the function app).
pub async fn from_kubeconfig_file(path: &std::path::Path) -> Result<::kube::Client> {
    let kc = ::kube::config::Kubeconfig::read_from(path)
        .map_err(|e| Error::KubeConfigFile(path.to_path_buf(), e))?;
    from_kubeconfig(kc, path.to_path_buf()).await
}

/// Builds a client from kubeconfig YAML held in an app setting (Functions mode:
/// `KVSYNC_KUBECONFIG_CONTENT`, typically a Key Vault reference `@Microsoft.KeyVault(...)`).
/// The text is a credential: it is never logged.
pub async fn from_kubeconfig_yaml(text: &str) -> Result<::kube::Client> {
    let origin = std::path::PathBuf::from("$KVSYNC_KUBECONFIG_CONTENT");
    let kc =
        ::kube::config::Kubeconfig::from_yaml(text).map_err(|e| Error::KubeConfigFile(origin.clone(), e))?;
    from_kubeconfig(kc, origin).await
}

async fn from_kubeconfig(
    kc: ::kube::config::Kubeconfig,
    origin: std::path::PathBuf,
) -> Result<::kube::Client> {
    let config = ::kube::Config::from_custom_kubeconfig(kc, &::kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| Error::KubeConfigFile(origin, e))?;
    ::kube::Client::try_from(config).map_err(Error::KubeClient)
}
