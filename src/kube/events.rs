//! Kubernetes Events (`events.k8s.io/v1`) on the objects kvsync acts on, through kube-runtime's
//! recorder (which also aggregates repeats into a series). Recording is best effort: it runs in
//! the background and a failure is logged, never returned to a delivery.
//!
//! Events share the API server with the patches that matter, so they draw from a budget of their
//! own (`--event-rate`, `--event-burst`; client-go's event recorder rate-limits for the same
//! reason). When a rotation touches more readers than the budget allows, the Events beyond it
//! are not sent and are counted in `kvsync_kube_events_suppressed_total{reason}`; every trigger
//! is still logged and counted in `kvsync_triggers_total`.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::trigger_metrics::ReasonLabels;

use super::discovery::{EsoResource, GROUP, Versions, version_of};
use crate::core::objects::Target;

/// Reason of the Normal event on each triggered object.
pub const REASON_TRIGGERED: &str = "KeyVaultChange";

/// Severity of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Informational.
    Normal,
    /// Needs a look.
    Warning,
}

/// How many Events may be sent: a token bucket, or none at all.
#[derive(Clone, Debug)]
pub struct EventBudget {
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    suppressed: Family<ReasonLabels, Counter>,
}

impl EventBudget {
    /// `rate` Events per second with bursts of `burst`; a rate of 0 sends none. Events beyond the
    /// budget are counted in `suppressed`, by reason.
    pub fn new(rate: u32, burst: u32, suppressed: Family<ReasonLabels, Counter>) -> Self {
        let limiter = NonZeroU32::new(rate).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            Arc::new(RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)))
        });
        EventBudget { limiter, suppressed }
    }

    /// Takes one Event from the budget, or counts it as suppressed.
    fn allow(&self, reason: &str) -> bool {
        let allowed = self.limiter.as_ref().is_some_and(|l| l.check().is_ok());
        if !allowed {
            self.suppressed
                .get_or_create(&ReasonLabels {
                    reason: reason.to_string(),
                })
                .inc();
        }
        allowed
    }
}

/// Where events go.
#[derive(Clone)]
pub enum Events {
    /// Into the cluster.
    Kube {
        /// The recorder.
        recorder: Recorder,
        /// Served versions, for references.
        versions: Versions,
        /// How many may be sent.
        budget: EventBudget,
    },
    /// Nowhere (dry run, no cluster): logged only.
    Off,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Events::Kube { .. } => f.write_str("Events::Kube"),
            Events::Off => f.write_str("Events::Off"),
        }
    }
}

impl Events {
    /// Events recorded in the cluster as controller `kvsync`, instance `instance` (the pod name),
    /// within `budget`.
    pub fn kube(
        client: kube::Client,
        instance: Option<String>,
        versions: Versions,
        budget: EventBudget,
    ) -> Self {
        let reporter = Reporter {
            controller: "kvsync".into(),
            instance,
        };
        Events::Kube {
            recorder: Recorder::new(client, reporter),
            versions,
            budget,
        }
    }

    /// Publishes in the background, if the budget allows.
    pub fn publish(&self, target: &Target, severity: Severity, reason: &str, action: &str, note: String) {
        let Events::Kube {
            recorder,
            versions,
            budget,
        } = self
        else {
            tracing::debug!(target = %target, reason, note = %note, "event (not recorded)");
            return;
        };
        if !budget.allow(reason) {
            tracing::debug!(target = %target, reason, note = %note, "event over budget (not recorded)");
            return;
        }
        let reference = match target {
            Target::ExternalSecret(key) => ObjectReference {
                api_version: Some(format!(
                    "{GROUP}/{}",
                    version_of(versions, EsoResource::ExternalSecret)
                )),
                kind: Some(EsoResource::ExternalSecret.kind().into()),
                name: Some(key.name.to_string()),
                namespace: Some(key.namespace.to_string()),
                ..ObjectReference::default()
            },
            Target::ClusterExternalSecret(name) => ObjectReference {
                api_version: Some(format!(
                    "{GROUP}/{}",
                    version_of(versions, EsoResource::ClusterExternalSecret)
                )),
                kind: Some(EsoResource::ClusterExternalSecret.kind().into()),
                name: Some(name.clone()),
                ..ObjectReference::default()
            },
        };
        let event = Event {
            type_: match severity {
                Severity::Normal => EventType::Normal,
                Severity::Warning => EventType::Warning,
            },
            reason: reason.to_string(),
            note: Some(truncate_note(note)),
            action: action.to_string(),
            secondary: None,
        };
        let recorder = recorder.clone();
        let target = target.clone();
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::warn!(target = %target, error = %e, "failed to record Kubernetes event");
            }
        });
    }
}

fn truncate_note(mut note: String) -> String {
    // events.k8s.io limits the note to 1 kB.
    if note.len() > 1000 {
        let mut cut = 1000;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
    }
    note
}
