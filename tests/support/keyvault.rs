//! A Key Vault + Entra ID stand-in for the fallback-reconcile tests: one HTTPS server (rustls, with
//! a certificate from a test CA generated at run time) that serves
//! - the token endpoint `POST /{tenant}/oauth2/v2.0/token` (what `WorkloadIdentityCredential` calls
//!   at the overridden authority host), and
//! - the list endpoints `GET /{vault}/{secrets|certificates|keys}` with `nextLink` paging
//!   (`$skiptoken`), Key Vault's challenge auth (401 + `WWW-Authenticate` without a bearer token),
//!   and injectable failures (429 without `Retry-After`, 5xx).
//!
//! kvsync reaches it through its production code: `--keyvault-url-override
//! {vault}.vault.azure.net=https://127.0.0.1:{port}/{vault}`, `--azure-authority-host`,
//! `--azure-ca-file`, and a federated token file. It serves no endpoint that returns a value.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio_rustls::rustls;

/// One object in a stand-in vault.
#[derive(Clone, Debug)]
pub struct Item {
    /// `secrets`, `certificates` or `keys`.
    pub collection: &'static str,
    pub name: String,
    pub updated: i64,
}

#[derive(Default)]
pub struct Stats {
    pub token_requests: AtomicUsize,
    pub challenges: AtomicUsize,
    pub pages: AtomicUsize,
    pub injected: AtomicUsize,
}

#[derive(Default)]
struct Inner {
    vaults: Mutex<HashMap<String, Vec<Item>>>,
    page_size: AtomicUsize,
    inject: Mutex<VecDeque<u16>>,
    stats: Stats,
}

/// The running stand-in (stops with the test's runtime).
pub struct KeyVaultStandIn {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    inner: Arc<Inner>,
}

impl KeyVaultStandIn {
    /// Starts the server on a free loopback port, with a fresh CA and token file.
    pub async fn start() -> KeyVaultStandIn {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kvsync test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let mut leaf_params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        leaf_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "key vault stand-in");
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("token"), "header.payload.signature").unwrap();

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let inner = Arc::new(Inner {
            page_size: AtomicUsize::new(25),
            ..Inner::default()
        });
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/{vault}/{collection}", get(list))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        KeyVaultStandIn { addr, dir, inner }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("token")
    }

    pub fn authority(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// The override entry sending `vault`'s requests here.
    pub fn override_for(&self, vault: &str) -> String {
        format!(
            "{vault}.vault.azure.net=https://127.0.0.1:{}/{vault}",
            self.addr.port()
        )
    }

    /// Puts (or replaces) an object.
    pub fn put(&self, vault: &str, collection: &'static str, name: &str, updated: i64) {
        let mut vaults = self.inner.vaults.lock().unwrap();
        let items = vaults.entry(vault.to_string()).or_default();
        items.retain(|i| !(i.collection == collection && i.name == name));
        items.push(Item {
            collection,
            name: name.to_string(),
            updated,
        });
    }

    pub fn set_page_size(&self, n: usize) {
        self.inner.page_size.store(n.max(1), Ordering::SeqCst);
    }

    /// The next `n` authenticated list requests get `status` (no Retry-After).
    pub fn inject(&self, status: u16, n: usize) {
        let mut q = self.inner.inject.lock().unwrap();
        q.extend(std::iter::repeat_n(status, n));
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Engine flags pointing kvsync's Key Vault access at this stand-in for `vaults`.
    pub fn flags(&self, vaults: &[&str]) -> Vec<String> {
        let mut f = vec![
            "--azure-client-id".to_string(),
            "00000000-0000-0000-0000-000000000001".to_string(),
            "--azure-tenant-id".to_string(),
            "test-tenant".to_string(),
            "--azure-federated-token-file".to_string(),
            self.token_file().display().to_string(),
            "--azure-authority-host".to_string(),
            self.authority(),
            "--azure-ca-file".to_string(),
            self.ca_file().display().to_string(),
        ];
        for v in vaults {
            f.push("--keyvault-url-override".to_string());
            f.push(self.override_for(v));
        }
        f
    }
}

async fn token(State(inner): State<Arc<Inner>>, Path(_tenant): Path<String>) -> Response {
    inner.stats.token_requests.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({
        "token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": "stand-in-token"
    }))
    .into_response()
}

async fn list(
    State(inner): State<Arc<Inner>>,
    Path((vault, collection)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "Bearer stand-in-token");
    if !authorized {
        inner.stats.challenges.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::UNAUTHORIZED,
            [(
                "www-authenticate",
                "Bearer authorization=\"https://login.microsoftonline.com/test-tenant\", resource=\"https://vault.azure.net\"",
            )],
            axum::Json(json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}})),
        )
            .into_response();
    }
    if let Some(status) = inner.inject.lock().unwrap().pop_front() {
        inner.stats.injected.fetch_add(1, Ordering::SeqCst);
        let code = StatusCode::from_u16(status).unwrap();
        let body = if status == 429 {
            json!({"error": {"code": "Throttled", "message": "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}})
        } else {
            json!({"error": {"code": "InternalServerError", "message": "stand-in failure"}})
        };
        return (code, axum::Json(body)).into_response();
    }
    let coll: &str = collection.as_str();
    let mut items: Vec<Item> = inner
        .vaults
        .lock()
        .unwrap()
        .get(&vault)
        .map(|v| v.iter().filter(|i| i.collection == coll).cloned().collect())
        .unwrap_or_default();
    items.sort_by(|a, b| a.name.cmp(&b.name));
    let size = inner.page_size.load(Ordering::SeqCst);
    let skip: usize = query.get("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
    let page: Vec<serde_json::Value> = items
        .iter()
        .skip(skip)
        .take(size)
        .map(|i| {
            let id = format!("https://{vault}.vault.azure.net/{coll}/{}", i.name);
            let attributes = json!({"enabled": true, "created": i.updated - 100, "updated": i.updated, "recoveryLevel": "Recoverable"});
            match coll {
                "keys" => json!({"kid": id, "attributes": attributes}),
                "certificates" => json!({"id": id, "x5t": "AAAA", "attributes": attributes}),
                _ => json!({"id": id, "contentType": "text/plain", "attributes": attributes}),
            }
        })
        .collect();
    inner.stats.pages.fetch_add(1, Ordering::SeqCst);
    let next = skip + size;
    let next_link = (next < items.len()).then(|| {
        format!(
            "https://{vault}.vault.azure.net:443/{coll}?api-version=7.5&$skiptoken={next}&maxresults={size}"
        )
    });
    axum::Json(json!({"value": page, "nextLink": next_link})).into_response()
}
