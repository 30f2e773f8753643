//! What both front doors (webhook and Azure Functions) share: the parsed events go through the
//! source allow-list and are handed to the apply step within the delivery deadline; the outcome
//! decides the answer Event Grid gets.

use std::sync::Arc;
use std::time::Duration;

use crate::apply::{Apply, ApplyError, ApplyReport, Cause};
use crate::auth::Authenticator;
use crate::core::model::{Cloud, VaultChange};
use crate::eventgrid::{Event, Events, KeyVaultEventKind};
use crate::readiness::Readiness;

use super::delivery_metrics::DeliveryMetrics;

/// Settings and collaborators of ingestion.
#[derive(Clone)]
pub struct Ingest {
    /// Delivery authentication (webhook only; the Functions host authenticates Event Grid itself).
    pub auth: Authenticator,
    /// Where changes go.
    pub apply: Arc<dyn Apply>,
    /// Gates deliveries until the index is complete.
    pub readiness: Readiness,
    /// Front-door metrics.
    pub metrics: DeliveryMetrics,
    /// Cloud used to turn a bare `VaultName` into a host.
    pub cloud: Cloud,
    /// Maximum request body in bytes.
    pub body_limit: usize,
    /// Time allowed to apply a delivery before answering 503 (Event Grid gives up after 30 s).
    pub deadline: Duration,
    /// Origins accepted in the CloudEvents OPTIONS handshake.
    pub allowed_origins: Vec<String>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("auth", &self.auth)
            .field("cloud", &self.cloud)
            .field("body_limit", &self.body_limit)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The outcome of handing a delivery's events to the apply step.
#[derive(Debug)]
pub enum EventsOutcome {
    /// Every event was applied (or needed nothing).
    Applied {
        /// What applying did.
        report: ApplyReport,
        /// Key Vault changes handed over.
        changes: usize,
        /// Events acknowledged without action (other types, access-policy changes, disallowed sources).
        ignored: usize,
        /// Events that were unusable (listed by the parser).
        rejected: usize,
    },
    /// Not ready yet: answer 503 so Event Grid redelivers.
    NotReady(String),
    /// The apply step failed transiently or ran out of time: answer 503.
    Failed(String),
}

impl Ingest {
    /// Filters, logs and applies the events of one delivery. `check_sources` is false in Functions
    /// mode only when no allow-list applies (the list is then empty anyway).
    pub async fn process(&self, events: Events) -> EventsOutcome {
        let Events {
            format,
            events,
            rejected,
        } = events;
        for r in &rejected {
            tracing::warn!(format = format.as_str(), index = r.index, event_id = r.id.as_deref().unwrap_or(""),
                reason = %r.reason, "event rejected");
            self.metrics.event("other", "rejected");
        }
        let mut changes: Vec<VaultChange> = Vec::new();
        let mut applied_types: Vec<&'static str> = Vec::new();
        let mut ignored = 0;
        for event in &events {
            match event {
                Event::Other { id, event_type } => {
                    tracing::info!(event_id = %id, event_type = %truncate(event_type, 100), "not a Key Vault event: acknowledged");
                    self.metrics.event("other", "ignored");
                    ignored += 1;
                }
                Event::KeyVault(kv) => {
                    // One of the ten documented names: a bounded metric label.
                    let label = kv.type_name();
                    if !self.auth.source_allowed(kv.source.as_deref()) {
                        tracing::warn!(event_id = %kv.id(), source = %truncate(kv.source.as_deref().unwrap_or(""), 300),
                            "event from a vault outside the allow-list: ignored");
                        self.metrics.event(label, "source_not_allowed");
                        ignored += 1;
                        continue;
                    }
                    match (kv.kind, kv.change()) {
                        (KeyVaultEventKind::AccessPolicyChanged, _) | (_, None) => {
                            tracing::info!(event_id = %kv.id(), vault = %kv.vault, event_type = label, "acknowledged, nothing to refresh");
                            self.metrics.event(label, "ignored");
                            ignored += 1;
                        }
                        (_, Some(change)) => {
                            tracing::info!(event_id = %kv.id(), vault = %change.object.vault, kind = %change.object.kind,
                                name = %change.object.name, version = change.version.as_deref().unwrap_or(""),
                                event_type = label, "key vault change received");
                            changes.push(change);
                            applied_types.push(label);
                        }
                    }
                }
            }
        }
        if !changes.is_empty() && !self.readiness.is_ready() {
            let pending = self.readiness.pending().join(", ");
            for t in &applied_types {
                self.metrics.event(t, "not_ready");
            }
            return EventsOutcome::NotReady(pending);
        }
        let n = changes.len();
        let result = if changes.is_empty() {
            Ok(Ok(ApplyReport::default()))
        } else {
            tokio::time::timeout(self.deadline, self.apply.apply(changes, Cause::Event)).await
        };
        match result {
            Ok(Ok(report)) => {
                for t in &applied_types {
                    self.metrics.event(t, "applied");
                }
                EventsOutcome::Applied {
                    report,
                    changes: n,
                    ignored,
                    rejected: rejected.len(),
                }
            }
            Ok(Err(ApplyError::NotReady(why))) => {
                for t in &applied_types {
                    self.metrics.event(t, "not_ready");
                }
                EventsOutcome::NotReady(why)
            }
            Ok(Err(e)) => {
                for t in &applied_types {
                    self.metrics.event(t, "failed");
                }
                EventsOutcome::Failed(e.to_string())
            }
            Err(_) => {
                for t in &applied_types {
                    self.metrics.event(t, "failed");
                }
                EventsOutcome::Failed(format!("apply did not finish within {:?}", self.deadline))
            }
        }
    }
}

/// At most `max` characters of `s`, for logging untrusted input.
pub fn truncate(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}
