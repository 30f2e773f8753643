//! Decisions: which targets to trigger for a batch of changes ([`plan`]), and why each reader of
//! an object would or would not be refreshed ([`explain`]). Both use one evaluation, so `explain`
//! prints exactly the reasons `plan` acts on.
//!
//! Only [`ChangeKind::NewVersion`] triggers. `NearExpiry`/`Expired` do not change what ESO would
//! read; in a [`Plan`] their readers appear in `skipped` with [`SkipReason::NotNewVersion`], so the
//! event is visibly accounted for. [`explain`] always asks "what would a new version do".

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use sha3::{Digest, Sha3_256};
use smallvec::SmallVec;

use super::index::{EsEntry, Index, Outcome};
use super::model::{ChangeKind, ObjectRef, VaultChange};
use super::objects::{EsKey, StoreKind, Target, TargetRef};
use super::spec::Access;

/// Labels of namespaces, for ClusterSecretStore `namespaceSelector` conditions.
pub trait NamespaceLabels {
    /// The namespace's labels; `None` when unknown (not watched, or not seen yet).
    fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>>;
}

/// No namespace labels known (namespaces not watched).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNamespaceLabels;

impl NamespaceLabels for NoNamespaceLabels {
    fn labels(&self, _namespace: &str) -> Option<BTreeMap<String, String>> {
        None
    }
}

impl NamespaceLabels for BTreeMap<String, BTreeMap<String, String>> {
    fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.get(namespace).cloned()
    }
}

/// Why a reader of a changed object is not triggered.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// The ref pins `remoteRef.version` (the value): a new version does not change it.
    PinnedVersion(String),
    /// `refreshPolicy: CreatedOnce`: ESO ignores metadata changes after the first sync.
    CreatedOnce,
    /// Periodic (or unset) policy with `refreshInterval <= 0`, already synced: ESO ignores
    /// metadata changes.
    RefreshIntervalZero,
    /// `refreshInterval` is not a Go duration (the text): ESO cannot decode the object.
    InvalidRefreshInterval(String),
    /// The ClusterSecretStore's conditions deny the ES's namespace (the store, described).
    NamespaceNotAllowed {
        /// `ClusterSecretStore <name>`.
        store: String,
    },
    /// Only a `namespaceSelector` could allow the namespace and its labels are unknown.
    NamespaceLabelsUnknown {
        /// `ClusterSecretStore <name>`.
        store: String,
    },
    /// The change is not a new version (near expiry, expired): ESO would read the same value.
    NotNewVersion(ChangeKind),
    /// The ref's store does not exist (explain only: the ES reads nothing, from any vault).
    StoreNotFound {
        /// `SecretStore ns/name` or `ClusterSecretStore name`.
        store: String,
    },
    /// The ref's azurekv store has an unusable `vaultUrl` (explain only).
    StoreVaultUrlInvalid {
        /// `SecretStore ns/name` or `ClusterSecretStore name`.
        store: String,
        /// The `vaultUrl` as written.
        url: String,
    },
    /// The `find.name.regexp` does not compile: ESO's find matches nothing.
    InvalidFindRegex {
        /// The regexp as written.
        regexp: String,
        /// The compile error.
        error: String,
    },
}

impl SkipReason {
    /// A stable snake_case label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            SkipReason::PinnedVersion(_) => "pinned_version",
            SkipReason::CreatedOnce => "created_once",
            SkipReason::RefreshIntervalZero => "refresh_interval_zero",
            SkipReason::InvalidRefreshInterval(_) => "invalid_refresh_interval",
            SkipReason::NamespaceNotAllowed { .. } => "namespace_not_allowed",
            SkipReason::NamespaceLabelsUnknown { .. } => "namespace_labels_unknown",
            SkipReason::NotNewVersion(_) => "not_new_version",
            SkipReason::InvalidFindRegex { .. } => "invalid_find_regex",
            SkipReason::StoreNotFound { .. } => "store_not_found",
            SkipReason::StoreVaultUrlInvalid { .. } => "store_vault_url_invalid",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::PinnedVersion(v) => {
                write!(
                    f,
                    "the ref pins version {v:?}, which a new version does not change"
                )
            }
            SkipReason::CreatedOnce => write!(
                f,
                "refreshPolicy is CreatedOnce: ESO ignores annotation changes after the first sync"
            ),
            SkipReason::RefreshIntervalZero => write!(
                f,
                "refreshInterval is 0 with a periodic policy and the ES has synced: ESO ignores annotation changes (use refreshPolicy: OnChange)"
            ),
            SkipReason::InvalidRefreshInterval(t) => write!(
                f,
                "refreshInterval {t:?} is not a valid duration: ESO cannot process this ES"
            ),
            SkipReason::NamespaceNotAllowed { store } => write!(
                f,
                "{store} does not allow this namespace (spec.conditions): ESO would fail the sync"
            ),
            SkipReason::NamespaceLabelsUnknown { store } => write!(
                f,
                "{store} allows namespaces by label selector and this namespace's labels are unknown"
            ),
            SkipReason::NotNewVersion(k) => write!(
                f,
                "the change is {}, not a new version: ESO would read the same value",
                k.as_str()
            ),
            SkipReason::StoreNotFound { store } => write!(
                f,
                "{store} does not exist, so this ref reads nothing (from any vault)"
            ),
            SkipReason::StoreVaultUrlInvalid { store, url } => write!(
                f,
                "{store} has an unusable vaultUrl {url:?}, so this ref reads nothing"
            ),
            SkipReason::InvalidFindRegex { regexp, error } => write!(
                f,
                "find.name.regexp {regexp:?} does not compile, so ESO's find matches nothing: {error}"
            ),
        }
    }
}

/// One target to annotate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// What to patch.
    pub target: Target,
    /// The annotation value: [`trigger_value`] of `causes`.
    pub value: String,
    /// The changes that caused it, sorted and deduplicated (inline: almost always one).
    pub causes: SmallVec<[VaultChange; 1]>,
    /// The ExternalSecrets that read a cause (for a CES: its children), sorted (inline: almost
    /// always one, the target itself).
    pub via: SmallVec<[EsKey; 1]>,
}

/// A reader of a changed object that is not triggered for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The ExternalSecret.
    pub es: EsKey,
    /// The changed object.
    pub object: ObjectRef,
    /// Why.
    pub reason: SkipReason,
}

/// The outcome of [`plan`]: triggers sorted by target, skips sorted by (ES, object).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Targets to annotate, one per target.
    pub triggers: Vec<Trigger>,
    /// Readers not triggered, with reasons.
    pub skipped: Vec<Skipped>,
}

/// One reader in an [`Explanation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explained {
    /// The ExternalSecret.
    pub es: EsKey,
    /// What would be patched for it.
    pub target: Target,
    /// Which refs name the object, e.g. `data[1].remoteRef.key=secret/db`; several are joined
    /// with `"; "`. For a refreshed ES only the refs that cause the refresh.
    pub how: String,
    /// Why it would not be refreshed (`None` when it would be).
    pub reason: Option<SkipReason>,
}

/// The outcome of [`explain`], each list sorted by ES.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Explanation {
    /// Readers a new version of the object refreshes.
    pub refreshed: Vec<Explained>,
    /// Readers it does not refresh, with reasons.
    pub not_refreshed: Vec<Explained>,
}

/// The triggers for a batch of changes: every ES that reads a changed object at its latest
/// version, through an azurekv store of the object's vault that allows its namespace, under a
/// refresh policy that honours annotation changes. Grouped per target (a CES once, however many
/// children match), with a value deterministic in the set of causes.
pub fn plan(index: &Index, changes: &[VaultChange], namespaces: &dyn NamespaceLabels) -> Plan {
    let mut changes: Vec<&VaultChange> = changes.iter().collect();
    // Unstable is enough: changes equal in this order are equal in every field.
    changes.sort_unstable_by(|a, b| change_order(a).cmp(&change_order(b)));
    changes.dedup();

    let mut labels = LabelCache::new(namespaces);
    // Per target, borrowed until the end: its causes (in change order) and the ESs reading them.
    // Inline: a target almost always has one cause and one reader.
    type Group<'a> = (SmallVec<[&'a VaultChange; 1]>, SmallVec<[&'a EsKey; 1]>);
    let mut groups: hashbrown::HashMap<TargetRef<'_>, Group<'_>> =
        hashbrown::HashMap::with_capacity_and_hasher(changes.len(), Default::default());
    let mut skipped: Vec<(&EsKey, &ObjectRef, SkipReason)> = Vec::new();

    for &change in &changes {
        for entry in index.candidates(&change.object) {
            match evaluate(index, entry, &change.object, change.kind, &mut labels, false) {
                None => {}
                Some(Verdict::Trigger(_)) => {
                    let (causes, via) = groups.entry(entry.target()).or_default();
                    if causes.last() != Some(&change) {
                        causes.push(change);
                    }
                    via.push(&entry.key);
                }
                Some(Verdict::Skip(reason, _)) => {
                    skipped.push((&entry.key, &change.object, reason));
                }
            }
        }
    }

    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    skipped.sort();
    skipped.dedup();
    Plan {
        triggers: groups
            .into_iter()
            .map(|(target, (causes, mut via))| {
                via.sort_unstable();
                via.dedup();
                let causes: SmallVec<[VaultChange; 1]> = causes.into_iter().cloned().collect();
                Trigger {
                    value: trigger_value(&causes),
                    target: target.to_target(),
                    causes,
                    via: via.into_iter().cloned().collect(),
                }
            })
            .collect(),
        skipped: skipped
            .into_iter()
            .map(|(es, object, reason)| Skipped {
                es: es.clone(),
                object: object.clone(),
                reason,
            })
            .collect(),
    }
}

/// Every ES that reads `object`, and whether a new version of it would refresh that ES. Also
/// lists, as not refreshed, ESs that name the object (kind and name) through a store that does
/// not exist or has an unusable `vaultUrl` ([`SkipReason::StoreNotFound`],
/// [`SkipReason::StoreVaultUrlInvalid`]): they read nothing, but were probably meant to.
pub fn explain(index: &Index, object: &ObjectRef, namespaces: &dyn NamespaceLabels) -> Explanation {
    let mut labels = LabelCache::new(namespaces);
    let mut out = Explanation::default();
    for entry in index.candidates(object) {
        let es = entry.key.clone();
        let target = entry.target().to_target();
        match evaluate(index, entry, object, ChangeKind::NewVersion, &mut labels, true) {
            None => {}
            Some(Verdict::Trigger(how)) => out.refreshed.push(Explained {
                es,
                target,
                how: how.join("; "),
                reason: None,
            }),
            Some(Verdict::Skip(reason, how)) => out.not_refreshed.push(Explained {
                es,
                target,
                how: how.join("; "),
                reason: Some(reason),
            }),
        }
    }
    let mut unresolved: BTreeMap<&EsKey, Explained> = BTreeMap::new();
    for r in index.unresolved_refs(object) {
        let explained_already = out
            .refreshed
            .iter()
            .chain(&out.not_refreshed)
            .any(|e| &e.es == r.es);
        if explained_already {
            continue;
        }
        let store = r.store.describe();
        let e = unresolved.entry(r.es).or_insert_with(|| Explained {
            es: r.es.clone(),
            target: r.entry.target().to_target(),
            how: String::new(),
            reason: Some(match r.bad_url {
                None => SkipReason::StoreNotFound { store },
                Some(url) => SkipReason::StoreVaultUrlInvalid {
                    store,
                    url: url.to_string(),
                },
            }),
        });
        if !e.how.is_empty() {
            e.how.push_str("; ");
        }
        e.how.push_str(&r.how);
    }
    out.not_refreshed.extend(unresolved.into_values());
    out.not_refreshed.sort_by(|a, b| a.es.cmp(&b.es));
    out
}

/// The annotation value for a set of causes: `kv-` and 16 hex digits of SHA3-256 over the
/// sorted, deduplicated `(vault, kind, name, version)` of the causes. Same set ⇒ same value
/// (a redelivered event patches nothing new); no secret material; 19 characters.
pub fn trigger_value(causes: &[VaultChange]) -> String {
    fn key(c: &VaultChange) -> [&str; 4] {
        [
            c.object.vault.as_str(),
            c.object.kind.as_str(),
            c.object.name.as_str(),
            c.version.as_deref().unwrap_or(""),
        ]
    }
    let mut hasher = Sha3_256::new();
    let mut hash = |fields: [&str; 4]| {
        for field in fields {
            hasher.update(field.as_bytes());
            hasher.update([0x1f]);
        }
        hasher.update([0x1e]);
    };
    if let [one] = causes {
        hash(key(one));
    } else {
        let mut keys: Vec<[&str; 4]> = causes.iter().map(key).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter().for_each(hash);
    }
    let digest = hasher.finalize();
    let mut value = String::with_capacity(19);
    value.push_str("kv-");
    for byte in &digest[..8] {
        for nibble in [byte >> 4, byte & 0x0f] {
            value.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    value
}

fn change_order(c: &VaultChange) -> (&ObjectRef, Option<&str>, ChangeKind) {
    (&c.object, c.version.as_deref(), c.kind)
}

/// What a new version (or other change) of one object means for one ES.
enum Verdict {
    /// Triggered, via these refs (listed for explain only).
    Trigger(Vec<String>),
    /// Not triggered, for this reason; these refs name the object (listed for explain only).
    Skip(SkipReason, Vec<String>),
}

/// Namespace labels, asked once per namespace per call.
struct LabelCache<'a> {
    source: &'a dyn NamespaceLabels,
    cache: HashMap<String, Option<BTreeMap<String, String>>>,
}

impl<'a> LabelCache<'a> {
    fn new(source: &'a dyn NamespaceLabels) -> LabelCache<'a> {
        LabelCache {
            source,
            cache: HashMap::new(),
        }
    }

    fn get(&mut self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        if !self.cache.contains_key(namespace) {
            let labels = self.source.labels(namespace);
            self.cache.insert(namespace.to_string(), labels);
        }
        self.cache.get(namespace).and_then(Option::as_ref)
    }
}

/// `with_how`: list the refs in the verdict (explain); planning needs only the verdict.
fn evaluate(
    index: &Index,
    entry: &EsEntry,
    object: &ObjectRef,
    change: ChangeKind,
    labels: &mut LabelCache<'_>,
    with_how: bool,
) -> Option<Verdict> {
    let matches = index.item_matches(entry, object);
    if matches.is_empty() {
        return None;
    }
    let all_how = || {
        matches
            .iter()
            .filter(|_| with_how)
            .map(|m| m.item.how())
            .collect::<Vec<_>>()
    };
    if change != ChangeKind::NewVersion {
        return Some(Verdict::Skip(SkipReason::NotNewVersion(change), all_how()));
    }
    if let Some(reason) = &entry.parsed.policy_skip {
        return Some(Verdict::Skip((**reason).clone(), all_how()));
    }
    let namespace: &str = &entry.key.namespace;
    let mut effective = Vec::new();
    let mut reads = false;
    let mut first_block = None;
    for m in &matches {
        let block = match &m.outcome {
            Outcome::Pinned(v) => Some(SkipReason::PinnedVersion(v.to_string())),
            Outcome::InvalidRegex { regexp, error } => Some(SkipReason::InvalidFindRegex {
                regexp: regexp.to_string(),
                error: error.to_string(),
            }),
            Outcome::Reads if m.store.kind == StoreKind::ClusterSecretStore => {
                let access = index
                    .store(m.store)
                    .map(|s| s.conditions.access(namespace, labels.get(namespace)))
                    .unwrap_or(Access::Denied);
                match access {
                    Access::Allowed => None,
                    Access::Denied => Some(SkipReason::NamespaceNotAllowed {
                        store: m.store.describe(),
                    }),
                    Access::Unknown => Some(SkipReason::NamespaceLabelsUnknown {
                        store: m.store.describe(),
                    }),
                }
            }
            Outcome::Reads => None,
        };
        match block {
            None => {
                reads = true;
                if with_how {
                    effective.push(m.item.how());
                }
            }
            Some(reason) => {
                first_block.get_or_insert(reason);
            }
        }
    }
    match first_block {
        _ if reads => Some(Verdict::Trigger(effective)),
        Some(reason) => Some(Verdict::Skip(reason, all_how())),
        None => None,
    }
}
