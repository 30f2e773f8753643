//! Command line and environment configuration (clap derive; every setting has an `env` twin).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::auth::AuthArgs;
use crate::core::model::{Cloud, ObjectKind};
use crate::telemetry::LogFormat;

/// kvsync: make Kubernetes Secrets follow Azure Key Vault within seconds.
#[derive(Debug, Parser)]
#[command(name = "kvsync", version, about, long_about = None)]
pub struct Cli {
    /// Log format; the filter comes from RUST_LOG (default `info`).
    #[arg(
        long,
        env = "KVSYNC_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The ways to run kvsync.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the in-cluster service: Event Grid webhook, Kubernetes watches, triggers.
    Serve(ServeArgs),
    /// Run as an Azure Functions custom handler (127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT).
    Functions(FunctionsArgs),
    /// Run the real server on localhost over bundled example manifests and replay the bundled sample
    /// events through it (no cluster, no Azure needed); then keep serving.
    Demo(DemoArgs),
    /// Print every ExternalSecret that reads a Key Vault object, and those that would not be refreshed.
    Explain(ExplainArgs),
}

/// Settings of `kvsync serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address the HTTP server listens on.
    #[arg(long, env = "KVSYNC_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Delivery authentication.
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Index, trigger and delivery settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Settings of `kvsync functions`.
#[derive(Debug, Args)]
pub struct FunctionsArgs {
    /// Port the Functions host told the handler to listen on (127.0.0.1 only).
    #[arg(long, env = "FUNCTIONS_CUSTOMHANDLER_PORT")]
    pub port: u16,
    /// Vault ARM ids (Event Grid `topic`) accepted; empty accepts all.
    #[arg(
        long = "allowed-source",
        env = "KVSYNC_ALLOWED_SOURCES",
        value_delimiter = ','
    )]
    pub allowed_sources: Vec<String>,
    /// Kubeconfig file to reach the cluster from the function app (default: KUBECONFIG, then
    /// in-cluster). See README "Azure Functions".
    #[arg(long, env = "KVSYNC_KUBECONFIG", conflicts_with = "kubeconfig_content")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig YAML itself, from an app setting (e.g. a Key Vault reference). Never logged.
    #[arg(long, env = "KVSYNC_KUBECONFIG_CONTENT", hide_env_values = true)]
    pub kubeconfig_content: Option<String>,
    /// Index, trigger and delivery settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Settings of `kvsync demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address of the demo server (loopback).
    #[arg(long, env = "KVSYNC_DEMO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Replay the samples, print the result and exit instead of serving on.
    #[arg(long)]
    pub once: bool,
}

/// Settings of `kvsync explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The vault: a name (`myvault`), a host (`myvault.vault.azure.cn`) or a URL.
    #[arg(long)]
    pub vault: String,
    /// The object name.
    #[arg(long)]
    pub name: String,
    /// The object kind.
    #[arg(long, value_enum, default_value = "secret")]
    pub kind: ObjectKind,
    /// Cloud of a bare vault name.
    #[arg(long, env = "KVSYNC_CLOUD", value_enum, default_value = "public")]
    pub cloud: Cloud,
    /// Read ESO objects from YAML files in this directory instead of the cluster.
    #[arg(long, env = "KVSYNC_MANIFESTS")]
    pub manifests: Option<PathBuf>,
    /// Namespaces to read (repeatable; default all).
    #[arg(long = "namespace", env = "KVSYNC_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Settings shared by every mode that ingests events.
#[derive(Clone, Debug, Args)]
pub struct EngineArgs {
    /// Watch only these namespaces for SecretStores and ExternalSecrets (repeatable; default all).
    #[arg(long = "namespace", env = "KVSYNC_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Annotation patched on ExternalSecrets to make ESO refresh.
    #[arg(
        long,
        env = "KVSYNC_ANNOTATION",
        default_value = "external-secrets.io/force-sync"
    )]
    pub annotation: String,
    /// Cloud used when an event names its vault only by `VaultName`.
    #[arg(long, env = "KVSYNC_CLOUD", value_enum, default_value = "public")]
    pub cloud: Cloud,
    /// Maximum delivery body in bytes (larger ones get 413).
    #[arg(long, env = "KVSYNC_BODY_LIMIT", default_value_t = 2 * 1024 * 1024)]
    pub body_limit: usize,
    /// Time to apply a delivery before answering 503 (Event Grid waits 30 s).
    #[arg(long, env = "KVSYNC_DELIVERY_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    pub delivery_timeout: std::time::Duration,
    /// Minimum spacing of two patches of one ExternalSecret (bursts coalesce within it).
    #[arg(long, env = "KVSYNC_COALESCE_WINDOW", default_value = "2s", value_parser = parse_duration)]
    pub coalesce_window: std::time::Duration,
    /// Patches per second, across all targets (client-side token bucket).
    #[arg(long, env = "KVSYNC_PATCH_RATE", default_value_t = 50)]
    pub patch_rate: u32,
    /// Token-bucket burst of patches.
    #[arg(long, env = "KVSYNC_PATCH_BURST", default_value_t = 200)]
    pub patch_burst: u32,
    /// Time ESO gets to confirm a refresh before a Warning Event.
    #[arg(long, env = "KVSYNC_CONFIRM_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub confirm_timeout: std::time::Duration,
    /// Read Namespace labels for ClusterSecretStore `namespaceSelector` conditions (needs RBAC on namespaces).
    #[arg(long, env = "KVSYNC_WATCH_NAMESPACES", default_value_t = true, action = clap::ArgAction::Set)]
    pub watch_namespaces: bool,
    /// Build the index from ESO YAML files in this directory instead of watching a cluster.
    #[arg(long, env = "KVSYNC_MANIFESTS")]
    pub manifests: Option<PathBuf>,
    /// Print planned triggers instead of patching.
    #[arg(long, env = "KVSYNC_DRY_RUN")]
    pub dry_run: bool,
    /// Origins accepted in the CloudEvents OPTIONS handshake.
    #[arg(
        long = "allowed-origin",
        env = "KVSYNC_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = "eventgrid.azure.net,eventgrid.azure.us,eventgrid.azure.cn"
    )]
    pub allowed_origins: Vec<String>,
    /// This replica's name, for Kubernetes Events and leader election (the pod name).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
}

impl EngineArgs {
    /// The settings of the no-cluster demo: the defaults (and `KVSYNC_*` environment), dry run, no
    /// Namespace watch, a short coalescing window so the replay shows every step.
    pub fn demo() -> Result<Self, clap::Error> {
        Self::from_flags(&[
            "--dry-run",
            "--watch-namespaces",
            "false",
            "--coalesce-window",
            "100ms",
        ])
    }

    /// Parses engine flags alone (defaults and `KVSYNC_*` environment apply), e.g. for tests.
    pub fn from_flags(flags: &[&str]) -> Result<Self, clap::Error> {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            engine: EngineArgs,
        }
        Wrapper::try_parse_from(std::iter::once("kvsync").chain(flags.iter().copied())).map(|w| w.engine)
    }
}

/// Parses a Go-style duration (`25s`, `1m30s`, `500ms`) as Kubernetes and ESO do.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let d: kube::core::Duration = text.parse().map_err(|e| format!("{e}"))?;
    if d.is_negative() {
        return Err("must not be negative".into());
    }
    Ok(d.into())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn serve(args: &[&str]) -> ServeArgs {
        let mut all = vec!["kvsync", "serve"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).unwrap().command {
            Command::Serve(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serve_listens_on_8080_by_default() {
        let args = serve(&[]);
        assert_eq!(args.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(args.engine.annotation, "external-secrets.io/force-sync");
        assert_eq!(args.engine.body_limit, 2 * 1024 * 1024);
        assert_eq!(args.engine.delivery_timeout, std::time::Duration::from_secs(25));
        assert!(args.engine.watch_namespaces);
    }

    #[test]
    fn flags_parse() {
        let args = serve(&[
            "--listen",
            "127.0.0.1:9",
            "--namespace",
            "a",
            "--namespace",
            "b",
            "--delivery-timeout",
            "1m30s",
            "--watch-namespaces",
            "false",
            "--cloud",
            "china",
        ]);
        assert_eq!(args.listen, "127.0.0.1:9".parse().unwrap());
        assert_eq!(args.engine.namespaces, vec!["a", "b"]);
        assert_eq!(args.engine.delivery_timeout, std::time::Duration::from_secs(90));
        assert!(!args.engine.watch_namespaces);
        assert_eq!(args.engine.cloud, Cloud::China);
    }

    #[test]
    fn demo_settings_are_the_defaults_in_dry_run() {
        let demo = EngineArgs::demo().unwrap();
        let defaults = serve(&[]).engine;
        assert!(demo.dry_run && !defaults.dry_run);
        assert!(!demo.watch_namespaces);
        assert_eq!(demo.annotation, defaults.annotation);
        assert_eq!(demo.delivery_timeout, defaults.delivery_timeout);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for (flag, value) in [
            ("--listen", "nonsense"),
            ("--delivery-timeout", "1d"),
            ("--delivery-timeout", "-1s"),
        ] {
            let err = Cli::try_parse_from(["kvsync", "serve", &format!("{flag}={value}")]).unwrap_err();
            assert!(err.to_string().contains(flag), "{err}");
        }
    }
}
