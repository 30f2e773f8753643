//! The index from Key Vault objects to the ExternalSecrets that read them.
//!
//! Incremental: applying or deleting one object touches only what depends on it. Each ES records
//! the index entries it contributed (`Contribution`), so replacing it removes exactly those; each
//! store keeps the set of ESs that name it, so a store created after its ESs, a changed
//! `vaultUrl` or a deleted store re-resolves only those ESs.
//!
//! Maps kept:
//! - `by_object`: `ObjectRef → ESs` with an `data[]`/`dataFrom[].extract` ref to that object
//!   (pinned refs included; the decision reports them);
//! - `finders`: `VaultId → ESs` with a `dataFrom[].find` on that vault;
//! - `store_dependents`: store → ESs that name it (whether or not the store exists yet).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::model::{ObjectKind, ObjectName, ObjectRef, VaultId};
use super::objects::{ClusterExternalSecretObject, EsKey, ExternalSecretObject, StoreKind, StoreObject};
use super::spec::{self, ParsedEs, ParsedStore, ReadItem, Selector, StoreKey, StoreProvider};

/// Counts for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// SecretStores and ClusterSecretStores known.
    pub stores: usize,
    /// Of those, `azurekv` stores with a usable `vaultUrl`.
    pub azurekv_stores: usize,
    /// ExternalSecrets known.
    pub external_secrets: usize,
    /// ClusterExternalSecrets known.
    pub cluster_external_secrets: usize,
    /// Distinct Key Vault objects read by some ES (`data`/`extract` refs).
    pub indexed_objects: usize,
    /// ExternalSecrets with at least one `dataFrom.find` on an azurekv store.
    pub find_readers: usize,
    /// Distinct vaults of azurekv stores.
    pub vaults: usize,
}

#[derive(Clone, Debug)]
struct StoreEntry {
    parsed: ParsedStore,
}

#[derive(Clone, Debug)]
pub(crate) struct EsEntry {
    pub(crate) object: ExternalSecretObject,
    pub(crate) parsed: ParsedEs,
    contribution: Contribution,
}

/// What one ES put into the reverse maps. Each list is sorted and deduplicated (a `Vec`, not a
/// `BTreeSet`: most hold one to three items, and a B-tree node is ~0.5 KB).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Contribution {
    objects: Vec<ObjectRef>,
    find_vaults: Vec<VaultId>,
    stores: Vec<StoreKey>,
    /// Names read through a store that is missing or has an unusable `vaultUrl` (for explain).
    unresolved: Vec<ObjectName>,
}

/// The ESs behind one reverse-map key: a sorted, deduplicated `Vec` (usually one or a few keys;
/// far smaller than a `BTreeSet`, whose first node alone holds room for eleven).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KeySet(Vec<EsKey>);

impl KeySet {
    fn insert(&mut self, key: &EsKey) {
        if let Err(at) = self.0.binary_search(key) {
            self.0.insert(at, key.clone());
        }
    }

    fn remove(&mut self, key: &EsKey) {
        if let Ok(at) = self.0.binary_search(key) {
            self.0.remove(at);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> std::slice::Iter<'_, EsKey> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a KeySet {
    type Item = &'a EsKey;
    type IntoIter = std::slice::Iter<'a, EsKey>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// How one ref of an ES relates to a changed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A latest-version read: a new version changes what ESO reads.
    Reads,
    /// `remoteRef.version` pins it.
    Pinned(String),
    /// A `find.name.regexp` that does not compile: ESO matches nothing.
    InvalidRegex { regexp: String, error: String },
}

/// One ref of an ES that names the changed object.
#[derive(Clone, Debug)]
pub(crate) struct ItemMatch<'a> {
    pub(crate) item: &'a ReadItem,
    pub(crate) store: &'a StoreKey,
    pub(crate) outcome: Outcome,
}

/// A ref whose store is missing or unusable (see [`Index::unresolved_refs`]).
#[derive(Clone, Debug)]
pub(crate) struct UnresolvedRef<'a> {
    pub(crate) es: &'a EsKey,
    pub(crate) entry: &'a EsEntry,
    pub(crate) how: &'a str,
    pub(crate) store: &'a StoreKey,
    /// `None`: the store does not exist; `Some(url)`: its azurekv `vaultUrl` is unusable.
    pub(crate) bad_url: Option<&'a str>,
}

/// The index. Build it with the `apply_*`/`delete_*` methods as watch events arrive.
#[derive(Clone, Debug, Default)]
pub struct Index {
    stores: BTreeMap<StoreKey, StoreEntry>,
    /// Hashed: looked up once per candidate of every event; sorted where listed.
    external_secrets: HashMap<EsKey, EsEntry>,
    cluster_external_secrets: BTreeMap<String, ClusterExternalSecretObject>,
    store_dependents: BTreeMap<StoreKey, KeySet>,
    by_object: BTreeMap<ObjectRef, KeySet>,
    finders: BTreeMap<VaultId, KeySet>,
    unresolved: BTreeMap<ObjectName, KeySet>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Adds or replaces a store; re-resolves only the ESs that name it.
    pub fn apply_store(&mut self, s: StoreObject) {
        let key = StoreKey::new(s.kind, s.meta.namespace.as_deref(), &s.meta.name);
        let parsed = spec::parse_store(&s);
        self.stores.insert(key.clone(), StoreEntry { parsed });
        self.reresolve_dependents(&key);
    }

    /// Removes a store (the namespace is ignored for a `ClusterSecretStore`); its ESs then read
    /// nothing through it.
    pub fn delete_store(&mut self, kind: StoreKind, namespace: Option<&str>, name: &str) {
        let key = StoreKey::new(kind, namespace, name);
        if self.stores.remove(&key).is_some() {
            self.reresolve_dependents(&key);
        }
    }

    /// Adds or replaces an ExternalSecret. Its `spec` is parsed here and not kept (it is most of
    /// an object's memory); [`Index::external_secret`] returns the rest, `status` included.
    pub fn apply_external_secret(&mut self, mut es: ExternalSecretObject) {
        let key = es.key();
        self.remove_es_entries(&key);
        let parsed = spec::parse_es(&es);
        es.spec = serde_json::Value::Null;
        let contribution = contribution(&self.stores, &parsed);
        self.add_contribution(&key, &contribution);
        self.external_secrets.insert(
            key,
            EsEntry {
                object: es,
                parsed,
                contribution,
            },
        );
    }

    /// Removes an ExternalSecret.
    pub fn delete_external_secret(&mut self, namespace: &str, name: &str) {
        let key = EsKey::new(namespace, name);
        self.remove_es_entries(&key);
        self.external_secrets.remove(&key);
    }

    /// Adds or replaces a ClusterExternalSecret. Children are recognised by their controller
    /// ownerReference, so this only records that the CES exists.
    pub fn apply_cluster_external_secret(&mut self, ces: ClusterExternalSecretObject) {
        self.cluster_external_secrets.insert(ces.meta.name.clone(), ces);
    }

    /// Removes a ClusterExternalSecret.
    pub fn delete_cluster_external_secret(&mut self, name: &str) {
        self.cluster_external_secrets.remove(name);
    }

    /// Every store known: `(kind, namespace, name)`, namespace `None` for cluster stores.
    pub fn store_keys(&self) -> Vec<(StoreKind, Option<String>, String)> {
        self.stores
            .keys()
            .map(|k| (k.kind, k.namespace.clone(), k.name.clone()))
            .collect()
    }

    /// Every ExternalSecret known, sorted.
    pub fn external_secret_keys(&self) -> Vec<EsKey> {
        let mut keys: Vec<EsKey> = self.external_secrets.keys().cloned().collect();
        keys.sort_unstable();
        keys
    }

    /// Every ClusterExternalSecret known, sorted.
    pub fn cluster_external_secret_keys(&self) -> Vec<String> {
        self.cluster_external_secrets.keys().cloned().collect()
    }

    /// The ExternalSecret as last applied: metadata, `status` and `refreshInterval` class; `spec`
    /// is `Null` (the index keeps its parsed form only).
    pub fn external_secret(&self, key: &EsKey) -> Option<&ExternalSecretObject> {
        self.external_secrets.get(key).map(|e| &e.object)
    }

    /// The ClusterExternalSecret as last applied.
    pub fn cluster_external_secret(&self, name: &str) -> Option<&ClusterExternalSecretObject> {
        self.cluster_external_secrets.get(name)
    }

    /// The vaults of all azurekv stores (for the fallback reconcile).
    pub fn vaults(&self) -> BTreeSet<VaultId> {
        self.stores
            .values()
            .filter_map(|s| s.parsed.provider.vault().cloned())
            .collect()
    }

    /// The kinds of object some ES reads in `vault` (`find` reads secrets). A certificate's
    /// backing secret and key are listed as a secret and a key, so listing these kinds is enough
    /// to see every change that matters.
    pub fn referenced_kinds(&self, vault: &VaultId) -> BTreeSet<ObjectKind> {
        let mut kinds = BTreeSet::new();
        for kind in [ObjectKind::Secret, ObjectKind::Certificate, ObjectKind::Key] {
            let start = ObjectRef {
                vault: vault.clone(),
                kind,
                name: ObjectName::new(""),
            };
            if self
                .by_object
                .range(start..)
                .next()
                .is_some_and(|(o, _)| &o.vault == vault && o.kind == kind)
            {
                kinds.insert(kind);
            }
        }
        if self.finders.contains_key(vault) {
            kinds.insert(ObjectKind::Secret);
        }
        kinds
    }

    /// ExternalSecrets that read `object` at its latest version (by any ref: `data`, `extract`,
    /// or a `find` whose name regexp matches, or whose tags cannot be checked). Refresh policy
    /// and namespace conditions are not applied: this is "who reads it", not "who to trigger".
    pub fn readers_of(&self, object: &ObjectRef) -> Vec<EsKey> {
        self.candidates(object)
            .into_iter()
            .filter(|key| {
                self.external_secrets.get(key).is_some_and(|e| {
                    self.item_matches(e, object)
                        .iter()
                        .any(|m| m.outcome == Outcome::Reads)
                })
            })
            .collect()
    }

    /// ExternalSecrets that name the store (`kind`, `namespace` ignored for a cluster store,
    /// `name`), sorted, each with the objects it reads through that store at their latest version
    /// (`data`/`extract` refs; pinned refs and `find` are not objects, so an ES that only finds
    /// through the store comes with an empty list). Empty objects also when the store is not an
    /// azurekv store with a usable `vaultUrl`.
    pub fn store_readers(
        &self,
        kind: StoreKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Vec<(EsKey, Vec<ObjectRef>)> {
        let key = StoreKey::new(kind, namespace, name);
        let vault = self.stores.get(&key).and_then(|s| s.parsed.provider.vault());
        let Some(dependents) = self.store_dependents.get(&key) else {
            return Vec::new();
        };
        dependents
            .iter()
            .filter_map(|es| {
                let entry = self.external_secrets.get(es)?;
                let mut objects: BTreeSet<ObjectRef> = BTreeSet::new();
                if let Some(vault) = vault {
                    for item in &entry.parsed.items {
                        if item.store.as_ref() != Some(&key) {
                            continue;
                        }
                        if let Selector::Object {
                            kind,
                            name,
                            version: None,
                        } = &item.selector
                        {
                            objects.insert(ObjectRef {
                                vault: vault.clone(),
                                kind: *kind,
                                name: name.clone(),
                            });
                        }
                    }
                }
                Some((es.clone(), objects.into_iter().collect()))
            })
            .collect()
    }

    /// Counts for metrics.
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            stores: self.stores.len(),
            azurekv_stores: self
                .stores
                .values()
                .filter(|s| s.parsed.provider.vault().is_some())
                .count(),
            external_secrets: self.external_secrets.len(),
            cluster_external_secrets: self.cluster_external_secrets.len(),
            indexed_objects: self.by_object.len(),
            find_readers: self.finders.values().flatten().collect::<BTreeSet<_>>().len(),
            vaults: self.vaults().len(),
        }
    }

    /// ESs that may read `object`: exact refs, plus for a certificate the refs to its backing
    /// secret and key (same name), plus `find` readers of its vault when it is (or backs) a secret.
    pub(crate) fn candidates(&self, object: &ObjectRef) -> BTreeSet<EsKey> {
        let mut out = BTreeSet::new();
        for kind in affected_ref_kinds(object.kind) {
            let r = ObjectRef {
                vault: object.vault.clone(),
                kind: *kind,
                name: object.name.clone(),
            };
            if let Some(set) = self.by_object.get(&r) {
                out.extend(set.iter().cloned());
            }
        }
        if find_reads(object.kind)
            && let Some(set) = self.finders.get(&object.vault)
        {
            out.extend(set.iter().cloned());
        }
        out
    }

    /// Refs of ESs that name `object` (by kind and name) through a store that is missing or
    /// whose `vaultUrl` is unusable: such an ES reads nothing, whichever vault it meant.
    pub(crate) fn unresolved_refs(&self, object: &ObjectRef) -> Vec<UnresolvedRef<'_>> {
        let mut out = Vec::new();
        let Some(keys) = self.unresolved.get(&object.name) else {
            return out;
        };
        for key in keys {
            let Some(entry) = self.external_secrets.get(key) else {
                continue;
            };
            for item in &entry.parsed.items {
                let (Some(store), Selector::Object { kind, name, .. }) = (&item.store, &item.selector) else {
                    continue;
                };
                if name != &object.name || !affected_ref_kinds(object.kind).contains(kind) {
                    continue;
                }
                let bad_url = match self.stores.get(store).map(|s| &s.parsed.provider) {
                    None => None,
                    Some(StoreProvider::AzureKvInvalidUrl(url)) => Some(url.as_str()),
                    Some(_) => continue,
                };
                out.push(UnresolvedRef {
                    es: key,
                    entry,
                    how: &item.how,
                    store,
                    bad_url,
                });
            }
        }
        out
    }

    pub(crate) fn entry(&self, key: &EsKey) -> Option<&EsEntry> {
        self.external_secrets.get(key)
    }

    /// A store's parsed form.
    pub(crate) fn store(&self, key: &StoreKey) -> Option<&ParsedStore> {
        self.stores.get(key).map(|s| &s.parsed)
    }

    /// The refs of `es` that name `object`, with how each relates to a new version.
    pub(crate) fn item_matches<'a>(&'a self, es: &'a EsEntry, object: &ObjectRef) -> Vec<ItemMatch<'a>> {
        let mut out = Vec::new();
        for item in &es.parsed.items {
            let Some(store) = &item.store else { continue };
            let Some(vault) = self.stores.get(store).and_then(|s| s.parsed.provider.vault()) else {
                continue;
            };
            if vault != &object.vault {
                continue;
            }
            let outcome = match &item.selector {
                Selector::Object { kind, name, version } => {
                    if name != &object.name || !affected_ref_kinds(object.kind).contains(kind) {
                        continue;
                    }
                    match version {
                        Some(v) => Outcome::Pinned(v.clone()),
                        None => Outcome::Reads,
                    }
                }
                Selector::Find { regexp, .. } => {
                    if !find_reads(object.kind) {
                        continue;
                    }
                    match regexp.as_ref().map(|r| (r, &r.compiled)) {
                        None => Outcome::Reads,
                        Some((_, Ok(re))) if re.is_match(object.name.as_str()) => Outcome::Reads,
                        Some((_, Ok(_))) => continue,
                        Some((r, Err(e))) => Outcome::InvalidRegex {
                            regexp: r.source.clone(),
                            error: e.clone(),
                        },
                    }
                }
                Selector::Unreadable => continue,
            };
            out.push(ItemMatch { item, store, outcome });
        }
        out
    }

    fn reresolve_dependents(&mut self, store: &StoreKey) {
        let dependents: Vec<EsKey> = self
            .store_dependents
            .get(store)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for key in dependents {
            let Some(entry) = self.external_secrets.get(&key) else {
                continue;
            };
            let new = contribution(&self.stores, &entry.parsed);
            if new == entry.contribution {
                continue;
            }
            let old = entry.contribution.clone();
            self.remove_contribution(&key, &old);
            self.add_contribution(&key, &new);
            if let Some(entry) = self.external_secrets.get_mut(&key) {
                entry.contribution = new;
            }
        }
    }

    fn remove_es_entries(&mut self, key: &EsKey) {
        if let Some(old) = self.external_secrets.get(key).map(|e| e.contribution.clone()) {
            self.remove_contribution(key, &old);
        }
    }

    fn add_contribution(&mut self, key: &EsKey, c: &Contribution) {
        for o in &c.objects {
            self.by_object.entry(o.clone()).or_default().insert(key);
        }
        for v in &c.find_vaults {
            self.finders.entry(v.clone()).or_default().insert(key);
        }
        for s in &c.stores {
            self.store_dependents.entry(s.clone()).or_default().insert(key);
        }
        for n in &c.unresolved {
            self.unresolved.entry(n.clone()).or_default().insert(key);
        }
    }

    fn remove_contribution(&mut self, key: &EsKey, c: &Contribution) {
        fn remove<K: Ord + Clone>(map: &mut BTreeMap<K, KeySet>, k: &K, es: &EsKey) {
            if let Some(set) = map.get_mut(k) {
                set.remove(es);
                if set.is_empty() {
                    map.remove(k);
                }
            }
        }
        for o in &c.objects {
            remove(&mut self.by_object, o, key);
        }
        for v in &c.find_vaults {
            remove(&mut self.finders, v, key);
        }
        for s in &c.stores {
            remove(&mut self.store_dependents, s, key);
        }
        for n in &c.unresolved {
            remove(&mut self.unresolved, n, key);
        }
    }

    /// The reverse maps, for tests comparing incremental updates with a fresh build.
    #[cfg(test)]
    #[allow(clippy::type_complexity)]
    pub(crate) fn reverse_maps(
        &self,
    ) -> (
        BTreeMap<ObjectRef, BTreeSet<EsKey>>,
        BTreeMap<VaultId, BTreeSet<EsKey>>,
        BTreeMap<StoreKey, BTreeSet<EsKey>>,
        BTreeMap<ObjectName, BTreeSet<EsKey>>,
    ) {
        (
            sets(&self.by_object),
            sets(&self.finders),
            sets(&self.store_dependents),
            sets(&self.unresolved),
        )
    }
}

/// A reverse map as plain sets (for tests).
#[cfg(test)]
fn sets<K: Ord + Clone>(map: &BTreeMap<K, KeySet>) -> BTreeMap<K, BTreeSet<EsKey>> {
    map.iter()
        .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
        .collect()
}

/// Which ref kinds a new version of `changed` affects: itself, and for a certificate also its
/// backing secret (`secret/<cert>`, eso.md §4.1) and backing key (`key/<cert>`): Key Vault gives
/// both a new version with every certificate version.
fn affected_ref_kinds(changed: ObjectKind) -> &'static [ObjectKind] {
    match changed {
        ObjectKind::Secret => &[ObjectKind::Secret],
        ObjectKind::Certificate => &[ObjectKind::Certificate, ObjectKind::Secret, ObjectKind::Key],
        ObjectKind::Key => &[ObjectKind::Key],
    }
}

/// `find` lists secrets only; a certificate's backing secret is listed among them.
fn find_reads(changed: ObjectKind) -> bool {
    matches!(changed, ObjectKind::Secret | ObjectKind::Certificate)
}

/// What `parsed` contributes to the reverse maps given the current stores.
fn contribution(stores: &BTreeMap<StoreKey, StoreEntry>, parsed: &ParsedEs) -> Contribution {
    #[derive(Default)]
    struct Sets {
        objects: BTreeSet<ObjectRef>,
        find_vaults: BTreeSet<VaultId>,
        stores: BTreeSet<StoreKey>,
        unresolved: BTreeSet<ObjectName>,
    }
    let mut c = Sets::default();
    for item in &parsed.items {
        let Some(store) = &item.store else { continue };
        c.stores.insert(store.clone());
        let provider = stores.get(store).map(|s| &s.parsed.provider);
        let Some(vault) = provider.and_then(StoreProvider::vault) else {
            if let (None | Some(StoreProvider::AzureKvInvalidUrl(_)), Selector::Object { name, .. }) =
                (provider, &item.selector)
            {
                c.unresolved.insert(name.clone());
            }
            continue;
        };
        match &item.selector {
            Selector::Object { kind, name, .. } => {
                c.objects.insert(ObjectRef {
                    vault: vault.clone(),
                    kind: *kind,
                    name: name.clone(),
                });
            }
            Selector::Find { .. } => {
                c.find_vaults.insert(vault.clone());
            }
            Selector::Unreadable => {}
        }
    }
    Contribution {
        objects: c.objects.into_iter().collect(),
        find_vaults: c.find_vaults.into_iter().collect(),
        stores: c.stores.into_iter().collect(),
        unresolved: c.unresolved.into_iter().collect(),
    }
}
