//! Kubernetes Events (`events.k8s.io/v1`) on the objects kvsync acts on, through kube-runtime's
//! recorder (which also aggregates repeats into a series). Recording is best effort: it runs in
//! the background and a failure is logged, never returned to a delivery.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

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

/// Where events go.
#[derive(Clone)]
pub enum Events {
    /// Into the cluster.
    Kube {
        /// The recorder.
        recorder: Recorder,
        /// Served versions, for references.
        versions: Versions,
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
    /// Events recorded in the cluster as controller `kvsync`, instance `instance` (the pod name).
    pub fn kube(client: kube::Client, instance: Option<String>, versions: Versions) -> Self {
        let reporter = Reporter {
            controller: "kvsync".into(),
            instance,
        };
        Events::Kube {
            recorder: Recorder::new(client, reporter),
            versions,
        }
    }

    /// Publishes in the background.
    pub fn publish(&self, target: &Target, severity: Severity, reason: &str, action: &str, note: String) {
        let Events::Kube { recorder, versions } = self else {
            tracing::debug!(target = %target, reason, note = %note, "event (not recorded)");
            return;
        };
        let reference = match target {
            Target::ExternalSecret(key) => ObjectReference {
                api_version: Some(format!(
                    "{GROUP}/{}",
                    version_of(versions, EsoResource::ExternalSecret)
                )),
                kind: Some(EsoResource::ExternalSecret.kind().into()),
                name: Some(key.name.clone()),
                namespace: Some(key.namespace.clone()),
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
