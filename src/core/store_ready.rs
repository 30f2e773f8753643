//! Store-ready re-trigger, pure: when a SecretStore or ClusterSecretStore turns `Ready=True`
//! after having been seen not Ready (typically Key Vault RBAC propagation, 60–120 s after a role
//! assignment), the ExternalSecrets that use it and are not Ready are re-triggered once, instead
//! of waiting for ESO's error backoff (up to minutes).
//!
//! The re-trigger goes through the same apply path as events: it is expressed as one
//! [`VaultChange`] per object those ESs read through the store, with version
//! `store-ready-<store resourceVersion>`, unique per transition (so it is never mistaken for an
//! already-applied change) and stable within it (two replicas seeing the same transition compute
//! the same trigger value, so the second patch changes nothing). Limits, by construction of the
//! apply path: other readers of the same objects are refreshed too (one extra, harmless refresh),
//! and an ES that only reads through `dataFrom.find` has no object to name and is not
//! re-triggered (ESO's own retry still covers it).

use std::collections::{BTreeMap, BTreeSet};

use super::index::{Index, ReadyStatus};
use super::model::{ChangeKind, VaultChange};
use super::objects::{EsKey, StoreKind, StoreObject};
use super::staleness::ready_condition;

/// A store's identity: kind, namespace (`None` for a cluster store), name.
pub type StoreId = (StoreKind, Option<String>, String);

/// Remembers each store's last observed readiness and reports not-Ready → Ready transitions.
#[derive(Clone, Debug, Default)]
pub struct ReadyTransitions {
    last: BTreeMap<StoreId, bool>,
}

impl ReadyTransitions {
    /// Records `store`'s current readiness; `true` exactly when it is Ready now and was seen not
    /// Ready before. A store first seen Ready is not a transition (nothing was waiting on it as far
    /// as kvsync knows), and repeated Ready observations fire once.
    pub fn observe(&mut self, store: &StoreObject) -> bool {
        let ready = ready_condition(&store.status) == Some(true);
        let previous = self.last.insert(store_id(store), ready);
        ready && previous == Some(false)
    }

    /// Forgets a deleted store.
    pub fn forget(&mut self, id: &StoreId) {
        self.last.remove(id);
    }
}

/// The identity of `store`.
pub fn store_id(store: &StoreObject) -> StoreId {
    let namespace = match store.kind {
        StoreKind::SecretStore => store.meta.namespace.clone(),
        StoreKind::ClusterSecretStore => None,
    };
    (store.kind, namespace, store.meta.name.clone())
}

/// What a store turning Ready re-triggers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreReadyPlan {
    /// The changes to hand to the apply step (empty: nothing to do).
    pub changes: Vec<VaultChange>,
    /// The not-Ready ExternalSecrets they are for, sorted.
    pub not_ready: Vec<EsKey>,
    /// Not-Ready ExternalSecrets that name no object through the store (only `find`).
    pub without_objects: Vec<EsKey>,
}

/// The changes that re-trigger the not-Ready ExternalSecrets of `store` (which just turned Ready).
pub fn store_ready_plan(index: &Index, store: &StoreObject) -> StoreReadyPlan {
    let version: std::sync::Arc<str> = format!(
        "store-ready-{}",
        store.meta.resource_version.as_deref().unwrap_or("")
    )
    .into();
    let mut plan = StoreReadyPlan::default();
    let mut objects = BTreeSet::new();
    for (es, read) in index.store_readers(store.kind, store.meta.namespace.as_deref(), &store.meta.name) {
        let ready = index
            .external_secret(&es)
            .is_some_and(|o| o.ready() == Some(ReadyStatus::True));
        if ready {
            continue;
        }
        if read.is_empty() {
            plan.without_objects.push(es);
            continue;
        }
        plan.not_ready.push(es);
        objects.extend(read);
    }
    plan.changes = objects
        .into_iter()
        .map(|object| VaultChange {
            object,
            version: Some(version.clone()),
            kind: ChangeKind::NewVersion,
        })
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::model::{ObjectKind, ObjectName, ObjectRef};
    use super::super::tests::{data_es, es, es_with_status, ss, vault};
    use super::*;

    fn with_status(mut s: StoreObject, status: Value, rv: &str) -> StoreObject {
        s.status = status;
        s.meta.resource_version = Some(rv.to_string());
        s
    }

    fn ready(v: &str) -> Value {
        json!({"conditions": [{"type": "Ready", "status": v}]})
    }

    #[test]
    fn only_a_not_ready_to_ready_transition_fires_and_only_once() {
        let mut t = ReadyTransitions::default();
        let s = ss("ns", "kv", "prod");
        assert!(
            !t.observe(&with_status(s.clone(), ready("True"), "1")),
            "first seen ready"
        );
        assert!(!t.observe(&with_status(s.clone(), ready("False"), "2")));
        assert!(t.observe(&with_status(s.clone(), ready("True"), "3")));
        assert!(!t.observe(&with_status(s.clone(), ready("True"), "4")), "once");
        assert!(!t.observe(&with_status(s.clone(), Value::Null, "5")));
        assert!(
            t.observe(&with_status(s.clone(), ready("True"), "6")),
            "absent status is not ready"
        );
        t.forget(&store_id(&s));
        assert!(!t.observe(&with_status(s, ready("True"), "7")));
    }

    #[test]
    fn the_plan_names_objects_of_not_ready_readers_of_that_store_only() {
        let mut index = Index::new();
        index.apply_store(ss("ns", "kv", "prod"));
        index.apply_store(ss("ns", "other", "prod"));
        index.apply_external_secret(es_with_status(
            "ns",
            "failing",
            json!({"secretStoreRef": {"name": "kv"}, "data": [
                {"secretKey": "a", "remoteRef": {"key": "db"}},
                {"secretKey": "b", "remoteRef": {"key": "pinned", "version": "v1"}},
                {"secretKey": "c", "remoteRef": {"key": "cert/tls"}},
                {"secretKey": "d", "remoteRef": {"key": "x"}, "sourceRef": {"storeRef": {"name": "other"}}},
            ]}),
            ready("False"),
        ));
        index.apply_external_secret(es_with_status(
            "ns",
            "healthy",
            json!({"secretStoreRef": {"name": "kv"}, "data": [{"secretKey": "a", "remoteRef": {"key": "api"}}]}),
            ready("True"),
        ));
        index.apply_external_secret(data_es("ns", "new", "kv", &["db"]));
        index.apply_external_secret(es(
            "ns",
            "finder",
            json!({"secretStoreRef": {"name": "kv"}, "dataFrom": [{"find": {"name": {"regexp": "^a"}}}]}),
        ));
        index.apply_external_secret(data_es("ns", "elsewhere", "other", &["db"]));

        let mut store = ss("ns", "kv", "prod");
        store.meta.resource_version = Some("42".into());
        let plan = store_ready_plan(&index, &store);
        let obj = |kind, name: &str| ObjectRef {
            vault: vault("prod"),
            kind,
            name: ObjectName::new(name),
        };
        let objects: Vec<ObjectRef> = plan.changes.iter().map(|c| c.object.clone()).collect();
        assert_eq!(
            objects,
            vec![obj(ObjectKind::Secret, "db"), obj(ObjectKind::Certificate, "tls")]
        );
        assert!(
            plan.changes
                .iter()
                .all(|c| c.version.as_deref() == Some("store-ready-42") && c.kind == ChangeKind::NewVersion)
        );
        assert_eq!(
            plan.not_ready,
            vec![EsKey::new("ns", "failing"), EsKey::new("ns", "new")]
        );
        assert_eq!(plan.without_objects, vec![EsKey::new("ns", "finder")]);
    }

    #[test]
    fn store_readers_lists_dependents_even_without_the_store() {
        let mut index = Index::new();
        index.apply_external_secret(data_es("ns", "a", "kv", &["db"]));
        let readers = index.store_readers(StoreKind::SecretStore, Some("ns"), "kv");
        assert_eq!(readers, vec![(EsKey::new("ns", "a"), vec![])]);
        index.apply_store(ss("ns", "kv", "prod"));
        let readers = index.store_readers(StoreKind::SecretStore, Some("ns"), "kv");
        assert_eq!(readers[0].1.len(), 1);
        assert!(
            index
                .store_readers(StoreKind::SecretStore, Some("other"), "kv")
                .is_empty()
        );
    }
}
