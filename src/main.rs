//! kvsync binary: parse the configuration, set up logging, wire the parts, run until shut down.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use kvsync::config::{Cli, Command, ServeArgs};
use kvsync::http::{self, AppState};
use kvsync::metrics::Metrics;
use kvsync::readiness::Readiness;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    kvsync::telemetry::init(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs { listen } = args;
    let _client = kvsync::kube::client::from_env()
        .await
        .context("kubernetes client")?;
    let state = AppState {
        metrics: Arc::new(Metrics::new()),
        readiness: Readiness::default(),
    };
    http::serve(listen, http::router(state), http::shutdown_signal())
        .await
        .context("serve")?;
    tracing::info!("stopped");
    Ok(())
}
