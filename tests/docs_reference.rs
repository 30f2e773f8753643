//! The configuration and metrics references in `docs/` are generated from the code; these tests
//! fail when they drift. Regenerate with `KVSYNC_UPDATE_DOCS=1 cargo test --test docs_reference`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use clap::CommandFactory;
use kvsync::config::Cli;
use kvsync::http::delivery_metrics::{AuthLabels, DeliveryMetrics};
use kvsync::keyvault::transport::{KeyVaultMetrics, RequestLabels};
use kvsync::kube::observe::{WatchLabels, WatchMetrics};
use kvsync::kube::trigger_metrics::{ReasonLabels, TriggerLabels, TriggerMetrics};
use kvsync::metrics::Metrics;
use kvsync::reconcile::{PassLabels, ReconcileMetrics};

fn check(path: &str, generated: String) {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("KVSYNC_UPDATE_DOCS").is_some() {
        std::fs::write(&full, &generated).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&full).unwrap_or_default();
    assert!(
        current == generated,
        "{path} is out of date: regenerate with `KVSYNC_UPDATE_DOCS=1 cargo test --test docs_reference`"
    );
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn configuration() -> String {
    let mut out = String::from(
        "# Configuration reference\n\nGenerated from the CLI definition (`src/config.rs`) by `tests/docs_reference.rs`; \
         do not edit by hand. Every flag can also be set through its environment variable.\n",
    );
    let cli = Cli::command();
    for sub in cli.get_subcommands() {
        out.push_str(&format!(
            "\n## `kvsync {}`\n\n{}\n\n",
            sub.get_name(),
            escape(&sub.get_about().map(|a| a.to_string()).unwrap_or_default())
        ));
        out.push_str("| flag | environment | default | description |\n| --- | --- | --- | --- |\n");
        let mut args: Vec<_> = sub
            .get_arguments()
            .chain(cli.get_arguments())
            .filter(|a| a.get_long().is_some() && a.get_id() != "help" && a.get_id() != "version")
            .collect();
        args.sort_by_key(|a| a.get_long().unwrap().to_string());
        args.dedup_by_key(|a| a.get_long().unwrap().to_string());
        for a in args {
            let env = a
                .get_env()
                .map(|e| format!("`{}`", e.to_string_lossy()))
                .unwrap_or_default();
            let default: Vec<String> = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let default = if default.is_empty() {
                String::new()
            } else {
                format!("`{}`", default.join(","))
            };
            let possible: Vec<String> = a
                .get_possible_values()
                .iter()
                .map(|p| p.get_name().to_string())
                .collect();
            let mut help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            if !possible.is_empty()
                && !matches!(a.get_action(), clap::ArgAction::SetTrue | clap::ArgAction::Set if possible == ["true", "false"])
            {
                help.push_str(&format!(" One of: {}.", possible.join(", ")));
            }
            out.push_str(&format!(
                "| `--{}` | {env} | {default} | {} |\n",
                a.get_long().unwrap(),
                escape(&help)
            ));
        }
    }
    out
}

fn metrics() -> String {
    let mut m = Metrics::new();
    let d = DeliveryMetrics::register(m.registry_mut());
    let t = TriggerMetrics::register(m.registry_mut());
    let w = WatchMetrics::register(m.registry_mut());
    let kv = KeyVaultMetrics::register(m.registry_mut());
    let r = ReconcileMetrics::register(m.registry_mut());
    kvsync::kube::store_ready::register_metric(m.registry_mut());
    kv.requests
        .get_or_create(&RequestLabels {
            vault: "v".into(),
            operation: "o".into(),
            status: "s".into(),
        })
        .inc();
    r.passes.get_or_create(&PassLabels { outcome: "o".into() }).inc();
    // Labelled families are only rendered once they have a child: create one per family so the
    // reference lists them with their label names.
    d.delivery("f", "o");
    d.event("t", "o");
    d.auth_failures
        .get_or_create(&AuthLabels { reason: "r".into() })
        .inc();
    t.triggers
        .get_or_create(&TriggerLabels {
            target: "t".into(),
            cause: "c".into(),
            outcome: "o".into(),
        })
        .inc();
    t.skipped
        .get_or_create(&ReasonLabels { reason: "r".into() })
        .inc();
    t.confirm_failures
        .get_or_create(&ReasonLabels { reason: "r".into() })
        .inc();
    t.events_suppressed
        .get_or_create(&ReasonLabels { reason: "r".into() })
        .inc();
    w.events
        .get_or_create(&WatchLabels {
            resource: "r".into(),
            event: "e".into(),
        })
        .inc();
    let text = m.render();
    let mut out = String::from(
        "# Metrics reference\n\nServed at `GET /metrics` (OpenMetrics text). Generated from the registry by \
         `tests/docs_reference.rs`; do not edit by hand.\n\n| metric | type | labels | description |\n| --- | --- | --- | --- |\n",
    );
    let mut types = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            types.insert(name.to_string(), ty.to_string());
        }
    }
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            let ty = types.get(name).cloned().unwrap_or_default();
            let shown = match ty.as_str() {
                "counter" => format!("{name}_total"),
                "info" => format!("{name}_info"),
                _ => name.to_string(),
            };
            let labels: Vec<String> = text
                .lines()
                .find(|l| {
                    l.starts_with(&format!("{shown}{{"))
                        || l.starts_with(&format!("{name}_bucket{{")) && !l.contains("le=\"")
                })
                .and_then(|l| l.split_once('{').map(|(_, rest)| rest))
                .and_then(|rest| rest.split_once('}').map(|(labels, _)| labels))
                .map(|labels| {
                    labels
                        .split(',')
                        .filter_map(|kv| kv.split_once('=').map(|(k, _)| format!("`{k}`")))
                        .collect()
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "| `{shown}` | {ty} | {} | {} |\n",
                labels.join(", "),
                escape(help)
            ));
        }
    }
    out
}

/// docs/configuration.md lists every flag, its environment variable and default.
#[test]
fn configuration_reference_is_current() {
    check("docs/configuration.md", configuration());
}

/// docs/metrics.md lists every metric family kvsync registers.
#[test]
fn metrics_reference_is_current() {
    check("docs/metrics.md", metrics());
}
