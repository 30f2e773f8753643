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
//! - `finders`: `VaultId → ESs` with a `dataFrom[].find` on that vault, each with the fixed start
//!   ([`Head`]) of the names it can match, tested before the ES is read;
//! - `store_dependents`: store → ESs that name it (whether or not the store exists yet).
//!
//! Memory: each ES is stored once, in a slot; the reverse maps hold slot numbers (`u32`), not
//! keys. An ES keeps its parsed refs, the vault each ref's store resolved to, and the little of
//! its object that later decisions read ([`IndexedEs`]); its `spec`, labels and most of its
//! `status` are dropped once parsed.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use smallvec::SmallVec;

use super::model::{ObjectKind, ObjectName, ObjectRef, VaultId};
use super::objects::{
    ClusterExternalSecretObject, EsKey, ExternalSecretObject, StoreKind, StoreObject, TargetRef,
};
use super::spec::{self, ParsedEs, ParsedStore, ReadItem, Selector, StoreKey, StoreProvider};

/// The annotation `kubectl apply` leaves: a copy of the whole object, never read here.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

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

/// `status.conditions[type=Ready].status` of an ExternalSecret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadyStatus {
    /// `"True"`.
    True,
    /// `"False"`: ESO's last sync failed.
    False,
    /// Any other value (`"Unknown"`, …).
    Other,
}

/// What the index keeps of an ExternalSecret's object: the facts later decisions read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexedEs {
    /// Sorted by key (a sorted slice: far smaller than a map for the few annotations an object
    /// carries).
    annotations: Box<[(Box<str>, Box<str>)]>,
    ready: Option<ReadyStatus>,
    refresh_time: Option<i64>,
}

impl IndexedEs {
    fn of(es: &mut ExternalSecretObject) -> IndexedEs {
        let annotations = std::mem::take(&mut es.meta.annotations)
            .into_iter()
            .filter(|(k, _)| k != LAST_APPLIED)
            .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
            .collect();
        let ready = es
            .status
            .get("conditions")
            .and_then(serde_json::Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|c| c.get("type").and_then(serde_json::Value::as_str) == Some("Ready"))
            })
            .map(|c| match c.get("status").and_then(serde_json::Value::as_str) {
                Some("True") => ReadyStatus::True,
                Some("False") => ReadyStatus::False,
                _ => ReadyStatus::Other,
            });
        IndexedEs {
            annotations,
            ready,
            refresh_time: super::staleness::refresh_time(&es.status),
        }
    }

    /// The value of annotation `key` (every annotation is kept but `kubectl apply`'s copy of
    /// the object).
    pub fn annotation(&self, key: &str) -> Option<&str> {
        let at = self.annotations.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
        self.annotations.get(at).map(|(_, v)| &**v)
    }

    /// The Ready condition's status, `None` without one.
    pub fn ready(&self) -> Option<ReadyStatus> {
        self.ready
    }

    /// `status.refreshTime` as unix seconds (`None` when absent or not RFC 3339).
    pub fn refresh_time(&self) -> Option<i64> {
        self.refresh_time
    }
}

/// Where one ref's store points.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Resolved {
    /// The ref names no store.
    NoStore,
    /// An azurekv store with a usable `vaultUrl`.
    Vault(VaultId),
    /// The store is missing, or is azurekv with an unusable `vaultUrl`.
    Unresolved,
    /// Another provider: reads nothing from Key Vault.
    Elsewhere,
}

/// Each ref's resolution, given the current stores.
fn resolve(stores: &BTreeMap<StoreKey, StoreEntry>, parsed: &ParsedEs) -> Box<[Resolved]> {
    parsed
        .items
        .iter()
        .map(|item| {
            let Some(store) = &item.store else {
                return Resolved::NoStore;
            };
            match stores.get(&**store).map(|s| &s.parsed.provider) {
                None | Some(StoreProvider::AzureKvInvalidUrl(_)) => Resolved::Unresolved,
                Some(p) => p
                    .vault()
                    .map_or(Resolved::Elsewhere, |v| Resolved::Vault(v.clone())),
            }
        })
        .collect()
}

#[derive(Clone, Debug)]
pub(crate) struct EsEntry {
    pub(crate) key: EsKey,
    pub(crate) object: IndexedEs,
    pub(crate) parsed: ParsedEs,
    /// Per item of `parsed`: where its store points. What the ES put into the reverse maps
    /// follows from `parsed` and this alone ([`Contribution::of`]).
    resolved: Box<[Resolved]>,
}

impl EsEntry {
    /// What gets patched for this ES: itself, or the ClusterExternalSecret that controls it.
    pub(crate) fn target(&self) -> TargetRef<'_> {
        match &self.parsed.parent {
            Some(ces) => TargetRef::ClusterExternalSecret(ces),
            None => TargetRef::ExternalSecret(&self.key),
        }
    }
}

/// What one ES puts into the reverse maps, sorted and deduplicated.
#[derive(Debug, Default, PartialEq, Eq)]
struct Contribution<'a> {
    objects: Vec<ObjectRef>,
    /// Per vault, what every name the ES's `find` refs on it can match starts with.
    find_vaults: Vec<(&'a VaultId, Head)>,
    stores: Vec<&'a Arc<StoreKey>>,
    /// Names read through a store that is missing or has an unusable `vaultUrl` (for explain).
    unresolved: Vec<&'a ObjectName>,
}

impl<'a> Contribution<'a> {
    fn of(parsed: &'a ParsedEs, resolved: &'a [Resolved]) -> Contribution<'a> {
        let mut c = Contribution::default();
        for (item, r) in parsed.items.iter().zip(resolved) {
            let Some(store) = &item.store else { continue };
            c.stores.push(store);
            match (r, &item.selector) {
                (Resolved::Vault(vault), Selector::Object { kind, name, .. }) => {
                    c.objects.push(ObjectRef {
                        vault: vault.clone(),
                        kind: *kind,
                        name: name.clone(),
                    });
                }
                (Resolved::Vault(vault), selector @ Selector::Find { .. }) => {
                    c.find_vaults.push((vault, Head::of(selector)));
                }
                (Resolved::Unresolved, Selector::Object { name, .. }) => {
                    c.unresolved.push(name);
                }
                _ => {}
            }
        }
        c.objects.sort_unstable();
        c.objects.dedup();
        c.find_vaults.sort_unstable();
        // Several finds on one vault: a name must fit one of them, so only their common start
        // is required.
        c.find_vaults.dedup_by(|later, kept| {
            later.0 == kept.0 && {
                kept.1 = kept.1.common(&later.1);
                true
            }
        });
        c.stores.sort_unstable();
        c.stores.dedup();
        c.unresolved.sort_unstable();
        c.unresolved.dedup();
        c
    }
}

/// A slot number: where an ES lives in [`Index`]'s slab.
type Slot = u32;

/// The ESs behind one reverse-map key: sorted, deduplicated slot numbers. Usually one or a few,
/// held inline (no allocation up to four).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KeySet(SmallVec<[Slot; 4]>);

impl KeySet {
    fn insert(&mut self, slot: Slot) {
        if let Err(at) = self.0.binary_search(&slot) {
            self.0.insert(at, slot);
        }
    }

    fn remove(&mut self, slot: Slot) {
        if let Ok(at) = self.0.binary_search(&slot) {
            self.0.remove(at);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = Slot> + '_ {
        self.0.iter().copied()
    }
}

/// What every name a set of `find` refs can match starts with: up to 15 lowercase ASCII bytes
/// (16 bytes in all: names such as `app-000123-` differ late), compared with the name's bytes
/// lowercased. Empty: no such test (any name may match).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Head {
    len: u8,
    bytes: [u8; 15],
}

impl Head {
    /// The head of one `find` ref (empty for a tag-only or match-all find).
    fn of(selector: &Selector) -> Head {
        let mut head = Head::default();
        if let Selector::Find {
            regexp: Some(regexp), ..
        } = selector
        {
            for (slot, byte) in head.bytes.iter_mut().zip(regexp.fixed_head()) {
                *slot = byte;
                head.len += 1;
            }
        }
        head
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The longest start both require.
    fn common(&self, other: &Head) -> Head {
        let same = self
            .as_bytes()
            .iter()
            .zip(other.as_bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let mut head = Head::default();
        for (slot, byte) in head.bytes.iter_mut().zip(self.as_bytes()).take(same) {
            *slot = *byte;
            head.len += 1;
        }
        head
    }

    /// Whether a name starting otherwise is ruled out. Names that are not ASCII are never ruled
    /// out (Unicode case folding is the regex's business).
    fn admits(&self, name: &str) -> bool {
        let head = self.as_bytes();
        !name.is_ascii()
            || name
                .as_bytes()
                .get(..head.len())
                .is_some_and(|start| start.iter().zip(head).all(|(n, h)| n.to_ascii_lowercase() == *h))
    }
}

/// The `find` readers of one vault: sorted by slot, each with its [`Head`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct FinderSet(Vec<(Slot, Head)>);

impl FinderSet {
    fn insert(&mut self, slot: Slot, head: Head) {
        match self.0.binary_search_by_key(&slot, |&(s, _)| s) {
            Ok(at) => {
                if let Some(e) = self.0.get_mut(at) {
                    e.1 = head;
                }
            }
            Err(at) => self.0.insert(at, (slot, head)),
        }
    }

    fn remove(&mut self, slot: Slot) {
        if let Ok(at) = self.0.binary_search_by_key(&slot, |&(s, _)| s) {
            self.0.remove(at);
        }
    }

    fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.0.iter().map(|&(s, _)| s)
    }

    /// The readers whose finds may match `name`.
    fn admitting<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Slot> + 'a {
        self.0
            .iter()
            .filter(move |(_, h)| h.admits(name))
            .map(|&(s, _)| s)
    }
}

/// How one ref of an ES relates to a changed object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome<'a> {
    /// A latest-version read: a new version changes what ESO reads.
    Reads,
    /// `remoteRef.version` pins it.
    Pinned(&'a str),
    /// A `find.name.regexp` that does not compile: ESO matches nothing.
    InvalidRegex { regexp: &'a str, error: &'a str },
}

/// One ref of an ES that names the changed object.
#[derive(Clone, Debug)]
pub(crate) struct ItemMatch<'a> {
    pub(crate) item: &'a ReadItem,
    pub(crate) store: &'a StoreKey,
    pub(crate) outcome: Outcome<'a>,
}

/// The refs of one ES that name a changed object (almost always one).
pub(crate) type ItemMatches<'a> = SmallVec<[ItemMatch<'a>; 2]>;

/// A ref whose store is missing or unusable (see [`Index::unresolved_refs`]).
#[derive(Clone, Debug)]
pub(crate) struct UnresolvedRef<'a> {
    pub(crate) es: &'a EsKey,
    pub(crate) entry: &'a EsEntry,
    pub(crate) how: String,
    pub(crate) store: &'a StoreKey,
    /// `None`: the store does not exist; `Some(url)`: its azurekv `vaultUrl` is unusable.
    pub(crate) bad_url: Option<&'a str>,
}

/// The index. Build it with the `apply_*`/`delete_*` methods as watch events arrive.
#[derive(Clone, Debug, Default)]
pub struct Index {
    stores: BTreeMap<StoreKey, StoreEntry>,
    /// The ESs, by slot; `None` is a free slot (listed in `free`). Boxed: the slab grows by
    /// doubling, and a spare slot then costs a pointer, not an entry.
    slots: Vec<Option<Box<EsEntry>>>,
    free: Vec<Slot>,
    /// Key → slot: a table of slot numbers, hashed and compared by the key in the slot, so each
    /// key is stored once.
    by_key: HashTable<Slot>,
    hasher: DefaultHashBuilder,
    cluster_external_secrets: BTreeMap<String, ClusterExternalSecretObject>,
    /// Its keys are the shared copies every ES's refs to that store point at.
    store_dependents: BTreeMap<Arc<StoreKey>, KeySet>,
    /// Hashed: looked up for every event (a B-tree of these string keys costs dozens of
    /// comparisons per lookup). A key shares its name with the refs that read the object.
    by_object: HashMap<ObjectRef, KeySet>,
    /// Per vault, how many distinct objects of each kind (`ObjectKind::index`) `by_object` holds.
    kinds_by_vault: HashMap<VaultId, [u32; 3]>,
    finders: HashMap<VaultId, FinderSet>,
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
        let mut parsed = spec::parse_es(&es);
        for item in parsed.items.iter_mut() {
            let shared = item
                .store
                .as_deref()
                .and_then(|s| self.store_dependents.get_key_value(s))
                .map(|(k, _)| Arc::clone(k));
            if shared.is_some() {
                item.store = shared;
            }
        }
        let resolved = resolve(&self.stores, &parsed);
        let hash = self.hasher.hash_one(&key);
        let existing = self.by_key.find(hash, |&s| self.holds(s, &key)).copied();
        let entry = Box::new(EsEntry {
            key,
            object: IndexedEs::of(&mut es),
            parsed,
            resolved,
        });
        let slot = match existing {
            Some(slot) => {
                self.remove_contribution(slot);
                slot
            }
            None => match self.free.pop() {
                Some(slot) => slot,
                None => {
                    self.slots.push(None);
                    Slot::try_from(self.slots.len() - 1).unwrap_or(Slot::MAX)
                }
            },
        };
        let Some(place) = self.slots.get_mut(slot as usize) else {
            return;
        };
        *place = Some(entry);
        if existing.is_none() {
            let Index {
                by_key,
                slots,
                hasher,
                ..
            } = self;
            by_key.insert_unique(hash, slot, |&s| slot_hash(hasher, slots, s));
        }
        self.add_contribution(slot);
    }

    /// Removes an ExternalSecret.
    pub fn delete_external_secret(&mut self, namespace: &str, name: &str) {
        let key = EsKey::new(namespace, name);
        let hash = self.hasher.hash_one(&key);
        let Index { by_key, slots, .. } = self;
        let Ok(found) = by_key.find_entry(hash, |&s| slot_holds(slots, s, &key)) else {
            return;
        };
        let (slot, _) = found.remove();
        self.remove_contribution(slot);
        if let Some(s) = self.slots.get_mut(slot as usize) {
            *s = None;
        }
        self.free.push(slot);
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
        let mut keys: Vec<EsKey> = self.slots.iter().flatten().map(|e| e.key.clone()).collect();
        keys.sort_unstable();
        keys
    }

    /// Every ClusterExternalSecret known, sorted.
    pub fn cluster_external_secret_keys(&self) -> Vec<String> {
        self.cluster_external_secrets.keys().cloned().collect()
    }

    /// What the index keeps of an ExternalSecret: annotations, Ready status, refresh time.
    pub fn external_secret(&self, key: &EsKey) -> Option<&IndexedEs> {
        self.entry(key).map(|e| &e.object)
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
        let counts = self.kinds_by_vault.get(vault).copied().unwrap_or_default();
        for kind in [ObjectKind::Secret, ObjectKind::Certificate, ObjectKind::Key] {
            if counts[kind_slot(kind)] > 0 {
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
        let mut readers: Vec<EsKey> = self
            .candidates(object)
            .into_iter()
            .filter(|e| {
                self.item_matches(e, object)
                    .iter()
                    .any(|m| m.outcome == Outcome::Reads)
            })
            .map(|e| e.key.clone())
            .collect();
        readers.sort_unstable();
        readers
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
        let mut readers: Vec<(EsKey, Vec<ObjectRef>)> = dependents
            .iter()
            .filter_map(|slot| {
                let entry = self.slot(slot)?;
                let mut objects: BTreeSet<ObjectRef> = BTreeSet::new();
                if let Some(vault) = vault {
                    for item in &entry.parsed.items {
                        if item.store.as_deref() != Some(&key) {
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
                Some((entry.key.clone(), objects.into_iter().collect()))
            })
            .collect();
        readers.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        readers
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
            external_secrets: self.by_key.len(),
            cluster_external_secrets: self.cluster_external_secrets.len(),
            indexed_objects: self.by_object.len(),
            find_readers: self
                .finders
                .values()
                .flat_map(FinderSet::slots)
                .collect::<BTreeSet<_>>()
                .len(),
            vaults: self.vaults().len(),
        }
    }

    /// ESs that may read `object`: exact refs, plus for a certificate the refs to its backing
    /// secret and key (same name), plus `find` readers of its vault when it is (or backs) a secret.
    /// Each at most once, in no particular order.
    pub(crate) fn candidates(&self, object: &ObjectRef) -> SmallVec<[&EsEntry; 4]> {
        let mut slots: SmallVec<[Slot; 16]> = SmallVec::new();
        for kind in affected_ref_kinds(object.kind) {
            let set = if *kind == object.kind {
                self.by_object.get(object)
            } else {
                self.by_object.get(&ObjectRef {
                    vault: object.vault.clone(),
                    kind: *kind,
                    name: object.name.clone(),
                })
            };
            if let Some(set) = set {
                slots.extend(set.iter());
            }
        }
        if find_reads(object.kind)
            && let Some(set) = self.finders.get(&object.vault)
        {
            slots.extend(set.admitting(object.name.as_str()));
        }
        slots.sort_unstable();
        slots.dedup();
        slots.into_iter().filter_map(|s| self.slot(s)).collect()
    }

    /// Refs of ESs that name `object` (by kind and name) through a store that is missing or
    /// whose `vaultUrl` is unusable: such an ES reads nothing, whichever vault it meant.
    pub(crate) fn unresolved_refs(&self, object: &ObjectRef) -> Vec<UnresolvedRef<'_>> {
        let mut out = Vec::new();
        let Some(keys) = self.unresolved.get(&object.name) else {
            return out;
        };
        for slot in keys.iter() {
            let Some(entry) = self.slot(slot) else {
                continue;
            };
            for item in &entry.parsed.items {
                let (Some(store), Selector::Object { kind, name, .. }) = (&item.store, &item.selector) else {
                    continue;
                };
                if name != &object.name || !affected_ref_kinds(object.kind).contains(kind) {
                    continue;
                }
                let bad_url = match self.stores.get(&**store).map(|s| &s.parsed.provider) {
                    None => None,
                    Some(StoreProvider::AzureKvInvalidUrl(url)) => Some(url.as_str()),
                    Some(_) => continue,
                };
                out.push(UnresolvedRef {
                    es: &entry.key,
                    entry,
                    how: item.how(),
                    store,
                    bad_url,
                });
            }
        }
        out
    }

    pub(crate) fn entry(&self, key: &EsKey) -> Option<&EsEntry> {
        let hash = self.hasher.hash_one(key);
        let slot = *self.by_key.find(hash, |&s| self.holds(s, key))?;
        self.slot(slot)
    }

    fn slot(&self, slot: Slot) -> Option<&EsEntry> {
        self.slots.get(slot as usize).and_then(Option::as_deref)
    }

    fn holds(&self, slot: Slot, key: &EsKey) -> bool {
        slot_holds(&self.slots, slot, key)
    }

    /// A store's parsed form.
    pub(crate) fn store(&self, key: &StoreKey) -> Option<&ParsedStore> {
        self.stores.get(key).map(|s| &s.parsed)
    }

    /// The refs of `es` that name `object`, with how each relates to a new version.
    pub(crate) fn item_matches<'a>(&'a self, es: &'a EsEntry, object: &ObjectRef) -> ItemMatches<'a> {
        let mut out = ItemMatches::new();
        for (item, resolved) in es.parsed.items.iter().zip(&es.resolved) {
            let (Some(store), Resolved::Vault(vault)) = (&item.store, resolved) else {
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
                        Some(v) => Outcome::Pinned(v),
                        None => Outcome::Reads,
                    }
                }
                Selector::Find { regexp, .. } => {
                    if !find_reads(object.kind) {
                        continue;
                    }
                    match regexp.as_ref().map(|r| (r, r.is_match(object.name.as_str()))) {
                        None | Some((_, Some(true))) => Outcome::Reads,
                        Some((_, Some(false))) => continue,
                        Some((r, None)) => Outcome::InvalidRegex {
                            regexp: &r.source,
                            error: r.error().unwrap_or_default(),
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
        let dependents: Vec<Slot> = self
            .store_dependents
            .get(store)
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        for slot in dependents {
            let Some(entry) = self.slot(slot) else {
                continue;
            };
            let new = resolve(&self.stores, &entry.parsed);
            if new == entry.resolved {
                continue;
            }
            self.remove_contribution(slot);
            if let Some(Some(entry)) = self.slots.get_mut(slot as usize) {
                entry.resolved = new;
            }
            self.add_contribution(slot);
        }
    }

    /// Adds what the ES in `slot` contributes to the reverse maps.
    fn add_contribution(&mut self, slot: Slot) {
        let Some(Some(entry)) = self.slots.get(slot as usize) else {
            return;
        };
        let c = Contribution::of(&entry.parsed, &entry.resolved);
        for o in c.objects {
            let (vault, kind) = (o.vault.clone(), o.kind);
            let set = self.by_object.entry(o).or_default();
            if set.is_empty() {
                self.kinds_by_vault.entry(vault).or_default()[kind_slot(kind)] += 1;
            }
            set.insert(slot);
        }
        for (v, head) in c.find_vaults {
            self.finders.entry(v.clone()).or_default().insert(slot, head);
        }
        for s in c.stores {
            self.store_dependents
                .entry(Arc::clone(s))
                .or_default()
                .insert(slot);
        }
        for n in c.unresolved {
            self.unresolved.entry(n.clone()).or_default().insert(slot);
        }
    }

    /// Removes what the ES in `slot` contributed (computed from its current resolution, which
    /// is what it was added with: resolutions only change through remove → set → add).
    fn remove_contribution(&mut self, slot: Slot) {
        fn remove<K: Ord>(map: &mut BTreeMap<K, KeySet>, k: &K, slot: Slot) {
            if let Some(set) = map.get_mut(k) {
                set.remove(slot);
                if set.is_empty() {
                    map.remove(k);
                }
            }
        }
        let Some(Some(entry)) = self.slots.get(slot as usize) else {
            return;
        };
        let c = Contribution::of(&entry.parsed, &entry.resolved);
        for o in &c.objects {
            if let Some(set) = self.by_object.get_mut(o) {
                set.remove(slot);
                if set.is_empty() {
                    self.by_object.remove(o);
                    if let Some(counts) = self.kinds_by_vault.get_mut(&o.vault) {
                        counts[kind_slot(o.kind)] = counts[kind_slot(o.kind)].saturating_sub(1);
                        if counts == &[0; 3] {
                            self.kinds_by_vault.remove(&o.vault);
                        }
                    }
                }
            }
        }
        for (v, _) in c.find_vaults {
            if let Some(set) = self.finders.get_mut(v) {
                set.remove(slot);
                if set.0.is_empty() {
                    self.finders.remove(v);
                }
            }
        }
        for s in c.stores {
            remove(&mut self.store_dependents, s, slot);
        }
        for n in c.unresolved {
            remove(&mut self.unresolved, n, slot);
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
        // The per-vault kind counts always agree with the objects indexed.
        let mut counts: HashMap<VaultId, [u32; 3]> = HashMap::default();
        for o in self.by_object.keys() {
            counts.entry(o.vault.clone()).or_default()[kind_slot(o.kind)] += 1;
        }
        assert_eq!(counts, self.kinds_by_vault);
        // Each finder's head is the one its refs give now.
        for (vault, set) in &self.finders {
            for &(slot, head) in &set.0 {
                let entry = self.slot(slot).expect("a finder's slot is occupied");
                let c = Contribution::of(&entry.parsed, &entry.resolved);
                assert!(c.find_vaults.contains(&(vault, head)), "{vault}: {head:?}");
            }
        }
        (
            self.sets(
                &self
                    .by_object
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            self.sets(
                &self
                    .finders
                    .iter()
                    .map(|(k, v)| (k.clone(), KeySet(v.slots().collect())))
                    .collect(),
            ),
            self.sets(
                &self
                    .store_dependents
                    .iter()
                    .map(|(k, v)| ((**k).clone(), v.clone()))
                    .collect(),
            ),
            self.sets(&self.unresolved),
        )
    }

    /// A reverse map with keys for slots (for tests).
    #[cfg(test)]
    fn sets<K: Ord + Clone>(&self, map: &BTreeMap<K, KeySet>) -> BTreeMap<K, BTreeSet<EsKey>> {
        map.iter()
            .map(|(k, v)| {
                let keys = v.iter().filter_map(|s| self.slot(s)).map(|e| e.key.clone());
                (k.clone(), keys.collect())
            })
            .collect()
    }
}

/// Whether `slot` holds the ES `key`.
fn slot_holds(slots: &[Option<Box<EsEntry>>], slot: Slot, key: &EsKey) -> bool {
    slots
        .get(slot as usize)
        .and_then(Option::as_deref)
        .is_some_and(|e| e.key == *key)
}

/// The hash of the key of the ES in `slot` (for the key table to rehash; every slot the table
/// holds is occupied).
fn slot_hash(hasher: &DefaultHashBuilder, slots: &[Option<Box<EsEntry>>], slot: Slot) -> u64 {
    slots
        .get(slot as usize)
        .and_then(Option::as_deref)
        .map_or(0, |e| hasher.hash_one(&e.key))
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

/// The position of `kind` in a per-kind count.
fn kind_slot(kind: ObjectKind) -> usize {
    match kind {
        ObjectKind::Secret => 0,
        ObjectKind::Certificate => 1,
        ObjectKind::Key => 2,
    }
}

/// `find` lists secrets only; a certificate's backing secret is listed among them.
fn find_reads(changed: ObjectKind) -> bool {
    matches!(changed, ObjectKind::Secret | ObjectKind::Certificate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::FindRegex;

    fn find(regexp: &str) -> Selector {
        Selector::Find {
            regexp: Some(Box::new(FindRegex::new(regexp))),
            tags: false,
        }
    }

    #[test]
    fn heads_hold_the_fixed_start_of_anchored_finds() {
        let head = |r: &str| Head::of(&find(r));
        assert_eq!(head("^App-4-").as_bytes(), b"app-4-");
        assert_eq!(head("^payments-database-").as_bytes(), b"payments-databa");
        assert_eq!(
            head("(?-i)^ab-Cd").as_bytes(),
            b"",
            "an exact-case letter ends the head"
        );
        assert_eq!(head("^12-(?-i)X").as_bytes(), b"12-");
        for none in ["app", "^(a|b)", "^", "^(", "(?m)^db"] {
            assert_eq!(head(none), Head::default(), "{none}");
        }
        let all = Selector::Find {
            regexp: None,
            tags: true,
        };
        assert_eq!(Head::of(&all), Head::default());
        assert_eq!(head("^app-1").common(&head("^app-2")).as_bytes(), b"app-");
        assert_eq!(head("^app").common(&Head::default()), Head::default());

        let h = head("^db-");
        assert!(h.admits("db-1") && h.admits("DB-1"));
        assert!(!h.admits("d") && !h.admits("xdb-1"));
        assert!(h.admits("\u{17F}db"), "non-ASCII names are left to the regex");
        assert!(Head::default().admits("anything"));
    }

    proptest::proptest! {
        /// A head never rules out a name its find matches (or cannot evaluate).
        #[test]
        fn a_head_never_rules_out_a_match(
            body in "[abksAB.|()?*+^-]{0,8}",
            anchor in proptest::bool::ANY,
            names in proptest::collection::vec("[abksABKS\u{17F}\u{212A}-]{0,6}", 1..8),
        ) {
            let source = if anchor { format!("^{body}") } else { body };
            let selector = find(&source);
            let Selector::Find { regexp: Some(regexp), .. } = &selector else {
                unreachable!()
            };
            let head = Head::of(&selector);
            for n in &names {
                let name = ObjectName::new(n);
                if regexp.is_match(name.as_str()) != Some(false) {
                    proptest::prop_assert!(head.admits(name.as_str()), "{} on {}", source, n);
                }
            }
        }
    }
}
