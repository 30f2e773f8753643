//! `POST /api/eventgrid` and `OPTIONS /api/eventgrid`: the Event Grid webhook.
//!
//! Status codes follow Event Grid's retry rules (it retries 5xx/429 and drops 400/413/401/403):
//! - 200 after every event was applied (or needed nothing), and for handshakes;
//! - 400 for a permanently malformed delivery (logged with a short excerpt, counted);
//! - 413 over the body limit (checked while streaming); 415 for an unsupported content type;
//! - 401 when authentication fails, 403 for a subscription outside the allow-list;
//! - 503 + `Retry-After` when not ready, when the apply step fails transiently or runs out of
//!   time, and when the authentication infrastructure (OpenID metadata, JWKS) is unreachable.
//!
//! Handshakes: the SubscriptionValidation POST and the CloudEvents OPTIONS request are answered
//! without credentials, because Event Grid may not send the bearer token on them (unconfirmed), but
//! credentials that *are* present must be valid, the subscription allow-list applies, and a
//! handshake only ever echoes a code: no event is applied on that path.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::body::{BodyError, read_limited};
use super::ingest::{EventsOutcome, Ingest, truncate};
use crate::auth::{AuthOutcome, DenyReason};
use crate::eventgrid::{Delivery, DeliveryError, parse_delivery};

/// Seconds Event Grid is asked to wait before retrying after a 503.
const RETRY_AFTER_SECS: &str = "10";

fn status(code: StatusCode, message: impl Into<String>) -> Response {
    (code, axum::Json(json!({"error": message.into()}))).into_response()
}

fn unavailable(message: impl Into<String>) -> Response {
    let mut r = status(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    r
}

fn format_label(headers: &HeaderMap) -> &'static str {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if headers.contains_key("ce-specversion") {
        "cloudevents_binary"
    } else if ct.starts_with("application/cloudevents-batch+json") {
        "cloudevents_batch"
    } else if ct.starts_with("application/cloudevents+json") {
        "cloudevents"
    } else {
        "eventgrid"
    }
}

/// `POST /api/eventgrid`.
pub async fn post(
    State(ingest): State<Arc<Ingest>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let (format, outcome, response) = handle(&ingest, query.as_deref(), &headers, body).await;
    ingest.metrics.delivery(format, outcome);
    ingest.metrics.duration.observe(started.elapsed().as_secs_f64());
    response
}

async fn handle(
    ingest: &Ingest,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> (&'static str, &'static str, Response) {
    let mut format = format_label(headers);
    let bytes = match read_limited(headers, body, ingest.body_limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge { limit }) => {
            tracing::warn!(limit, "delivery refused: body too large");
            return (
                format,
                "too_large",
                status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body exceeds {limit} bytes"),
                ),
            );
        }
        Err(BodyError::Read(e)) => {
            tracing::warn!(error = %e, "delivery body could not be read");
            return (
                format,
                "malformed",
                status(StatusCode::BAD_REQUEST, "body could not be read"),
            );
        }
    };
    let auth = ingest.auth.authenticate(headers, query).await;
    if let AuthOutcome::Unavailable(why) = &auth {
        tracing::warn!(reason = %why, "authentication infrastructure unavailable");
        ingest
            .metrics
            .auth_failures
            .get_or_create(&auth_label("unavailable"))
            .inc();
        return (
            format,
            "auth_unavailable",
            unavailable("authentication temporarily unavailable"),
        );
    }
    if !ingest.auth.subscription_allowed(headers) {
        tracing::warn!("delivery from a subscription outside the allow-list");
        return (
            format,
            "forbidden",
            status(StatusCode::FORBIDDEN, "subscription not allowed"),
        );
    }
    let delivery = match parse_delivery(&bytes, headers, ingest.cloud) {
        Ok(d) => d,
        Err(DeliveryError::UnsupportedContentType(ct)) => {
            tracing::warn!(content_type = %truncate(&ct, 100), "delivery refused: unsupported content type");
            return (
                format,
                "unsupported_media_type",
                status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported content type"),
            );
        }
        Err(DeliveryError::Malformed(reason)) => {
            // Only authenticated callers learn why; anonymous garbage gets 401 below first.
            if let AuthOutcome::Denied(d) = &auth {
                return deny(ingest, format, d);
            }
            let excerpt = truncate(&String::from_utf8_lossy(&bytes[..bytes.len().min(256)]), 200);
            tracing::warn!(reason = %reason, excerpt = %excerpt, "malformed delivery refused (Event Grid will not retry)");
            return (
                format,
                "malformed",
                status(StatusCode::BAD_REQUEST, format!("malformed delivery: {reason}")),
            );
        }
    };
    match delivery {
        Delivery::Validation { code, .. } => {
            if let AuthOutcome::Denied(d) = &auth
                && *d != DenyReason::MissingCredentials
            {
                return deny(ingest, format, d);
            }
            tracing::info!("subscription validation handshake answered");
            (
                format,
                "validation",
                (StatusCode::OK, axum::Json(json!({"validationResponse": code}))).into_response(),
            )
        }
        Delivery::Deletion { subscription_id } => {
            if let AuthOutcome::Denied(d) = &auth {
                return deny(ingest, format, d);
            }
            tracing::warn!(
                subscription = subscription_id.as_deref().unwrap_or(""),
                "Event Grid deleted the subscription: no more events will arrive until it is recreated"
            );
            ingest.metrics.subscription_deletions.inc();
            (
                format,
                "deletion",
                (StatusCode::OK, axum::Json(json!({}))).into_response(),
            )
        }
        Delivery::Events(events) => {
            if let AuthOutcome::Denied(d) = &auth {
                return deny(ingest, format, d);
            }
            format = events.format.as_str();
            match ingest.process(events).await {
                EventsOutcome::Applied {
                    report,
                    changes,
                    ignored,
                    rejected,
                } => {
                    let body = json!({
                        "changes": changes, "ignored": ignored, "rejected": rejected,
                        "triggered": report.triggered, "unchanged": report.unchanged,
                        "skipped": report.skipped,
                    });
                    (format, "ok", (StatusCode::OK, axum::Json(body)).into_response())
                }
                EventsOutcome::NotReady(pending) => {
                    tracing::warn!(pending = %pending, "delivery refused until ready (Event Grid will retry)");
                    (format, "not_ready", unavailable("not ready"))
                }
                EventsOutcome::Failed(why) => {
                    tracing::warn!(error = %why, "delivery not applied (Event Grid will retry)");
                    (
                        format,
                        "apply_failed",
                        unavailable("changes could not be applied; retry"),
                    )
                }
            }
        }
    }
}

fn auth_label(reason: &str) -> crate::http::delivery_metrics::AuthLabels {
    crate::http::delivery_metrics::AuthLabels {
        reason: reason.to_string(),
    }
}

fn deny(
    ingest: &Ingest,
    format: &'static str,
    reason: &DenyReason,
) -> (&'static str, &'static str, Response) {
    tracing::warn!(reason = reason.label(), "delivery refused: authentication failed");
    ingest
        .metrics
        .auth_failures
        .get_or_create(&auth_label(reason.label()))
        .inc();
    (
        format,
        "unauthenticated",
        status(StatusCode::UNAUTHORIZED, "authentication required"),
    )
}

/// `OPTIONS /api/eventgrid`: the CloudEvents webhook abuse-protection handshake.
pub async fn options(
    State(ingest): State<Arc<Ingest>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(origin) = headers
        .get("webhook-request-origin")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    else {
        let mut r = StatusCode::OK.into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
        return r;
    };
    if let AuthOutcome::Denied(d) = ingest.auth.authenticate(&headers, query.as_deref()).await
        && d != DenyReason::MissingCredentials
    {
        return deny(&ingest, "cloudevents", &d).2;
    }
    let allowed = ingest
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin));
    if !allowed || !ingest.auth.subscription_allowed(&headers) {
        tracing::warn!(origin = %truncate(origin, 100), "CloudEvents handshake refused: origin not allowed");
        return status(StatusCode::FORBIDDEN, "origin not allowed");
    }
    let Ok(origin_value) = HeaderValue::from_str(origin) else {
        return status(StatusCode::BAD_REQUEST, "invalid origin");
    };
    tracing::info!(origin = %origin, "CloudEvents abuse-protection handshake answered");
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    h.insert("webhook-allowed-origin", origin_value);
    h.insert("webhook-allowed-rate", HeaderValue::from_static("*"));
    h.insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
    r
}
