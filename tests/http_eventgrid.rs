//! The Event Grid front door over HTTP: every status code Event Grid's retry rules depend on,
//! both handshakes, the Functions custom-handler contract, and every bundled sample.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use futures::stream;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use kvsync::apply::RecordingApply;
use kvsync::auth::{AuthArgs, Authenticator};
use kvsync::config::EngineArgs;
use kvsync::core::decide::NoNamespaceLabels;
use kvsync::core::index::Index;
use kvsync::http::explain::ExplainState;
use kvsync::http::{AppState, functions_router, router};
use kvsync::metrics::Metrics;
use kvsync::readiness::Readiness;
use kvsync::service;
use serde_json::{Value, json};
use tower::ServiceExt;

const KEY: &str = "s3cret-key-for-tests";

struct Front {
    app: axum::Router,
    functions: axum::Router,
    apply: RecordingApply,
    readiness: Readiness,
    metrics: Arc<Metrics>,
}

fn front_with(auth: AuthArgs, flags: &[&str]) -> Front {
    let args = EngineArgs::from_flags(flags).unwrap();
    let auth = Authenticator::from_args(&auth).unwrap();
    let apply = RecordingApply::default();
    let mut metrics = Metrics::new();
    let readiness = Readiness::default();
    let ingest = service::ingest(
        &args,
        auth.clone(),
        Arc::new(apply.clone()),
        readiness.clone(),
        &mut metrics,
    );
    let mut index = Index::default();
    kvsync::kube::manifests::load_str(kvsync::demo::MANIFESTS, &mut index).unwrap();
    let explain = ExplainState {
        index: Arc::new(RwLock::new(index)),
        namespaces: Arc::new(NoNamespaceLabels),
        cloud: args.cloud,
        auth,
    };
    let metrics = Arc::new(metrics);
    let state = AppState {
        metrics: metrics.clone(),
        readiness: readiness.clone(),
        ingest: Arc::new(ingest),
        explain: Arc::new(explain),
    };
    Front {
        app: router(state.clone()),
        functions: functions_router(state),
        apply,
        readiness,
        metrics,
    }
}

fn front() -> Front {
    front_with(AuthArgs::for_shared_secret(KEY.into()), &[])
}

const SECRET_EVENT: &str = include_str!("../eventgrid/samples/eventgrid-secret-new-version.json");
const VALIDATION: &str = include_str!("../eventgrid/samples/subscription-validation.json");

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(body: impl Into<Body>) -> http::request::Builder {
    let _ = body;
    Request::post("/api/eventgrid").header("content-type", "application/json")
}

fn delivery(body: &str) -> Request<Body> {
    post(())
        .header("x-kvsync-key", KEY)
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// An authenticated Key Vault event is applied and answered 200.
#[tokio::test]
async fn an_authenticated_event_is_applied_and_acknowledged() {
    let f = front();
    let (status, _, body) = send(&f.app, delivery(SECRET_EVENT)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changes"], 1);
    let calls = f.apply.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0[0].object.name.as_str(), "db-password");
}

/// The shared secret is also accepted as the `code` query parameter.
#[tokio::test]
async fn the_code_query_parameter_authenticates() {
    let f = front();
    let req = Request::post(format!("/api/eventgrid?code={KEY}"))
        .header("content-type", "application/json")
        .body(Body::from(SECRET_EVENT))
        .unwrap();
    assert_eq!(send(&f.app, req).await.0, StatusCode::OK);
}

/// Missing or wrong credentials get 401 and nothing is applied.
#[tokio::test]
async fn unauthenticated_deliveries_get_401() {
    let f = front();
    let missing = post(()).body(Body::from(SECRET_EVENT)).unwrap();
    assert_eq!(send(&f.app, missing).await.0, StatusCode::UNAUTHORIZED);
    let wrong = post(())
        .header("x-kvsync-key", "nope")
        .body(Body::from(SECRET_EVENT))
        .unwrap();
    assert_eq!(send(&f.app, wrong).await.0, StatusCode::UNAUTHORIZED);
    assert!(f.apply.calls().is_empty());
    assert!(
        f.metrics
            .render()
            .contains("kvsync_auth_failures_total{reason=\"missing_credentials\"} 1")
    );
}

/// The validation handshake echoes the code (even without credentials), and applies nothing.
#[tokio::test]
async fn validation_handshake_echoes_the_code() {
    let f = front();
    let req = post(())
        .header("aeg-event-type", "SubscriptionValidation")
        .body(Body::from(VALIDATION))
        .unwrap();
    let (status, _, body) = send(&f.app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
    );
    assert!(f.apply.calls().is_empty());
    // Wrong credentials are refused even on the handshake.
    let req = post(())
        .header("x-kvsync-key", "wrong")
        .body(Body::from(VALIDATION))
        .unwrap();
    assert_eq!(send(&f.app, req).await.0, StatusCode::UNAUTHORIZED);
}

/// A handshake cannot smuggle events in: a validation header on a body of Key Vault events without
/// credentials is refused.
#[tokio::test]
async fn a_validation_header_does_not_let_events_in() {
    let f = front();
    let req = post(())
        .header("aeg-event-type", "SubscriptionValidation")
        .body(Body::from(SECRET_EVENT))
        .unwrap();
    let (status, _, _) = send(&f.app, req).await;
    assert_ne!(status, StatusCode::OK);
    assert!(f.apply.calls().is_empty());
}

/// SubscriptionDeletion is acknowledged and counted.
#[tokio::test]
async fn subscription_deletion_is_acknowledged_and_counted() {
    let f = front();
    let body = include_str!("../eventgrid/samples/subscription-deleted.json");
    let req = post(())
        .header("x-kvsync-key", KEY)
        .header("aeg-event-type", "SubscriptionDeletion")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(send(&f.app, req).await.0, StatusCode::OK);
    assert!(
        f.metrics
            .render()
            .contains("kvsync_subscription_deletions_total 1")
    );
}

/// Malformed JSON gets 400 (Event Grid does not retry it).
#[tokio::test]
async fn malformed_deliveries_get_400() {
    let f = front();
    for body in ["{", "[1,2,3]", "\"text\"", "[{\"eventType\": 5}]"] {
        let (status, _, _) = send(&f.app, delivery(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    assert!(f.apply.calls().is_empty());
}

/// Over the body limit is 413, by declared length and while streaming a body of unknown length.
#[tokio::test]
async fn oversized_bodies_get_413() {
    let f = front_with(AuthArgs::for_shared_secret(KEY.into()), &["--body-limit", "1024"]);
    let big = "x".repeat(2048);
    let (status, _, _) = send(&f.app, delivery(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A streamed body (no Content-Length) that never ends is cut off at the limit.
    let chunks = stream::iter(
        (0..1_000_000).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from_static(&[b' '; 512]))),
    );
    let req = post(())
        .header("x-kvsync-key", KEY)
        .body(Body::from_stream(chunks))
        .unwrap();
    let (status, _, _) = tokio::time::timeout(Duration::from_secs(10), send(&f.app, req))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// An unsupported content type is 415.
#[tokio::test]
async fn unsupported_content_types_get_415() {
    let f = front();
    let req = Request::post("/api/eventgrid")
        .header("content-type", "application/xml")
        .header("x-kvsync-key", KEY)
        .body(Body::from("<x/>"))
        .unwrap();
    assert_eq!(send(&f.app, req).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// Before readiness, deliveries get 503 with Retry-After; handshakes still work.
#[tokio::test]
async fn not_ready_means_503_with_retry_after() {
    let f = front();
    let _gate = f.readiness.gate("externalsecrets");
    let (status, headers, _) = send(&f.app, delivery(SECRET_EVENT)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
    let req = post(())
        .header("aeg-event-type", "SubscriptionValidation")
        .body(Body::from(VALIDATION))
        .unwrap();
    assert_eq!(send(&f.app, req).await.0, StatusCode::OK);
}

/// A transient failure of the apply step is 503 (Event Grid redelivers), never 200.
#[tokio::test]
async fn a_failed_apply_is_503() {
    let f = front();
    f.apply.fail_transiently(true);
    let (status, headers, _) = send(&f.app, delivery(SECRET_EVENT)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
}

/// Entra ID configured but its metadata endpoint unreachable: 503, never 401.
#[tokio::test]
async fn unreachable_jwks_is_503_not_401() {
    let auth = AuthArgs::for_entra(
        "00000000-0000-0000-0000-000000000001",
        "api://kvsync",
        "http://127.0.0.1:9/openid-configuration",
    );
    let f = front_with(auth, &[]);
    let req = post(())
        .header(
            "authorization",
            "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJhdWQiOiJ4In0.c2ln",
        )
        .body(Body::from(SECRET_EVENT))
        .unwrap();
    assert_eq!(send(&f.app, req).await.0, StatusCode::SERVICE_UNAVAILABLE);
}

/// A subscription outside the allow-list is refused with 403.
#[tokio::test]
async fn subscriptions_outside_the_allow_list_get_403() {
    let mut auth = AuthArgs::for_shared_secret(KEY.into());
    auth.allowed_subscriptions = vec!["kvsync-prod".into()];
    let f = front_with(auth, &[]);
    let req = post(())
        .header("x-kvsync-key", KEY)
        .header("aeg-subscription-name", "OTHER")
        .body(Body::from(SECRET_EVENT))
        .unwrap();
    assert_eq!(send(&f.app, req).await.0, StatusCode::FORBIDDEN);
    let req = post(())
        .header("x-kvsync-key", KEY)
        .header("aeg-subscription-name", "KVSYNC-PROD")
        .body(Body::from(SECRET_EVENT))
        .unwrap();
    assert_eq!(send(&f.app, req).await.0, StatusCode::OK);
}

/// Events from vaults outside the source allow-list are acknowledged, not applied.
#[tokio::test]
async fn events_from_other_vaults_are_not_applied() {
    let mut auth = AuthArgs::for_shared_secret(KEY.into());
    auth.allowed_sources =
        vec!["/subscriptions/x/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/allowed".into()];
    let f = front_with(auth, &[]);
    let (status, _, body) = send(&f.app, delivery(SECRET_EVENT)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["changes"], 0);
    assert!(f.apply.calls().is_empty());
}

/// The CloudEvents abuse-protection handshake grants allowed origins only.
#[tokio::test]
async fn cloudevents_options_handshake() {
    let f = front();
    let req = Request::options("/api/eventgrid")
        .header("webhook-request-origin", "eventgrid.azure.net")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&f.app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["webhook-allowed-origin"], "eventgrid.azure.net");
    assert_eq!(headers["webhook-allowed-rate"], "*");
    let req = Request::options("/api/eventgrid")
        .header("webhook-request-origin", "evil.example.com")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&f.app, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!headers.contains_key("webhook-allowed-origin"));
}

/// Every bundled sample gets its expected status, and the metrics count formats and outcomes.
#[tokio::test]
async fn every_sample_gets_its_expected_status() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("eventgrid/samples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json")
            || name.ends_with(".headers.json")
            || name.ends_with(".response.json")
            || name.starts_with("functions-")
        {
            continue;
        }
        let f = front();
        let body = std::fs::read_to_string(&path).unwrap();
        let headers_path = path.with_file_name(name.replace(".json", ".headers.json"));
        let mut req = Request::post("/api/eventgrid").header("x-kvsync-key", KEY);
        let mut has_ct = false;
        if let Ok(h) = std::fs::read_to_string(&headers_path) {
            let h: serde_json::Map<String, Value> = serde_json::from_str(&h).unwrap();
            for (k, v) in h {
                has_ct |= k.eq_ignore_ascii_case("content-type");
                req = req.header(k, v.as_str().unwrap());
            }
        }
        if !has_ct {
            req = req.header("content-type", "application/json");
        }
        let (status, _, resp) = send(&f.app, req.body(Body::from(body)).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{name}: {resp}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} samples");
}

/// Functions mode: the event under `Data.eventGridEvent` (object or JSON string) is applied and the
/// answer is the custom-handler JSON envelope.
#[tokio::test]
async fn functions_invocations_are_applied() {
    let f = front();
    for sample in [
        include_str!("../eventgrid/samples/functions-request-object.json"),
        include_str!("../eventgrid/samples/functions-request-string.json"),
        include_str!("../eventgrid/samples/functions-request-cloudevent.json"),
    ] {
        let req = Request::post("/KeyVaultEvents")
            .header("content-type", "application/json")
            .body(Body::from(sample))
            .unwrap();
        let (status, _, body) = send(&f.functions, req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["Outputs"], json!({}));
        assert!(body["Logs"].is_array());
        assert!(body.get("ReturnValue").is_some());
    }
    assert_eq!(f.apply.calls().len(), 3);
    let (status, _, _) = send(&f.functions, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

/// Functions mode: a transient failure is 500 (the host fails the invocation and Event Grid
/// redelivers); an unusable event is 200 with the reason logged (a retry cannot fix it).
#[tokio::test]
async fn functions_failures_map_to_the_host_contract() {
    let f = front();
    f.apply.fail_transiently(true);
    let sample = include_str!("../eventgrid/samples/functions-request-object.json");
    let req = Request::post("/KeyVaultEvents")
        .header("content-type", "application/json")
        .body(Body::from(sample))
        .unwrap();
    let (status, _, body) = send(&f.functions, req).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["Logs"].is_array());
    let req = Request::post("/KeyVaultEvents")
        .header("content-type", "application/json")
        .body(Body::from("{\"Data\":{}}"))
        .unwrap();
    let (status, _, body) = send(&f.functions, req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["Logs"][0].as_str().unwrap().contains("dropped"));
}

/// The function and binding names in `functions/` are the ones the code serves.
#[test]
fn functions_config_matches_the_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("functions");
    let host: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("host.json")).unwrap()).unwrap();
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        "kvsync"
    );
    assert_eq!(
        host["customHandler"]["description"]["arguments"],
        json!(["functions"])
    );
    let name = kvsync::http::functions_invoke::FUNCTION_NAME;
    let function: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(name).join("function.json")).unwrap())
            .unwrap();
    let binding = &function["bindings"][0];
    assert_eq!(binding["type"], "eventGridTrigger");
    assert_eq!(binding["direction"], "in");
    assert_eq!(binding["name"], kvsync::http::functions_invoke::BINDING_NAME);
}

/// `/api/explain` is authenticated like deliveries and answers from the index.
#[tokio::test]
async fn explain_endpoint_is_authenticated_and_answers_from_the_index() {
    let f = front();
    let path = "/api/explain?vault=sample-kv&name=db-password&kind=secret";
    let (status, _, _) = send(&f.app, Request::get(path).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = send(
        &f.app,
        Request::get(path)
            .header("x-kvsync-key", KEY)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["vault"], "sample-kv.vault.azure.net");
    let refreshed: Vec<&str> = body["refreshed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["externalSecret"].as_str().unwrap())
        .collect();
    assert!(refreshed.contains(&"payments/db-credentials"), "{body}");
    let skipped: Vec<&str> = body["notRefreshed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["reasonCode"].as_str().unwrap())
        .collect();
    assert!(
        skipped.contains(&"pinned_version") && skipped.contains(&"created_once"),
        "{body}"
    );
    let (status, _, _) = send(
        &f.app,
        Request::get("/api/explain?vault=sample-kv")
            .header("x-kvsync-key", KEY)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
