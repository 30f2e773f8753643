//! A delivery that runs out of time mid-patch is cancelled (its future is dropped at the delivery
//! deadline). The production apply step (`KubeApply`) coalesces the changes of concurrent
//! deliveries into one patch per target; a cancelled patch must not take the other deliveries'
//! changes down with it. Driven with a scripted `Patcher`, so the interleaving is exact.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use kvsync::apply::{Apply, Cause};
use kvsync::core::decide::{NoNamespaceLabels, trigger_value};
use kvsync::core::index::Index;
use kvsync::core::model::{ChangeKind, ObjectKind, ObjectName, ObjectRef, VaultChange, VaultId};
use kvsync::core::objects::Target;
use kvsync::kube::confirm::ConfirmTracker;
use kvsync::kube::events::Events;
use kvsync::kube::patch::{PatchError, PatchOutcome, Patcher};
use kvsync::kube::trigger::{KubeApply, TriggerSettings};
use kvsync::kube::trigger_metrics::TriggerMetrics;
use kvsync::metrics::Metrics;

/// What one scripted patch call does.
enum Step {
    /// Waits until released, then fails (an API server error).
    FailWhenReleased(tokio::sync::oneshot::Receiver<()>),
    /// Never returns (a stalled API server): only cancellation ends it.
    Hang,
}

/// A `Patcher` that follows a script, then succeeds; records every value it was asked to write.
#[derive(Clone, Default)]
struct ScriptedPatcher {
    script: Arc<Mutex<VecDeque<Step>>>,
    calls: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Patcher for ScriptedPatcher {
    async fn patch(
        &self,
        target: &Target,
        _annotation: &str,
        value: &str,
        _deadline: Duration,
    ) -> Result<PatchOutcome, PatchError> {
        self.calls.lock().unwrap().push(value.to_string());
        let step = self.script.lock().unwrap().pop_front();
        match step {
            Some(Step::FailWhenReleased(rx)) => {
                let _ = rx.await;
                Err(PatchError {
                    target: target.to_string(),
                    message: "scripted failure".into(),
                })
            }
            Some(Step::Hang) => std::future::pending().await,
            None => Ok(PatchOutcome::Patched {
                resource_version: None,
            }),
        }
    }
}

fn change(version: &str) -> VaultChange {
    VaultChange {
        object: ObjectRef {
            vault: VaultId::from_url("https://cancel-kv.vault.azure.net").unwrap(),
            kind: ObjectKind::Secret,
            name: ObjectName::new("db-password"),
        },
        version: Some(version.into()),
        kind: ChangeKind::NewVersion,
    }
}

/// An index with one ExternalSecret reading `db-password` from `cancel-kv`, loaded from manifests.
fn index() -> Arc<RwLock<Index>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("eso.yaml"),
        r#"
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: kv, namespace: apps}
spec:
  provider:
    azurekv: {vaultUrl: "https://cancel-kv.vault.azure.net"}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: reader, namespace: apps}
spec:
  secretStoreRef: {name: kv}
  data: [{secretKey: p, remoteRef: {key: db-password}}]
"#,
    )
    .unwrap();
    let mut index = Index::default();
    kvsync::kube::manifests::load_dir(dir.path(), &mut index).unwrap();
    assert_eq!(index.external_secret_keys().len(), 1);
    Arc::new(RwLock::new(index))
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Regression: deliveries A (v1) and B (v2) wait behind a failing patch C (v0) of the same
/// ExternalSecret; A then takes both changes into the next patch and is cancelled mid-patch (its
/// delivery deadline). B must still get v2 written — not an empty patch reported as success, which
/// would answer Event Grid 200 for a change that was never applied and remember it as done.
#[tokio::test]
async fn a_cancelled_coalesced_patch_does_not_lose_the_other_deliveries_changes() {
    let mut metrics = Metrics::new();
    let trigger_metrics = TriggerMetrics::register(metrics.registry_mut());
    let confirm = ConfirmTracker::new(trigger_metrics.clone(), Events::Off, Duration::from_secs(60));
    let patcher = ScriptedPatcher::default();
    let (release_c, c_rx) = tokio::sync::oneshot::channel();
    patcher
        .script
        .lock()
        .unwrap()
        .extend([Step::FailWhenReleased(c_rx), Step::Hang]);
    let apply = KubeApply::new(
        index(),
        Arc::new(NoNamespaceLabels),
        Arc::new(patcher.clone()),
        TriggerSettings {
            window: Duration::ZERO,
            ..TriggerSettings::default()
        },
        trigger_metrics,
        Events::Off,
        confirm,
    );

    let run = |v: &'static str| {
        let apply = apply.clone();
        tokio::spawn(async move { apply.apply(vec![change(v)], Cause::Event).await })
    };
    let c = run("v0");
    until("C patching", || patcher.calls.lock().unwrap().len() == 1).await;
    let a = run("v1");
    let b = run("v2");
    // Let A and B queue behind C (each registers its change, then waits for the target).
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    release_c.send(()).unwrap();
    assert!(c.await.unwrap().is_err(), "C failed: its delivery gets 503");
    until("A patching", || patcher.calls.lock().unwrap().len() == 2).await;
    assert_eq!(
        patcher.calls.lock().unwrap()[1],
        trigger_value(&[change("v1"), change("v2")]),
        "A's patch coalesces v1 and v2"
    );
    // A's delivery deadline: its future is dropped mid-patch.
    a.abort();
    assert!(a.await.unwrap_err().is_cancelled());

    let b_result = tokio::time::timeout(Duration::from_secs(10), b)
        .await
        .expect("B finishes")
        .unwrap();
    let calls = patcher.calls.lock().unwrap().clone();
    assert!(b_result.is_ok(), "{b_result:?}");
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(
        calls[2],
        trigger_value(&[change("v1"), change("v2")]),
        "B reported success for a patch that did not carry its change (empty patch: {})",
        trigger_value(&[])
    );
}
