//! Load tool: kvsync end to end against a real API server, side by side with its baselines.
//!
//! `cargo bench --bench load -- --help`. Loopback only; bounded in count (`--sizes`, `--rate` ×
//! `--duration`, `--samples`, `--competitor-events`) and in time (`--max-seconds`, after which the
//! process exits and the API server's watchdog stops it).
//!
//! What one run does, for each size N (ascending; ESs are added, never recreated):
//! 1. creates N ExternalSecrets (fixtures of `benches/common/mod.rs`) on a test API server started by
//!    `scripts/test-apiserver.sh` (the one the integration tests use);
//! 2. runs kvsync in-process with the production wiring (`service::start_engine`, `service::ingest`,
//!    `http::router`, `http::serve_on` on 127.0.0.1:0); its kube client goes through a byte-counting
//!    loopback TCP proxy;
//! 3. sequential, interleaved: a kvsync delivery (POST, one event, a new version → one patch) and a
//!    bare JSON merge-PATCH of one annotation with the same kube client (the physical floor); both
//!    timed until the change is visible through a watch (a separate client);
//! 4. paced: deliveries at `--rate` for `--duration` s (open loop, latency from the scheduled send
//!    time), p50/p95/p99 to watch-visible and sustained deliveries/s, with the API requests (from the
//!    server's `apiserver_request_total`) and wire bytes (proxy) per delivery; then bare
//!    merge-PATCHes paced at the same rate (the floor under the same offered load);
//! 5. the competitor's strategy: per event, LIST every ExternalSecret, match by name, PATCH the
//!    matches, through its own counting proxy;
//! 6. idle RSS of the real `kvsync serve` binary (spawned, watching the server) at this size, and
//!    its start → ready time (initial LIST + index).
//!
//! At the largest size it also runs a closed-loop saturation phase (`--concurrency` posters) for the
//! maximum sustained deliveries/s. At the end it prints the polling model (Key Vault operations and
//! staleness: ESO polling vs kvsync), computed from the measured figures.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;
#[path = "../tests/support/crds.rs"]
#[allow(dead_code)]
mod crds;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kvsync::core::decide::trigger_value;
use kvsync::core::model::{ChangeKind, Cloud, ObjectKind, ObjectName, ObjectRef, VaultChange, VaultId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::Instant;

const FORCE_SYNC: &str = "external-secrets.io/force-sync";
const FLOOR_ANNOTATION: &str = "bench.kvsync.dev/floor";
const SEEN_TIMEOUT: Duration = Duration::from_secs(15);

/// Deliveries kvsync did not answer with 2xx (e.g. 503 when its delivery deadline passed).
static NOT_OK: AtomicUsize = AtomicUsize::new(0);

/// kvsync load tool: delivery → patch latency and throughput against a real API server, with the
/// bare-PATCH floor and the LIST-per-event competitor in the same run, and the polling model.
#[derive(Parser, Debug, Clone)]
#[command(name = "load")]
struct Args {
    /// ExternalSecret counts to measure at, ascending (at most 100000).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    sizes: Vec<usize>,
    /// Target deliveries per second of the paced phase (at most 5000).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Seconds of the paced phase at each size (at most 120).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Sequential samples of kvsync vs bare PATCH at each size (at most 5000).
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Events for the LIST-per-event competitor at each size (at most 200).
    #[arg(long, default_value_t = 20)]
    competitor_events: usize,
    /// Concurrent posters in the saturation phase (largest size only; 0 skips it).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of the saturation phase (at most 60).
    #[arg(long, default_value_t = 5)]
    saturate: u64,
    /// Key Vault rotations per hour (all secrets) for the polling model.
    #[arg(long, default_value_t = 100.0)]
    rotations_per_hour: f64,
    /// Hard limit on the whole run, in seconds.
    #[arg(long, default_value_t = 1500)]
    max_seconds: u64,
    /// Skip spawning the kvsync binary for idle RSS.
    #[arg(long)]
    no_rss: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

// ---------------------------------------------------------------------------------------------
// API server, clients, CRDs

struct Server {
    dir: PathBuf,
}

impl Server {
    fn start() -> Server {
        let dir = std::env::temp_dir().join(format!("kvsync-load-{}", std::process::id()));
        let out = Command::new(script())
            .args(["start", dir.to_str().unwrap(), &std::process::id().to_string()])
            .output()
            .expect("run scripts/test-apiserver.sh");
        assert!(
            out.status.success(),
            "test-apiserver.sh start failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Server { dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).output();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-apiserver.sh")
}

async fn config(kubeconfig: &Path) -> kube::Config {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config")
}

async fn client_via(kubeconfig: &Path, proxy: Option<SocketAddr>) -> kube::Client {
    let mut cfg = config(kubeconfig).await;
    if let Some(p) = proxy {
        cfg.cluster_url = format!("https://{p}").parse().unwrap();
    }
    kube::Client::try_from(cfg).expect("client")
}

fn upstream(kubeconfig: &Path) -> SocketAddr {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let start = text.find("https://").unwrap() + "https://".len();
    let end = text[start..].find('"').unwrap() + start;
    text[start..end].parse().unwrap()
}

async fn install_crds(client: &kube::Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds::all(crds::EsoVersions::Both) {
        match api.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create CRD: {e}"),
        }
    }
    for plural in [
        "externalsecrets",
        "secretstores",
        "clustersecretstores",
        "clusterexternalsecrets",
    ] {
        for v in ["v1", "v1beta1"] {
            let path = format!("/apis/external-secrets.io/{v}/{plural}?limit=1");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let req = http::Request::get(&path).body(Vec::new()).unwrap();
                if client.request_text(req).await.is_ok() {
                    break;
                }
                assert!(Instant::now() < deadline, "{plural} {v} not served");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("external-secrets.io", "v1", kind),
        &format!("{}s", kind.to_lowercase()),
    )
}

fn es_api(client: &kube::Client, ns: Option<&str>) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource("ExternalSecret")),
        None => Api::all_with(client.clone(), &resource("ExternalSecret")),
    }
}

/// Creates the stores and ESs `from..to` (stores of new namespaces first).
async fn populate(client: &kube::Client, from: usize, to: usize) {
    let mut objects: Vec<serde_json::Value> = Vec::new();
    if from == 0 {
        objects.push(common::cluster_store());
    }
    let ns_from = if from == 0 {
        0
    } else {
        from.div_ceil(common::PER_NS)
    };
    objects.extend((ns_from..to.div_ceil(common::PER_NS)).map(common::secret_store));
    let stores = objects.len();
    objects.extend((from..to).map(common::external_secret));
    let create = |v: serde_json::Value| {
        let client = client.clone();
        async move {
            let kind = v["kind"].as_str().unwrap().to_string();
            let ns = v["metadata"]["namespace"].as_str().map(str::to_string);
            let mut obj: DynamicObject = serde_json::from_value(v).unwrap();
            obj.metadata.resource_version = None;
            obj.metadata.uid = None;
            obj.metadata.creation_timestamp = None;
            let ar = resource(&kind);
            let api: Api<DynamicObject> = match &ns {
                Some(ns) => Api::namespaced_with(client, ns, &ar),
                None => Api::all_with(client, &ar),
            };
            for attempt in 0..20 {
                match api.create(&PostParams::default(), &obj).await {
                    Ok(_) => return,
                    Err(kube::Error::Api(s)) if s.code == 409 => return,
                    Err(e) if attempt == 19 => panic!("create {kind}: {e}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    };
    let mut rest = objects;
    let ess = rest.split_off(stores);
    futures::stream::iter(rest).for_each_concurrent(16, create).await;
    futures::stream::iter(ess).for_each_concurrent(32, create).await;
}

// ---------------------------------------------------------------------------------------------
// Byte-counting loopback proxy (TLS passes through: wire bytes).

#[derive(Default)]
struct Bytes {
    up: AtomicU64,
    down: AtomicU64,
}

impl Bytes {
    fn total(&self) -> u64 {
        self.up.load(Ordering::Relaxed) + self.down.load(Ordering::Relaxed)
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counter: Arc<Bytes>,
    up: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let c = if up { &counter.up } else { &counter.down };
        c.fetch_add(n as u64, Ordering::Relaxed);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

async fn proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Bytes>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counter = Arc::new(Bytes::default());
    let c = counter.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pump(ri, wo, c.clone(), true));
                pump(ro, wi, c, false).await;
            });
        }
    });
    (addr, counter)
}

// ---------------------------------------------------------------------------------------------
// API server request counts (apiserver_request_total, by verb and resource)

async fn request_counts(admin: &kube::Client) -> BTreeMap<(String, String), f64> {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = admin.request_text(req).await.unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let label = |name: &str| {
            let pat = format!("{name}=\"");
            labels
                .find(&pat)
                .map(|s| {
                    let rest = &labels[s + pat.len()..];
                    rest[..rest.find('"').unwrap_or(0)].to_string()
                })
                .unwrap_or_default()
        };
        *out.entry((label("verb"), label("resource"))).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    out
}

fn diff_counts(
    before: &BTreeMap<(String, String), f64>,
    after: &BTreeMap<(String, String), f64>,
) -> BTreeMap<(String, String), f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d > 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

fn describe_counts(d: &BTreeMap<(String, String), f64>, per: f64) -> (f64, String) {
    let total: f64 = d.values().sum();
    let text = d
        .iter()
        .map(|((verb, res), n)| format!("{verb} {res} {:.2}", n / per))
        .collect::<Vec<_>>()
        .join(", ");
    (total / per, text)
}

// ---------------------------------------------------------------------------------------------
// Watch-visible observer

type Waiters = Arc<Mutex<HashMap<(String, String, String), oneshot::Sender<Instant>>>>;

/// Fires a waiter when a watched ES carries `annotation = value`.
fn observe(client: kube::Client, waiters: Waiters) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let api = es_api(&client, None);
        let mut rv = api
            .list_metadata(&ListParams::default().limit(1))
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap_or_default();
        loop {
            let wp = WatchParams::default().timeout(290);
            let Ok(stream) = api.watch(&wp, &rv).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let mut stream = stream.boxed();
            while let Ok(Some(ev)) = stream.try_next().await {
                let now = Instant::now();
                let obj = match ev {
                    WatchEvent::Modified(o) | WatchEvent::Added(o) => o,
                    WatchEvent::Bookmark(b) => {
                        rv = b.metadata.resource_version;
                        continue;
                    }
                    _ => continue,
                };
                if let Some(v) = &obj.metadata.resource_version {
                    rv.clone_from(v);
                }
                let key = format!(
                    "{}/{}",
                    obj.metadata.namespace.as_deref().unwrap_or(""),
                    obj.metadata.name.as_deref().unwrap_or("")
                );
                let Some(ann) = &obj.metadata.annotations else {
                    continue;
                };
                let mut w = waiters.lock().unwrap();
                for a in [FORCE_SYNC, FLOOR_ANNOTATION] {
                    if let Some(v) = ann.get(a)
                        && let Some(tx) = w.remove(&(key.clone(), a.to_string(), v.clone()))
                    {
                        let _ = tx.send(now);
                    }
                }
            }
        }
    })
}

fn wait_for(waiters: &Waiters, es: &str, annotation: &str, value: &str) -> oneshot::Receiver<Instant> {
    let (tx, rx) = oneshot::channel();
    waiters
        .lock()
        .unwrap()
        .insert((es.to_string(), annotation.to_string(), value.to_string()), tx);
    rx
}

// ---------------------------------------------------------------------------------------------
// kvsync in-process

struct Kvsync {
    addr: SocketAddr,
    index: kvsync::kube::SharedIndex,
    readiness: kvsync::readiness::Readiness,
    shutdown: Option<oneshot::Sender<()>>,
    _engine: kvsync::service::Engine,
}

async fn start_kvsync(client: kube::Client) -> Kvsync {
    use kvsync::auth::{AuthArgs, Authenticator};
    use kvsync::config::EngineArgs;
    use kvsync::http::explain::ExplainState;
    use kvsync::http::{AppState, router, serve_on};
    use kvsync::metrics::Metrics;
    use kvsync::readiness::Readiness;
    use kvsync::service;

    // Production defaults except: the patch rate limit (default 50/s, a safety valve an operator
    // raises for bulk rotations) is lifted above the offered load; no Namespace watch (the test
    // server has no core group); a long confirm timeout (no ESO here to confirm).
    let args = EngineArgs::from_flags(&[
        "--patch-rate",
        "5000",
        "--patch-burst",
        "5000",
        "--watch-namespaces",
        "false",
        "--confirm-timeout",
        "2h",
    ])
    .expect("engine flags");
    let auth = Authenticator::from_args(&AuthArgs::insecure()).expect("auth");
    let mut metrics = Metrics::new();
    let readiness = Readiness::default();
    let engine = service::start_engine(&args, Some(client), &mut metrics, &readiness).expect("engine");
    let ingest = service::ingest(
        &args,
        auth.clone(),
        engine.apply.clone(),
        readiness.clone(),
        &mut metrics,
    );
    let explain = ExplainState {
        index: engine.index.clone(),
        namespaces: engine.namespaces.clone(),
        cloud: args.cloud,
        auth,
    };
    let state = AppState {
        metrics: Arc::new(metrics),
        readiness: readiness.clone(),
        ingest: Arc::new(ingest),
        explain: Arc::new(explain),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(serve_on(listener, router(state), async move {
        let _ = rx.await;
    }));
    Kvsync {
        addr,
        index: engine.index.clone(),
        readiness,
        shutdown: Some(tx),
        _engine: engine,
    }
}

impl Kvsync {
    async fn indexed(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let count = self.index.read().unwrap().stats().external_secrets;
            if self.readiness.is_ready() && count >= n {
                return;
            }
            assert!(Instant::now() < deadline, "kvsync indexed {count} of {n}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Kvsync {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Deliveries

/// Cycles through the ESs a db-object event triggers (a new version each time).
struct Picker {
    next: AtomicUsize,
    version: AtomicU64,
}

impl Picker {
    fn pick(&self, n: usize) -> usize {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
            if common::triggers_on_db(i) {
                return i;
            }
        }
    }
}

struct Delivery {
    es: String,
    body: Vec<u8>,
    value: String,
}

fn delivery(i: usize, version: u64) -> Delivery {
    let (vault, name) = common::db_object(i);
    let version = format!("{version:032x}");
    let body = serde_json::to_vec(&[common::eg_event(&vault, &name, &version)]).unwrap();
    let change = VaultChange {
        object: ObjectRef {
            vault: VaultId::from_name(&vault, Cloud::Public).unwrap(),
            kind: ObjectKind::Secret,
            name: ObjectName::new(&name),
        },
        version: Some(version.into()),
        kind: ChangeKind::NewVersion,
    };
    Delivery {
        es: format!(
            "{}/{}",
            common::namespace(common::namespace_of(i)),
            common::es_name(i)
        ),
        body,
        value: trigger_value(&[change]),
    }
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Send → HTTP answer (kvsync answers after the patch was accepted) / PATCH round trip.
    answered: Duration,
    /// Send → visible through the watch.
    seen: Duration,
}

/// Posts one delivery and waits until its patch is visible. `start` is when it was due.
async fn deliver(
    http: &reqwest::Client,
    url: &str,
    waiters: &Waiters,
    d: Delivery,
    start: Instant,
) -> Option<Sample> {
    let rx = wait_for(waiters, &d.es, FORCE_SYNC, &d.value);
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .header("aeg-event-type", "Notification")
        .body(d.body)
        .send()
        .await
        .ok()?;
    let answered = start.elapsed();
    if !resp.status().is_success() {
        NOT_OK.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    let _ = resp.bytes().await;
    let seen = tokio::time::timeout(SEEN_TIMEOUT, rx).await.ok()?.ok()?;
    Some(Sample {
        answered,
        seen: seen.duration_since(start),
    })
}

/// Open loop: starts `make(due)` at `rate` per second, `total` times, each at its scheduled time
/// (never waiting for earlier ones), and collects the results in order with the elapsed time.
async fn open_loop<F, Fut>(rate: u32, total: usize, mut make: F) -> (Vec<Option<Sample>>, Duration)
where
    F: FnMut(Instant) -> Fut,
    Fut: std::future::Future<Output = Option<Sample>> + Send + 'static,
{
    let begin = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total);
    for j in 0..total {
        let due = begin + Duration::from_secs_f64(j as f64 / f64::from(rate));
        tokio::time::sleep_until(due).await;
        tasks.push(tokio::spawn(make(due)));
    }
    let mut results = Vec::with_capacity(total);
    for t in tasks {
        results.push(t.await.ok().flatten());
    }
    (results, begin.elapsed())
}

/// A bare merge-PATCH of one annotation, timed until visible.
async fn bare_patch(client: &kube::Client, waiters: &Waiters, i: usize, value: &str) -> Option<Sample> {
    let ns = common::namespace(common::namespace_of(i));
    let name = common::es_name(i);
    let rx = wait_for(waiters, &format!("{ns}/{name}"), FLOOR_ANNOTATION, value);
    let body = serde_json::json!({"metadata": {"annotations": {FLOOR_ANNOTATION: value}}});
    let params = PatchParams {
        field_manager: Some("bench".into()),
        ..PatchParams::default()
    };
    let start = Instant::now();
    es_api(client, Some(&ns))
        .patch(&name, &params, &Patch::Merge(&body))
        .await
        .ok()?;
    let answered = start.elapsed();
    let seen = tokio::time::timeout(SEEN_TIMEOUT, rx).await.ok()?.ok()?;
    Some(Sample {
        answered,
        seen: seen.duration_since(start),
    })
}

#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    n: usize,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    if v.is_empty() {
        return Stats::default();
    }
    v.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Stats {
        n: v.len(),
        p50: ms(common::pct(&v, 50.0)),
        p95: ms(common::pct(&v, 95.0)),
        p99: ms(common::pct(&v, 99.0)),
        max: ms(*v.last().unwrap()),
    }
}

fn line(label: &str, s: Stats) -> String {
    format!(
        "| {label} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
        s.n, s.p50, s.p95, s.p99, s.max
    )
}

// ---------------------------------------------------------------------------------------------
// Competitor: LIST every ExternalSecret per event, match by name, PATCH the matches.

fn reads_name(es: &serde_json::Value, name: &str) -> bool {
    let refs = es["spec"]["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| &d["remoteRef"]["key"]);
    let extracts = es["spec"]["dataFrom"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| &d["extract"]["key"]);
    refs.chain(extracts).filter_map(|k| k.as_str()).any(|k| {
        let bare = k.strip_prefix("secret/").unwrap_or(k);
        bare.eq_ignore_ascii_case(name)
    })
}

struct CompetitorResult {
    latency: Stats,
    list_bytes: f64,
    matched: f64,
}

async fn competitor(
    client: &kube::Client,
    waiters: &Waiters,
    picker: &Picker,
    n: usize,
    events: usize,
) -> CompetitorResult {
    let mut lat = Vec::new();
    let mut list_bytes = 0usize;
    let mut matched = 0usize;
    let params = PatchParams {
        field_manager: Some("competitor".into()),
        ..PatchParams::default()
    };
    for _ in 0..events {
        let i = picker.pick(n);
        let v = picker.version.fetch_add(1, Ordering::Relaxed);
        let (_, name) = common::db_object(i);
        let value = format!("comp-{v}");
        let start = Instant::now();
        let req = http::Request::get("/apis/external-secrets.io/v1/externalsecrets")
            .body(Vec::new())
            .unwrap();
        let text = client.request_text(req).await.expect("LIST");
        list_bytes += text.len();
        let list: serde_json::Value = serde_json::from_str(&text).unwrap();
        let hits: Vec<(String, String)> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|es| reads_name(es, &name))
            .map(|es| {
                (
                    es["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
                    es["metadata"]["name"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        matched += hits.len();
        let mut rxs = Vec::new();
        for (ns, es) in &hits {
            rxs.push(wait_for(waiters, &format!("{ns}/{es}"), FORCE_SYNC, &value));
            let body = serde_json::json!({"metadata": {"annotations": {FORCE_SYNC: &value}}});
            es_api(client, Some(ns))
                .patch(es, &params, &Patch::Merge(&body))
                .await
                .expect("competitor PATCH");
        }
        let mut last = start;
        for rx in rxs {
            if let Ok(Ok(t)) = tokio::time::timeout(SEEN_TIMEOUT, rx).await {
                last = last.max(t);
            }
        }
        lat.push(last.duration_since(start));
    }
    CompetitorResult {
        latency: stats(lat),
        list_bytes: list_bytes as f64 / events.max(1) as f64,
        matched: matched as f64 / events.max(1) as f64,
    }
}

// ---------------------------------------------------------------------------------------------
// Idle RSS of the real binary

struct Binary {
    start_to_ready: Duration,
    rss_mb: f64,
    hwm_mb: f64,
}

async fn binary_rss(kubeconfig: &Path) -> Option<Binary> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let start = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kvsync"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--insecure-no-auth",
            "--watch-namespaces",
            "false",
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let pid = child.id().to_string();
    let http = reqwest::Client::builder().no_proxy().build().ok()?;
    let url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = http.get(&url).send().await
            && r.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start_to_ready = start.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss, hwm) = common::rss_kib(&pid);
    let _ = child.kill();
    let _ = child.wait();
    Some(Binary {
        start_to_ready,
        rss_mb: rss as f64 / 1024.0,
        hwm_mb: hwm as f64 / 1024.0,
    })
}

// ---------------------------------------------------------------------------------------------
// Polling model

/// Everything the model needs, measured.
struct Measured {
    n: usize,
    refs_per_es: f64,
    objects_per_vault: f64,
    vaults: usize,
    readers_per_object: f64,
    /// Sequential (unqueued) delivery → visible.
    p50_ms: f64,
    p99_ms: f64,
    /// Paced at `--rate`.
    paced_p50_ms: f64,
    paced_p99_ms: f64,
}

fn polling_model(m: &Measured, rotations_per_hour: f64) -> String {
    let mut out = String::new();
    let n = m.n as f64;
    let pages = (m.objects_per_vault / 25.0).ceil();
    // ESO: every ES re-reads every ref each interval (one GetSecret per data ref / extract; a find
    // is one list plus a get per match — counted as one ref here, a lower bound).
    let eso = |interval_s: f64| n * m.refs_per_es * 3600.0 / interval_s;
    // kvsync: fallback reconcile lists properties of each vault (secrets; one page per 25 items)
    // every 10 min; each rotation makes ESO re-read the refs of its readers once.
    let kvsync_list = m.vaults as f64 * pages * 6.0;
    let refetch = rotations_per_hour * m.readers_per_object * m.refs_per_es;
    out.push_str(&format!(
        "Polling model: N = {} ESs, {:.2} Key Vault refs per ES, {} vaults of {:.0} objects, {:.2} readers per rotated object, {} rotations/hour\n\n",
        m.n, m.refs_per_es, m.vaults, m.objects_per_vault, m.readers_per_object, rotations_per_hour
    ));
    out.push_str(
        "| strategy | Key Vault ops/hour | expected staleness | worst staleness |\n|---|---:|---:|---:|\n",
    );
    for (label, t) in [
        ("ESO poll 1h", 3600.0),
        ("ESO poll 5m", 300.0),
        ("ESO poll 30s", 30.0),
    ] {
        out.push_str(&format!(
            "| {label} | {:.0} | {} | {} |\n",
            eso(t),
            human(t / 2.0),
            human(t)
        ));
    }
    out.push_str(&format!(
        "| kvsync push + 10 min fallback (ESO at 24h) | {:.0} | {:.1} ms + EG delivery (paced: {:.0} ms) | {:.1} ms p99 (paced: {:.0} ms); 10 min if an event is lost |\n",
        kvsync_list + refetch + eso(86_400.0),
        m.p50_ms,
        m.paced_p50_ms,
        m.p99_ms,
        m.paced_p99_ms
    ));
    out.push_str(&format!(
        "\n(kvsync ops/hour = fallback list {kvsync_list:.0} + re-reads after rotations {refetch:.0} + ESO's 24h safety poll {:.0})\n",
        eso(86_400.0)
    ));
    out
}

fn human(s: f64) -> String {
    if s >= 60.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.0} s")
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let mut args = Args::parse();
    if !args.bench {
        // `cargo test --all-targets` runs this binary without `--bench`: a smoke run that checks
        // the tool and the path it measures still work (every delivery visible), in seconds.
        println!("load: smoke run (no --bench): 200 ESs, 20 deliveries/s for 1 s");
        args.sizes = vec![200];
        args.rate = 20;
        args.duration = 1;
        args.samples = 5;
        args.competitor_events = 2;
        args.concurrency = 0;
    }
    assert!(
        args.sizes.iter().all(|&n| (1..=100_000).contains(&n)),
        "sizes must be in 1..=100000"
    );
    assert!(args.rate >= 1 && args.rate <= 5000, "rate must be in 1..=5000");
    assert!(
        args.duration <= 120 && args.saturate <= 60,
        "duration ≤ 120 s, saturate ≤ 60 s"
    );
    assert!(
        args.samples <= 5000 && args.competitor_events <= 200,
        "samples ≤ 5000, competitor events ≤ 200"
    );
    let limit = args.max_seconds;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(limit));
        eprintln!("load: --max-seconds {limit} reached, exiting");
        std::process::exit(2);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = Server::start();
    runtime.block_on(run(args, server.kubeconfig()));
    drop(runtime);
    drop(server);
    let incomplete = INCOMPLETE.load(Ordering::Relaxed);
    if incomplete > 0 {
        eprintln!("load: {incomplete} deliveries or patches never became visible (or were refused)");
        std::process::exit(1);
    }
}

/// Paced deliveries and patches that did not complete (not visible, or answered non-2xx).
static INCOMPLETE: AtomicUsize = AtomicUsize::new(0);

async fn run(args: Args, kubeconfig: PathBuf) {
    let up = upstream(&kubeconfig);
    let admin = client_via(&kubeconfig, None).await;
    install_crds(&admin).await;
    let (kv_proxy, kv_bytes) = proxy(up).await;
    let (comp_proxy, comp_bytes) = proxy(up).await;
    let kv_client = client_via(&kubeconfig, Some(kv_proxy)).await;
    let comp_client = client_via(&kubeconfig, Some(comp_proxy)).await;
    let waiters: Waiters = Arc::default();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let picker = Picker {
        next: AtomicUsize::new(0),
        version: AtomicU64::new(1),
    };

    println!("# kvsync load run\n");
    println!(
        "args: sizes {:?}, rate {}/s for {} s, {} sequential samples, {} competitor events, saturation {}×{} s\n",
        args.sizes,
        args.rate,
        args.duration,
        args.samples,
        args.competitor_events,
        args.concurrency,
        args.saturate
    );

    let mut have = 0usize;
    let mut kv: Option<Kvsync> = None;
    let mut observer: Option<tokio::task::JoinHandle<()>> = None;
    let mut measured = None;
    let last = *args.sizes.last().unwrap();
    for &n in &args.sizes {
        println!("## {n} ExternalSecrets\n");
        let t = Instant::now();
        populate(&admin, have, n).await;
        println!(
            "created {} objects in {:.1} s",
            n - have,
            t.elapsed().as_secs_f64()
        );
        have = n;
        if observer.is_none() {
            observer = Some(observe(admin.clone(), waiters.clone()));
        }
        if kv.is_none() {
            let t = Instant::now();
            let k = start_kvsync(kv_client.clone()).await;
            k.indexed(n).await;
            println!(
                "in-process kvsync: start → ready with {n} ESs indexed: {:.2} s",
                t.elapsed().as_secs_f64()
            );
            kv = Some(k);
        } else if let Some(k) = &kv {
            k.indexed(n).await;
        }
        let k = kv.as_ref().unwrap();
        let url = format!("http://{}/api/eventgrid", k.addr);
        tokio::time::sleep(Duration::from_millis(500)).await;

        // Warm-up: connections, caches.
        for _ in 0..20 {
            let i = picker.pick(n);
            let d = delivery(i, picker.version.fetch_add(1, Ordering::Relaxed));
            deliver(&http, &url, &waiters, d, Instant::now()).await;
            let v = format!("w{}", picker.version.fetch_add(1, Ordering::Relaxed));
            bare_patch(&kv_client, &waiters, picker.pick(n), &v).await;
        }

        // 1. Sequential, interleaved: kvsync vs bare PATCH.
        let (mut k_ans, mut k_seen, mut b_ans, mut b_seen) = (vec![], vec![], vec![], vec![]);
        for _ in 0..args.samples {
            let i = picker.pick(n);
            let d = delivery(i, picker.version.fetch_add(1, Ordering::Relaxed));
            if let Some(s) = deliver(&http, &url, &waiters, d, Instant::now()).await {
                k_ans.push(s.answered);
                k_seen.push(s.seen);
            }
            let v = format!("f{}", picker.version.fetch_add(1, Ordering::Relaxed));
            if let Some(s) = bare_patch(&kv_client, &waiters, picker.pick(n), &v).await {
                b_ans.push(s.answered);
                b_seen.push(s.seen);
            }
        }
        let (ks, bs) = (stats(k_seen), stats(b_seen));
        println!("\n### Sequential (one at a time, interleaved), ms\n");
        println!("| path | n | p50 | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|");
        println!("{}", line("kvsync: POST → 200 (patch accepted)", stats(k_ans)));
        println!("{}", line("kvsync: POST → patch visible in watch", ks));
        println!("{}", line("bare merge-PATCH round trip", stats(b_ans)));
        println!("{}", line("bare merge-PATCH → visible in watch", bs));
        println!(
            "\nratio kvsync/bare (visible): p50 {:.2}×, p95 {:.2}×, p99 {:.2}×",
            ks.p50 / bs.p50,
            ks.p95 / bs.p95,
            ks.p99 / bs.p99
        );

        // 2. Paced, open loop.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let total = (u64::from(args.rate) * args.duration) as usize;
        NOT_OK.store(0, Ordering::Relaxed);
        let before = request_counts(&admin).await;
        let bytes0 = kv_bytes.total();
        let (results, elapsed) = open_loop(args.rate, total, |due| {
            let i = picker.pick(n);
            let d = delivery(i, picker.version.fetch_add(1, Ordering::Relaxed));
            let (http, url, waiters) = (http.clone(), url.clone(), waiters.clone());
            async move { deliver(&http, &url, &waiters, d, due).await }
        })
        .await;
        let (seen, answered): (Vec<Duration>, Vec<Duration>) =
            results.iter().flatten().map(|s| (s.seen, s.answered)).unzip();
        let not_ok = NOT_OK.swap(0, Ordering::Relaxed);
        INCOMPLETE.fetch_add(total - seen.len(), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1500)).await; // background Events land
        let after = request_counts(&admin).await;
        let kv_per = (kv_bytes.total() - bytes0) as f64 / total as f64;
        let (kv_reqs, kv_detail) = describe_counts(&diff_counts(&before, &after), total as f64);
        let paced = stats(seen.clone());
        println!(
            "\n### Paced: {} deliveries/s for {} s (latency from the scheduled send time), ms\n",
            args.rate, args.duration
        );
        println!("| path | n | p50 | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|");
        println!("{}", line("POST → 200", stats(answered)));
        println!("{}", line("POST → patch visible in watch", paced));
        println!(
            "\nsustained: {} of {} completed in {:.2} s = {:.1} deliveries/s; not completed {} (of which answered non-2xx: {not_ok})",
            seen.len(),
            total,
            elapsed.as_secs_f64(),
            seen.len() as f64 / elapsed.as_secs_f64(),
            total - seen.len()
        );
        println!(
            "kvsync API work per delivery: {kv_reqs:.2} requests ({kv_detail}), {kv_per:.0} wire bytes (TLS, both directions, incl. its watch stream)"
        );

        // 2b. The physical floor at the same offered rate: bare merge-PATCHes, paced the same way.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (results, floor_elapsed) = open_loop(args.rate, total, |_| {
            let i = picker.pick(n);
            let v = format!("p{}", picker.version.fetch_add(1, Ordering::Relaxed));
            let (client, waiters) = (kv_client.clone(), waiters.clone());
            async move { bare_patch(&client, &waiters, i, &v).await }
        })
        .await;
        let floor_seen: Vec<Duration> = results.iter().flatten().map(|s| s.seen).collect();
        INCOMPLETE.fetch_add(total - floor_seen.len(), Ordering::Relaxed);
        let floor = stats(floor_seen.clone());
        println!("\n| path | n | p50 | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|");
        println!("{}", line("bare merge-PATCH at the same rate → visible", floor));
        println!(
            "\nbare PATCH paced: {} of {} in {:.2} s = {:.1}/s; kvsync / bare PATCH at {} /s (visible): p50 {:.2}×, p95 {:.2}×, p99 {:.2}×",
            floor_seen.len(),
            total,
            floor_elapsed.as_secs_f64(),
            floor_seen.len() as f64 / floor_elapsed.as_secs_f64(),
            args.rate,
            paced.p50 / floor.p50,
            paced.p95 / floor.p95,
            paced.p99 / floor.p99
        );

        // 3. Competitor.
        let before = request_counts(&admin).await;
        let bytes0 = comp_bytes.total();
        let c = competitor(&comp_client, &waiters, &picker, n, args.competitor_events).await;
        let after = request_counts(&admin).await;
        let comp_per = (comp_bytes.total() - bytes0) as f64 / args.competitor_events.max(1) as f64;
        let (comp_reqs, comp_detail) = describe_counts(
            &diff_counts(&before, &after),
            args.competitor_events.max(1) as f64,
        );
        println!("\n### Competitor: LIST every ExternalSecret per event, match, PATCH (sequential), ms\n");
        println!("| path | n | p50 | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|");
        println!("{}", line("event → patch visible in watch", c.latency));
        println!(
            "\nper event: {comp_reqs:.2} requests ({comp_detail}), {comp_per:.0} wire bytes, LIST body {:.0} bytes, {:.2} matches",
            c.list_bytes, c.matched
        );
        println!(
            "\n**per-event API wire bytes: competitor / kvsync = {:.0}×; requests {:.2}×; latency (both sequential) p50 competitor / kvsync = {:.1}×, p99 {:.1}×**",
            comp_per / kv_per,
            comp_reqs / kv_reqs,
            c.latency.p50 / ks.p50,
            c.latency.p99 / ks.p99
        );

        // 4. Saturation at the largest size.
        if n == last && args.concurrency > 0 && args.saturate > 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let stop = Instant::now() + Duration::from_secs(args.saturate);
            let done = Arc::new(AtomicUsize::new(0));
            let picker = Arc::new(Picker {
                next: AtomicUsize::new(picker.next.load(Ordering::Relaxed)),
                version: AtomicU64::new(picker.version.load(Ordering::Relaxed) + 1_000_000),
            });
            let begin = Instant::now();
            let workers: Vec<_> = (0..args.concurrency)
                .map(|_| {
                    let (http, url, waiters, done, picker) = (
                        http.clone(),
                        url.clone(),
                        waiters.clone(),
                        done.clone(),
                        picker.clone(),
                    );
                    tokio::spawn(async move {
                        let mut lat = Vec::new();
                        while Instant::now() < stop {
                            let i = picker.pick(n);
                            let d = delivery(i, picker.version.fetch_add(1, Ordering::Relaxed));
                            if let Some(s) = deliver(&http, &url, &waiters, d, Instant::now()).await {
                                done.fetch_add(1, Ordering::Relaxed);
                                lat.push(s.seen);
                            }
                        }
                        lat
                    })
                })
                .collect();
            let mut lat = Vec::new();
            for w in workers {
                lat.extend(w.await.unwrap());
            }
            let el = begin.elapsed().as_secs_f64();
            println!(
                "\n### Saturation: {} concurrent posters for {} s\n",
                args.concurrency, args.saturate
            );
            println!("| path | n | p50 | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|");
            println!("{}", line("POST → patch visible in watch", stats(lat)));
            println!(
                "\nmax sustained: {:.0} deliveries/s (each one patch); non-2xx answers {}",
                done.load(Ordering::Relaxed) as f64 / el,
                NOT_OK.swap(0, Ordering::Relaxed)
            );

            // The floor's throughput: bare PATCHes, same concurrency, same client.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let stop = Instant::now() + Duration::from_secs(args.saturate);
            let begin = Instant::now();
            let workers: Vec<_> = (0..args.concurrency)
                .map(|_| {
                    let (client, waiters, picker) = (kv_client.clone(), waiters.clone(), picker.clone());
                    tokio::spawn(async move {
                        let mut lat = Vec::new();
                        while Instant::now() < stop {
                            let v = format!("s{}", picker.version.fetch_add(1, Ordering::Relaxed));
                            if let Some(s) = bare_patch(&client, &waiters, picker.pick(n), &v).await {
                                lat.push(s.seen);
                            }
                        }
                        lat
                    })
                })
                .collect();
            let mut lat = Vec::new();
            for w in workers {
                lat.extend(w.await.unwrap());
            }
            let el = begin.elapsed().as_secs_f64();
            println!("\n| path | n | p50 | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|");
            println!(
                "{}",
                line("bare merge-PATCH → visible in watch", stats(lat.clone()))
            );
            println!(
                "\nbare PATCH max sustained (API server's write ceiling here): {:.0} patches/s",
                lat.len() as f64 / el
            );
        }

        // 5. Real binary: start → ready and idle RSS.
        if !args.no_rss {
            match binary_rss(&kubeconfig).await {
                Some(b) => println!(
                    "\n`kvsync serve` binary with {n} ESs: start → ready {:.2} s; idle RSS {:.1} MB (peak {:.1} MB)",
                    b.start_to_ready.as_secs_f64(),
                    b.rss_mb,
                    b.hwm_mb
                ),
                None => println!("\n`kvsync serve` binary did not become ready"),
            }
        }

        // Inputs of the polling model, from the index kvsync built.
        let st = k.index.read().unwrap().stats();
        let refs: usize = (0..n).map(ref_count).sum();
        measured = Some(Measured {
            n,
            refs_per_es: refs as f64 / n as f64,
            objects_per_vault: st.indexed_objects as f64 / st.vaults.max(1) as f64,
            vaults: st.vaults,
            readers_per_object: refs as f64 / st.indexed_objects.max(1) as f64,
            p50_ms: ks.p50,
            p99_ms: ks.p99,
            paced_p50_ms: paced.p50,
            paced_p99_ms: paced.p99,
        });
        println!();
    }
    if let Some(m) = measured {
        println!("## Polling model (from the largest size's measured figures)\n");
        println!("{}", polling_model(&m, args.rotations_per_hour));
    }
    if let Some(o) = observer {
        o.abort();
    }
    drop(kv);
}

/// Key Vault refs of fixture ES `i` (see `common`).
fn ref_count(i: usize) -> usize {
    match i % 100 {
        0..=59 => 3,
        60..=94 => 2,
        _ => 1,
    }
}
