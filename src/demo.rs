//! `kvsync demo`: the real server, on loopback, over bundled ESO manifests (no cluster) in dry-run
//! mode; it replays bundled Event Grid deliveries through its own HTTP endpoint and prints which
//! ExternalSecrets would be refreshed and why. Then it keeps serving, so you can post your own.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use crate::auth::{AuthArgs, Authenticator};
use crate::config::{DemoArgs, EngineArgs};
use crate::core::decide::{NoNamespaceLabels, plan};
use crate::core::model::{Cloud, ObjectKind, ObjectName, ObjectRef, VaultId};
use crate::http::{self, EVENTGRID_PATH};
use crate::service;

/// The bundled ESO objects.
pub const MANIFESTS: &str = include_str!("../deploy/demo/eso-demo.yaml");

/// The bundled deliveries replayed by the demo: (file, body, headers as JSON object).
pub const SAMPLES: [(&str, &str, &str); 6] = [
    (
        "subscription-validation.json",
        include_str!("../eventgrid/samples/subscription-validation.json"),
        include_str!("../eventgrid/samples/subscription-validation.headers.json"),
    ),
    (
        "eventgrid-secret-new-version.json",
        include_str!("../eventgrid/samples/eventgrid-secret-new-version.json"),
        include_str!("../eventgrid/samples/eventgrid-secret-new-version.headers.json"),
    ),
    (
        "eventgrid-secret-new-version.json (redelivered)",
        include_str!("../eventgrid/samples/eventgrid-secret-new-version.json"),
        include_str!("../eventgrid/samples/eventgrid-secret-new-version.headers.json"),
    ),
    (
        "eventgrid-batch-new-versions.json",
        include_str!("../eventgrid/samples/eventgrid-batch-new-versions.json"),
        "{}",
    ),
    (
        "cloudevents-secret-new-version.json",
        include_str!("../eventgrid/samples/cloudevents-secret-new-version.json"),
        include_str!("../eventgrid/samples/cloudevents-secret-new-version.headers.json"),
    ),
    (
        "eventgrid-storage-blob-created.json",
        include_str!("../eventgrid/samples/eventgrid-storage-blob-created.json"),
        "{}",
    ),
];

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The bundled manifests did not load (a build defect).
    #[error("bundled manifests: {0}")]
    Manifests(String),
    /// The demo settings did not parse (a build defect).
    #[error(transparent)]
    Config(#[from] clap::Error),
    /// Wiring failed.
    #[error(transparent)]
    Service(#[from] service::ServiceError),
    /// Authentication set-up failed.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthConfigError),
    /// The listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Posting a sample to the demo server failed.
    #[error("posting {sample}: {message}")]
    Post {
        /// The sample.
        sample: String,
        /// What failed.
        message: String,
    },
    /// The server stopped with an error.
    #[error(transparent)]
    Serve(#[from] crate::Error),
}

fn demo_key() -> String {
    // A fresh key per run, never printed with a secret-looking name in logs: good enough for a
    // loopback demo (std's RandomState is seeded from the OS).
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    format!("demo-{:016x}", h.finish())
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<(), DemoError> {
    let key = demo_key();
    let auth_args = AuthArgs::for_shared_secret(key.clone());
    let auth = Authenticator::from_args(&auth_args)?;
    let engine_args = EngineArgs::demo()?;
    let service::Service { state, engine } = service::assemble(&engine_args, auth, None)?;
    {
        let mut index = engine
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        crate::kube::manifests::load_str(MANIFESTS, &mut index).map_err(DemoError::Manifests)?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| DemoError::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| DemoError::Listen {
        addr: args.listen,
        source,
    })?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve_on(listener, http::router(state), async move {
        tokio::select! {
            _ = stop_rx => {},
            () = http::shutdown_signal() => {},
        }
    }));

    println!("kvsync demo: server on http://{addr} (dry run: nothing is patched)");
    println!("index: bundled ESO manifests (deploy/demo/eso-demo.yaml)\n");
    let dry = engine.dry_run.clone();
    let client = reqwest::Client::new();
    let mut seen = 0;
    for (name, body, headers) in SAMPLES {
        let url = format!("http://{addr}{EVENTGRID_PATH}");
        let mut req = client
            .post(&url)
            .header("x-kvsync-key", &key)
            .body(body.to_string());
        let headers: HashMap<String, String> = serde_json::from_str(headers).unwrap_or_default();
        let has_ct = headers.keys().any(|k| k.eq_ignore_ascii_case("content-type"));
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if !has_ct {
            req = req.header("content-type", "application/json");
        }
        let resp = req.send().await.map_err(|e| DemoError::Post {
            sample: name.into(),
            message: e.to_string(),
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        println!("▶ {name}: HTTP {status} {text}");
        if let Some(d) = &dry {
            let planned = d.planned();
            for (target, annotation, value) in &planned[seen..] {
                println!("  refresh (dry-run patch): {target} {annotation}={value}");
            }
            let reply: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if planned.len() == seen && reply["changes"].as_u64().unwrap_or(0) > 0 {
                println!(
                    "  nothing to patch: these versions were already applied (Event Grid redelivers; kvsync dedupes)"
                );
            }
            seen = planned.len();
        }
        // Why the other readers are left alone: the same pure plan the server ran.
        if let Ok(crate::eventgrid::Delivery::Events(events)) =
            crate::eventgrid::parse_delivery(body.as_bytes(), &to_header_map(&headers), Cloud::Public)
        {
            let changes = events.changes();
            if !changes.is_empty() {
                let p = {
                    let index = engine
                        .index
                        .read()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    plan(&index, &changes, &NoNamespaceLabels)
                };
                print!("{}", crate::report::skipped_text(&p));
            }
        }
        println!();
    }
    let object = ObjectRef {
        vault: VaultId::from_name("sample-kv", Cloud::Public)
            .map_err(|e| DemoError::Manifests(e.to_string()))?,
        kind: ObjectKind::Secret,
        name: ObjectName::new("db-password"),
    };
    let explanation = {
        let index = engine
            .index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        crate::core::decide::explain(&index, &object, &NoNamespaceLabels)
    };
    println!("kvsync explain --vault sample-kv --name db-password:");
    print!("{}", crate::report::explanation_text(&object, &explanation));
    if args.once {
        let _ = stop_tx.send(());
        let _ = server.await;
        return Ok(());
    }
    println!("\nStill serving on http://{addr} — try:");
    println!(
        "  curl -s -X POST http://{addr}{EVENTGRID_PATH} -H 'x-kvsync-key: {key}' -H 'content-type: application/json' \\"
    );
    println!("       --data @eventgrid/samples/eventgrid-batch-new-versions.json");
    println!(
        "  curl -s 'http://{addr}/api/explain?vault=sample-kv&name=api-cert&kind=certificate' -H 'x-kvsync-key: {key}'"
    );
    println!("Ctrl-C stops.");
    match server.await {
        Ok(r) => r.map_err(DemoError::Serve),
        Err(_) => Ok(()),
    }
}

fn to_header_map(headers: &HashMap<String, String>) -> ::http::HeaderMap {
    let mut map = ::http::HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            ::http::HeaderName::from_bytes(k.as_bytes()),
            ::http::HeaderValue::from_str(v),
        ) {
            map.insert(name, value);
        }
    }
    if !map.contains_key(::http::header::CONTENT_TYPE) {
        map.insert(
            ::http::header::CONTENT_TYPE,
            ::http::HeaderValue::from_static("application/json"),
        );
    }
    map
}
