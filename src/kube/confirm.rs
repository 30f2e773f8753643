//! Confirmation that ESO processed a trigger: the ExternalSecret watch feeds every update here;
//! when `status.syncedResourceVersion` matches the metadata carrying our value and Ready=True, the
//! trigger→confirmed latency is recorded. Ready=False after the trigger, or nothing within the
//! timeout, gives a Warning Event and a metric. The decision itself is `core::confirm`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::events::{Events, Severity};
use super::trigger_metrics::{ReasonLabels, TriggerMetrics};
use crate::core::confirm::{Confirmation, confirmation};
use crate::core::objects::{EsKey, ExternalSecretObject, Target};

#[derive(Debug)]
struct Expected {
    annotation: String,
    value: String,
    since: Instant,
    /// Ready=False already when triggered: a Ready=False seen later is not attributed to this
    /// trigger (only confirmation or the timeout end it).
    failing_before: bool,
}

/// Tracks triggers awaiting ESO's confirmation. Cheap to clone.
#[derive(Clone)]
pub struct ConfirmTracker {
    inner: Arc<Mutex<HashMap<EsKey, Expected>>>,
    metrics: TriggerMetrics,
    events: Events,
    timeout: Duration,
}

impl ConfirmTracker {
    /// A tracker that gives up after `timeout`.
    pub fn new(metrics: TriggerMetrics, events: Events, timeout: Duration) -> Self {
        ConfirmTracker {
            inner: Arc::default(),
            metrics,
            events,
            timeout,
        }
    }

    /// Expects `es` to be refreshed with `annotation=value` in its metadata; `failing_before` says
    /// whether it was Ready=False when triggered.
    pub fn expect(&self, es: EsKey, annotation: String, value: String, failing_before: bool) {
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(
            es,
            Expected {
                annotation,
                value,
                since: Instant::now(),
                failing_before,
            },
        );
    }

    /// Number of triggers still awaiting confirmation.
    pub fn pending(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Looks at an updated ExternalSecret.
    pub fn observe(&self, es: &ExternalSecretObject) {
        let Some(namespace) = es.meta.namespace.as_deref() else {
            return;
        };
        let key = EsKey::new(namespace, es.meta.name.as_str());
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(expected) = map.get(&key) else { return };
        match confirmation(es, &expected.annotation, &expected.value) {
            Confirmation::Pending => {}
            Confirmation::Failed(_) if expected.failing_before => {}
            Confirmation::Confirmed => {
                let latency = expected.since.elapsed();
                self.metrics.confirm_latency.observe(latency.as_secs_f64());
                tracing::info!(external_secret = %key, latency_ms = latency.as_millis() as u64, "ESO confirmed the refresh");
                map.remove(&key);
            }
            Confirmation::Failed(message) => {
                self.metrics
                    .confirm_failures
                    .get_or_create(&ReasonLabels {
                        reason: "not_ready".into(),
                    })
                    .inc();
                tracing::warn!(external_secret = %key, message = %message, "ESO failed to refresh after the trigger");
                let note = format!("ESO reported Ready=False after kvsync's refresh trigger: {message}");
                self.events.publish(
                    &Target::ExternalSecret(key.clone()),
                    Severity::Warning,
                    "RefreshFailed",
                    "Confirm",
                    note,
                );
                map.remove(&key);
            }
        }
    }

    /// Forgets an ExternalSecret that was deleted.
    pub fn forget(&self, es: &EsKey) {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(es);
    }

    /// Reports and drops expectations older than the timeout.
    pub fn sweep(&self) {
        let expired: Vec<EsKey> = {
            let mut map = self
                .inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let keys: Vec<EsKey> = map
                .iter()
                .filter(|(_, e)| e.since.elapsed() >= self.timeout)
                .map(|(k, _)| k.clone())
                .collect();
            for k in &keys {
                map.remove(k);
            }
            keys
        };
        for key in expired {
            self.metrics
                .confirm_failures
                .get_or_create(&ReasonLabels {
                    reason: "timeout".into(),
                })
                .inc();
            tracing::warn!(external_secret = %key, timeout_s = self.timeout.as_secs(), "no refresh confirmation from ESO");
            let note = format!(
                "ESO did not confirm the refresh within {}s: is ESO running, is the store Ready, does its controller class match?",
                self.timeout.as_secs()
            );
            self.events.publish(
                &Target::ExternalSecret(key),
                Severity::Warning,
                "RefreshNotConfirmed",
                "Confirm",
                note,
            );
        }
    }

    /// Sweeps every `every` until the future is dropped.
    pub async fn run_sweeper(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            self.sweep();
        }
    }
}
