//! HTTP adapter (axum): the routes kvsync serves and the server loop with graceful shutdown.
//!
//! Handlers here only translate between HTTP and the pure modules; they hold no decision logic.

pub mod body;
pub mod delivery_metrics;
pub mod eventgrid_webhook;
pub mod explain;
pub mod functions_invoke;
pub mod health;
pub mod ingest;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};

use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// Path of the Event Grid webhook.
pub const EVENTGRID_PATH: &str = "/api/eventgrid";

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The metrics registry rendered by `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Readiness gates behind `/readyz`.
    pub readiness: Readiness,
    /// Ingestion (webhook and Functions).
    pub ingest: Arc<ingest::Ingest>,
    /// What `/api/explain` reads.
    pub explain: Arc<explain::ExplainState>,
}

impl FromRef<AppState> for Arc<ingest::Ingest> {
    fn from_ref(s: &AppState) -> Self {
        s.ingest.clone()
    }
}

/// The router of the in-cluster service.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            EVENTGRID_PATH,
            post(eventgrid_webhook::post).options(eventgrid_webhook::options),
        )
        .route("/api/explain", get(explain::get))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(state)
}

/// The router of the Azure Functions custom handler.
pub fn functions_router(state: AppState) -> Router {
    Router::new()
        .route(
            &format!("/{}", functions_invoke::FUNCTION_NAME),
            post(functions_invoke::invoke),
        )
        .route("/", get(functions_invoke::root))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(state)
}

/// Binds `addr` and serves `app` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| crate::Error::Listen { addr, source })?;
    serve_on(listener, app, shutdown).await
}

/// Serves `app` on an already bound listener (tests bind port 0 and read the address first).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    let local = listener.local_addr().map_err(crate::Error::Serve)?;
    tracing::info!(addr = %local, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(crate::Error::Serve)
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received, draining");
}
