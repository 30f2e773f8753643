//! The production apply step: plan triggers from the index (pure `core::decide::plan`), then patch
//! each target's annotation — coalesced per target, rate limited, deduplicated — and answer only
//! when every needed patch was accepted.
//!
//! Coalescing: per target, patches are serialised. A change that arrives while a patch for the same
//! target is in flight joins the *next* patch, which every waiter shares; so a burst yields the
//! first patch at once and at most one more per `window`, and every change is covered by a patch
//! sent after it arrived (ESO then reads the newest version). A patch whose delivery is cancelled
//! at its deadline puts its changes back, so the deliveries that waited on it are covered by the
//! next patch instead of sharing a result that never came. The annotation value is derived from
//! the causes, so a redelivered change writes the same value and changes nothing; changes already
//! applied are also remembered (24 h, bounded) and skipped outright.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::SharedIndex;
use super::confirm::ConfirmTracker;
use super::events::{Events, REASON_TRIGGERED, Severity};
use super::patch::{PatchOutcome, Patcher};
use super::trigger_metrics::{ReasonLabels, TriggerLabels, TriggerMetrics};
use crate::apply::{Apply, ApplyError, ApplyReport, Cause};
use crate::core::decide::{NamespaceLabels, SkipReason, plan, trigger_value};
use crate::core::model::{ChangeKind, ObjectRef, VaultChange};
use crate::core::objects::{EsKey, Target};
use crate::core::recent::Recent;

/// The annotation ESO's ClusterExternalSecret controller copies to its children.
pub const CES_FORCE_SYNC: &str = "external-secrets.io/force-sync";

/// Tunables of the trigger path.
#[derive(Clone, Debug)]
pub struct TriggerSettings {
    /// Annotation patched on ExternalSecrets (ClusterExternalSecrets always get `external-secrets.io/force-sync`).
    pub annotation: String,
    /// Minimum spacing of two patches of one target.
    pub window: Duration,
    /// Patches per second across all targets (token bucket rate).
    pub patches_per_second: NonZeroU32,
    /// Token bucket burst.
    pub burst: NonZeroU32,
    /// Time one patch (with retries) may take.
    pub patch_deadline: Duration,
    /// How long applied changes are remembered.
    pub remember_for: Duration,
    /// How many applied changes are remembered at most.
    pub remember_capacity: usize,
}

impl Default for TriggerSettings {
    fn default() -> Self {
        TriggerSettings {
            annotation: CES_FORCE_SYNC.to_string(),
            window: Duration::from_secs(2),
            patches_per_second: NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(200).unwrap_or(NonZeroU32::MIN),
            patch_deadline: Duration::from_secs(20),
            remember_for: Duration::from_secs(24 * 3600),
            remember_capacity: 100_000,
        }
    }
}

type ChangeKey = (ObjectRef, Option<std::sync::Arc<str>>);

#[derive(Default)]
struct QueueState {
    /// Causes waiting for the next patch.
    pending: BTreeSet<ChangeKey>,
    /// Full changes for the pending causes (for the value and the event note).
    pending_changes: Vec<VaultChange>,
    /// ES keys reached through this target (CES children), for confirmation.
    pending_via: BTreeSet<EsKey>,
    /// Generation the pending causes will be sent in.
    next_gen: u64,
    /// Results of finished generations (only the last few are kept).
    results: BTreeMap<u64, Result<PatchOutcome, String>>,
    last_sent: Option<Instant>,
}

/// Puts a taken batch back into the queue's pending causes unless disarmed (`batch = None`):
/// the patch that was to carry it was cancelled.
struct Restore<'a> {
    queue: &'a TargetQueue,
    batch: Option<(Vec<VaultChange>, BTreeSet<EsKey>)>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let Some((changes, via)) = self.batch.take() else {
            return;
        };
        let mut st = self
            .queue
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for c in changes {
            if st.pending.insert((c.object.clone(), c.version.clone())) {
                st.pending_changes.push(c);
            }
        }
        st.pending_via.extend(via);
    }
}

struct TargetQueue {
    state: Mutex<QueueState>,
    sender: tokio::sync::Mutex<()>,
}

/// Applies changes to the cluster. Cheap to clone.
#[derive(Clone)]
pub struct KubeApply {
    inner: Arc<Inner>,
}

struct Inner {
    index: SharedIndex,
    namespaces: Arc<dyn NamespaceLabels + Send + Sync>,
    patcher: Arc<dyn Patcher>,
    settings: TriggerSettings,
    queues: Mutex<HashMap<Target, Arc<TargetQueue>>>,
    recent: Mutex<Recent<ChangeKey>>,
    warned: Mutex<Recent<(EsKey, &'static str)>>,
    limiter: DefaultDirectRateLimiter,
    metrics: TriggerMetrics,
    events: Events,
    confirm: ConfirmTracker,
    epoch: Instant,
}

impl KubeApply {
    /// Wires the apply step.
    pub fn new(
        index: SharedIndex,
        namespaces: Arc<dyn NamespaceLabels + Send + Sync>,
        patcher: Arc<dyn Patcher>,
        settings: TriggerSettings,
        metrics: TriggerMetrics,
        events: Events,
        confirm: ConfirmTracker,
    ) -> Self {
        let quota = Quota::per_second(settings.patches_per_second).allow_burst(settings.burst);
        let recent = Recent::new(settings.remember_for, settings.remember_capacity);
        let warned = Recent::new(settings.remember_for, settings.remember_capacity);
        KubeApply {
            inner: Arc::new(Inner {
                index,
                namespaces,
                patcher,
                queues: Mutex::new(HashMap::new()),
                recent: Mutex::new(recent),
                warned: Mutex::new(warned),
                limiter: RateLimiter::direct(quota),
                metrics,
                events,
                confirm,
                epoch: Instant::now(),
                settings,
            }),
        }
    }

    fn now(&self) -> Duration {
        self.inner.epoch.elapsed()
    }

    fn annotation_for(&self, target: &Target) -> &str {
        match target {
            Target::ExternalSecret(_) => &self.inner.settings.annotation,
            Target::ClusterExternalSecret(_) => CES_FORCE_SYNC,
        }
    }

    fn already_carries(&self, target: &Target, annotation: &str, value: &str) -> bool {
        let Target::ExternalSecret(key) = target else {
            return false;
        };
        let index = self
            .inner
            .index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        index
            .external_secret(key)
            .is_some_and(|es| es.annotation(annotation) == Some(value))
    }

    fn failing(&self, es: &EsKey) -> bool {
        let index = self
            .inner
            .index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        index
            .external_secret(es)
            .is_some_and(|o| o.ready() == Some(crate::core::index::ReadyStatus::False))
    }

    fn queue(&self, target: &Target) -> Arc<TargetQueue> {
        let mut queues = self
            .inner
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        queues
            .entry(target.clone())
            .or_insert_with(|| {
                Arc::new(TargetQueue {
                    state: Mutex::new(QueueState::default()),
                    sender: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// Patches `target` for `changes` (joining any pending patch of it); returns that patch's result.
    async fn trigger(
        &self,
        target: &Target,
        changes: &[VaultChange],
        via: &[EsKey],
        cause: Cause,
    ) -> Result<PatchOutcome, String> {
        let queue = self.queue(target);
        let my_gen = {
            let mut st = queue
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for c in changes {
                if st.pending.insert((c.object.clone(), c.version.clone())) {
                    st.pending_changes.push(c.clone());
                }
            }
            st.pending_via.extend(via.iter().cloned());
            st.next_gen
        };
        let _sending = queue.sender.lock().await;
        let (sent_gen, batch, batch_via, last_sent) = {
            let mut st = queue
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // The first patch sent at or after my generation carried my changes (a cancelled
            // patch stores no result and puts its changes back, see `Restore`).
            if let Some((_, result)) = st.results.range(my_gen..).next() {
                return result.clone();
            }
            st.pending.clear();
            let sent_gen = st.next_gen;
            st.next_gen += 1;
            (
                sent_gen,
                std::mem::take(&mut st.pending_changes),
                std::mem::take(&mut st.pending_via),
                st.last_sent,
            )
        };
        // Declared after `_sending`, so dropped before it: if this future is cancelled (the
        // delivery deadline) before the patch finished, the batch goes back to `pending` while the
        // target is still held, and the next patch carries it for the deliveries that waited on it.
        let mut restore = Restore {
            queue: &queue,
            batch: Some((batch.clone(), batch_via.clone())),
        };
        if let Some(last) = last_sent {
            let since = last.elapsed();
            if since < self.inner.settings.window {
                tokio::time::sleep(self.inner.settings.window - since).await;
            }
        }
        let result = self.patch_once(target, &batch, &batch_via, cause).await;
        restore.batch = None;
        let mut st = queue
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.last_sent = Some(Instant::now());
        st.results.insert(sent_gen, result.clone());
        while st.results.len() > 4 {
            st.results.pop_first();
        }
        result
    }

    async fn patch_once(
        &self,
        target: &Target,
        batch: &[VaultChange],
        via: &BTreeSet<EsKey>,
        cause: Cause,
    ) -> Result<PatchOutcome, String> {
        let annotation = self.annotation_for(target).to_string();
        let value = trigger_value(batch);
        let target_label = match target {
            Target::ExternalSecret(_) => "externalsecret",
            Target::ClusterExternalSecret(_) => "clusterexternalsecret",
        };
        let count = |outcome: &str| {
            self.inner
                .metrics
                .triggers
                .get_or_create(&TriggerLabels {
                    target: target_label.into(),
                    cause: cause.as_str().into(),
                    outcome: outcome.into(),
                })
                .inc();
        };
        if self.already_carries(target, &annotation, &value) {
            count("unchanged");
            return Ok(PatchOutcome::Unchanged);
        }
        self.inner.limiter.until_ready().await;
        let started = Instant::now();
        let result = self
            .inner
            .patcher
            .patch(target, &annotation, &value, self.inner.settings.patch_deadline)
            .await;
        self.inner
            .metrics
            .patch_duration
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(PatchOutcome::Patched { resource_version }) => {
                count("patched");
                let objects: Vec<String> = batch
                    .iter()
                    .map(|c| {
                        format!(
                            "{} version {}",
                            c.object,
                            c.version.as_deref().unwrap_or("latest")
                        )
                    })
                    .collect();
                tracing::info!(target = %target, annotation = %annotation, value = %value,
                    resource_version = resource_version.as_deref().unwrap_or(""), cause = cause.as_str(),
                    changes = %objects.join(", "), "refresh triggered");
                let note = format!(
                    "Key Vault change: {}; refresh requested ({annotation}={value})",
                    objects.join(", ")
                );
                self.inner
                    .events
                    .publish(target, Severity::Normal, REASON_TRIGGERED, "Refresh", note);
                match target {
                    Target::ExternalSecret(key) => self.inner.confirm.expect(
                        key.clone(),
                        annotation.clone(),
                        value.clone(),
                        self.failing(key),
                    ),
                    Target::ClusterExternalSecret(_) => {
                        for child in via {
                            self.inner.confirm.expect(
                                child.clone(),
                                CES_FORCE_SYNC.to_string(),
                                value.clone(),
                                self.failing(child),
                            );
                        }
                    }
                }
            }
            Ok(PatchOutcome::Unchanged) => count("unchanged"),
            Ok(PatchOutcome::Gone) => {
                count("gone");
                tracing::info!(target = %target, "target deleted meanwhile: nothing to refresh");
            }
            Ok(PatchOutcome::Refused { code, message }) => {
                count("refused");
                tracing::warn!(target = %target, code, message = %message, "API server refused the trigger patch");
            }
            Err(e) => {
                count("failed");
                tracing::warn!(target = %target, error = %e, "trigger patch failed");
            }
        }
        result.map_err(|e| e.to_string())
    }

    fn warn_once(&self, es: &EsKey, reason: &SkipReason) {
        let label = reason.as_str();
        if !matches!(reason, SkipReason::CreatedOnce | SkipReason::RefreshIntervalZero) {
            return;
        }
        let now = self.now();
        {
            let mut warned = self
                .inner
                .warned
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if warned.contains(&(es.clone(), label), now) {
                return;
            }
            warned.insert((es.clone(), label), now);
        }
        let note = format!(
            "Key Vault changed an object this ExternalSecret reads, but ESO ignores refresh triggers for it: {reason}"
        );
        self.inner.events.publish(
            &Target::ExternalSecret(es.clone()),
            Severity::Warning,
            "KeyVaultChangeIgnored",
            "Refresh",
            note,
        );
    }
}

#[async_trait]
impl Apply for KubeApply {
    async fn apply(&self, changes: Vec<VaultChange>, cause: Cause) -> Result<ApplyReport, ApplyError> {
        let now = self.now();
        let fresh: Vec<VaultChange> = {
            let recent = self
                .inner
                .recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            changes
                .into_iter()
                .filter(|c| {
                    let dup =
                        c.version.is_some() && recent.contains(&(c.object.clone(), c.version.clone()), now);
                    if dup {
                        self.inner.metrics.duplicates.inc();
                        tracing::info!(object = %c.object, version = c.version.as_deref().unwrap_or(""),
                            "change already applied: skipped");
                    }
                    !dup
                })
                .collect()
        };
        let mut report = ApplyReport::default();
        if fresh.is_empty() {
            return Ok(report);
        }
        let the_plan = {
            let index = self
                .inner
                .index
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            plan(&index, &fresh, self.inner.namespaces.as_ref())
        };
        for s in &the_plan.skipped {
            report.skipped += 1;
            self.inner
                .metrics
                .skipped
                .get_or_create(&ReasonLabels {
                    reason: s.reason.as_str().into(),
                })
                .inc();
            tracing::info!(external_secret = %s.es, object = %s.object, reason = %s.reason, "reader not refreshed");
            self.warn_once(&s.es, &s.reason);
        }
        let results = futures::future::join_all(
            the_plan
                .triggers
                .iter()
                .map(|t| self.trigger(&t.target, &t.causes, &t.via, cause)),
        )
        .await;
        let mut failures = Vec::new();
        for (t, r) in the_plan.triggers.iter().zip(results) {
            match r {
                Ok(PatchOutcome::Unchanged) => report.unchanged += 1,
                Ok(PatchOutcome::Patched { .. }) => report.triggered += 1,
                Ok(PatchOutcome::Gone) => report.gone += 1,
                Ok(PatchOutcome::Refused { .. }) => report.refused += 1,
                Err(e) => failures.push(format!("{}: {e}", t.target)),
            }
        }
        if !failures.is_empty() {
            return Err(ApplyError::Transient(failures.join("; ")));
        }
        let now = self.now();
        let mut recent = self
            .inner
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for c in fresh
            .iter()
            .filter(|c| c.kind == ChangeKind::NewVersion && c.version.is_some())
        {
            recent.insert((c.object.clone(), c.version.clone()), now);
        }
        Ok(report)
    }
}
