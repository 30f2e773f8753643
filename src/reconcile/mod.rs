//! The fallback reconcile: Event Grid is at-least-once but not guaranteed-eventually (dead-lettered
//! or dropped deliveries, a subscription created after the change, kvsync down), so every
//! `interval` (default 10 min, jittered; `0` disables) the leader lists the *properties* of the
//! objects in every vault an azurekv store names (secrets; certificates and keys only when some
//! ExternalSecret reads those kinds) and triggers, through the same apply path as events
//! ([`Apply::apply`] with [`Cause::Reconcile`]), the ExternalSecrets whose `status.refreshTime` is
//! older than the object's `attributes.updated` (with a skew margin: `core::staleness`).
//!
//! Cost: ⌈N/25⌉ list requests per vault and kind per pass, under a per-vault budget. A pass stops
//! cleanly when leadership is lost, when its deadline passes or when a vault cannot be listed
//! (after backoff); triggers already issued stand, and the next pass visits the unfinished vaults
//! first. Metrics: `kvsync_reconcile_passes_total{outcome}`, `kvsync_reconcile_duration_seconds`,
//! `kvsync_reconcile_objects_checked_total`, `kvsync_reconcile_triggers_total`.

pub mod decide;
pub mod wiring;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::apply::{Apply, ApplyReport, Cause};
use crate::core::model::{ObjectKind, VaultChange, VaultId};
use crate::keyvault::KeyVault;
use crate::kube::SharedIndex;
use crate::readiness::Readiness;
use decide::{StaleObject, compare, jittered, visiting_order};

/// Labels of `kvsync_reconcile_passes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PassLabels {
    /// `complete`, `cut_short`.
    pub outcome: String,
}

/// Reconcile metrics.
#[derive(Clone, Debug)]
pub struct ReconcileMetrics {
    /// Passes by outcome.
    pub passes: Family<PassLabels, Counter>,
    /// Duration of a pass.
    pub duration: Histogram,
    /// Objects compared (objects with at least one reader).
    pub objects_checked: Counter,
    /// Targets patched by the reconcile.
    pub triggers: Counter,
}

impl ReconcileMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let m = ReconcileMetrics {
            passes: Family::default(),
            duration: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            objects_checked: Counter::default(),
            triggers: Counter::default(),
        };
        registry.register(
            "reconcile_passes",
            "Fallback reconcile passes by outcome",
            m.passes.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of fallback reconcile passes",
            m.duration.clone(),
        );
        registry.register(
            "reconcile_objects_checked",
            "Key Vault objects compared with their readers' refresh times",
            m.objects_checked.clone(),
        );
        registry.register(
            "reconcile_triggers",
            "Refreshes triggered by the fallback reconcile",
            m.triggers.clone(),
        );
        m
    }
}

/// Settings of the reconcile.
#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    /// Time between passes (`0`: no loop).
    pub interval: Duration,
    /// Clock-skew margin.
    pub skew: Duration,
    /// Longest a pass may run.
    pub deadline: Duration,
}

/// Why a pass stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CutShort {
    /// Leadership was lost.
    LeadershipLost,
    /// The pass deadline passed.
    Deadline,
}

/// What one vault yielded.
#[derive(Clone, Debug, Default)]
pub struct VaultReport {
    /// The vault.
    pub vault: Option<VaultId>,
    /// Kinds listed and how many objects each returned.
    pub listed: Vec<(ObjectKind, usize)>,
    /// Objects compared.
    pub checked: usize,
    /// Objects with stale readers.
    pub stale: Vec<StaleObject>,
    /// What the apply step did with them.
    pub applied: ApplyReport,
    /// A listing or apply failure (the vault is unfinished).
    pub error: Option<String>,
}

/// What one pass did.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    /// Per vault, in visiting order.
    pub vaults: Vec<VaultReport>,
    /// Set when the pass stopped early.
    pub cut_short: Option<CutShort>,
    /// How long it took.
    pub duration: Duration,
}

impl PassReport {
    /// Objects compared in all vaults.
    pub fn checked(&self) -> usize {
        self.vaults.iter().map(|v| v.checked).sum()
    }

    /// Targets patched.
    pub fn triggered(&self) -> usize {
        self.vaults.iter().map(|v| v.applied.triggered).sum()
    }

    /// Whether every vault was listed and applied.
    pub fn complete(&self) -> bool {
        self.cut_short.is_none() && self.vaults.iter().all(|v| v.error.is_none())
    }

    /// Human-readable report (`kvsync reconcile --once`).
    pub fn to_text(&self, dry_run: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "fallback reconcile: {} vault(s), {} object(s) checked, {} {} in {:.1}s{}",
            self.vaults.len(),
            self.checked(),
            self.triggered(),
            if dry_run {
                "would be triggered"
            } else {
                "triggered"
            },
            self.duration.as_secs_f64(),
            match &self.cut_short {
                None => String::new(),
                Some(c) => format!(" (cut short: {c:?})"),
            }
        );
        for v in &self.vaults {
            let name = v.vault.as_ref().map(VaultId::as_str).unwrap_or("?");
            let listed: Vec<String> = v.listed.iter().map(|(k, n)| format!("{n} {k}(s)")).collect();
            let _ = writeln!(
                out,
                "vault {name}: listed {}; {} checked; {} stale",
                if listed.is_empty() {
                    "nothing".to_string()
                } else {
                    listed.join(", ")
                },
                v.checked,
                v.stale.len()
            );
            for s in &v.stale {
                for r in &s.readers {
                    let refreshed = r
                        .refresh_time
                        .and_then(|t| jiff::Timestamp::from_second(t).ok())
                        .map_or_else(|| "never".to_string(), |t| t.to_string());
                    let updated = jiff::Timestamp::from_second(s.updated)
                        .map_or_else(|_| s.updated.to_string(), |t| t.to_string());
                    let _ = writeln!(
                        out,
                        "  stale: ExternalSecret {} reads {} (updated {updated}, refreshed {refreshed})",
                        r.es, s.object
                    );
                }
            }
            let a = &v.applied;
            let _ = writeln!(
                out,
                "  apply: {} triggered, {} unchanged, {} skipped, {} gone, {} refused",
                a.triggered, a.unchanged, a.skipped, a.gone, a.refused
            );
            if let Some(e) = &v.error {
                let _ = writeln!(out, "  error: {e}");
            }
        }
        out
    }
}

/// Runs reconcile passes.
pub struct Reconciler {
    index: SharedIndex,
    apply: Arc<dyn Apply>,
    keyvault: Arc<dyn KeyVault>,
    settings: ReconcileSettings,
    metrics: ReconcileMetrics,
    unfinished: Mutex<BTreeSet<VaultId>>,
    passes: watch::Sender<u64>,
    last: Mutex<Option<PassReport>>,
}

impl Reconciler {
    /// Wires a reconciler.
    pub fn new(
        index: SharedIndex,
        apply: Arc<dyn Apply>,
        keyvault: Arc<dyn KeyVault>,
        settings: ReconcileSettings,
        metrics: ReconcileMetrics,
    ) -> Self {
        Reconciler {
            index,
            apply,
            keyvault,
            settings,
            metrics,
            unfinished: Mutex::new(BTreeSet::new()),
            passes: watch::channel(0).0,
            last: Mutex::new(None),
        }
    }

    /// Passes run so far (watch it to wait for a pass).
    pub fn passes(&self) -> watch::Receiver<u64> {
        self.passes.subscribe()
    }

    /// The last pass's report.
    pub fn last_report(&self) -> Option<PassReport> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// One pass. It stops early when `leader` turns false (or its sender is gone) or the
    /// deadline passes; what it did not finish is visited first next time.
    pub async fn run_pass(&self, mut leader: watch::Receiver<bool>) -> PassReport {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.settings.deadline;
        let (vaults, kinds_of) = {
            let index = self
                .index
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let vaults = index.vaults();
            let kinds: Vec<(VaultId, BTreeSet<ObjectKind>)> = vaults
                .iter()
                .map(|v| (v.clone(), index.referenced_kinds(v)))
                .collect();
            (vaults, kinds)
        };
        let order = {
            let unfinished = self
                .unfinished
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            visiting_order(&vaults, &unfinished)
        };
        let mut report = PassReport::default();
        let mut pending: BTreeSet<VaultId> = order.iter().cloned().collect();
        'vaults: for vault in order {
            let kinds = kinds_of
                .iter()
                .find(|(v, _)| v == &vault)
                .map(|(_, k)| k.clone())
                .unwrap_or_default();
            let mut vr = VaultReport {
                vault: Some(vault.clone()),
                ..VaultReport::default()
            };
            let mut stale: Vec<StaleObject> = Vec::new();
            for kind in kinds {
                let listing = tokio::select! {
                    r = self.keyvault.list_properties(&vault, kind) => r,
                    _ = lost(&mut leader) => {
                        report.cut_short = Some(CutShort::LeadershipLost);
                        break 'vaults;
                    }
                    _ = tokio::time::sleep_until(deadline) => {
                        report.cut_short = Some(CutShort::Deadline);
                        break 'vaults;
                    }
                };
                match listing {
                    Ok(items) => {
                        vr.listed.push((kind, items.len()));
                        let c = {
                            let index = self
                                .index
                                .read()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            compare(&index, &vault, kind, &items, self.settings.skew)
                        };
                        vr.checked += c.checked;
                        stale.extend(c.stale);
                    }
                    Err(e) => {
                        tracing::warn!(vault = %vault, kind = %kind, error = %e, "fallback reconcile: listing failed; the vault is retried next pass");
                        vr.error = Some(e.to_string());
                        break;
                    }
                }
            }
            self.metrics.objects_checked.inc_by(vr.checked as u64);
            if !*leader.borrow() {
                report.cut_short = Some(CutShort::LeadershipLost);
                report.vaults.push(vr);
                break;
            }
            if !stale.is_empty() {
                let changes: Vec<VaultChange> = stale.iter().map(StaleObject::change).collect();
                for s in &stale {
                    let readers: Vec<String> = s.readers.iter().map(|r| r.es.to_string()).collect();
                    tracing::info!(object = %s.object, updated = s.updated, readers = %readers.join(", "),
                        "fallback reconcile: stale readers found");
                }
                match self.apply.apply(changes, Cause::Reconcile).await {
                    Ok(applied) => {
                        self.metrics.triggers.inc_by(applied.triggered as u64);
                        vr.applied = applied;
                    }
                    Err(e) => {
                        tracing::warn!(vault = %vault, error = %e, "fallback reconcile: apply failed; retried next pass");
                        vr.error.get_or_insert(e.to_string());
                    }
                }
            }
            vr.stale = stale;
            if vr.error.is_none() {
                pending.remove(&vault);
            }
            report.vaults.push(vr);
        }
        report.duration = started.elapsed();
        *self
            .unfinished
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = pending;
        let outcome = if report.complete() {
            "complete"
        } else {
            "cut_short"
        };
        self.metrics
            .passes
            .get_or_create(&PassLabels {
                outcome: outcome.into(),
            })
            .inc();
        self.metrics.duration.observe(report.duration.as_secs_f64());
        tracing::info!(
            vaults = report.vaults.len(),
            checked = report.checked(),
            triggered = report.triggered(),
            outcome,
            duration_ms = report.duration.as_millis() as u64,
            "fallback reconcile pass done"
        );
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report.clone());
        self.passes.send_modify(|n| *n += 1);
        report
    }

    /// Runs passes while `leader` is true: the first as soon as leadership is gained and the index
    /// is complete, then every `interval` (jittered). Returns when the leader channel closes.
    pub async fn run(self: Arc<Self>, mut leader: watch::Receiver<bool>, readiness: Readiness) {
        loop {
            // Wait for leadership.
            while !*leader.borrow_and_update() {
                if leader.changed().await.is_err() {
                    return;
                }
            }
            while !readiness.is_ready() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tracing::info!("leader: fallback reconcile starts");
            loop {
                if !*leader.borrow() {
                    tracing::info!("leadership lost: fallback reconcile stops");
                    break;
                }
                self.run_pass(leader.clone()).await;
                let wait = jittered(self.settings.interval, crate::keyvault::retry::random_unit());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = lost(&mut leader) => {}
                }
            }
        }
    }
}

/// Resolves when `leader` is (or becomes) false, or its sender is gone.
async fn lost(leader: &mut watch::Receiver<bool>) {
    loop {
        if !*leader.borrow_and_update() {
            return;
        }
        if leader.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::RwLock;

    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::apply::RecordingApply;
    use crate::core::index::Index;
    use crate::core::model::ObjectName;
    use crate::core::objects::{ExternalSecretObject, Meta, RefreshInterval, StoreKind, StoreObject};
    use crate::keyvault::{KeyVaultError, Listed};

    struct FakeVault {
        items: HashMap<String, Vec<Listed>>,
        fail: Option<String>,
    }

    #[async_trait]
    impl KeyVault for FakeVault {
        async fn list_properties(
            &self,
            vault: &VaultId,
            kind: ObjectKind,
        ) -> Result<Vec<Listed>, KeyVaultError> {
            if self.fail.as_deref() == Some(vault.as_str()) {
                return Err(KeyVaultError::List {
                    vault: vault.to_string(),
                    kind,
                    message: "scripted".into(),
                });
            }
            Ok(self.items.get(vault.as_str()).cloned().unwrap_or_default())
        }
    }

    fn index() -> SharedIndex {
        let mut index = Index::new();
        for (name, vault) in [("a", "a"), ("b", "b")] {
            index.apply_store(StoreObject {
                kind: StoreKind::SecretStore,
                meta: Meta {
                    namespace: Some("ns".into()),
                    name: name.into(),
                    ..Meta::default()
                },
                spec: json!({"provider": {"azurekv": {"vaultUrl": format!("https://{vault}.vault.azure.net")}}}),
                status: serde_json::Value::Null,
            });
            index.apply_external_secret(ExternalSecretObject {
                meta: Meta {
                    namespace: Some("ns".into()),
                    name: format!("es-{name}"),
                    ..Meta::default()
                },
                spec: json!({"secretStoreRef": {"name": name}, "data": [{"secretKey": "k", "remoteRef": {"key": "db"}}]}),
                status: json!({"refreshTime": "2026-11-28T10:00:00Z"}),
                refresh_interval: RefreshInterval::Default,
            });
        }
        Arc::new(RwLock::new(index))
    }

    fn reconciler(fail: Option<&str>, apply: RecordingApply) -> Reconciler {
        let db = |updated| Listed {
            name: ObjectName::new("db"),
            updated: Some(updated),
            enabled: true,
        };
        let kv = FakeVault {
            items: HashMap::from([
                ("a.vault.azure.net".to_string(), vec![db(1_795_870_000)]),
                ("b.vault.azure.net".to_string(), vec![db(1_795_000_000)]),
            ]),
            fail: fail.map(str::to_string),
        };
        Reconciler::new(
            index(),
            Arc::new(apply),
            Arc::new(kv),
            ReconcileSettings {
                interval: Duration::from_secs(600),
                skew: Duration::from_secs(300),
                deadline: Duration::from_secs(60),
            },
            ReconcileMetrics::register(&mut Registry::default()),
        )
    }

    #[tokio::test]
    async fn a_pass_applies_stale_objects_with_cause_reconcile() {
        let apply = RecordingApply::default();
        let r = reconciler(None, apply.clone());
        let (_tx, rx) = watch::channel(true);
        let report = r.run_pass(rx).await;
        assert!(report.complete());
        assert_eq!(report.checked(), 2);
        let calls = apply.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].1, Cause::Reconcile);
        assert_eq!(calls[0].0.len(), 1);
        assert_eq!(calls[0].0[0].object.vault.as_str(), "a.vault.azure.net");
        assert_eq!(calls[0].0[0].version.as_deref(), Some("updated-1795870000"));
        assert!(
            report
                .to_text(false)
                .contains("stale: ExternalSecret ns/es-a reads")
        );
        assert_eq!(*r.passes().borrow(), 1);
    }

    #[tokio::test]
    async fn a_failed_vault_is_visited_first_next_time() {
        let r = reconciler(Some("a.vault.azure.net"), RecordingApply::default());
        let (_tx, rx) = watch::channel(true);
        let report = r.run_pass(rx.clone()).await;
        assert!(!report.complete());
        assert!(report.vaults[0].error.is_some());
        let r2_order = {
            let unfinished = r.unfinished.lock().unwrap().clone();
            visiting_order(
                &[
                    VaultId::from_url("b.vault.azure.net").unwrap(),
                    VaultId::from_url("a.vault.azure.net").unwrap(),
                ]
                .into(),
                &unfinished,
            )
        };
        assert_eq!(r2_order[0].as_str(), "a.vault.azure.net");
    }

    #[tokio::test]
    async fn no_leadership_means_the_pass_stops_before_applying() {
        let apply = RecordingApply::default();
        let r = reconciler(None, apply.clone());
        let (tx, rx) = watch::channel(false);
        drop(tx);
        let report = r.run_pass(rx).await;
        assert_eq!(report.cut_short, Some(CutShort::LeadershipLost));
        assert!(apply.calls().is_empty());
    }
}
