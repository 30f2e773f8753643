//! The fallback reconcile, leader election and the store-ready re-trigger, against the real test
//! API server, with kvsync in-process (production wiring) talking to a local HTTPS Key Vault +
//! Entra ID stand-in through the Azure SDK (Workload Identity credential, challenge auth).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use serde_json::{Value, json};
use support::eso_api;
use support::keyvault::KeyVaultStandIn;
use support::kvsync::{self, Kvsync};

const FORCE_SYNC: &str = "external-secrets.io/force-sync";
const NOW_ISH: i64 = 1_795_860_000; // 2026-11-28T10:00:00Z

fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).unwrap().to_string()
}

async fn create(client: &kube::Client, ns: &str, v: Value) {
    let kind = v["kind"].as_str().unwrap().to_string();
    let obj: DynamicObject = serde_json::from_value(v).unwrap();
    eso_api(client, &kind, "v1", Some(ns))
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

async fn store(client: &kube::Client, ns: &str, name: &str, vault: &str) {
    create(client, ns, json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": name},
        "spec": {"provider": {"azurekv": {"authType": "WorkloadIdentity", "vaultUrl": format!("https://{vault}.vault.azure.net"),
                 "serviceAccountRef": {"name": "sa"}}}},
    }))
    .await;
}

async fn es(client: &kube::Client, ns: &str, name: &str, store: &str, key: &str) {
    create(
        client,
        ns,
        json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": name},
            "spec": {"secretStoreRef": {"kind": "SecretStore", "name": store}, "target": {"name": name},
                     "data": [{"secretKey": "k", "remoteRef": {"key": key}}]},
        }),
    )
    .await;
}

async fn set_status(client: &kube::Client, kind: &str, ns: &str, name: &str, status: Value) {
    eso_api(client, kind, "v1", Some(ns))
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .unwrap();
}

fn synced(refresh: i64) -> Value {
    json!({"refreshTime": rfc3339(refresh), "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced"}]})
}

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

fn start(client: &kube::Client, ns: &str, kv: &KeyVaultStandIn, vaults: &[&str], extra: &[&str]) -> Kvsync {
    let mut flags: Vec<String> = vec![
        "--namespace".into(),
        ns.into(),
        "--lease-namespace".into(),
        ns.into(),
        "--lease-duration".into(),
        "2s".into(),
        "--keyvault-backoff".into(),
        "20ms".into(),
        "--keyvault-backoff-max".into(),
        "200ms".into(),
    ];
    flags.extend(kv.flags(vaults));
    flags.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    kvsync::start(client.clone(), &refs)
}

async fn passes_at_least(k: &Kvsync, n: u64, limit: Duration) {
    let r = k.engine.reconciler.clone().expect("reconcile enabled");
    support::wait_until(limit, &format!("{n} reconcile pass(es)"), || {
        let r = r.clone();
        async move { *r.passes().borrow() >= n }
    })
    .await;
}

fn passes(k: &Kvsync) -> u64 {
    *k.engine.reconciler.as_ref().unwrap().passes().borrow()
}

/// A secret updated after an ES's last refresh triggers that ES (cause `reconcile`, version token
/// from `updated`); an ES refreshed well after its secret changed is left alone; a second pass
/// patches nothing new.
#[tokio::test]
async fn a_stale_external_secret_is_triggered_and_a_fresh_one_is_not() {
    let client = support::client().await;
    let ns = support::namespace("reconcile-stale");
    let kv = KeyVaultStandIn::start().await;
    kv.put("stale-kv", "secrets", "rotated", NOW_ISH);
    kv.put("stale-kv", "secrets", "steady", NOW_ISH - 86_400);
    kv.put("stale-kv", "secrets", "unread", NOW_ISH);
    store(&client, &ns, "kv", "stale-kv").await;
    es(&client, &ns, "stale", "kv", "rotated").await;
    es(&client, &ns, "fresh", "kv", "steady").await;
    set_status(&client, "ExternalSecret", &ns, "stale", synced(NOW_ISH - 3_600)).await;
    set_status(&client, "ExternalSecret", &ns, "fresh", synced(NOW_ISH - 3_600)).await;

    let k = start(&client, &ns, &kv, &["stale-kv"], &["--instance", "solo"]);
    k.ready().await;
    passes_at_least(&k, 1, Duration::from_secs(30)).await;

    let report = k.engine.reconciler.as_ref().unwrap().last_report().unwrap();
    assert!(report.complete(), "{}", report.to_text(false));
    assert_eq!(report.checked(), 2, "{}", report.to_text(false));
    assert_eq!(report.triggered(), 1, "{}", report.to_text(false));
    assert!(
        annotation(&client, &ns, "stale").await.is_some(),
        "stale ES not triggered"
    );
    assert_eq!(
        annotation(&client, &ns, "fresh").await,
        None,
        "fresh ES triggered"
    );
    assert!(kv.stats().challenges.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert!(
        kv.stats()
            .token_requests
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1
    );
    let value = annotation(&client, &ns, "stale").await;

    // Another pass: the same object version gives the same change, already applied.
    let (_tx, leading) = tokio::sync::watch::channel(true);
    let again = k.engine.reconciler.as_ref().unwrap().run_pass(leading).await;
    assert!(again.complete());
    assert_eq!(again.triggered(), 0, "{}", again.to_text(false));
    assert_eq!(annotation(&client, &ns, "stale").await, value);

    let (_, metrics) = k.get("/metrics").await;
    assert!(
        metrics.contains(r#"kvsync_reconcile_triggers_total 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"kvsync_keyvault_requests_total{vault="stale-kv.vault.azure.net",operation="list_secrets",status="200"}"#), "{metrics}");
    assert!(metrics.contains(r#"kvsync_keyvault_requests_total{vault="stale-kv.vault.azure.net",operation="list_secrets",status="401"}"#), "{metrics}");
}

/// Listing follows `nextLink` across pages: the stale object sits on the fourth page of four.
#[tokio::test]
async fn listing_follows_next_link_across_pages() {
    let client = support::client().await;
    let ns = support::namespace("reconcile-paging");
    let kv = KeyVaultStandIn::start().await;
    kv.set_page_size(2);
    for i in 0..7 {
        kv.put("paged-kv", "secrets", &format!("s{i}"), NOW_ISH - 86_400);
    }
    kv.put("paged-kv", "secrets", "s6", NOW_ISH);
    store(&client, &ns, "kv", "paged-kv").await;
    es(&client, &ns, "last-page-reader", "kv", "s6").await;
    es(&client, &ns, "first-page-reader", "kv", "s0").await;
    set_status(
        &client,
        "ExternalSecret",
        &ns,
        "last-page-reader",
        synced(NOW_ISH - 3_600),
    )
    .await;
    set_status(
        &client,
        "ExternalSecret",
        &ns,
        "first-page-reader",
        synced(NOW_ISH - 3_600),
    )
    .await;

    let k = start(&client, &ns, &kv, &["paged-kv"], &["--instance", "solo"]);
    k.ready().await;
    passes_at_least(&k, 1, Duration::from_secs(30)).await;

    let report = k.engine.reconciler.as_ref().unwrap().last_report().unwrap();
    assert!(report.complete(), "{}", report.to_text(false));
    assert_eq!(
        report.vaults[0].listed,
        vec![(::kvsync::core::model::ObjectKind::Secret, 7)]
    );
    assert!(kv.stats().pages.load(std::sync::atomic::Ordering::SeqCst) >= 4);
    assert!(annotation(&client, &ns, "last-page-reader").await.is_some());
    assert_eq!(annotation(&client, &ns, "first-page-reader").await, None);
}

/// A storm of 429s (no Retry-After) and 503s: kvsync backs off, retries and completes the pass.
#[tokio::test]
async fn a_429_storm_backs_off_and_still_completes() {
    let client = support::client().await;
    let ns = support::namespace("reconcile-storm");
    let kv = KeyVaultStandIn::start().await;
    kv.set_page_size(2);
    for i in 0..5 {
        kv.put("storm-kv", "secrets", &format!("s{i}"), NOW_ISH);
    }
    kv.inject(429, 6);
    kv.inject(503, 2);
    store(&client, &ns, "kv", "storm-kv").await;
    es(&client, &ns, "reader", "kv", "s4").await;
    set_status(&client, "ExternalSecret", &ns, "reader", synced(NOW_ISH - 3_600)).await;

    let k = start(
        &client,
        &ns,
        &kv,
        &["storm-kv"],
        &["--instance", "solo", "--keyvault-max-retries", "12"],
    );
    k.ready().await;
    passes_at_least(&k, 1, Duration::from_secs(60)).await;

    let report = k.engine.reconciler.as_ref().unwrap().last_report().unwrap();
    assert!(report.complete(), "{}", report.to_text(false));
    assert_eq!(kv.stats().injected.load(std::sync::atomic::Ordering::SeqCst), 8);
    assert!(annotation(&client, &ns, "reader").await.is_some());
    let (_, metrics) = k.get("/metrics").await;
    assert!(metrics.contains(r#"kvsync_keyvault_requests_total{vault="storm-kv.vault.azure.net",operation="list_secrets",status="429"} 6"#), "{metrics}");
    assert!(metrics.contains(r#"kvsync_keyvault_requests_total{vault="storm-kv.vault.azure.net",operation="list_secrets",status="503"} 2"#), "{metrics}");
}

/// Two replicas on one Lease: exactly one reconciles; when it stops, the other takes over.
#[tokio::test]
async fn exactly_one_replica_reconciles_and_the_other_takes_over() {
    let client = support::client().await;
    let ns = support::namespace("reconcile-leader");
    let kv = KeyVaultStandIn::start().await;
    kv.put("leader-kv", "secrets", "db", NOW_ISH - 86_400);
    store(&client, &ns, "kv", "leader-kv").await;
    es(&client, &ns, "reader", "kv", "db").await;
    set_status(&client, "ExternalSecret", &ns, "reader", synced(NOW_ISH)).await;

    let a = start(
        &client,
        &ns,
        &kv,
        &["leader-kv"],
        &["--instance", "a", "--reconcile-interval", "300ms"],
    );
    let b = start(
        &client,
        &ns,
        &kv,
        &["leader-kv"],
        &["--instance", "b", "--reconcile-interval", "300ms"],
    );
    a.ready().await;
    b.ready().await;
    support::wait_until(Duration::from_secs(30), "a leader passes twice", || {
        let (pa, pb) = (passes(&a), passes(&b));
        async move { pa >= 2 || pb >= 2 }
    })
    .await;
    let (leader, follower, follower_name) = if passes(&a) >= 2 {
        (&a, &b, "b")
    } else {
        (&b, &a, "a")
    };
    assert_eq!(passes(follower), 0, "the follower reconciled too");
    assert!(*leader.engine.leader.as_ref().unwrap().borrow());
    assert!(!*follower.engine.leader.as_ref().unwrap().borrow());

    // Stop the leader (election and loop) without releasing the lease: the other takes over
    // once the lease expires.
    for t in &leader.engine.tasks {
        t.abort();
    }
    passes_at_least(follower, 1, Duration::from_secs(30)).await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client.clone(), &ns);
    let lease = leases.get("kvsync").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(follower_name));
    assert!(spec.lease_transitions.unwrap_or(0) >= 1);
}

/// A store that turns Ready after failing re-triggers its ExternalSecrets that are not Ready, once
/// per transition; Ready ones and repeated Ready observations trigger nothing.
#[tokio::test]
async fn a_store_turning_ready_retriggers_its_not_ready_external_secrets_once() {
    let client = support::client().await;
    let ns = support::namespace("store-ready");
    store(&client, &ns, "kv", "rbac-kv").await;
    let not_ready =
        json!({"conditions": [{"type": "Ready", "status": "False", "reason": "InvalidProviderConfig"}]});
    set_status(&client, "SecretStore", &ns, "kv", not_ready.clone()).await;
    es(&client, &ns, "failing", "kv", "db").await;
    es(&client, &ns, "healthy", "kv", "api").await;
    set_status(
        &client,
        "ExternalSecret",
        &ns,
        "failing",
        json!({"conditions": [{"type": "Ready", "status": "False", "reason": "SecretSyncedError"}]}),
    )
    .await;
    set_status(&client, "ExternalSecret", &ns, "healthy", synced(NOW_ISH)).await;

    // No Azure credential: the reconcile is off, the store-ready path still works.
    let k = kvsync::start(client.clone(), &["--namespace", &ns]);
    assert!(k.engine.reconciler.is_none());
    k.ready().await;
    k.indexed(2).await;

    let ready = |msg: &str| json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Valid", "message": msg}]});
    set_status(&client, "SecretStore", &ns, "kv", ready("store validated")).await;
    let c = client.clone();
    let n = ns.clone();
    support::wait_until(Duration::from_secs(15), "failing ES re-triggered", || {
        let (c, n) = (c.clone(), n.clone());
        async move { annotation(&c, &n, "failing").await.is_some() }
    })
    .await;
    let first = annotation(&client, &ns, "failing").await;
    assert_eq!(annotation(&client, &ns, "healthy").await, None);

    // Still Ready (another status write): no new trigger.
    set_status(&client, "SecretStore", &ns, "kv", ready("still valid")).await;
    // A full transition later: a new trigger.
    set_status(&client, "SecretStore", &ns, "kv", not_ready).await;
    set_status(&client, "SecretStore", &ns, "kv", ready("valid again")).await;
    let c = client.clone();
    let n = ns.clone();
    let f = first.clone();
    support::wait_until(Duration::from_secs(15), "second transition re-triggers", || {
        let (c, n, f) = (c.clone(), n.clone(), f.clone());
        async move { annotation(&c, &n, "failing").await != f }
    })
    .await;
    let (_, metrics) = k.get("/metrics").await;
    assert!(
        metrics.contains("kvsync_store_ready_transitions_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"cause="store_ready",outcome="patched"} 2"#),
        "{metrics}"
    );
    assert_eq!(annotation(&client, &ns, "healthy").await, None);
}

/// `kvsync reconcile --once --dry-run` over manifests: one pass against the stand-in, printing the
/// vault, the objects checked, the stale reader and what would be patched.
#[tokio::test]
async fn reconcile_once_prints_what_it_found_and_would_trigger() {
    let kv = KeyVaultStandIn::start().await;
    kv.put("cli-kv", "secrets", "rotated", NOW_ISH);
    kv.put("cli-kv", "secrets", "steady", NOW_ISH - 86_400);
    let dir = tempfile::tempdir().unwrap();
    let manifests = format!(
        r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: kv, namespace: app}}
spec: {{provider: {{azurekv: {{vaultUrl: "https://cli-kv.vault.azure.net"}}}}}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: stale, namespace: app}}
spec: {{secretStoreRef: {{name: kv}}, data: [{{secretKey: k, remoteRef: {{key: rotated}}}}]}}
status: {{refreshTime: "{old}"}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: fresh, namespace: app}}
spec: {{secretStoreRef: {{name: kv}}, data: [{{secretKey: k, remoteRef: {{key: steady}}}}]}}
status: {{refreshTime: "{old}"}}
"#,
        old = rfc3339(NOW_ISH - 3_600)
    );
    std::fs::write(dir.path().join("eso.yaml"), manifests).unwrap();
    let mut args: Vec<String> = vec![
        "reconcile".into(),
        "--once".into(),
        "--dry-run".into(),
        "--manifests".into(),
        dir.path().display().to_string(),
    ];
    args.extend(kv.flags(&["cli-kv"]));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kvsync"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 vault(s), 2 object(s) checked, 1 would be triggered"),
        "{stdout}"
    );
    assert!(
        stdout.contains("vault cli-kv.vault.azure.net: listed 2 secret(s); 2 checked; 1 stale"),
        "{stdout}"
    );
    assert!(
        stdout.contains("stale: ExternalSecret app/stale reads cli-kv.vault.azure.net/secret/rotated"),
        "{stdout}"
    );
    assert!(
        stdout.contains("would patch: ExternalSecret app/stale external-secrets.io/force-sync=kv-"),
        "{stdout}"
    );
    assert!(!stdout.contains("app/fresh"), "{stdout}");
}
