//! The crate's error type: one enum, variants named after what failed.

use std::path::PathBuf;

/// Everything that can fail inside the kvsync library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes client configuration could not be loaded (kubeconfig or in-cluster).
    #[error("failed to load Kubernetes client configuration")]
    KubeConfig(#[source] ::kube::config::InferConfigError),
    /// A kubeconfig file named in the configuration is unusable.
    #[error("failed to load kubeconfig {0}")]
    KubeConfigFile(PathBuf, #[source] ::kube::config::KubeconfigError),
    /// The Kubernetes client could not be built from a loaded configuration.
    #[error("failed to build Kubernetes client")]
    KubeClient(#[source] ::kube::Error),
    /// A listening socket could not be opened.
    #[error("failed to listen on {addr}")]
    Listen {
        /// The address that was asked for.
        addr: std::net::SocketAddr,
        /// Why the bind failed.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed while serving.
    #[error("http server failed")]
    Serve(#[source] std::io::Error),
    /// A file named in the configuration could not be read.
    #[error("failed to read {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
