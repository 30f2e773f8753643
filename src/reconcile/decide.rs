//! The reconcile's decisions, pure: which listed objects have stale readers, in which order to
//! visit vaults, and when the next pass is due.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::core::index::{Index, IndexedEs};
use crate::core::model::{ChangeKind, ObjectKind, ObjectRef, VaultChange, VaultId};
use crate::core::objects::EsKey;
use crate::core::staleness::{is_stale, version_token};
use crate::keyvault::Listed;

/// A reader found stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleReader {
    /// The ExternalSecret.
    pub es: EsKey,
    /// Its `status.refreshTime` (unix seconds), `None` when never synced.
    pub refresh_time: Option<i64>,
}

/// An object some reader of which is stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleObject {
    /// The object.
    pub object: ObjectRef,
    /// Its `attributes.updated` (unix seconds).
    pub updated: i64,
    /// The stale readers, sorted.
    pub readers: Vec<StaleReader>,
}

impl StaleObject {
    /// The change handed to the apply step: a new version whose token is derived from `updated`.
    pub fn change(&self) -> VaultChange {
        VaultChange {
            object: self.object.clone(),
            version: Some(version_token(self.updated).into()),
            kind: ChangeKind::NewVersion,
        }
    }
}

/// What the comparison of one listing found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Objects that have at least one reader (the ones compared).
    pub checked: usize,
    /// Objects with stale readers.
    pub stale: Vec<StaleObject>,
}

/// Compares each listed object of `kind` in `vault` with the `refreshTime` of each ExternalSecret
/// that reads it. Disabled objects and objects without `updated` are skipped: ESO cannot read a
/// disabled object, and without a time there is nothing to compare.
pub fn compare(
    index: &Index,
    vault: &VaultId,
    kind: ObjectKind,
    listed: &[Listed],
    margin: Duration,
) -> Comparison {
    let mut out = Comparison::default();
    for item in listed {
        let object = ObjectRef {
            vault: vault.clone(),
            kind,
            name: item.name.clone(),
        };
        let readers = index.readers_of(&object);
        if readers.is_empty() {
            continue;
        }
        out.checked += 1;
        let (Some(updated), true) = (item.updated, item.enabled) else {
            continue;
        };
        let stale: Vec<StaleReader> = readers
            .into_iter()
            .filter_map(|es| {
                let rt = index.external_secret(&es).and_then(IndexedEs::refresh_time);
                is_stale(updated, rt, margin).then_some(StaleReader { es, refresh_time: rt })
            })
            .collect();
        if !stale.is_empty() {
            out.stale.push(StaleObject {
                object,
                updated,
                readers: stale,
            });
        }
    }
    out
}

/// Vaults in visiting order: those a previous pass did not finish first (so a pass cut short
/// resumes where it stopped), then the rest; each group sorted.
pub fn visiting_order(vaults: &BTreeSet<VaultId>, unfinished: &BTreeSet<VaultId>) -> Vec<VaultId> {
    let (first, rest): (Vec<VaultId>, Vec<VaultId>) =
        vaults.iter().cloned().partition(|v| unfinished.contains(v));
    first.into_iter().chain(rest).collect()
}

/// The wait before the next pass: `interval` scaled by a factor in `[0.9, 1.1)` drawn from
/// `unit` (`[0, 1)`), so replicas restarted together do not list in lockstep.
pub fn jittered(interval: Duration, unit: f64) -> Duration {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.5
    };
    interval.mul_f64(0.9 + 0.2 * unit)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::model::{Cloud, ObjectName};
    use crate::core::objects::{ExternalSecretObject, Meta, RefreshInterval, StoreKind, StoreObject};

    const M: Duration = Duration::from_secs(300);

    fn vault() -> VaultId {
        VaultId::from_name("prod", Cloud::Public).unwrap()
    }

    fn index() -> Index {
        let mut index = Index::new();
        index.apply_store(StoreObject {
            kind: StoreKind::SecretStore,
            meta: Meta {
                namespace: Some("ns".into()),
                name: "kv".into(),
                ..Meta::default()
            },
            spec: json!({"provider": {"azurekv": {"vaultUrl": "https://prod.vault.azure.net"}}}),
            status: serde_json::Value::Null,
        });
        for (name, key, refreshed) in [
            ("fresh", "a", Some("2026-11-28T10:00:00Z")),
            ("stale", "b", Some("2026-11-28T09:00:00Z")),
            ("never", "c", None),
            ("also-stale", "b", Some("2026-11-28T08:00:00Z")),
        ] {
            index.apply_external_secret(ExternalSecretObject {
                meta: Meta {
                    namespace: Some("ns".into()),
                    name: name.into(),
                    ..Meta::default()
                },
                spec: json!({"secretStoreRef": {"name": "kv"}, "data": [{"secretKey": "k", "remoteRef": {"key": key}}]}),
                status: refreshed.map_or(serde_json::Value::Null, |t| json!({"refreshTime": t})),
                refresh_interval: RefreshInterval::Default,
            });
        }
        index
    }

    fn listed(name: &str, updated: Option<i64>, enabled: bool) -> Listed {
        Listed {
            name: ObjectName::new(name),
            updated,
            enabled,
        }
    }

    const T10: i64 = 1_795_860_000; // 2026-11-28T10:00:00Z

    #[test]
    fn stale_readers_are_found_and_fresh_ones_left_alone() {
        let idx = index();
        let c = compare(
            &idx,
            &vault(),
            ObjectKind::Secret,
            &[
                listed("a", Some(T10 - 3600), true),
                listed("b", Some(T10 - 1800), true),
                listed("c", Some(T10 - 7200), true),
                listed("unread", Some(T10), true),
            ],
            M,
        );
        assert_eq!(c.checked, 3);
        let names: Vec<(&str, Vec<&str>)> = c
            .stale
            .iter()
            .map(|s| {
                (
                    s.object.name.as_str(),
                    s.readers.iter().map(|r| &*r.es.name).collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![("b", vec!["also-stale", "stale"]), ("c", vec!["never"])]
        );
        assert_eq!(c.stale[0].change().version.as_deref(), Some("updated-1795858200"));
        assert_eq!(c.stale[0].change().kind, ChangeKind::NewVersion);
    }

    #[test]
    fn disabled_or_undated_objects_are_counted_but_not_triggered() {
        let idx = index();
        let c = compare(
            &idx,
            &vault(),
            ObjectKind::Secret,
            &[listed("b", Some(T10), false), listed("c", None, true)],
            M,
        );
        assert_eq!(c.checked, 2);
        assert!(c.stale.is_empty());
    }

    #[test]
    fn an_update_just_before_the_refresh_is_within_the_margin() {
        let idx = index();
        let c = compare(
            &idx,
            &vault(),
            ObjectKind::Secret,
            &[listed("a", Some(T10 - 60), true)],
            M,
        );
        assert_eq!(
            c.stale.len(),
            1,
            "refreshed 60 s after the change: may have read the old value"
        );
        let c = compare(
            &idx,
            &vault(),
            ObjectKind::Secret,
            &[listed("a", Some(T10 - 60), true)],
            Duration::ZERO,
        );
        assert!(c.stale.is_empty());
    }

    #[test]
    fn unfinished_vaults_come_first() {
        let v = |n: &str| VaultId::from_name(n, Cloud::Public).unwrap();
        let all: BTreeSet<VaultId> = [v("a"), v("b"), v("c")].into();
        let unfinished: BTreeSet<VaultId> = [v("c"), v("zzz")].into();
        assert_eq!(visiting_order(&all, &unfinished), vec![v("c"), v("a"), v("b")]);
        assert_eq!(
            visiting_order(&all, &BTreeSet::new()),
            vec![v("a"), v("b"), v("c")]
        );
    }

    #[test]
    fn jitter_is_ten_percent_either_way() {
        let i = Duration::from_secs(600);
        assert_eq!(jittered(i, 0.0), Duration::from_secs(540));
        assert_eq!(jittered(i, 0.5), Duration::from_secs(600));
        assert!(jittered(i, 0.999) < Duration::from_secs(660));
        assert_eq!(jittered(i, f64::NAN), Duration::from_secs(600));
    }
}
