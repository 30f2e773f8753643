//! Shared helpers for the integration tests: a real Kubernetes API server (upstream
//! apiextensions-apiserver + etcd, provided by `scripts/test-apiserver.sh`), kvsync's CRDs installed
//! on it, a kube client, and a fresh namespace per test.
//!
//! One server is started per test binary ([`shared`]) unless `KVSYNC_TEST_KUBECONFIG` names a running
//! one. Tests that need a server of their own (other served versions, restarts) use
//! [`ApiServer::start`], stopped on drop. Every server we start is also watched by a watchdog
//! process that stops it as soon as the test binary exits, however it exits (panic, abort, SIGKILL).
//! If the server cannot be provided, tests fail with the script's message: they never skip.

#![allow(dead_code, missing_docs)]

pub mod crds;
pub mod keyvault;
pub mod kvsync;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};

pub use crds::EsoVersions;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running API server.
#[derive(Debug)]
pub struct ApiServer {
    kubeconfig: PathBuf,
    /// Set when this process started the server (and so must stop it).
    dir: Option<PathBuf>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-apiserver.sh")
}

fn run_script(args: &[&str]) -> String {
    let out = Command::new(script()).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {}: {e}", script().display());
    });
    if !out.status.success() {
        panic!(
            "scripts/test-apiserver.sh {} failed ({}):\n{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs an async block to completion on a runtime of its own, on its own thread, so it can be
/// called from sync code and from inside another runtime alike.
pub fn block_on<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: std::future::Future<Output = T>,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f())
    })
    .join()
    .expect("helper thread panicked")
}

impl ApiServer {
    /// Starts a server of this test's own, with the CRDs for `versions` installed.
    pub fn start(versions: EsoVersions) -> ApiServer {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("kvsync-apiserver-{}-{n}", std::process::id()));
        let pid = std::process::id().to_string();
        run_script(&["start", dir.to_str().expect("utf-8 temp dir"), &pid]);
        let server = ApiServer {
            kubeconfig: dir.join("kubeconfig"),
            dir: Some(dir),
        };
        let kubeconfig = server.kubeconfig.clone();
        block_on(move || async move { install_crds(&client_for(&kubeconfig).await, versions).await });
        server
    }

    /// Path of the admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A new client (each test runtime needs its own: connections belong to a runtime).
    pub async fn client(&self) -> kube::Client {
        client_for(&self.kubeconfig).await
    }

    /// Stops the API server process only (etcd keeps its data). Only for servers we started.
    pub fn stop_apiserver(&self) {
        let dir = self
            .dir
            .as_ref()
            .expect("only a server this test started can be stopped");
        run_script(&["stop-apiserver", dir.to_str().expect("utf-8")]);
    }

    /// Stops and starts the API server process on the same port and etcd data.
    pub fn restart_apiserver(&self) {
        let dir = self
            .dir
            .as_ref()
            .expect("only a server this test started can be restarted");
        run_script(&["restart-apiserver", dir.to_str().expect("utf-8")]);
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = Command::new(script()).arg("stop").arg(dir).output();
        }
    }
}

/// The server shared by every test of this test binary (both ESO versions served).
pub fn shared() -> &'static ApiServer {
    static SHARED: OnceLock<ApiServer> = OnceLock::new();
    SHARED.get_or_init(|| match std::env::var_os("KVSYNC_TEST_KUBECONFIG") {
        Some(path) => {
            let server = ApiServer {
                kubeconfig: PathBuf::from(path),
                dir: None,
            };
            let kubeconfig = server.kubeconfig.clone();
            block_on(
                move || async move { install_crds(&client_for(&kubeconfig).await, EsoVersions::Both).await },
            );
            server
        }
        None => ApiServer::start(EsoVersions::Both),
    })
}

/// A client for the shared server.
pub async fn client() -> kube::Client {
    shared().client().await
}

async fn client_for(kubeconfig: &Path) -> kube::Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("readable kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("valid kubeconfig");
    kube::Client::try_from(config).expect("kube client")
}

/// A namespace name no other test uses. The test server has no Namespace objects (no core group)
/// and no NamespaceLifecycle admission, so objects can be created in it right away.
pub fn namespace(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{n}-{:x}", std::process::id(), nanos & 0xffff)
}

/// `ApiResource` for an ESO kind at a version (`v1` or `v1beta1`).
pub fn eso_resource(kind: &str, version: &str) -> ApiResource {
    let plural = format!("{}s", kind.to_lowercase());
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("external-secrets.io", version, kind),
        &plural,
    )
}

/// An `Api<DynamicObject>` for an ESO kind, namespaced when `ns` is given.
pub fn eso_api(client: &kube::Client, kind: &str, version: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let ar = eso_resource(kind, version);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// Creates (or keeps) kvsync's CRDs and waits until every served collection answers.
pub async fn install_crds(client: &kube::Client, versions: EsoVersions) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crds = crds::all(versions);
    for crd in &crds {
        match api.create(&PostParams::default(), crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create CRD {:?}: {e}", crd.metadata.name),
        }
    }
    // Established, then each collection answers 200 (the server may say 429 "storage is
    // initializing" for a moment after a CRD turns Established).
    for crd in &crds {
        let name = crd.metadata.name.clone().expect("named CRD");
        let group = crd.spec.group.clone();
        let plural = crd.spec.names.plural.clone();
        for v in crd.spec.versions.iter().filter(|v| v.served) {
            let path = format!("/apis/{group}/{}/{plural}?limit=1", v.name);
            wait_until(
                Duration::from_secs(60),
                &format!("{name} {} served", v.name),
                || {
                    let client = client.clone();
                    let path = path.clone();
                    async move {
                        let req = http::Request::get(path).body(Vec::new()).expect("request");
                        client.request_text(req).await.is_ok()
                    }
                },
            )
            .await;
        }
    }
}

/// Polls `check` every 50 ms until it returns true; panics with `what` after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Parses a multi-document YAML file into JSON values, skipping empty documents.
pub fn yaml_documents(text: &str) -> Vec<serde_json::Value> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).expect("valid YAML");
    docs.into_iter().filter(|v| !v.is_null()).collect()
}
