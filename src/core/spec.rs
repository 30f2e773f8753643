//! Tolerant reading of ESO specs into the facts matching needs: which store each ref uses, which
//! Key Vault object (or which `find`) it reads, and the refresh policy. Everything here mirrors
//! ESO's own code paths (see `/work/shared/reference/eso.md` §3–§5); comments name the rule.
//!
//! Internal to the core: the index stores these parsed forms next to the raw objects.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use super::decide::SkipReason;
use super::model::{ObjectKind, ObjectName, VaultId};
use super::objects::{ExternalSecretObject, RefreshInterval, StoreKind, StoreObject};

/// Which store a ref resolves to: a `SecretStore` in the ES's namespace, or a cluster store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StoreKey {
    pub(crate) kind: StoreKind,
    /// `Some(ns)` for a `SecretStore`, `None` for a `ClusterSecretStore`.
    pub(crate) namespace: Option<String>,
    pub(crate) name: String,
}

impl StoreKey {
    /// Normalises a key: cluster stores have no namespace.
    pub(crate) fn new(kind: StoreKind, namespace: Option<&str>, name: &str) -> StoreKey {
        StoreKey {
            kind,
            namespace: match kind {
                StoreKind::SecretStore => Some(namespace.unwrap_or("").to_string()),
                StoreKind::ClusterSecretStore => None,
            },
            name: name.to_string(),
        }
    }

    /// `SecretStore ns/name` or `ClusterSecretStore name`, for reasons and explanations.
    pub(crate) fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {}/{}", self.kind, ns, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// A `find.name.regexp`, compiled once.
#[derive(Clone, Debug)]
pub(crate) struct FindRegex {
    pub(crate) source: Box<str>,
    matcher: Matcher,
}

/// How a [`FindRegex`] tests a name. Matching is case-insensitive: events carry lowercased names
/// (Key Vault names are case-insensitive) while ESO matches the name as listed, so matching
/// every case variant is the faithful superset.
#[derive(Clone, Debug)]
enum Matcher {
    /// The regexp does not compile (the error).
    Invalid(Box<str>),
    /// The regexp is a start anchor followed by fixed characters (`^app-42-`, the common form):
    /// a name matches when it starts with them. Nothing is compiled or kept but these bytes.
    Prefix(Box<[PrefixByte]>),
    /// Any other regexp, compiled, with a literal prefilter when it has one.
    Regex {
        regex: Box<Regex>,
        /// When every match must start at the beginning of the name with one of these literals
        /// (a start-anchored regexp such as `^(db|app)-`, case variants included): a name that
        /// starts with none cannot match, and the regex need not run.
        prefixes: Option<Box<[Box<[u8]>]>>,
    },
}

/// One position of a [`Matcher::Prefix`]: an ASCII byte, and whether its other ASCII case
/// also matches (the case-insensitive class of a letter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PrefixByte {
    byte: u8,
    either_case: bool,
}

impl FindRegex {
    /// Reads `source` (see [`Matcher`]).
    pub(crate) fn new(source: &str) -> FindRegex {
        let matcher = match anchored_fixed_prefix(source) {
            Some(prefix) => Matcher::Prefix(prefix),
            None => match compile(source) {
                Ok(regex) => Matcher::Regex {
                    prefixes: anchored_prefixes(source),
                    regex: Box::new(regex),
                },
                Err(e) => Matcher::Invalid(e.into()),
            },
        };
        FindRegex {
            source: source.into(),
            matcher,
        }
    }

    /// Whether the regexp matches `name`; `None` when it did not compile.
    pub(crate) fn is_match(&self, name: &str) -> Option<bool> {
        match &self.matcher {
            Matcher::Invalid(_) => None,
            Matcher::Prefix(prefix) if name.is_ascii() => Some(
                name.len() >= prefix.len()
                    && prefix
                        .iter()
                        .zip(name.as_bytes())
                        .all(|(p, &b)| b == p.byte || (p.either_case && b.eq_ignore_ascii_case(&p.byte))),
            ),
            // Not a Key Vault name (those are ASCII): Unicode case folding applies, so let the
            // regex engine decide. Never seen in a real event; correct, not fast.
            Matcher::Prefix(_) => compile(&self.source).ok().map(|re| re.is_match(name)),
            Matcher::Regex { regex, prefixes } => {
                if let Some(prefixes) = prefixes
                    && !prefixes.iter().any(|p| name.as_bytes().starts_with(p))
                {
                    return Some(false);
                }
                Some(regex.is_match(name))
            }
        }
    }

    /// The bytes (lowercase ASCII) every ASCII name this regexp matches starts with, ignoring
    /// ASCII case; empty when there is no such cheap test (any regexp but fixed anchored text,
    /// or one that does not compile).
    pub(crate) fn fixed_head(&self) -> impl Iterator<Item = u8> + '_ {
        let prefix: &[PrefixByte] = match &self.matcher {
            Matcher::Prefix(prefix) => prefix,
            _ => &[],
        };
        prefix
            .iter()
            .take_while(|p| p.either_case || !p.byte.is_ascii_alphabetic())
            .map(|p| p.byte.to_ascii_lowercase())
    }

    /// The compile error, when the regexp does not compile.
    pub(crate) fn error(&self) -> Option<&str> {
        match &self.matcher {
            Matcher::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

fn compile(source: &str) -> Result<Regex, String> {
    RegexBuilder::new(source)
        .case_insensitive(true)
        .build()
        .map_err(|e| e.to_string())
}

/// When `source` (case-insensitive) is a start anchor followed only by fixed ASCII characters
/// and letters' case classes, those characters. The regex crate's own parser decides (so flags,
/// escapes and groups are read as it reads them); anything else is `None`.
fn anchored_fixed_prefix(source: &str) -> Option<Box<[PrefixByte]>> {
    use regex_syntax::hir::{Class, HirKind, Look};

    let hir = regex_syntax::ParserBuilder::new()
        .case_insensitive(true)
        .build()
        .parse(source)
        .ok()?;
    let HirKind::Concat(parts) = hir.kind() else {
        return None;
    };
    let (first, rest) = parts.split_first()?;
    if first.kind() != &HirKind::Look(Look::Start) || rest.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for part in rest {
        match part.kind() {
            HirKind::Literal(lit) if lit.0.is_ascii() => {
                out.extend(lit.0.iter().map(|&byte| PrefixByte {
                    byte,
                    either_case: false,
                }));
            }
            HirKind::Class(Class::Unicode(class)) => {
                // Only the ASCII members matter for an ASCII name: they must be exactly one
                // letter in both cases (non-ASCII members such as the Kelvin sign are ignored).
                let mut ascii = class
                    .ranges()
                    .iter()
                    .filter(|r| r.start().is_ascii())
                    .flat_map(|r| r.start()..=r.end().min('\x7f'));
                let (Some(a), Some(b), None) = (ascii.next(), ascii.next(), ascii.next()) else {
                    return None;
                };
                if !(a.is_ascii_uppercase() && b == a.to_ascii_lowercase()) {
                    return None;
                }
                out.push(PrefixByte {
                    byte: b as u8,
                    either_case: true,
                });
            }
            _ => return None,
        }
    }
    Some(out.into())
}

/// The literals every match of `source` (case-insensitive) starts with, when every match also
/// starts at the beginning of the haystack: then a haystack that starts with none of them has no
/// match. `None` when that cannot be said cheaply (unanchored, too many variants, empty prefix).
fn anchored_prefixes(source: &str) -> Option<Box<[Box<[u8]>]>> {
    use regex_syntax::hir::Look;
    use regex_syntax::hir::literal::{ExtractKind, Extractor};

    let hir = regex_syntax::ParserBuilder::new()
        .case_insensitive(true)
        .build()
        .parse(source)
        .ok()?;
    if !hir.properties().look_set_prefix().contains(Look::Start) {
        return None;
    }
    let mut extractor = Extractor::new();
    extractor.kind(ExtractKind::Prefix).limit_total(64);
    let seq = extractor.extract(&hir);
    let literals = seq.literals()?;
    if literals.is_empty() || literals.iter().any(|l| l.as_bytes().is_empty()) {
        return None;
    }
    Some(literals.iter().map(|l| l.as_bytes().into()).collect())
}

/// What one ref reads.
#[derive(Clone, Debug)]
pub(crate) enum Selector {
    /// One object: `data[].remoteRef` or `dataFrom[].extract`.
    Object {
        kind: ObjectKind,
        name: ObjectName,
        /// `Some(v)` when `version` is non-empty: pinned.
        version: Option<Box<str>>,
    },
    /// `dataFrom[].find`: secrets of the store's vault, filtered by name regexp and tags (AND).
    Find {
        regexp: Option<Box<FindRegex>>,
        /// `find.tags` is set (tags cannot be evaluated from an event).
        tags: bool,
    },
    /// ESO would error on this ref (unknown prefix, `cert/`/`key/` in `extract`, empty key).
    Unreadable,
}

/// Where a ref sits in the ES's spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// `data[i].remoteRef`.
    Data(u32),
    /// `dataFrom[i].extract`.
    Extract(u32),
    /// `dataFrom[i].find`.
    Find(u32),
}

/// One ref of an ES: where it is, which store it uses, what it reads.
#[derive(Clone, Debug)]
pub(crate) struct ReadItem {
    origin: Origin,
    /// The `key` as written (`data`/`extract`; empty for `find`), for [`ReadItem::how`].
    written: Box<str>,
    /// `None` when no store is named at all. Shared: an ES's refs mostly name one store, and
    /// the index hands every ES naming a store the same key.
    pub(crate) store: Option<Arc<StoreKey>>,
    pub(crate) selector: Selector,
}

impl ReadItem {
    /// `data[1].remoteRef.key=secret/db`, `dataFrom[0].find.name.regexp=^db`, …: where the ref
    /// is and what it says (for explanations; built on demand, not stored).
    pub(crate) fn how(&self) -> String {
        match (self.origin, &self.selector) {
            (Origin::Data(i), _) => format!("data[{i}].remoteRef.key={}", self.written),
            (Origin::Extract(i), _) => format!("dataFrom[{i}].extract.key={}", self.written),
            (Origin::Find(i), Selector::Find { regexp, tags }) => match (regexp, tags) {
                (Some(r), false) => format!("dataFrom[{i}].find.name.regexp={}", r.source),
                (Some(r), true) => format!(
                    "dataFrom[{i}].find.name.regexp={} and find.tags (tags cannot be evaluated from an event)",
                    r.source
                ),
                (None, true) => {
                    format!("dataFrom[{i}].find.tags (cannot be evaluated from an event)")
                }
                (None, false) => format!("dataFrom[{i}].find (all secrets of the vault)"),
            },
            (Origin::Find(i), _) => format!("dataFrom[{i}].find"),
        }
    }
}

/// An ES as the index needs it.
#[derive(Clone, Debug)]
pub(crate) struct ParsedEs {
    pub(crate) items: Box<[ReadItem]>,
    /// The ClusterExternalSecret to patch instead of the ES (its controller), if any.
    pub(crate) parent: Option<Box<str>>,
    /// Why ESO would ignore a trigger whatever it reads (refresh policy / interval).
    pub(crate) policy_skip: Option<Box<SkipReason>>,
}

/// Parses an ES (also a CES child: it has the CES's `externalSecretSpec`).
pub(crate) fn parse_es(es: &ExternalSecretObject) -> ParsedEs {
    let namespace = es.meta.namespace.as_deref().unwrap_or("");
    let spec = &es.spec;
    let default_store = store_ref(spec.get("secretStoreRef"), namespace).map(Arc::new);
    let data = array(spec.get("data"));
    let data_from = array(spec.get("dataFrom"));
    let mut items = Vec::with_capacity(data.len() + data_from.len());
    let store_of = |d: &Value| {
        item_store(d, namespace)
            .map(Arc::new)
            .or_else(|| default_store.clone())
    };

    for (i, d) in (0u32..).zip(data) {
        let remote = d.get("remoteRef");
        let key = str_at(remote, "key");
        items.push(ReadItem {
            origin: Origin::Data(i),
            written: key.into(),
            store: store_of(d),
            selector: object_selector(key, str_at(remote, "version"), false),
        });
    }

    for (i, d) in (0u32..).zip(data_from) {
        if d.get("sourceRef")
            .and_then(|s| s.get("generatorRef"))
            .is_some_and(|g| !g.is_null())
        {
            continue; // a generator, not the store
        }
        if let Some(extract) = d.get("extract").filter(|v| v.is_object()) {
            let key = str_at(Some(extract), "key");
            items.push(ReadItem {
                origin: Origin::Extract(i),
                written: key.into(),
                store: store_of(d),
                selector: object_selector(key, str_at(Some(extract), "version"), true),
            });
        } else if let Some(find) = d.get("find").filter(|v| v.is_object()) {
            // ESO: checkName := ref.Name != nil && ref.Name.RegExp != ""; checkTags := len(tags) > 0.
            let regexp = find
                .get("name")
                .and_then(|n| n.get("regexp"))
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                .map(|r| Box::new(FindRegex::new(r)));
            let tags = find
                .get("tags")
                .and_then(Value::as_object)
                .is_some_and(|t| !t.is_empty());
            items.push(ReadItem {
                origin: Origin::Find(i),
                written: "".into(),
                store: store_of(d),
                selector: Selector::Find { regexp, tags },
            });
        }
    }

    let parent = match &es.meta.controller {
        Some(owner) if owner.kind == "ClusterExternalSecret" => Some(owner.name.as_str().into()),
        _ => None,
    };

    ParsedEs {
        items: items.into(),
        parent,
        policy_skip: policy_skip(es).map(Box::new),
    }
}

/// ESO's `shouldRefresh` for a metadata-only change (eso.md §1.2, §1.4).
fn policy_skip(es: &ExternalSecretObject) -> Option<SkipReason> {
    if let RefreshInterval::Invalid(text) = &es.refresh_interval {
        return Some(SkipReason::InvalidRefreshInterval(text.clone()));
    }
    match es.spec.get("refreshPolicy").and_then(Value::as_str) {
        Some("CreatedOnce") => Some(SkipReason::CreatedOnce),
        Some("OnChange") => None,
        // "Periodic", unset, or anything else: ESO's `default:` branch is periodic.
        _ => (es.refresh_interval == RefreshInterval::ZeroOrNegative
            && !es.synced_resource_version().is_empty())
        .then_some(SkipReason::RefreshIntervalZero),
    }
}

/// ESO's `getObjType` (eso.md §4.1): no `/` ⇒ secret; else the first segment is the type
/// (case-sensitive `secret`/`cert`/`key`) and only the second segment is the name.
/// `extract` (`GetSecretMap`) reads secrets only: `cert/` and `key/` error out.
fn object_selector(key: &str, version: &str, extract: bool) -> Selector {
    let parts: Vec<&str> = key.split('/').collect();
    let (kind, name) = if parts.len() > 1 {
        let kind = match parts[0] {
            "secret" => ObjectKind::Secret,
            "cert" if !extract => ObjectKind::Certificate,
            "key" if !extract => ObjectKind::Key,
            // `extract` of cert/ or key/ (errDataFromCert/Key), or an unknown type.
            _ => return Selector::Unreadable,
        };
        (kind, parts[1])
    } else {
        (ObjectKind::Secret, key)
    };
    if name.trim().is_empty() {
        return Selector::Unreadable;
    }
    Selector::Object {
        kind,
        name: ObjectName::new(name),
        version: (!version.is_empty()).then(|| version.into()),
    }
}

/// A per-item `sourceRef.storeRef`, which overrides `spec.secretStoreRef` (`Manager.Get`).
fn item_store(item: &Value, namespace: &str) -> Option<StoreKey> {
    item.get("sourceRef")
        .and_then(|s| s.get("storeRef"))
        .filter(|v| v.is_object())
        .and_then(|r| store_ref(Some(r), namespace))
}

/// A `{name, kind}` store reference resolved against the ES's namespace.
fn store_ref(r: Option<&Value>, namespace: &str) -> Option<StoreKey> {
    let r = r.filter(|v| v.is_object())?;
    let name = r.get("name").and_then(Value::as_str).unwrap_or("");
    let kind = StoreKind::from_ref_kind(r.get("kind").and_then(Value::as_str));
    Some(StoreKey::new(kind, Some(namespace), name))
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn str_at<'a>(v: Option<&'a Value>, field: &str) -> &'a str {
    v.and_then(|v| v.get(field)).and_then(Value::as_str).unwrap_or("")
}

/// What a store provides to matching.
#[derive(Clone, Debug)]
pub(crate) struct ParsedStore {
    pub(crate) provider: StoreProvider,
    /// Namespace conditions (cluster stores only; a `SecretStore` ignores them).
    pub(crate) conditions: Conditions,
}

/// The store's provider, as far as kvsync cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoreProvider {
    /// `spec.provider.azurekv` with a usable `vaultUrl`.
    AzureKv(VaultId),
    /// `azurekv` whose `vaultUrl` is missing or unusable.
    AzureKvInvalidUrl(String),
    /// Any other provider.
    Other,
}

impl StoreProvider {
    pub(crate) fn vault(&self) -> Option<&VaultId> {
        match self {
            StoreProvider::AzureKv(v) => Some(v),
            _ => None,
        }
    }
}

pub(crate) fn parse_store(s: &StoreObject) -> ParsedStore {
    let provider = match s.spec.get("provider").and_then(|p| p.get("azurekv")) {
        Some(az) if az.is_object() => {
            let url = az.get("vaultUrl").and_then(Value::as_str).unwrap_or("");
            match VaultId::from_url(url) {
                Ok(v) => StoreProvider::AzureKv(v),
                Err(_) => StoreProvider::AzureKvInvalidUrl(url.to_string()),
            }
        }
        _ => StoreProvider::Other,
    };
    let conditions = match s.kind {
        StoreKind::SecretStore => Conditions::default(),
        StoreKind::ClusterSecretStore => Conditions::parse(s.spec.get("conditions")),
    };
    ParsedStore { provider, conditions }
}

/// The label every namespace carries (set by the API server), implied by ESO's `namespaces[]`.
pub(crate) const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A ClusterSecretStore's `spec.conditions[]` (eso.md §5). Empty ⇒ every namespace.
#[derive(Clone, Debug, Default)]
pub(crate) struct Conditions(Vec<Condition>);

#[derive(Clone, Debug)]
struct Condition {
    namespaces: Vec<String>,
    regexes: Vec<Option<Regex>>,
    selector: Option<LabelSelector>,
}

/// A `metav1.LabelSelector`; `None` requirements when it does not convert (ESO errors then).
#[derive(Clone, Debug)]
struct LabelSelector {
    requirements: Option<Vec<Requirement>>,
}

#[derive(Clone, Debug)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn key(&self) -> &str {
        match self {
            Requirement::In(k, _)
            | Requirement::NotIn(k, _)
            | Requirement::Exists(k)
            | Requirement::DoesNotExist(k) => k,
        }
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

impl LabelSelector {
    /// `metav1.LabelSelectorAsSelector`: matchLabels are `In` single values; In/NotIn need
    /// values, Exists/DoesNotExist must have none; anything else is an error.
    fn parse(v: &Value) -> LabelSelector {
        let mut reqs = Vec::new();
        if let Some(ml) = v.get("matchLabels").and_then(Value::as_object) {
            for (k, val) in ml {
                reqs.push(Requirement::In(
                    k.clone(),
                    vec![val.as_str().unwrap_or("").to_string()],
                ));
            }
        }
        for e in array(v.get("matchExpressions")) {
            let key = str_at(Some(e), "key").to_string();
            let values: Vec<String> = array(e.get("values"))
                .iter()
                .map(|x| x.as_str().unwrap_or("").to_string())
                .collect();
            let req = match (str_at(Some(e), "operator"), values.is_empty()) {
                ("In", false) => Requirement::In(key, values),
                ("NotIn", false) => Requirement::NotIn(key, values),
                ("Exists", true) => Requirement::Exists(key),
                ("DoesNotExist", true) => Requirement::DoesNotExist(key),
                _ => {
                    return LabelSelector { requirements: None };
                }
            };
            reqs.push(req);
        }
        LabelSelector {
            requirements: Some(reqs),
        }
    }

    /// `Some(matches)`, or `None` when the namespace's labels are needed but unknown.
    fn matches(&self, namespace: &str, labels: Option<&BTreeMap<String, String>>) -> Option<bool> {
        let Some(reqs) = &self.requirements else {
            return Some(false); // ESO fails to convert it: never allows.
        };
        let mut known = match labels {
            Some(l) => l.clone(),
            None if reqs.iter().all(|r| r.key() == NAMESPACE_NAME_LABEL) => BTreeMap::new(),
            None => return None,
        };
        known.insert(NAMESPACE_NAME_LABEL.to_string(), namespace.to_string());
        Some(reqs.iter().all(|r| r.matches(&known)))
    }
}

/// Whether a namespace may use a cluster store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Allowed,
    Denied,
    /// Only a label selector could allow it, and the namespace's labels are unknown.
    Unknown,
}

impl Conditions {
    fn parse(v: Option<&Value>) -> Conditions {
        Conditions(
            array(v)
                .iter()
                .map(|c| Condition {
                    namespaces: array(c.get("namespaces"))
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                    regexes: array(c.get("namespaceRegexes"))
                        .iter()
                        .map(|r| r.as_str().and_then(|r| Regex::new(r).ok()))
                        .collect(),
                    selector: c
                        .get("namespaceSelector")
                        .filter(|s| s.is_object())
                        .map(LabelSelector::parse),
                })
                .collect(),
        )
    }

    /// ESO's `shouldProcessSecret`: everything ORed, across and within conditions. Regexes are
    /// unanchored (`regexp.MatchString`); an invalid one never matches.
    pub(crate) fn access(&self, namespace: &str, labels: Option<&BTreeMap<String, String>>) -> Access {
        if self.0.is_empty() {
            return Access::Allowed;
        }
        let mut unknown = false;
        for c in &self.0 {
            if c.namespaces.iter().any(|n| n == namespace)
                || c.regexes.iter().flatten().any(|r| r.is_match(namespace))
            {
                return Access::Allowed;
            }
            match c.selector.as_ref().map(|s| s.matches(namespace, labels)) {
                Some(Some(true)) => return Access::Allowed,
                Some(None) => unknown = true,
                _ => {}
            }
        }
        if unknown { Access::Unknown } else { Access::Denied }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conds(v: Value) -> Conditions {
        Conditions::parse(Some(&v))
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn object_keys_follow_get_obj_type() {
        let sel = |k: &str| object_selector(k, "", false);
        let is = |s: Selector, kind: ObjectKind, name: &str| match s {
            Selector::Object { kind: k, name: n, .. } => k == kind && n.as_str() == name,
            _ => false,
        };
        assert!(is(sel("db"), ObjectKind::Secret, "db"));
        assert!(is(sel("secret/db"), ObjectKind::Secret, "db"));
        assert!(is(sel("cert/Tls"), ObjectKind::Certificate, "tls"));
        assert!(is(sel("key/k1"), ObjectKind::Key, "k1"));
        // Only the second segment is the name.
        assert!(is(sel("secret/db/extra/more"), ObjectKind::Secret, "db"));
        // Prefixes are case-sensitive; unknown prefixes are ESO errors.
        assert!(matches!(sel("Secret/db"), Selector::Unreadable));
        assert!(matches!(sel("certificate/db"), Selector::Unreadable));
        assert!(matches!(sel(""), Selector::Unreadable));
        assert!(matches!(sel("secret/"), Selector::Unreadable));
        // extract reads secrets only.
        assert!(matches!(
            object_selector("cert/x", "", true),
            Selector::Unreadable
        ));
        assert!(matches!(object_selector("key/x", "", true), Selector::Unreadable));
        assert!(is(object_selector("secret/x", "", true), ObjectKind::Secret, "x"));
        // Version pins.
        assert!(matches!(
            object_selector("db", "abc", false),
            Selector::Object { version: Some(v), .. } if &*v == "abc"
        ));
    }

    #[test]
    fn only_cluster_stores_parse_conditions() {
        use crate::core::objects::Meta;
        let spec = json!({"provider": {"azurekv": {"vaultUrl": "https://KV.vault.azure.net/"}},
            "conditions": [{"namespaces": ["nobody"]}]});
        let mk = |kind| StoreObject {
            kind,
            meta: Meta::default(),
            spec: spec.clone(),
            status: Value::Null,
        };
        let ss = parse_store(&mk(StoreKind::SecretStore));
        assert_eq!(ss.conditions.access("ns", None), Access::Allowed);
        let css = parse_store(&mk(StoreKind::ClusterSecretStore));
        assert_eq!(css.conditions.access("ns", None), Access::Denied);
        assert_eq!(
            css.provider,
            StoreProvider::AzureKv(VaultId::from_url("https://kv.vault.azure.net").unwrap())
        );
    }

    #[test]
    fn no_conditions_allow_every_namespace() {
        assert_eq!(conds(json!([])).access("x", None), Access::Allowed);
        assert_eq!(Conditions::parse(None).access("x", None), Access::Allowed);
    }

    #[test]
    fn conditions_or_names_regexes_and_selectors() {
        let c = conds(json!([
            {"namespaces": ["team-a"]},
            {"namespaceRegexes": ["prod", "(invalid"]},
            {"namespaceSelector": {"matchLabels": {"env": "dev"}}}
        ]));
        assert_eq!(c.access("team-a", None), Access::Allowed);
        // Unanchored: `prod` matches inside the name.
        assert_eq!(c.access("my-prod-x", None), Access::Allowed);
        let dev = labels(&[("env", "dev")]);
        let other = labels(&[("env", "qa")]);
        assert_eq!(c.access("qa", Some(&dev)), Access::Allowed);
        assert_eq!(c.access("qa", Some(&other)), Access::Denied);
        // Labels unknown and only the selector could allow it: don't guess.
        assert_eq!(c.access("qa", None), Access::Unknown);
    }

    #[test]
    fn within_one_condition_parts_are_ored() {
        let c = conds(json!([{
            "namespaces": ["a"],
            "namespaceRegexes": ["^b"],
            "namespaceSelector": {"matchLabels": {"x": "y"}}
        }]));
        assert_eq!(c.access("a", Some(&labels(&[]))), Access::Allowed);
        assert_eq!(c.access("bee", Some(&labels(&[]))), Access::Allowed);
        assert_eq!(c.access("c", Some(&labels(&[("x", "y")]))), Access::Allowed);
        assert_eq!(c.access("c", Some(&labels(&[]))), Access::Denied);
    }

    #[test]
    fn selector_expressions_and_the_implied_name_label() {
        let c = conds(json!([{"namespaceSelector": {"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["gold", "silver"]},
            {"key": "frozen", "operator": "DoesNotExist"},
            {"key": "region", "operator": "NotIn", "values": ["cn"]},
            {"key": "owner", "operator": "Exists"}
        ]}}]));
        let ok = labels(&[("tier", "gold"), ("owner", "me")]);
        assert_eq!(c.access("n", Some(&ok)), Access::Allowed);
        let frozen = labels(&[("tier", "gold"), ("owner", "me"), ("frozen", "1")]);
        assert_eq!(c.access("n", Some(&frozen)), Access::Denied);
        let cn = labels(&[("tier", "gold"), ("owner", "me"), ("region", "cn")]);
        assert_eq!(c.access("n", Some(&cn)), Access::Denied);
        let no_owner = labels(&[("tier", "silver")]);
        assert_eq!(c.access("n", Some(&no_owner)), Access::Denied);
        let bronze = labels(&[("tier", "bronze"), ("owner", "me")]);
        assert_eq!(c.access("n", Some(&bronze)), Access::Denied);

        // kubernetes.io/metadata.name is implied, so it is evaluable without labels.
        let by_name = conds(json!([{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "payments"}}}]));
        assert_eq!(by_name.access("payments", None), Access::Allowed);
        assert_eq!(by_name.access("other", None), Access::Denied);
        assert_eq!(by_name.access("payments", Some(&labels(&[]))), Access::Allowed);
        // An empty selector selects everything.
        let everything = conds(json!([{"namespaceSelector": {}}]));
        assert_eq!(everything.access("any", None), Access::Allowed);
        // A selector ESO cannot convert never allows.
        let bad = conds(json!([{"namespaceSelector": {"matchExpressions": [
            {"key": "a", "operator": "In", "values": []}]}}]));
        assert_eq!(bad.access("n", Some(&labels(&[]))), Access::Denied);
    }

    /// The literal prefilter of a start-anchored `find` regexp is used only when every match
    /// starts at the beginning with one of its literals, and never changes an answer.
    #[test]
    fn find_prefixes_are_a_safe_shortcut() {
        fn shortcut(f: &FindRegex) -> &'static str {
            match &f.matcher {
                Matcher::Invalid(_) => "invalid",
                Matcher::Prefix(_) => "prefix",
                Matcher::Regex {
                    prefixes: Some(_), ..
                } => "prefilter",
                Matcher::Regex { .. } => "regex",
            }
        }
        for fixed in ["^db-", "^app-000123-", "(?-i)^Db", "^k", r"\Ax\.y", "^ſ"] {
            assert_eq!(shortcut(&FindRegex::new(fixed)), "prefix", "{fixed}");
        }
        assert_eq!(shortcut(&FindRegex::new(r"\Aapp-(a|b)")), "prefilter");
        assert_eq!(shortcut(&FindRegex::new("^(prod|stag)-[a-z]+$")), "prefilter");
        assert_eq!(shortcut(&FindRegex::new("^[a-c]x")), "prefilter");
        for unanchored in ["db-", "(?m)^db", "^a|b", "^.*x", "^", "(?:^a)?b"] {
            assert_eq!(shortcut(&FindRegex::new(unanchored)), "regex", "{unanchored}");
        }
        assert_eq!(shortcut(&FindRegex::new("^(")), "invalid");
        assert_eq!(
            FindRegex::new("^(").error().map(|e| e.contains("unclosed")),
            Some(true)
        );
        let patterns = [
            "^db-",
            "^DB-",
            "^app-000123-",
            r"\Aapp-(a|b)",
            r"\Ax\.y",
            "^(prod|stag)-[a-z]+$",
            "^k",
            "^s",
            "^ſ",
            "^[0-9]{2}x",
            "^payments-database-password",
            "db",
            "^a|b",
            "(?-i)^Db",
        ];
        let names = [
            "db-1",
            "DB-1",
            "Db-x",
            "app-000123-x",
            "APP-000123-",
            "app-a",
            "app-c",
            "prod-web",
            "stag-",
            "k",
            "K",
            "\u{212A}x",
            "s",
            "S",
            "\u{17F}",
            "12x",
            "1x",
            "payments-database-password",
            "Payments-Database-Password-2",
            "xdb",
            "b",
            "a",
            "",
            "Db",
            "x.y",
            "x-y",
            "X.Y",
        ];
        for p in patterns {
            let f = FindRegex::new(p);
            let plain = RegexBuilder::new(p).case_insensitive(true).build().unwrap();
            for n in names {
                assert_eq!(f.is_match(n), Some(plain.is_match(n)), "{p} on {n}");
            }
        }
        assert_eq!(FindRegex::new("^(").is_match("x"), None);
    }

    proptest::proptest! {
        /// Random start-anchored patterns over a small alphabet: the shortcut agrees with the regex.
        #[test]
        fn find_prefix_shortcut_agrees_with_the_regex(
            body in "[abksAB.|()?*+-]{0,8}",
            names in proptest::collection::vec("[abksABKS\u{17F}\u{212A}-]{0,6}", 1..8),
        ) {
            let p = format!("^{body}");
            let f = FindRegex::new(&p);
            if let Ok(plain) = RegexBuilder::new(&p).case_insensitive(true).build() {
                for n in &names {
                    proptest::prop_assert_eq!(f.is_match(n), Some(plain.is_match(n)), "{} on {}", p, n);
                }
            }
        }
    }
}
