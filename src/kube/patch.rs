//! The one write kvsync makes: a JSON merge patch of one annotation on an ExternalSecret or a
//! ClusterExternalSecret, with field manager `kvsync` and nothing else in the body.
//!
//! Retries 5xx, 429 and transport errors with exponential backoff and jitter until the deadline;
//! 404 means the object went away meanwhile (fine); 409/422/403 are refusals worth reporting but not
//! retrying (e.g. ESO's validating webhook rejecting the object).

use std::time::Duration;

use async_trait::async_trait;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DynamicObject;
use serde_json::json;

use super::discovery::{EsoResource, Versions, version_of};
use crate::core::objects::Target;

/// Field manager recorded in `managedFields` for kvsync's annotation.
pub const FIELD_MANAGER: &str = "kvsync";

/// The result of one patch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchOutcome {
    /// The API server accepted it; the object's new resourceVersion.
    Patched {
        /// `metadata.resourceVersion` after the patch.
        resource_version: Option<String>,
    },
    /// The object already carried the value: nothing was written.
    Unchanged,
    /// The object does not exist (deleted meanwhile).
    Gone,
    /// The API server refused it for good (status code and message).
    Refused {
        /// HTTP status.
        code: u16,
        /// The server's message.
        message: String,
    },
}

/// A patch that could not be made before the deadline (worth redelivering).
#[derive(Debug, thiserror::Error)]
#[error("patching {target} failed: {message}")]
pub struct PatchError {
    /// What was being patched.
    pub target: String,
    /// The last error.
    pub message: String,
}

/// Writes the trigger annotation. Swappable: the cluster, or a dry run that only reports.
#[async_trait]
pub trait Patcher: Send + Sync + 'static {
    /// Sets `annotation = value` on `target`, giving up after `deadline`.
    async fn patch(
        &self,
        target: &Target,
        annotation: &str,
        value: &str,
        deadline: Duration,
    ) -> Result<PatchOutcome, PatchError>;
}

/// Patches through the Kubernetes API.
#[derive(Clone)]
pub struct KubePatcher {
    client: kube::Client,
    versions: Versions,
}

impl KubePatcher {
    /// A patcher using the discovered versions of ExternalSecret and ClusterExternalSecret.
    pub fn new(client: kube::Client, versions: Versions) -> Self {
        KubePatcher { client, versions }
    }

    fn api(&self, target: &Target) -> (Api<DynamicObject>, String) {
        match target {
            Target::ExternalSecret(key) => {
                let ar = EsoResource::ExternalSecret
                    .api_resource(version_of(&self.versions, EsoResource::ExternalSecret));
                (
                    Api::namespaced_with(self.client.clone(), &key.namespace, &ar),
                    key.name.to_string(),
                )
            }
            Target::ClusterExternalSecret(name) => {
                let ar = EsoResource::ClusterExternalSecret
                    .api_resource(version_of(&self.versions, EsoResource::ClusterExternalSecret));
                (Api::all_with(self.client.clone(), &ar), name.clone())
            }
        }
    }
}

/// The merge-patch body: one annotation, nothing else.
pub fn patch_body(annotation: &str, value: &str) -> serde_json::Value {
    json!({"metadata": {"annotations": {annotation: value}}})
}

/// Backoff before retry number `attempt` (0-based): 50 ms doubling, capped at 2 s, with ±50 % jitter
/// from `jitter` in [0, 1).
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = 50u64.saturating_mul(1u64 << attempt.min(10)).min(2_000);
    let factor = 0.5 + jitter.clamp(0.0, 1.0);
    Duration::from_millis((base as f64 * factor) as u64)
}

fn jitter() -> f64 {
    // Cheap, good-enough jitter without a RNG dependency: sub-second clock noise.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

#[async_trait]
impl Patcher for KubePatcher {
    async fn patch(
        &self,
        target: &Target,
        annotation: &str,
        value: &str,
        deadline: Duration,
    ) -> Result<PatchOutcome, PatchError> {
        let (api, name) = self.api(target);
        let body = patch_body(annotation, value);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        let until = tokio::time::Instant::now() + deadline;
        let mut attempt = 0u32;
        loop {
            let remaining = until.saturating_duration_since(tokio::time::Instant::now());
            let last_error = match tokio::time::timeout(
                remaining,
                api.patch(&name, &params, &Patch::Merge(&body)),
            )
            .await
            {
                Ok(Ok(obj)) => {
                    return Ok(PatchOutcome::Patched {
                        resource_version: obj.metadata.resource_version,
                    });
                }
                Ok(Err(kube::Error::Api(s))) if s.code == 404 => return Ok(PatchOutcome::Gone),
                Ok(Err(kube::Error::Api(s))) if matches!(s.code, 400 | 403 | 409 | 422) => {
                    return Ok(PatchOutcome::Refused {
                        code: s.code,
                        message: s.message,
                    });
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "timed out".to_string(),
            };
            let wait = backoff(attempt, jitter());
            attempt += 1;
            if tokio::time::Instant::now() + wait >= until {
                return Err(PatchError {
                    target: target.to_string(),
                    message: last_error,
                });
            }
            tracing::debug!(target = %target, attempt, error = %last_error, "patch failed, retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// A dry run: records what would be patched and reports success.
#[derive(Clone, Debug, Default)]
pub struct DryRunPatcher {
    planned: std::sync::Arc<std::sync::Mutex<Vec<(Target, String, String)>>>,
}

impl DryRunPatcher {
    /// Everything that would have been patched: (target, annotation, value).
    pub fn planned(&self) -> Vec<(Target, String, String)> {
        self.planned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Patcher for DryRunPatcher {
    async fn patch(
        &self,
        target: &Target,
        annotation: &str,
        value: &str,
        _deadline: Duration,
    ) -> Result<PatchOutcome, PatchError> {
        tracing::info!(target = %target, annotation, value, "dry run: would patch");
        self.planned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((target.clone(), annotation.to_string(), value.to_string()));
        Ok(PatchOutcome::Patched {
            resource_version: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_holds_one_annotation_and_nothing_else() {
        let body = patch_body("external-secrets.io/force-sync", "kv-123");
        assert_eq!(
            body,
            json!({"metadata": {"annotations": {"external-secrets.io/force-sync": "kv-123"}}})
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0, 0.5), Duration::from_millis(50));
        assert_eq!(backoff(3, 0.5), Duration::from_millis(400));
        assert_eq!(backoff(30, 0.5), Duration::from_millis(2000));
        assert!(backoff(2, 0.0) < backoff(2, 0.99));
    }
}
