//! No-cluster mode: builds the index from ESO YAML files (multi-document) in a directory instead
//! of watching a cluster. Objects of other groups (ServiceAccounts, …) are skipped; objects without
//! a namespace get `default`, as `kubectl apply` would give them.

use std::path::{Path, PathBuf};

use kube::core::DynamicObject;

use super::convert;
use super::discovery::GROUP;
use crate::core::index::Index;
use crate::core::objects::StoreKind;

/// Why manifests could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A file or the directory could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML or not a Kubernetes object.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// What was loaded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// ESO objects put into the index.
    pub objects: usize,
    /// Documents of other groups or kinds, skipped.
    pub skipped: usize,
    /// Files read.
    pub files: usize,
}

/// Reads every `*.yaml`/`*.yml` file in `dir` (sorted, not recursive) into `index`.
pub fn load_dir(dir: &Path, index: &mut Index) -> Result<Loaded, ManifestError> {
    let read_err = |source| ManifestError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut loaded = Loaded::default();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        let l = load_str(&text, index).map_err(|message| ManifestError::Parse {
            path: path.clone(),
            message,
        })?;
        loaded.objects += l.objects;
        loaded.skipped += l.skipped;
        loaded.files += 1;
    }
    Ok(loaded)
}

/// Loads the documents of one YAML text into `index`.
pub fn load_str(text: &str, index: &mut Index) -> Result<Loaded, String> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    let mut loaded = Loaded::default();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let api_version = doc.get("apiVersion").and_then(|v| v.as_str()).unwrap_or("");
        if api_version.split('/').next() != Some(GROUP) {
            loaded.skipped += 1;
            continue;
        }
        let mut obj: DynamicObject = serde_json::from_value(doc).map_err(|e| e.to_string())?;
        let kind = obj.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default();
        if obj.metadata.name.is_none() {
            return Err(format!("a {kind} without metadata.name"));
        }
        let namespaced = matches!(kind.as_str(), "SecretStore" | "ExternalSecret");
        if namespaced && obj.metadata.namespace.is_none() {
            obj.metadata.namespace = Some("default".into());
        }
        match kind.as_str() {
            "SecretStore" => index.apply_store(convert::store(StoreKind::SecretStore, &obj)),
            "ClusterSecretStore" => index.apply_store(convert::store(StoreKind::ClusterSecretStore, &obj)),
            "ExternalSecret" => index.apply_external_secret(convert::external_secret(&obj)),
            "ClusterExternalSecret" => {
                index.apply_cluster_external_secret(convert::cluster_external_secret(&obj))
            }
            _ => {
                loaded.skipped += 1;
                continue;
            }
        }
        loaded.objects += 1;
    }
    Ok(loaded)
}
