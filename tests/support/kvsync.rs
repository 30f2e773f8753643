//! Runs kvsync in-process with the production wiring (`kvsync::service`) against a test API server,
//! and posts deliveries to its router.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use kvsync::auth::{AuthArgs, Authenticator};
use kvsync::config::EngineArgs;
use kvsync::http::router;
use kvsync::metrics::Metrics;
use kvsync::readiness::Readiness;
use kvsync::service::{self, Engine};
use tower::ServiceExt;

/// A running kvsync.
pub struct Kvsync {
    pub app: axum::Router,
    pub engine: Engine,
    pub readiness: Readiness,
    pub metrics: Arc<Metrics>,
}

/// Starts kvsync on `client` with extra engine flags (unauthenticated deliveries).
pub fn start(client: kube::Client, flags: &[&str]) -> Kvsync {
    let mut all = vec![
        "--patch-rate",
        "2000",
        "--patch-burst",
        "2000",
        "--coalesce-window",
        "200ms",
        "--watch-namespaces",
        "false",
    ];
    all.extend_from_slice(flags);
    let args = EngineArgs::from_flags(&all).expect("engine flags");
    let auth = Authenticator::from_args(&AuthArgs::insecure()).expect("auth");
    let service::Service { state, engine } = service::assemble(&args, auth, Some(client)).expect("engine");
    let (readiness, metrics) = (state.readiness.clone(), state.metrics.clone());
    Kvsync {
        app: router(state),
        engine,
        readiness,
        metrics,
    }
}

impl Kvsync {
    /// Waits until every watch has listed.
    pub async fn ready(&self) {
        let r = self.readiness.clone();
        super::wait_until(Duration::from_secs(30), "kvsync ready", || {
            let r = r.clone();
            async move { r.is_ready() }
        })
        .await;
    }

    /// Waits until the index holds `n` ExternalSecrets.
    pub async fn indexed(&self, n: usize) {
        let index = self.engine.index.clone();
        super::wait_until(
            Duration::from_secs(30),
            &format!("{n} ExternalSecrets indexed"),
            || {
                let index = index.clone();
                async move { index.read().unwrap().external_secret_keys().len() >= n }
            },
        )
        .await;
    }

    /// POSTs a delivery (Event Grid schema unless headers say otherwise).
    pub async fn post(&self, body: &str, headers: &[(&str, &str)]) -> (StatusCode, serde_json::Value) {
        let mut req = Request::post("/api/eventgrid");
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// GETs a path.
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let resp = self
            .app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// An Event Grid delivery of one SecretNewVersionCreated (or other type) event.
pub fn event(vault: &str, kind: &str, name: &str, version: &str) -> serde_json::Value {
    let (ty, coll) = match kind {
        "secret" => ("Microsoft.KeyVault.SecretNewVersionCreated", "secrets"),
        "certificate" => ("Microsoft.KeyVault.CertificateNewVersionCreated", "certificates"),
        "key" => ("Microsoft.KeyVault.KeyNewVersionCreated", "keys"),
        other => panic!("kind {other}"),
    };
    serde_json::json!({
        "id": format!("{vault}-{name}-{version}"),
        "topic": format!("/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{vault}"),
        "subject": name,
        "eventType": ty,
        "eventTime": "2026-11-28T10:00:00.0000000Z",
        "data": {
            "Id": format!("https://{vault}.vault.azure.net/{coll}/{name}/{version}"),
            "VaultName": vault, "ObjectType": "Secret", "ObjectName": name, "Version": version,
            "NBF": null, "EXP": null
        },
        "dataVersion": "1", "metadataVersion": "1"
    })
}

/// A batch body from events.
pub fn batch(events: &[serde_json::Value]) -> String {
    serde_json::Value::Array(events.to_vec()).to_string()
}
