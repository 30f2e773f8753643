//! Azure Functions custom-handler mode: `POST /KeyVaultEvents` with the host's `{Data, Metadata}`
//! envelope, answered with `{Outputs, Logs, ReturnValue}`.
//!
//! The Functions host has already answered Event Grid's handshakes and authenticated Event Grid
//! (function system key); it is the only caller, on 127.0.0.1. Any non-2xx fails the invocation and
//! Event Grid redelivers (it sees a 500), so: transient failure ⇒ 500; a permanently unusable event
//! ⇒ 200 with the reason in `Logs` (retrying cannot fix it; it would loop for 24 h).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::body::{BodyError, read_limited};
use super::ingest::{EventsOutcome, Ingest};
use crate::eventgrid::{Delivery, DeliveryError, parse_functions_request};

/// The function (folder) name in `functions/`; the host POSTs to `/<name>`.
pub const FUNCTION_NAME: &str = "KeyVaultEvents";
/// The trigger binding's `name` in `functions/KeyVaultEvents/function.json`.
pub const BINDING_NAME: &str = "eventGridEvent";

fn answer(status: StatusCode, logs: Vec<String>) -> Response {
    (
        status,
        axum::Json(json!({"Outputs": {}, "Logs": logs, "ReturnValue": null})),
    )
        .into_response()
}

/// `POST /KeyVaultEvents`.
pub async fn invoke(State(ingest): State<Arc<Ingest>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let (outcome, response) = handle(&ingest, &headers, body).await;
    ingest.metrics.delivery("functions", outcome);
    ingest.metrics.duration.observe(started.elapsed().as_secs_f64());
    response
}

async fn handle(ingest: &Ingest, headers: &HeaderMap, body: Body) -> (&'static str, Response) {
    let bytes = match read_limited(headers, body, ingest.body_limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge { limit }) => {
            tracing::warn!(limit, "invocation body too large: dropped");
            return (
                "too_large",
                answer(
                    StatusCode::OK,
                    vec![format!("dropped: body exceeds {limit} bytes")],
                ),
            );
        }
        Err(BodyError::Read(e)) => {
            return (
                "malformed",
                answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    vec![format!("body could not be read: {e}")],
                ),
            );
        }
    };
    let delivery = match parse_functions_request(&bytes, BINDING_NAME, ingest.cloud) {
        Ok(d) => d,
        Err(DeliveryError::Malformed(reason) | DeliveryError::UnsupportedContentType(reason)) => {
            tracing::warn!(reason = %reason, "invocation with an unusable event: dropped (a retry cannot fix it)");
            return (
                "malformed",
                answer(StatusCode::OK, vec![format!("dropped malformed event: {reason}")]),
            );
        }
    };
    match delivery {
        Delivery::Validation { .. } | Delivery::Deletion { .. } => (
            "ignored",
            answer(
                StatusCode::OK,
                vec!["handshake events are answered by the Functions host".into()],
            ),
        ),
        Delivery::Events(events) => match ingest.process(events).await {
            EventsOutcome::Applied {
                report,
                changes,
                ignored,
                rejected,
            } => {
                let log = format!(
                    "changes={changes} ignored={ignored} rejected={rejected} triggered={} unchanged={} skipped={}",
                    report.triggered, report.unchanged, report.skipped
                );
                ("ok", answer(StatusCode::OK, vec![log]))
            }
            EventsOutcome::NotReady(pending) => (
                "not_ready",
                answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    vec![format!("not ready: {pending}")],
                ),
            ),
            EventsOutcome::Failed(why) => (
                "apply_failed",
                answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    vec![format!("not applied, retry: {why}")],
                ),
            ),
        },
    }
}

/// `GET /`: the host probes readiness of the handler process with plain GETs; any answer counts.
pub async fn root() -> &'static str {
    "kvsync functions handler\n"
}
