//! Starts the fallback reconcile inside the engine: Key Vault access from the configuration,
//! leader election on the Lease, and the loop (only while leading).

use std::sync::Arc;

use tokio::sync::watch;

use super::{ReconcileMetrics, ReconcileSettings, Reconciler};
use crate::apply::Apply;
use crate::config::EngineArgs;
use crate::keyvault::{AzureKeyVault, KeyVault};
use crate::kube::SharedIndex;
use crate::kube::leader::{self, LeaderSettings};
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// What [`start`] started.
#[derive(Default)]
pub struct Started {
    /// The reconciler (absent when disabled).
    pub reconciler: Option<Arc<Reconciler>>,
    /// Leadership of this replica (absent when disabled).
    pub leader: Option<watch::Receiver<bool>>,
    /// The election and loop tasks.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Builds the reconciler, or says (once, in the log) why the reconcile is off: interval `0`, or no
/// Azure credential configured. Nothing else depends on it.
pub fn reconciler(
    args: &EngineArgs,
    index: SharedIndex,
    apply: Arc<dyn Apply>,
    metrics: &mut Metrics,
) -> Option<Arc<Reconciler>> {
    let r = &args.reconcile;
    let keyvault: Arc<dyn KeyVault> = match AzureKeyVault::from_args(r, metrics.registry_mut()) {
        Ok(Some(kv)) => Arc::new(kv),
        Ok(None) => {
            tracing::info!(
                "fallback reconcile disabled: no Azure credential configured (Workload Identity: AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE; or KVSYNC_AZURE_CREDENTIAL=managed)"
            );
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "fallback reconcile disabled: Key Vault access cannot be set up");
            return None;
        }
    };
    Some(Arc::new(Reconciler::new(
        index,
        apply,
        keyvault,
        ReconcileSettings {
            interval: r.reconcile_interval,
            skew: r.reconcile_skew,
            deadline: r.reconcile_deadline,
        },
        ReconcileMetrics::register(metrics.registry_mut()),
    )))
}

/// Starts leader election and the reconcile loop, unless the reconcile is disabled.
pub fn start(
    args: &EngineArgs,
    client: kube::Client,
    index: SharedIndex,
    apply: Arc<dyn Apply>,
    readiness: Readiness,
    metrics: &mut Metrics,
) -> Started {
    let r = &args.reconcile;
    if r.reconcile_interval.is_zero() {
        tracing::info!("fallback reconcile disabled (KVSYNC_RECONCILE_INTERVAL=0)");
        return Started::default();
    }
    let Some(reconciler) = reconciler(args, index, apply, metrics) else {
        return Started::default();
    };
    let namespace = r
        .lease_namespace
        .clone()
        .or_else(|| r.pod_namespace.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_string());
    let identity = args
        .instance
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| {
            format!(
                "kvsync-{:016x}",
                (crate::keyvault::retry::random_unit() * (u64::MAX as f64)) as u64
            )
        });
    tracing::info!(lease = %r.lease_name, namespace = %namespace, identity = %identity,
        interval_s = r.reconcile_interval.as_secs(), "fallback reconcile enabled; electing a leader");
    let (rx, election) = leader::spawn(
        client,
        LeaderSettings {
            name: r.lease_name.clone(),
            namespace,
            identity,
            duration: r.lease_duration,
        },
    );
    let lp = tokio::spawn(reconciler.clone().run(rx.clone(), readiness));
    Started {
        reconciler: Some(reconciler),
        leader: Some(rx),
        tasks: vec![election, lp],
    }
}
