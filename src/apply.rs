//! The apply step: what the ingestion front door hands Key Vault changes to.
//!
//! The HTTP and Functions handlers answer Event Grid only after [`Apply::apply`] returned, and map
//! its result to the status code that gets the right retry behaviour: `Ok` ⇒ 200, a transient
//! error ⇒ 503 (Event Grid redelivers). The production implementation plans triggers from the index
//! and patches the cluster (`kube::trigger`); [`RecordingApply`] records calls for tests.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::core::model::VaultChange;

/// Why changes are being applied (shown in logs, metrics and Kubernetes Events).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// An Event Grid delivery (webhook or Functions).
    Event,
    /// The fallback reconcile found a stale ExternalSecret.
    Reconcile,
    /// A store turned Ready.
    StoreReady,
}

impl Cause {
    /// Lowercase label.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Event => "event",
            Cause::Reconcile => "reconcile",
            Cause::StoreReady => "store_ready",
        }
    }
}

/// What applying a batch of changes did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Targets patched with a new annotation value.
    pub triggered: usize,
    /// Targets that already carried the value (a redelivery) or were remembered as done.
    pub unchanged: usize,
    /// ExternalSecrets that read a changed object but are not refreshed (pinned, policy, …).
    pub skipped: usize,
    /// Targets that disappeared meanwhile (404): nothing to do.
    pub gone: usize,
    /// Targets the API server refused permanently (409/422/403): reported, not retried.
    pub refused: usize,
}

/// A failure of the apply step.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Worth retrying later (API server down, timeouts, 5xx, 429): the delivery must be redelivered.
    #[error("transient failure applying changes: {0}")]
    Transient(String),
    /// kvsync is not ready to act yet (initial lists not complete).
    #[error("not ready: {0}")]
    NotReady(String),
}

/// Hands Key Vault changes to whatever acts on them.
#[async_trait]
pub trait Apply: Send + Sync + 'static {
    /// Applies `changes` (possibly empty) and returns once every needed patch is accepted.
    async fn apply(&self, changes: Vec<VaultChange>, cause: Cause) -> Result<ApplyReport, ApplyError>;
}

/// One recorded call: the changes and their cause.
pub type Recorded = (Vec<VaultChange>, Cause);

/// Test double: records every call and answers with a scripted result.
#[derive(Clone, Debug, Default)]
pub struct RecordingApply {
    calls: Arc<Mutex<Vec<Recorded>>>,
    fail_transiently: Arc<Mutex<bool>>,
}

impl RecordingApply {
    /// The calls so far.
    pub fn calls(&self) -> Vec<Recorded> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// From now on, answer with a transient error (or succeed again with `false`).
    pub fn fail_transiently(&self, fail: bool) {
        *self
            .fail_transiently
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fail;
    }
}

#[async_trait]
impl Apply for RecordingApply {
    async fn apply(&self, changes: Vec<VaultChange>, cause: Cause) -> Result<ApplyReport, ApplyError> {
        let n = changes.len();
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((changes, cause));
        if *self
            .fail_transiently
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            return Err(ApplyError::Transient("scripted failure".into()));
        }
        Ok(ApplyReport {
            triggered: n,
            ..ApplyReport::default()
        })
    }
}
