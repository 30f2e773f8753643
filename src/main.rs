//! kvsync binary: parse the configuration, set up logging, wire the parts, run until shut down.

use anyhow::Context as _;
use clap::Parser as _;
use kvsync::auth::{AuthMode, Authenticator};
use kvsync::config::{Cli, Command, ExplainArgs, FunctionsArgs, ReconcileCmdArgs, ServeArgs};
use kvsync::core::decide::{NoNamespaceLabels, explain};
use kvsync::core::index::Index;
use kvsync::core::model::{ObjectName, ObjectRef, VaultId};
use kvsync::http;
use kvsync::metrics::Metrics;
use kvsync::readiness::Readiness;
use kvsync::service;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    kvsync::telemetry::init(cli.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.worker_threads.get())
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Functions(args) => functions(args).await,
        Command::Demo(args) => kvsync::demo::run(args).await.context("demo"),
        Command::Explain(args) => explain_cli(args).await,
        Command::Reconcile(args) => reconcile_cli(args).await,
    }
}

async fn client_unless_manifests(manifests: bool) -> anyhow::Result<Option<kube::Client>> {
    if manifests {
        return Ok(None);
    }
    Ok(Some(
        kvsync::kube::client::from_env()
            .await
            .context("kubernetes client (or use --manifests DIR)")?,
    ))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs { listen, auth, engine } = args;
    let auth = Authenticator::from_args(&auth).context("delivery authentication")?;
    if auth.mode() == AuthMode::Disabled {
        tracing::warn!("--insecure-no-auth: deliveries are accepted without authentication");
    } else {
        tracing::info!(mode = ?auth.mode(), "delivery authentication on");
    }
    let client = client_unless_manifests(engine.manifests.is_some()).await?;
    let service = service::assemble(&engine, auth, client).context("start")?;
    let state = service.state;
    http::serve(listen, http::router(state), http::shutdown_signal())
        .await
        .context("serve")?;
    tracing::info!("stopped");
    Ok(())
}

async fn functions(args: FunctionsArgs) -> anyhow::Result<()> {
    let FunctionsArgs {
        port,
        allowed_sources,
        kubeconfig,
        kubeconfig_content,
        engine,
    } = args;
    // The Functions host authenticates Event Grid (system key) and is the only caller, on loopback.
    let auth = Authenticator::from_args(&kvsync::auth::AuthArgs::insecure_with_sources(allowed_sources))
        .context("functions authentication")?;
    let client = match (&engine.manifests, kubeconfig, kubeconfig_content) {
        (Some(_), _, _) => None,
        (None, Some(path), _) => Some(
            kvsync::kube::client::from_kubeconfig_file(&path)
                .await
                .context("kubeconfig")?,
        ),
        (None, None, Some(text)) => Some(
            kvsync::kube::client::from_kubeconfig_yaml(&text)
                .await
                .context("KVSYNC_KUBECONFIG_CONTENT")?,
        ),
        (None, None, None) => client_unless_manifests(false).await?,
    };
    let service = service::assemble(&engine, auth, client).context("start")?;
    let state = service.state;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    http::serve(addr, http::functions_router(state), http::shutdown_signal())
        .await
        .context("serve")?;
    Ok(())
}

async fn explain_cli(args: ExplainArgs) -> anyhow::Result<()> {
    let ExplainArgs {
        vault,
        name,
        kind,
        cloud,
        manifests,
        namespaces,
        json,
    } = args;
    let vault = VaultId::parse_flexible(&vault, cloud).context("--vault")?;
    let object = ObjectRef {
        vault,
        kind,
        name: ObjectName::new(&name),
    };
    let index = match manifests {
        Some(dir) => {
            let mut index = Index::default();
            kvsync::kube::manifests::load_dir(&dir, &mut index)?;
            index
        }
        None => {
            let client = kvsync::kube::client::from_env()
                .await
                .context("kubernetes client (or use --manifests DIR)")?;
            kvsync::kube::snapshot::load(&client, &namespaces).await?
        }
    };
    let explanation = explain(&index, &object, &NoNamespaceLabels);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&kvsync::report::explanation_json(&object, &explanation))?
        );
    } else {
        print!("{}", kvsync::report::explanation_text(&object, &explanation));
    }
    Ok(())
}

/// `kvsync reconcile --once [--dry-run]`: builds the index (cluster or manifests), runs one pass of
/// the fallback reconcile without leader election, prints what it found and triggered.
async fn reconcile_cli(args: ReconcileCmdArgs) -> anyhow::Result<()> {
    let ReconcileCmdArgs { once, mut engine } = args;
    if !once {
        anyhow::bail!("only --once is supported here; the continuous reconcile runs inside `kvsync serve`");
    }
    // The engine must not start its own loop: this command runs exactly one pass.
    let interval = engine.reconcile.reconcile_interval;
    engine.reconcile.reconcile_interval = std::time::Duration::ZERO;
    let client = client_unless_manifests(engine.manifests.is_some()).await?;
    let mut metrics = Metrics::new();
    let readiness = Readiness::default();
    let started = service::start_engine(&engine, client, &mut metrics, &readiness).context("start")?;
    engine.reconcile.reconcile_interval = interval;
    let reconciler = kvsync::reconcile::wiring::reconciler(
        &engine,
        started.index.clone(),
        started.apply.clone(),
        &mut metrics,
    )
    .context("the fallback reconcile needs an Azure credential (see the log)")?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while !readiness.is_ready() {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "index not complete after 120 s: waiting for {:?}",
                readiness.pending()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_leader, leading) = tokio::sync::watch::channel(true);
    let report = reconciler.run_pass(leading).await;
    print!("{}", report.to_text(engine.dry_run));
    if let Some(d) = &started.dry_run {
        for (target, annotation, value) in d.planned() {
            println!("  would patch: {target} {annotation}={value}");
        }
    }
    if report.complete() {
        Ok(())
    } else {
        anyhow::bail!("the pass did not complete")
    }
}
