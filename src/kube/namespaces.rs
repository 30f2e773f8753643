//! Namespace labels for ClusterSecretStore `namespaceSelector` conditions, from a reflector on
//! core/v1 Namespaces. Until the first list completes (or where Namespaces cannot be read), labels
//! are unknown and the core reports such readers instead of guessing.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::core::decide::NamespaceLabels;

/// Labels of Namespaces as last seen by a watch.
#[derive(Clone)]
pub struct WatchedNamespaces {
    store: Store<Namespace>,
}

impl WatchedNamespaces {
    /// Starts the reflector in a task and returns the reader.
    pub fn spawn(client: kube::Client) -> Self {
        let (store, writer) = reflector::store();
        let api: Api<Namespace> = Api::all(client);
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
        tokio::spawn(async move {
            let mut stream = stream.boxed();
            let mut warned = false;
            while let Some(ev) = stream.next().await {
                if let Err(e) = ev
                    && !warned
                {
                    tracing::warn!(error = %e, "cannot watch Namespaces: namespaceSelector conditions will be reported, not evaluated");
                    warned = true;
                }
            }
        });
        WatchedNamespaces { store }
    }
}

impl NamespaceLabels for WatchedNamespaces {
    fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.store
            .get(&ObjectRef::new(namespace))
            .map(|ns| ns.metadata.labels.clone().unwrap_or_default())
    }
}
