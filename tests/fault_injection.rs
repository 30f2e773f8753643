//! Fault injection against the real test API server (apiextensions-apiserver + etcd): outages,
//! etcd compaction under a resuming watch, kvsync killed with SIGKILL mid-batch, duplicated and
//! reordered deliveries, and a stalled API server. The rule checked throughout: a delivery answered
//! 200 was applied, a delivery that was not applied is answered 503 (so Event Grid redelivers), and
//! redelivering it later refreshes every affected ExternalSecret: nothing is lost.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube::core::DynamicObject;
use serde_json::{Value, json};
use support::kvsync::{self, batch, event};
use support::{ApiServer, EsoVersions, eso_api, wait_until};
use tower::ServiceExt;

const FORCE_SYNC: &str = "external-secrets.io/force-sync";

async fn create(client: &kube::Client, ns: &str, v: Value) {
    let kind = v["kind"].as_str().unwrap().to_string();
    let obj: DynamicObject = serde_json::from_value(v).unwrap();
    eso_api(client, &kind, "v1", Some(ns))
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

async fn store(client: &kube::Client, ns: &str, vault: &str) {
    create(client, ns, json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "kv"},
        "spec": {"provider": {"azurekv": {"authType": "WorkloadIdentity", "vaultUrl": format!("https://{vault}.vault.azure.net"),
                 "serviceAccountRef": {"name": "sa"}}}},
    })).await;
}

async fn es(client: &kube::Client, ns: &str, name: &str, key: &str) {
    create(
        client,
        ns,
        json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": name},
            "spec": {"secretStoreRef": {"kind": "SecretStore", "name": "kv"}, "target": {"name": name},
                     "data": [{"secretKey": "k", "remoteRef": {"key": key}}]},
        }),
    )
    .await;
}

/// The trigger annotation of an ExternalSecret, if any.
async fn annotation(client: &kube::Client, ns: &str, name: &str) -> Option<String> {
    eso_api(client, "ExternalSecret", "v1", Some(ns))
        .get(name)
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default()
        .get(FORCE_SYNC)
        .cloned()
}

/// POSTs a delivery to an in-process router (unauthenticated kvsync).
async fn post(app: &axum::Router, body: String) -> (StatusCode, Value) {
    let req = Request::post("/api/eventgrid")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn healthz(app: &axum::Router) -> StatusCode {
    let req = Request::get("/healthz").body(Body::empty()).unwrap();
    app.clone().oneshot(req).await.unwrap().status()
}

/// Redelivers like Event Grid: until 200, at most `attempts` times, 503 in between.
async fn redeliver(app: &axum::Router, body: &str, attempts: usize) -> Value {
    for _ in 0..attempts {
        let (status, resp) = post(app, body.to_string()).await;
        match status {
            StatusCode::OK => return resp,
            StatusCode::SERVICE_UNAVAILABLE => tokio::time::sleep(Duration::from_millis(500)).await,
            other => panic!("redelivery answered {other}: {resp}"),
        }
    }
    panic!("redelivery not accepted after {attempts} attempts");
}

fn server_dir(server: &ApiServer) -> PathBuf {
    server.kubeconfig().parent().unwrap().to_path_buf()
}

/// Waits until `ExternalSecret` collections answer again after a restart.
async fn serving(server: &ApiServer, ns: &str) -> kube::Client {
    let client = server.client().await;
    let c = client.clone();
    let ns = ns.to_string();
    wait_until(Duration::from_secs(60), "API server serves again", || {
        let (c, ns) = (c.clone(), ns.clone());
        async move {
            eso_api(&c, "ExternalSecret", "v1", Some(&ns))
                .list(&Default::default())
                .await
                .is_ok()
        }
    })
    .await;
    client
}

// === 1. API server stopped mid-flood ===

/// The API server stops in the middle of a flood of deliveries: every delivery is answered 200 or
/// 503 (never anything Event Grid drops), each 200 was applied, and redelivering the 503s after
/// the restart refreshes every affected ExternalSecret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_during_an_api_server_outage_get_503_and_redelivery_refreshes_all() {
    const N: usize = 24;
    let server = ApiServer::start(EsoVersions::Both);
    let client = server.client().await;
    let ns = "flood";
    store(&client, ns, "flood-kv").await;
    for i in 0..N {
        es(&client, ns, &format!("es-{i:02}"), &format!("key-{i:02}")).await;
    }
    let k = kvsync::start(client.clone(), &["--delivery-timeout", "3s"]);
    k.ready().await;
    k.indexed(N).await;

    let bodies: Vec<String> = (0..N)
        .map(|i| batch(&[event("flood-kv", "secret", &format!("key-{i:02}"), "v1")]))
        .collect();
    // The flood: four deliveries in flight at a time, in the background.
    let app = k.app.clone();
    let flood_bodies = bodies.clone();
    let flood = tokio::spawn(async move {
        futures::stream::iter(flood_bodies.into_iter().enumerate())
            .map(|(i, body)| {
                let app = app.clone();
                async move { (i, post(&app, body).await) }
            })
            .buffer_unordered(4)
            .collect::<Vec<_>>()
            .await
    });
    // Stop the API server once the flood is under way (some deliveries acknowledged).
    wait_until(Duration::from_secs(30), "first patches", || {
        let client = client.clone();
        async move {
            let list = eso_api(&client, "ExternalSecret", "v1", Some("flood"))
                .list(&Default::default())
                .await
                .unwrap();
            list.items
                .iter()
                .filter(|o| {
                    o.metadata
                        .annotations
                        .as_ref()
                        .is_some_and(|a| a.contains_key(FORCE_SYNC))
                })
                .count()
                >= 3
        }
    })
    .await;
    server.stop_apiserver();
    let results = flood.await.unwrap();
    assert_eq!(healthz(&k.app).await, StatusCode::OK, "healthy during the outage");

    let mut acked = BTreeSet::new();
    let mut refused = BTreeSet::new();
    for (i, (status, body)) in results {
        match status {
            StatusCode::OK => {
                acked.insert(i);
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                refused.insert(i);
            }
            other => panic!("delivery {i} answered {other} during the outage: {body}"),
        }
    }
    assert!(!refused.is_empty(), "the outage refused nothing: {acked:?}");
    // While the server is down, nothing can be applied: an immediate redelivery is 503 again.
    let first_refused = *refused.iter().next().unwrap();
    let (status, _) = post(&k.app, bodies[first_refused].clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    server.restart_apiserver();
    let client = serving(&server, ns).await;
    // Every acknowledged delivery was applied before it was acknowledged.
    for i in &acked {
        assert!(
            annotation(&client, ns, &format!("es-{i:02}")).await.is_some(),
            "delivery {i} was answered 200 but es-{i:02} was not patched"
        );
    }
    // Event Grid redelivers the refused ones; each is applied.
    for i in &refused {
        redeliver(&k.app, &bodies[*i], 60).await;
    }
    for i in 0..N {
        assert!(
            annotation(&client, ns, &format!("es-{i:02}")).await.is_some(),
            "es-{i:02} never refreshed"
        );
    }
    eprintln!(
        "outage: {} deliveries acknowledged before the stop, {} refused (503) and redelivered",
        acked.len(),
        refused.len()
    );
}

// === 2. etcd compaction: 410 Gone on watch resume ===

/// A small client of etcd's v3 JSON gateway.
struct Etcd {
    base: String,
    http: reqwest::Client,
}

impl Etcd {
    fn of(server: &ApiServer) -> Etcd {
        let ports = std::fs::read_to_string(server_dir(server).join("ports")).unwrap();
        let ep = ports
            .lines()
            .find_map(|l| l.strip_prefix("EP="))
            .expect("EP in ports")
            .trim()
            .to_string();
        Etcd {
            base: format!("http://127.0.0.1:{ep}"),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "etcd {path}: {status} {v}");
        v
    }

    /// Keys under `prefix`.
    async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().unwrap() += 1;
        let v = self
            .call(
                "/v3/kv/range",
                json!({"key": B64.encode(prefix), "range_end": B64.encode(&end), "keys_only": true}),
            )
            .await;
        v["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| String::from_utf8(B64.decode(kv["key"].as_str().unwrap()).unwrap()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn delete(&self, key: &str) {
        let v = self
            .call("/v3/kv/deleterange", json!({"key": B64.encode(key)}))
            .await;
        assert_eq!(v["deleted"], "1", "{key}: {v}");
    }

    /// Writes a key; returns the store revision after the write.
    async fn put(&self, key: &str, value: &str) -> i64 {
        let v = self
            .call(
                "/v3/kv/put",
                json!({"key": B64.encode(key), "value": B64.encode(value)}),
            )
            .await;
        v["header"]["revision"].as_str().unwrap().parse().unwrap()
    }

    async fn compact(&self, revision: i64) {
        self.call(
            "/v3/kv/compaction",
            json!({"revision": revision.to_string(), "physical": true}),
        )
        .await;
    }
}

/// ExternalSecrets deleted while kvsync's watches are cut off, followed by many writes and an etcd
/// compaction past kvsync's last resourceVersion: the resumed watch gets 410 Gone, relists, and
/// the index holds exactly what exists (no stale entry, so no patch for a deleted object).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_watch_resume_relists_and_drops_objects_deleted_during_the_outage() {
    let server = ApiServer::start(EsoVersions::Both);
    let client = server.client().await;
    let ns = "compact";
    store(&client, ns, "compact-kv").await;
    es(&client, ns, "keep", "kept-key").await;
    for i in 0..5 {
        es(&client, ns, &format!("doomed-{i}"), "doomed-key").await;
    }
    let k = kvsync::start(client.clone(), &[]);
    k.ready().await;
    k.indexed(6).await;
    let relists_before = relists(&k.metrics.render());

    // Outage: the API server is down; the objects disappear behind its back, etcd moves on and
    // compacts away every revision kvsync's watches could resume from.
    server.stop_apiserver();
    let etcd = Etcd::of(&server);
    let doomed: Vec<String> = etcd
        .keys("/registry/")
        .await
        .into_iter()
        .filter(|k| k.contains("externalsecrets/compact/doomed-"))
        .collect();
    assert_eq!(doomed.len(), 5, "{doomed:?}");
    for key in &doomed {
        etcd.delete(key).await;
    }
    let mut revision = 0;
    for i in 0..300 {
        revision = etcd.put("/kvsync-fault/filler", &i.to_string()).await;
    }
    etcd.compact(revision).await;
    server.restart_apiserver();
    let _ = serving(&server, ns).await;

    let index = k.engine.index.clone();
    wait_until(Duration::from_secs(90), "index drops the deleted objects", || {
        let index = index.clone();
        async move {
            let keys: Vec<String> = index
                .read()
                .unwrap()
                .external_secret_keys()
                .iter()
                .map(|e| e.name.to_string())
                .collect();
            keys == ["keep"]
        }
    })
    .await;
    let metrics = k.metrics.render();
    assert!(
        relists(&metrics) > relists_before,
        "the watch did not relist:\n{metrics}"
    );
    let (status, body) = post(
        &k.app,
        batch(&[event("compact-kv", "secret", "doomed-key", "v1")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["triggered"], 0, "a deleted object was patched: {body}");
    let (status, body) = post(&k.app, batch(&[event("compact-kv", "secret", "kept-key", "v1")])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["triggered"], 1, "{body}");
}

/// `kvsync_watch_events_total{resource="externalsecrets",event="relist"}`.
fn relists(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("kvsync_watch_events_total")
                && l.contains("resource=\"externalsecrets\"")
                && l.contains("event=\"relist\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

// === 3. SIGKILL mid-batch ===

/// A kvsync process (the real binary) serving on a free loopback port.
struct Process {
    child: std::process::Child,
    base: String,
}

impl Process {
    async fn start(kubeconfig: &Path, ns: &str, log: &Path) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_kvsync"))
            .args([
                "serve",
                "--insecure-no-auth",
                "--listen",
                &listen,
                "--namespace",
                ns,
                "--watch-namespaces",
                "false",
                // Slow patching, so a batch is still in progress when the process is killed.
                "--patch-rate",
                "3",
                "--patch-burst",
                "1",
                "--coalesce-window",
                "100ms",
                "--delivery-timeout",
                "25s",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KVSYNC_NAMESPACES")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let p = Process {
            child,
            base: format!("http://{listen}"),
        };
        let http = reqwest::Client::new();
        let url = format!("{}/readyz", p.base);
        wait_until(Duration::from_secs(60), "kvsync process ready", || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) }
        })
        .await;
        p
    }

    fn kill(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real binary, killed with SIGKILL while a 20-event batch and ten single deliveries are being
/// applied: no delivery was answered 200 unless every ExternalSecret it affects was patched, and
/// after a restart the unanswered deliveries (which Event Grid would redeliver) refresh the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_never_acknowledges_an_unapplied_change() {
    const N: usize = 30;
    let client = support::client().await;
    let ns = support::namespace("fault-kill");
    store(&client, &ns, "kill-kv").await;
    for i in 0..N {
        es(&client, &ns, &format!("es-{i:02}"), &format!("key-{i:02}")).await;
    }
    let log_dir = tempfile::tempdir().unwrap();
    let kubeconfig = support::shared().kubeconfig().to_path_buf();
    let mut process = Process::start(&kubeconfig, &ns, &log_dir.path().join("kvsync-1.log")).await;

    let ev = |i: usize| event("kill-kv", "secret", &format!("key-{i:02}"), "v1");
    // Delivery 0: one batch for es-00..19; deliveries 1..=10: one event each for es-20..29.
    let mut deliveries: Vec<(String, Vec<usize>)> =
        vec![(batch(&(0..20).map(ev).collect::<Vec<_>>()), (0..20).collect())];
    for i in 20..N {
        deliveries.push((batch(&[ev(i)]), vec![i]));
    }
    let http = reqwest::Client::new();
    let url = format!("{}/api/eventgrid", process.base);
    let mut tasks = Vec::new();
    for (body, _) in &deliveries {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            http.post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        }));
    }
    let c = client.clone();
    let ns2 = ns.clone();
    wait_until(Duration::from_secs(30), "patching under way", || {
        let (c, ns) = (c.clone(), ns2.clone());
        async move { annotated(&c, &ns).await.len() >= 3 }
    })
    .await;
    process.kill();
    let mut answered = Vec::new();
    for t in tasks {
        answered.push(t.await.unwrap());
    }
    let patched = annotated(&client, &ns).await;
    let mut unanswered = Vec::new();
    for ((_, targets), result) in deliveries.iter().zip(&answered) {
        match result {
            Ok(200) => {
                for i in targets {
                    assert!(
                        patched.contains(&format!("es-{i:02}")),
                        "answered 200, but es-{i:02} was not patched"
                    );
                }
            }
            Ok(other) => panic!("unexpected status {other}"),
            Err(_) => unanswered.push(targets.clone()),
        }
    }
    assert!(
        answered[0].is_err(),
        "the 20-event batch finished before the kill: {:?}",
        answered[0]
    );

    // Event Grid redelivers what was not acknowledged, to a restarted kvsync.
    let process2 = Process::start(&kubeconfig, &ns, &log_dir.path().join("kvsync-2.log")).await;
    let url = format!("{}/api/eventgrid", process2.base);
    for ((body, _), result) in deliveries.iter().zip(&answered) {
        if result.is_ok() {
            continue;
        }
        let mut ok = false;
        for _ in 0..30 {
            let r = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            if r.status() == reqwest::StatusCode::OK {
                ok = true;
                break;
            }
            assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(ok, "redelivery never accepted");
    }
    let patched = annotated(&client, &ns).await;
    assert_eq!(
        patched.len(),
        N,
        "not every ExternalSecret was refreshed: {patched:?}"
    );
    eprintln!(
        "sigkill: {} of {} deliveries unanswered at the kill, all redelivered",
        unanswered.len(),
        deliveries.len()
    );
    drop(process2);
}

/// Names of the ExternalSecrets in `ns` that carry the trigger annotation.
async fn annotated(client: &kube::Client, ns: &str) -> BTreeSet<String> {
    eso_api(client, "ExternalSecret", "v1", Some(ns))
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|o| {
            o.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(FORCE_SYNC))
        })
        .filter_map(|o| o.metadata.name)
        .collect()
}

// === 4. Duplicates and reordering ===

/// Every version delivered three times, versions out of order, and a round of three concurrent
/// copies: each ExternalSecret is patched exactly once per version (counted as MODIFIED events on
/// a watch of the real API server).
#[tokio::test]
async fn duplicates_and_reordering_patch_once_per_version() {
    let client = support::client().await;
    let ns = support::namespace("fault-dup");
    let k = kvsync::start(client.clone(), &["--namespace", &ns]);
    store(&client, &ns, "dup-kv").await;
    es(&client, &ns, "a", "key-a").await;
    es(&client, &ns, "b", "key-b").await;
    k.ready().await;
    k.indexed(2).await;
    let api = eso_api(&client, "ExternalSecret", "v1", Some(&ns));
    let mut watches = Vec::new();
    for name in ["a", "b"] {
        let rv = api.get(name).await.unwrap().metadata.resource_version.unwrap();
        let wp = WatchParams::default().fields(&format!("metadata.name={name}"));
        watches.push(api.watch(&wp, &rv).await.unwrap().boxed());
    }
    let d = |key: &str, v: &str| batch(&[event("dup-kv", "secret", key, v)]);
    // v2 before v1, each three times, interleaved across the two ExternalSecrets.
    let order = [
        ("key-a", "v2"),
        ("key-b", "v1"),
        ("key-a", "v1"),
        ("key-b", "v2"),
        ("key-a", "v2"),
        ("key-b", "v1"),
        ("key-a", "v1"),
        ("key-b", "v2"),
        ("key-a", "v2"),
        ("key-b", "v1"),
        ("key-a", "v1"),
        ("key-b", "v2"),
    ];
    let mut triggered = 0;
    for (key, v) in order {
        let (status, body) = post(&k.app, d(key, v)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        triggered += body["triggered"].as_u64().unwrap();
    }
    assert_eq!(triggered, 4, "one patch per ExternalSecret and version");
    // Three concurrent copies of v3 for each.
    let copies: Vec<_> = (0..3)
        .flat_map(|_| [d("key-a", "v3"), d("key-b", "v3")])
        .map(|body| {
            let app = k.app.clone();
            async move { post(&app, body).await }
        })
        .collect();
    for (status, body) in futures::future::join_all(copies).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for (name, mut watch) in ["a", "b"].into_iter().zip(watches) {
        let mut modified = 0;
        // Read until the watch has been quiet for 3 s (bounded: at most 50 events).
        for _ in 0..50 {
            match tokio::time::timeout(Duration::from_secs(3), watch.next()).await {
                Ok(Some(Ok(WatchEvent::Modified(_)))) => modified += 1,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        assert_eq!(modified, 3, "{name}: one MODIFIED per version (v1, v2, v3)");
    }
}

// === 5. A stalled API server ===

/// A fault-injecting TCP proxy in front of the real API server (TLS passes through untouched):
/// while stalled, it forwards no byte in either direction, so every request, PATCH included, hangs.
struct StallingProxy {
    port: u16,
    stalled: Arc<AtomicBool>,
}

impl StallingProxy {
    async fn start(upstream: String) -> StallingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pump(ri, wo, flag.clone()));
                tokio::spawn(pump(ro, wi, flag.clone()));
            }
        });
        StallingProxy { port, stalled }
    }

    fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }
}

/// Copies bytes, holding them back while `stalled` (at most two minutes per chunk: bounded).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for _ in 0..2400 {
            if !stalled.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The API server stops answering (every byte held back by a proxy) while a delivery is being
/// applied: the delivery is answered 503 at the delivery deadline (`--delivery-timeout 4s`), well
/// inside Event Grid's 30 s, and once the server answers again the redelivery is applied.
#[tokio::test]
async fn a_stalled_api_server_gets_503_within_the_delivery_timeout() {
    let client = support::client().await;
    let ns = support::namespace("fault-slow");
    store(&client, &ns, "slow-kv").await;
    es(&client, &ns, "slow", "slow-key").await;

    let kc = kube::config::Kubeconfig::read_from(support::shared().kubeconfig()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let upstream = config.cluster_url.authority().unwrap().to_string();
    let proxy = StallingProxy::start(upstream).await;
    config.cluster_url = format!("https://127.0.0.1:{}", proxy.port).parse().unwrap();
    let proxied = kube::Client::try_from(config).unwrap();
    let k = kvsync::start(proxied, &["--namespace", &ns, "--delivery-timeout", "4s"]);
    k.ready().await;
    k.indexed(1).await;

    proxy.stall(true);
    let body = batch(&[event("slow-kv", "secret", "slow-key", "v1")]);
    let started = Instant::now();
    let (status, resp) = tokio::time::timeout(Duration::from_secs(30), post(&k.app, body.clone()))
        .await
        .expect("the delivery hung past Event Grid's 30 s");
    let took = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{resp}");
    assert!(
        annotation(&client, &ns, "slow").await.is_none(),
        "applied while stalled"
    );
    eprintln!("stalled API server: 503 after {took:?} (delivery timeout 4 s)");

    proxy.stall(false);
    let resp = redeliver(&k.app, &body, 60).await;
    // Either the redelivery patches, or the patch held back by the proxy reached the API server
    // once released (its delivery was still answered 503) and the redelivery finds it done.
    assert_eq!(
        resp["triggered"].as_u64().unwrap() + resp["unchanged"].as_u64().unwrap(),
        1,
        "{resp}"
    );
    assert!(annotation(&client, &ns, "slow").await.is_some());
}
