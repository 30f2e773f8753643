//! Assembles the running service from its configuration: the index and how it is fed (cluster
//! watches, or manifests), the apply step (patches, or a dry run), and the HTTP state. `main` calls
//! this; integration tests call it too, so they run the same wiring as production.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::apply::Apply;
use crate::auth::Authenticator;
use crate::config::EngineArgs;
use crate::core::decide::{NamespaceLabels, NoNamespaceLabels};
use crate::core::index::Index;
use crate::http::delivery_metrics::DeliveryMetrics;
use crate::http::ingest::Ingest;
use crate::kube::SharedIndex;
use crate::kube::confirm::ConfirmTracker;
use crate::kube::discovery::{self, Versions};
use crate::kube::events::{EventBudget, Events};
use crate::kube::namespaces::WatchedNamespaces;
use crate::kube::observe::{Observer, WatchMetrics};
use crate::kube::patch::{DryRunPatcher, KubePatcher, Patcher};
use crate::kube::trigger::{KubeApply, TriggerSettings};
use crate::kube::trigger_metrics::TriggerMetrics;
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// Why the service could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Manifests could not be loaded.
    #[error(transparent)]
    Manifests(#[from] crate::kube::manifests::ManifestError),
    /// Patching needs a cluster, and none is configured.
    #[error(
        "patching needs a Kubernetes client: configure KUBECONFIG or in-cluster access, or use --dry-run"
    )]
    NoClient,
}

/// The parts of a running engine.
pub struct Engine {
    /// The index.
    pub index: SharedIndex,
    /// The apply step.
    pub apply: Arc<dyn Apply>,
    /// Namespace labels for ClusterSecretStore conditions.
    pub namespaces: Arc<dyn NamespaceLabels + Send + Sync>,
    /// Set in dry-run mode: what would have been patched.
    pub dry_run: Option<DryRunPatcher>,
    /// Versions of ESO's resources, once discovered.
    pub versions: Versions,
    /// Tasks to keep alive (watches, sweepers, leader election, reconcile).
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The fallback reconcile, when Azure credentials are configured.
    pub reconciler: Option<Arc<crate::reconcile::Reconciler>>,
    /// Whether this replica leads (runs the reconcile), when leader election runs.
    pub leader: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Starts the engine: loads manifests or starts watching the cluster (in the background: the caller
/// can serve at once; readiness opens when every watch has listed), and builds the apply step.
pub fn start_engine(
    args: &EngineArgs,
    client: Option<kube::Client>,
    metrics: &mut Metrics,
    readiness: &Readiness,
) -> Result<Engine, ServiceError> {
    let index: SharedIndex = Arc::new(RwLock::new(Index::default()));
    let versions: Versions = Arc::default();
    let trigger_metrics = TriggerMetrics::register(metrics.registry_mut());
    let mut tasks = Vec::new();

    let events = match (&client, args.dry_run) {
        (Some(c), false) => Events::kube(
            c.clone(),
            args.instance.clone(),
            versions.clone(),
            EventBudget::new(
                args.event_rate,
                args.event_burst,
                trigger_metrics.events_suppressed.clone(),
            ),
        ),
        _ => Events::Off,
    };
    let confirm = ConfirmTracker::new(trigger_metrics.clone(), events.clone(), args.confirm_timeout);

    let namespaces: Arc<dyn NamespaceLabels + Send + Sync> =
        match (&client, &args.manifests, args.watch_namespaces) {
            (Some(c), None, true) => Arc::new(WatchedNamespaces::spawn(c.clone())),
            _ => Arc::new(NoNamespaceLabels),
        };

    let (patcher, dry_run): (Arc<dyn Patcher>, Option<DryRunPatcher>) = if args.dry_run {
        let d = DryRunPatcher::default();
        (Arc::new(d.clone()), Some(d))
    } else {
        let c = client.clone().ok_or(ServiceError::NoClient)?;
        (Arc::new(KubePatcher::new(c, versions.clone())), None)
    };
    tasks.push(tokio::spawn(confirm.clone().run_sweeper(Duration::from_secs(5))));
    let settings = TriggerSettings {
        annotation: args.annotation.clone(),
        window: args.coalesce_window,
        patches_per_second: std::num::NonZeroU32::new(args.patch_rate.max(1))
            .unwrap_or(std::num::NonZeroU32::MIN),
        burst: std::num::NonZeroU32::new(args.patch_burst.max(1)).unwrap_or(std::num::NonZeroU32::MIN),
        patch_deadline: args
            .delivery_timeout
            .saturating_sub(Duration::from_secs(1))
            .max(Duration::from_secs(1)),
        ..TriggerSettings::default()
    };
    let apply: Arc<dyn Apply> = Arc::new(KubeApply::new(
        index.clone(),
        namespaces.clone(),
        patcher,
        settings,
        trigger_metrics,
        events,
        confirm.clone(),
    ));
    if let Some(dir) = &args.manifests {
        let mut idx = index.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let loaded = crate::kube::manifests::load_dir(dir, &mut idx)?;
        tracing::info!(dir = %dir.display(), objects = loaded.objects, skipped = loaded.skipped, "index built from manifests");
        let _ = versions.set(BTreeMap::new());
    } else if let Some(c) = &client {
        let watch_metrics = WatchMetrics::register(metrics.registry_mut());
        let gate = readiness.gate("discovery of external-secrets.io");
        let on_store = crate::kube::store_ready::hook(
            index.clone(),
            apply.clone(),
            crate::kube::store_ready::register_metric(metrics.registry_mut()),
        );
        let observer_base = (
            c.clone(),
            index.clone(),
            readiness.clone(),
            confirm.clone(),
            args.namespaces.clone(),
        );
        let versions_for_task = versions.clone();
        tasks.push(tokio::spawn(async move {
            let (client, index, readiness, confirm, namespaces) = observer_base;
            let chosen = discover_until_ok(&client).await;
            let _ = versions_for_task.set(chosen.clone());
            let observer = Observer {
                client,
                versions: chosen,
                namespaces,
                index,
                readiness,
                confirm: Some(confirm),
                metrics: watch_metrics,
                on_store: Some(on_store),
            };
            let handles = observer.spawn();
            gate.open();
            for h in handles {
                let _ = h.await;
            }
        }));
    }

    let mut reconciler = None;
    let mut leader = None;
    if let (Some(c), None) = (&client, &args.manifests) {
        let started = crate::reconcile::wiring::start(
            args,
            c.clone(),
            index.clone(),
            apply.clone(),
            readiness.clone(),
            metrics,
        );
        reconciler = started.reconciler;
        leader = started.leader;
        tasks.extend(started.tasks);
    }
    Ok(Engine {
        index,
        apply,
        namespaces,
        dry_run,
        versions,
        tasks,
        reconciler,
        leader,
    })
}

async fn discover_until_ok(client: &kube::Client) -> BTreeMap<discovery::EsoResource, String> {
    let mut wait = Duration::from_millis(200);
    loop {
        match discovery::discover(client).await {
            Ok(v) => {
                tracing::info!(versions = ?v, "external-secrets.io versions chosen");
                return v;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "discovery failed");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// The ingestion state for the HTTP handlers.
pub fn ingest(
    args: &EngineArgs,
    auth: Authenticator,
    apply: Arc<dyn Apply>,
    readiness: Readiness,
    metrics: &mut Metrics,
) -> Ingest {
    Ingest {
        auth,
        apply,
        readiness,
        metrics: DeliveryMetrics::register(metrics.registry_mut()),
        cloud: args.cloud,
        body_limit: args.body_limit,
        deadline: args.delivery_timeout,
        allowed_origins: args.allowed_origins.clone(),
    }
}

/// A wired service: the HTTP state and the engine behind it.
pub struct Service {
    /// State for [`crate::http::router`] / [`crate::http::functions_router`].
    pub state: crate::http::AppState,
    /// The engine (index, apply step, background tasks).
    pub engine: Engine,
}

/// Wires everything for one process: metrics, readiness, the engine, ingestion and explain.
pub fn assemble(
    args: &EngineArgs,
    auth: Authenticator,
    client: Option<kube::Client>,
) -> Result<Service, ServiceError> {
    let mut metrics = Metrics::new();
    let readiness = Readiness::default();
    let engine = start_engine(args, client, &mut metrics, &readiness)?;
    let ingest = ingest(
        args,
        auth.clone(),
        engine.apply.clone(),
        readiness.clone(),
        &mut metrics,
    );
    let explain = crate::http::explain::ExplainState {
        index: engine.index.clone(),
        namespaces: engine.namespaces.clone(),
        cloud: args.cloud,
        auth,
    };
    let state = crate::http::AppState {
        metrics: Arc::new(metrics),
        readiness,
        ingest: Arc::new(ingest),
        explain: Arc::new(explain),
    };
    Ok(Service { state, engine })
}
