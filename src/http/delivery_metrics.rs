//! Metrics of the ingestion front door: deliveries, events, durations, authentication failures.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a delivery.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// `eventgrid`, `cloudevents`, `cloudevents_batch`, `cloudevents_binary`, `functions`, `unknown`.
    pub format: String,
    /// `ok`, `validation`, `deletion`, `malformed`, `too_large`, `unsupported_media_type`,
    /// `unauthenticated`, `forbidden`, `not_ready`, `auth_unavailable`, `apply_failed`, `timeout`.
    pub outcome: String,
}

/// Labels of an event.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// The event type (`Microsoft.KeyVault.SecretNewVersionCreated`, …; `other` for non-Key Vault).
    pub r#type: String,
    /// `applied`, `ignored`, `rejected`, `source_not_allowed`, `failed`.
    pub outcome: String,
}

/// Labels of an authentication failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// Why authentication failed (`missing_credentials`, `bad_signature`, `expired`, …).
    pub reason: String,
}

/// The front door's metric families.
#[derive(Clone, Debug)]
pub struct DeliveryMetrics {
    /// `kvsync_deliveries_total{format,outcome}`.
    pub deliveries: Family<DeliveryLabels, Counter>,
    /// `kvsync_events_total{type,outcome}`.
    pub events: Family<EventLabels, Counter>,
    /// `kvsync_delivery_duration_seconds` from request start to answer.
    pub duration: Histogram,
    /// `kvsync_auth_failures_total{reason}`.
    pub auth_failures: Family<AuthLabels, Counter>,
    /// `kvsync_subscription_deletions_total`: Event Grid said the subscription is gone.
    pub subscription_deletions: Counter,
}

impl DeliveryMetrics {
    /// Creates the families and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = DeliveryMetrics {
            deliveries: Family::default(),
            events: Family::default(),
            duration: Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0,
            ]),
            auth_failures: Family::default(),
            subscription_deletions: Counter::default(),
        };
        registry.register(
            "deliveries",
            "Event Grid deliveries by format and outcome",
            m.deliveries.clone(),
        );
        registry.register("events", "Events received by type and outcome", m.events.clone());
        registry.register(
            "delivery_duration_seconds",
            "Time to answer a delivery",
            m.duration.clone(),
        );
        registry.register(
            "auth_failures",
            "Rejected deliveries by authentication failure",
            m.auth_failures.clone(),
        );
        registry.register(
            "subscription_deletions",
            "SubscriptionDeletion notices received (no more events will come)",
            m.subscription_deletions.clone(),
        );
        m
    }

    /// Counts one delivery.
    pub fn delivery(&self, format: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                format: format.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts one event.
    pub fn event(&self, event_type: &str, outcome: &str) {
        self.events
            .get_or_create(&EventLabels {
                r#type: event_type.into(),
                outcome: outcome.into(),
            })
            .inc();
    }
}
