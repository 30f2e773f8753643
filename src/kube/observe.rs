//! Watches ESO's four resources (kube-runtime `watcher`, which handles resumes, bookmarks, 410 Gone
//! and relists with backoff) and keeps the index equal to the cluster: every watch event updates
//! the index incrementally, and each (re)list ends by deleting what the list no longer holds.
//! Each watch opens a readiness gate after its first complete list.

use std::collections::{BTreeMap, HashSet};

use futures::StreamExt;
use kube::api::Api;
use kube::core::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::SharedIndex;
use super::confirm::ConfirmTracker;
use super::convert;
use super::discovery::EsoResource;
use crate::core::objects::{EsKey, StoreKind};
use crate::readiness::Readiness;

/// Labels of a watch metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    /// The plural resource name.
    pub resource: String,
    /// `apply`, `delete`, `relist`, `error`.
    pub event: String,
}

/// Metrics of the watches.
#[derive(Clone, Debug)]
pub struct WatchMetrics {
    /// `kvsync_watch_events_total{resource,event}`.
    pub events: Family<WatchLabels, Counter>,
}

impl WatchMetrics {
    /// Creates and registers the family.
    pub fn register(registry: &mut Registry) -> Self {
        let m = WatchMetrics {
            events: Family::default(),
        };
        registry.register(
            "watch_events",
            "Watch events applied to the index",
            m.events.clone(),
        );
        m
    }

    fn count(&self, r: EsoResource, event: &str) {
        self.events
            .get_or_create(&WatchLabels {
                resource: r.plural().into(),
                event: event.into(),
            })
            .inc();
    }
}

/// Hook called when a store's observed state changes (used for the store-ready re-trigger).
pub type StoreHook = std::sync::Arc<dyn Fn(&crate::core::objects::StoreObject) + Send + Sync>;

/// Feeds the index from the cluster.
#[derive(Clone)]
pub struct Observer {
    /// The client.
    pub client: kube::Client,
    /// Version per resource (from discovery).
    pub versions: BTreeMap<EsoResource, String>,
    /// Namespaces to watch for namespaced resources; empty = all.
    pub namespaces: Vec<String>,
    /// The index to keep equal to the cluster.
    pub index: SharedIndex,
    /// Readiness gates (one per watch).
    pub readiness: Readiness,
    /// Confirmation tracker fed with ExternalSecret updates.
    pub confirm: Option<ConfirmTracker>,
    /// Metrics.
    pub metrics: WatchMetrics,
    /// Called after a store was applied to the index.
    pub on_store: Option<StoreHook>,
}

/// Identity of an object in one watch's scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ObjKey {
    namespace: Option<String>,
    name: String,
}

impl Observer {
    /// Starts every watch as a task; the tasks run until the runtime stops.
    pub fn spawn(self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        for (resource, version) in self.versions.clone() {
            let scopes: Vec<Option<String>> = if resource.namespaced() && !self.namespaces.is_empty() {
                self.namespaces.iter().cloned().map(Some).collect()
            } else {
                vec![None]
            };
            for scope in scopes {
                let this = self.clone();
                let version = version.clone();
                let gate = self.readiness.gate(match &scope {
                    Some(ns) => format!("{} in {ns}", resource.plural()),
                    None => resource.plural().to_string(),
                });
                handles.push(tokio::spawn(async move {
                    this.watch(resource, &version, scope, gate).await;
                }));
            }
        }
        handles
    }

    async fn watch(
        &self,
        resource: EsoResource,
        version: &str,
        scope: Option<String>,
        gate: crate::readiness::GateHandle,
    ) {
        let ar = resource.api_resource(version);
        let api: Api<DynamicObject> = match &scope {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        };
        let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
        let mut listing: Option<HashSet<ObjKey>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => listing = Some(HashSet::new()),
                Ok(watcher::Event::InitApply(obj)) => {
                    if let Some(seen) = listing.as_mut() {
                        seen.insert(ObjKey {
                            namespace: obj.metadata.namespace.clone(),
                            name: obj.metadata.name.clone().unwrap_or_default(),
                        });
                    }
                    self.apply(resource, &obj);
                }
                Ok(watcher::Event::InitDone) => {
                    let seen = listing.take().unwrap_or_default();
                    let removed = self.remove_unseen(resource, scope.as_deref(), &seen);
                    self.metrics.count(resource, "relist");
                    tracing::info!(
                        resource = resource.plural(),
                        version,
                        objects = seen.len(),
                        removed,
                        namespace = scope.as_deref().unwrap_or("*"),
                        "watch synced"
                    );
                    gate.open();
                }
                Ok(watcher::Event::Apply(obj)) => self.apply(resource, &obj),
                Ok(watcher::Event::Delete(obj)) => self.delete(resource, &obj),
                Err(e) => {
                    self.metrics.count(resource, "error");
                    tracing::warn!(resource = resource.plural(), error = %e, "watch error (retrying with backoff)");
                }
            }
        }
    }

    fn apply(&self, resource: EsoResource, obj: &DynamicObject) {
        self.metrics.count(resource, "apply");
        let mut index = self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match resource {
            EsoResource::SecretStore | EsoResource::ClusterSecretStore => {
                let kind = store_kind(resource);
                let store = convert::store(kind, obj);
                index.apply_store(store.clone());
                drop(index);
                if let Some(hook) = &self.on_store {
                    hook(&store);
                }
            }
            EsoResource::ExternalSecret => {
                let es = convert::external_secret(obj);
                if let Some(confirm) = &self.confirm {
                    confirm.observe(&es);
                }
                index.apply_external_secret(es);
            }
            EsoResource::ClusterExternalSecret => {
                index.apply_cluster_external_secret(convert::cluster_external_secret(obj))
            }
        }
    }

    fn delete(&self, resource: EsoResource, obj: &DynamicObject) {
        self.metrics.count(resource, "delete");
        let name = obj.metadata.name.clone().unwrap_or_default();
        let ns = obj.metadata.namespace.clone();
        let mut index = self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match resource {
            EsoResource::SecretStore | EsoResource::ClusterSecretStore => {
                index.delete_store(store_kind(resource), ns.as_deref(), &name);
            }
            EsoResource::ExternalSecret => {
                let ns = ns.unwrap_or_default();
                if let Some(confirm) = &self.confirm {
                    confirm.forget(&EsKey::new(ns.as_str(), name.as_str()));
                }
                index.delete_external_secret(&ns, &name);
            }
            EsoResource::ClusterExternalSecret => index.delete_cluster_external_secret(&name),
        }
    }

    /// Deletes index entries of `resource` in `scope` that the latest list did not contain.
    fn remove_unseen(&self, resource: EsoResource, scope: Option<&str>, seen: &HashSet<ObjKey>) -> usize {
        let in_scope = |ns: &Option<String>| scope.is_none() || ns.as_deref() == scope;
        let mut index = self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut removed = 0;
        match resource {
            EsoResource::SecretStore | EsoResource::ClusterSecretStore => {
                let kind = store_kind(resource);
                for (k, ns, name) in index.store_keys() {
                    if k == kind
                        && in_scope(&ns)
                        && !seen.contains(&ObjKey {
                            namespace: ns.clone(),
                            name: name.clone(),
                        })
                    {
                        index.delete_store(kind, ns.as_deref(), &name);
                        removed += 1;
                    }
                }
            }
            EsoResource::ExternalSecret => {
                for key in index.external_secret_keys() {
                    let ns = Some(key.namespace.to_string());
                    if in_scope(&ns)
                        && !seen.contains(&ObjKey {
                            namespace: ns,
                            name: key.name.to_string(),
                        })
                    {
                        index.delete_external_secret(&key.namespace, &key.name);
                        removed += 1;
                    }
                }
            }
            EsoResource::ClusterExternalSecret => {
                for name in index.cluster_external_secret_keys() {
                    if !seen.contains(&ObjKey {
                        namespace: None,
                        name: name.clone(),
                    }) {
                        index.delete_cluster_external_secret(&name);
                        removed += 1;
                    }
                }
            }
        }
        removed
    }
}

fn store_kind(resource: EsoResource) -> StoreKind {
    if resource == EsoResource::ClusterSecretStore {
        StoreKind::ClusterSecretStore
    } else {
        StoreKind::SecretStore
    }
}
