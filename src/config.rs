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
    /// Tokio worker threads. kvsync mostly waits on the network (a one-event delivery costs
    /// microseconds of CPU against milliseconds of PATCH), so one is the default: each extra thread
    /// adds idle memory (glibc gives every thread that allocates its own malloc arena). Raise it to
    /// parse several large batches (thousands of events) at once.
    #[arg(long, env = "KVSYNC_WORKER_THREADS", default_value = "1", global = true)]
    pub worker_threads: std::num::NonZeroUsize,
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
    /// Run the fallback reconcile (Key Vault metadata vs. ExternalSecret refresh times) and print
    /// what it found and triggered.
    Reconcile(ReconcileCmdArgs),
}

/// Settings of `kvsync reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileCmdArgs {
    /// Run one pass and exit (the only mode: the continuous loop runs inside `kvsync serve`).
    #[arg(long)]
    pub once: bool,
    /// Index, trigger and Key Vault settings (`--dry-run` prints instead of patching).
    #[command(flatten)]
    pub engine: EngineArgs,
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
    /// Kubernetes Events per second (a budget shared by all Events; 0 sends none). Events beyond
    /// it are counted in `kvsync_kube_events_suppressed_total`; triggers are always logged.
    #[arg(long, env = "KVSYNC_EVENT_RATE", default_value_t = 10)]
    pub event_rate: u32,
    /// Token-bucket burst of Kubernetes Events.
    #[arg(long, env = "KVSYNC_EVENT_BURST", default_value_t = 100)]
    pub event_burst: u32,
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
    /// Fallback reconcile, Key Vault access and leader election.
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
}

/// A secret from the environment: never printed (`Debug` shows `***`).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// The secret itself, for handing to the credential.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for SecretString {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretString(s.to_string()))
    }
}

/// Settings of the fallback reconcile (`kvsync serve`, `kvsync reconcile`), its Key Vault access
/// and leader election.
#[derive(Clone, Debug, Args)]
pub struct ReconcileArgs {
    /// Time between fallback reconcile passes (jittered ±10 %); `0` disables the reconcile.
    #[arg(long, env = "KVSYNC_RECONCILE_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub reconcile_interval: std::time::Duration,
    /// Clock-skew margin: an ExternalSecret is stale when the object's `updated` is later than its
    /// `status.refreshTime` minus this margin (see `core::staleness`).
    #[arg(long, env = "KVSYNC_RECONCILE_SKEW", default_value = "5m", value_parser = parse_duration)]
    pub reconcile_skew: std::time::Duration,
    /// Longest a pass may run; a pass cut short resumes with the vaults it did not finish.
    #[arg(long, env = "KVSYNC_RECONCILE_DEADLINE", default_value = "5m", value_parser = parse_duration)]
    pub reconcile_deadline: std::time::Duration,
    /// Key Vault requests per second per vault (client-side budget; Key Vault allows 4,000 per 10 s).
    #[arg(long, env = "KVSYNC_KEYVAULT_RATE", default_value_t = 100)]
    pub keyvault_rate: u32,
    /// Retries of a throttled (429) or failed (5xx, connection) Key Vault request.
    #[arg(long, env = "KVSYNC_KEYVAULT_MAX_RETRIES", default_value_t = 6)]
    pub keyvault_max_retries: u32,
    /// First backoff delay after a 429/5xx (doubles per retry, with jitter).
    #[arg(long, env = "KVSYNC_KEYVAULT_BACKOFF", default_value = "1s", value_parser = parse_duration)]
    pub keyvault_backoff: std::time::Duration,
    /// Longest backoff delay.
    #[arg(long, env = "KVSYNC_KEYVAULT_BACKOFF_MAX", default_value = "32s", value_parser = parse_duration)]
    pub keyvault_backoff_max: std::time::Duration,
    /// Azure credential: auto = Workload Identity, else managed identity when advertised
    /// (IDENTITY_ENDPOINT), else client secret (dev only), else none (reconcile off).
    #[arg(long, env = "KVSYNC_AZURE_CREDENTIAL", value_enum, default_value = "auto")]
    pub azure_credential: crate::keyvault::credential::CredentialMode,
    /// Client id of the Azure identity.
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub azure_client_id: Option<String>,
    /// Entra tenant id.
    #[arg(long, env = "AZURE_TENANT_ID")]
    pub azure_tenant_id: Option<String>,
    /// Projected service-account token file (Workload Identity).
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE")]
    pub azure_federated_token_file: Option<PathBuf>,
    /// Client secret (development only).
    #[arg(long, env = "AZURE_CLIENT_SECRET", hide_env_values = true)]
    pub azure_client_secret: Option<SecretString>,
    /// Set by platforms with a managed identity endpoint (App Service, Functions, Arc).
    #[arg(long, env = "IDENTITY_ENDPOINT", hide = true)]
    pub identity_endpoint: Option<String>,
    /// Entra authority host override (`https://…`; default: AZURE_AUTHORITY_HOST, else public cloud).
    #[arg(long, env = "KVSYNC_AZURE_AUTHORITY_HOST")]
    pub azure_authority_host: Option<String>,
    /// Extra CA certificates (PEM) trusted for Entra and Key Vault (tests, TLS-inspecting proxies).
    #[arg(long, env = "KVSYNC_AZURE_CA_FILE")]
    pub azure_ca_file: Option<PathBuf>,
    /// Send a vault's requests elsewhere: `vault-host=https://base` (repeatable; tests).
    #[arg(long, env = "KVSYNC_KEYVAULT_URL_OVERRIDE", value_delimiter = ',')]
    pub keyvault_url_override: Vec<String>,
    /// Name of the Lease used for leader election (only the leader runs the fallback reconcile).
    #[arg(long, env = "KVSYNC_LEASE_NAME", default_value = "kvsync")]
    pub lease_name: String,
    /// Namespace of the Lease (default: POD_NAMESPACE, else the client's namespace).
    #[arg(long, env = "KVSYNC_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// The pod's namespace (downward API).
    #[arg(long, env = "POD_NAMESPACE", hide = true)]
    pub pod_namespace: Option<String>,
    /// Lease duration: a replica takes over at most this long after the leader stopped renewing.
    #[arg(long, env = "KVSYNC_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: std::time::Duration,
}

impl ReconcileArgs {
    /// The credential inputs.
    pub fn credential_config(&self) -> crate::keyvault::credential::CredentialConfig {
        crate::keyvault::credential::CredentialConfig {
            mode: self.azure_credential,
            client_id: self.azure_client_id.clone(),
            tenant_id: self.azure_tenant_id.clone(),
            token_file: self.azure_federated_token_file.clone(),
            client_secret: self.azure_client_secret.clone(),
            identity_endpoint: self.identity_endpoint.as_deref().is_some_and(|s| !s.is_empty()),
            authority_host: self.azure_authority_host.clone(),
        }
    }

    /// Key Vault backoff settings.
    pub fn backoff(&self) -> crate::keyvault::retry::Backoff {
        crate::keyvault::retry::Backoff {
            base: self.keyvault_backoff,
            cap: self.keyvault_backoff_max.max(self.keyvault_backoff),
            max_retries: self.keyvault_max_retries,
        }
    }
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
        let r = &args.engine.reconcile;
        assert_eq!(r.reconcile_interval, std::time::Duration::from_secs(600));
        assert_eq!(r.reconcile_skew, std::time::Duration::from_secs(300));
        assert_eq!(r.keyvault_rate, 100);
        assert_eq!(r.lease_name, "kvsync");
        assert_eq!(r.lease_duration, std::time::Duration::from_secs(15));
    }

    #[test]
    fn reconcile_subcommand_parses_once_and_dry_run() {
        let cli = Cli::try_parse_from([
            "kvsync",
            "reconcile",
            "--once",
            "--dry-run",
            "--reconcile-interval",
            "0",
        ])
        .unwrap();
        match cli.command {
            Command::Reconcile(a) => {
                assert!(a.once && a.engine.dry_run);
                assert_eq!(a.engine.reconcile.reconcile_interval, std::time::Duration::ZERO);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_client_secret_is_never_printed() {
        let args = serve(&["--azure-client-secret", "hunter2"]);
        assert_eq!(
            args.engine
                .reconcile
                .azure_client_secret
                .as_ref()
                .map(SecretString::expose),
            Some("hunter2")
        );
        assert!(!format!("{args:?}").contains("hunter2"));
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
