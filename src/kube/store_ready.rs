//! The store-ready re-trigger, wired to the watches: [`hook`] is the `Observer::on_store`
//! callback. It feeds each observed store to the pure transition tracker
//! (`core::store_ready`) and, on a not-Ready → Ready transition, hands the changes for the
//! store's not-Ready ExternalSecrets to the apply step with [`Cause::StoreReady`], in a task of its
//! own (the hook runs inside the watch loop and must not block it).

use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use super::SharedIndex;
use super::observe::StoreHook;
use crate::apply::{Apply, Cause};
use crate::core::store_ready::{ReadyTransitions, store_id, store_ready_plan};

/// Counts store-ready transitions acted on (`kvsync_store_ready_transitions_total`).
pub fn register_metric(registry: &mut Registry) -> Counter {
    let c = Counter::default();
    registry.register(
        "store_ready_transitions",
        "Stores that turned Ready after not being Ready (their not-Ready ExternalSecrets are re-triggered)",
        c.clone(),
    );
    c
}

/// The `on_store` hook.
pub fn hook(index: SharedIndex, apply: Arc<dyn Apply>, transitions_metric: Counter) -> StoreHook {
    let transitions = Arc::new(Mutex::new(ReadyTransitions::default()));
    Arc::new(move |store| {
        let fired = transitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .observe(store);
        if !fired {
            return;
        }
        transitions_metric.inc();
        let plan = {
            let index = index.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            store_ready_plan(&index, store)
        };
        let (kind, ns, name) = store_id(store);
        let store_name = match ns {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        let not_ready: Vec<String> = plan.not_ready.iter().map(ToString::to_string).collect();
        tracing::info!(store = %store_name, not_ready = %not_ready.join(", "),
            objects = plan.changes.len(), "store turned Ready: re-triggering its ExternalSecrets that are not Ready");
        if !plan.without_objects.is_empty() {
            let names: Vec<String> = plan.without_objects.iter().map(ToString::to_string).collect();
            tracing::info!(store = %store_name, external_secrets = %names.join(", "),
                "not re-triggered (they only use dataFrom.find): ESO's retry covers them");
        }
        if plan.changes.is_empty() {
            return;
        }
        let apply = apply.clone();
        tokio::spawn(async move {
            match apply.apply(plan.changes, Cause::StoreReady).await {
                Ok(r) => {
                    tracing::info!(store = %store_name, triggered = r.triggered, unchanged = r.unchanged,
                    skipped = r.skipped, "store-ready re-trigger applied")
                }
                Err(e) => tracing::warn!(store = %store_name, error = %e, "store-ready re-trigger failed"),
            }
        });
    })
}
