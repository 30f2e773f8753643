//! Metrics of the trigger path: patches, skips, confirmations.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a trigger.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    /// `externalsecret` or `clusterexternalsecret`.
    pub target: String,
    /// `event`, `reconcile`, `store_ready`.
    pub cause: String,
    /// `patched`, `unchanged`, `gone`, `refused`, `failed`.
    pub outcome: String,
}

/// Labels with one `reason`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: String,
}

/// The trigger path's metric families.
#[derive(Clone, Debug)]
pub struct TriggerMetrics {
    /// `kvsync_triggers_total{target,cause,outcome}`.
    pub triggers: Family<TriggerLabels, Counter>,
    /// `kvsync_trigger_skipped_total{reason}`: readers not refreshed (pinned, policy, namespace…).
    pub skipped: Family<ReasonLabels, Counter>,
    /// `kvsync_patch_duration_seconds`: one patch including retries.
    pub patch_duration: Histogram,
    /// `kvsync_confirm_latency_seconds`: trigger → ESO reported the refresh (synced, Ready).
    pub confirm_latency: Histogram,
    /// `kvsync_confirm_failures_total{reason}`: `not_ready` (ESO Ready=False) or `timeout`.
    pub confirm_failures: Family<ReasonLabels, Counter>,
    /// `kvsync_duplicate_changes_total`: changes skipped because they were already applied.
    pub duplicates: Counter,
    /// `kvsync_kube_events_suppressed_total{reason}`: Kubernetes Events not sent (over the event
    /// budget, or Events turned off with `--event-rate 0`), by the Event's reason.
    pub events_suppressed: Family<ReasonLabels, Counter>,
}

impl TriggerMetrics {
    /// Creates and registers the families.
    pub fn register(registry: &mut Registry) -> Self {
        let m = TriggerMetrics {
            triggers: Family::default(),
            skipped: Family::default(),
            patch_duration: Histogram::new([
                0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            confirm_latency: Histogram::new([0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0]),
            confirm_failures: Family::default(),
            duplicates: Counter::default(),
            events_suppressed: Family::default(),
        };
        registry.register(
            "triggers",
            "Refresh triggers by target kind, cause and outcome",
            m.triggers.clone(),
        );
        registry.register(
            "trigger_skipped",
            "Readers of a changed object that are not refreshed, by reason",
            m.skipped.clone(),
        );
        registry.register(
            "patch_duration_seconds",
            "Time to patch one target, retries included",
            m.patch_duration.clone(),
        );
        registry.register(
            "confirm_latency_seconds",
            "Trigger to ESO-confirmed refresh",
            m.confirm_latency.clone(),
        );
        registry.register(
            "confirm_failures",
            "Triggers ESO did not confirm, by reason",
            m.confirm_failures.clone(),
        );
        registry.register(
            "duplicate_changes",
            "Changes skipped as already applied (redeliveries)",
            m.duplicates.clone(),
        );
        registry.register(
            "kube_events_suppressed",
            "Kubernetes Events not sent because of the event budget, by Event reason",
            m.events_suppressed.clone(),
        );
        m
    }
}
