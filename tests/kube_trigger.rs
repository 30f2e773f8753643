//! From a Key Vault event to exactly the right ExternalSecrets, against the real test API server:
//! kvsync runs in-process with its production wiring (watches → index → plan → patch).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use http::StatusCode;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use serde_json::{Value, json};
use support::kvsync::{self, batch, event};
use support::{EsoVersions, eso_api};

const FORCE_SYNC: &str = "external-secrets.io/force-sync";

fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).unwrap()
}

async fn create(client: &kube::Client, version: &str, ns: Option<&str>, v: Value) -> DynamicObject {
    let kind = v["kind"].as_str().unwrap().to_string();
    eso_api(client, &kind, version, ns)
        .create(&PostParams::default(), &obj(v))
        .await
        .unwrap()
}

async fn store(client: &kube::Client, ns: &str, name: &str, vault: &str) {
    create(client, "v1", Some(ns), json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": name},
        "spec": {"provider": {"azurekv": {"authType": "WorkloadIdentity", "vaultUrl": format!("https://{vault}.vault.azure.net"),
                 "serviceAccountRef": {"name": "sa"}}}},
    })).await;
}

async fn es(
    client: &kube::Client,
    version: &str,
    ns: &str,
    name: &str,
    store: &str,
    keys: &[&str],
) -> DynamicObject {
    let data: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"secretKey": format!("k{i}"), "remoteRef": {"key": k}}))
        .collect();
    create(client, version, Some(ns), json!({
        "apiVersion": format!("external-secrets.io/{version}"), "kind": "ExternalSecret", "metadata": {"name": name},
        "spec": {"secretStoreRef": {"kind": "SecretStore", "name": store}, "target": {"name": name}, "data": data},
    })).await
}

async fn annotations(client: &kube::Client, ns: &str, name: &str) -> (BTreeMap<String, String>, String) {
    let o = eso_api(client, "ExternalSecret", "v1", Some(ns))
        .get(name)
        .await
        .unwrap();
    (
        o.metadata.annotations.unwrap_or_default(),
        o.metadata.resource_version.unwrap(),
    )
}

async fn until_annotated(client: &kube::Client, ns: &str, name: &str) -> String {
    let client = client.clone();
    let (ns, name) = (ns.to_string(), name.to_string());
    let mut value = String::new();
    support::wait_until(Duration::from_secs(10), "annotation", || {
        let (client, ns, name) = (client.clone(), ns.clone(), name.clone());
        async move { annotations(&client, &ns, &name).await.0.contains_key(FORCE_SYNC) }
    })
    .await;
    if let Some(v) = annotations(&client, &ns, &name).await.0.get(FORCE_SYNC) {
        value = v.clone();
    }
    value
}

/// The rule matrix end to end: one event refreshes the v1 and v1beta1 readers of that secret in that
/// vault, and leaves alone the same name in another vault, a pinned reader and an unrelated key.
#[tokio::test]
async fn an_event_patches_exactly_the_readers_of_that_object() {
    let client = support::client().await;
    let ns = support::namespace("trigger-matrix");
    let k = kvsync::start(client.clone(), &["--namespace", &ns]);
    store(&client, &ns, "kv", "prod-kv").await;
    store(&client, &ns, "other", "other-kv").await;
    es(&client, "v1", &ns, "reader-v1", "kv", &["secret/db-password"]).await;
    es(&client, "v1beta1", &ns, "reader-v1beta1", "kv", &["DB-PASSWORD"]).await;
    es(&client, "v1", &ns, "other-vault", "other", &["db-password"]).await;
    es(&client, "v1", &ns, "unrelated", "kv", &["api-key"]).await;
    create(&client, "v1", Some(&ns), json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": "pinned"},
        "spec": {"secretStoreRef": {"name": "kv"}, "data": [{"secretKey": "p", "remoteRef": {"key": "db-password", "version": "abc"}}]},
    })).await;
    k.ready().await;
    k.indexed(5).await;

    let (status, body) = k
        .post(&batch(&[event("prod-kv", "secret", "db-password", "v2")]), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["triggered"], 2, "{body}");
    assert_eq!(body["skipped"], 1, "{body}");
    for name in ["reader-v1", "reader-v1beta1"] {
        assert!(
            annotations(&client, &ns, name).await.0.contains_key(FORCE_SYNC),
            "{name} not triggered"
        );
    }
    for name in ["other-vault", "unrelated", "pinned"] {
        assert!(
            !annotations(&client, &ns, name).await.0.contains_key(FORCE_SYNC),
            "{name} wrongly triggered"
        );
    }
    // The patch was made by field manager kvsync and touched only the annotation.
    let o = eso_api(&client, "ExternalSecret", "v1", Some(&ns))
        .get("reader-v1")
        .await
        .unwrap();
    let managers: Vec<_> = o
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"kvsync".to_string()), "{managers:?}");
    assert_eq!(o.metadata.generation, Some(1));
}

/// A redelivered event (Event Grid is at-least-once) changes no resourceVersion.
#[tokio::test]
async fn a_redelivered_event_changes_nothing() {
    let client = support::client().await;
    let ns = support::namespace("trigger-redeliver");
    let k = kvsync::start(client.clone(), &["--namespace", &ns]);
    store(&client, &ns, "kv", "redeliver-kv").await;
    for i in 0..3 {
        es(&client, "v1", &ns, &format!("es-{i}"), "kv", &["db-password"]).await;
    }
    k.ready().await;
    k.indexed(3).await;
    let delivery = batch(&[event("redeliver-kv", "secret", "db-password", "v7")]);
    assert_eq!(k.post(&delivery, &[]).await.0, StatusCode::OK);
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(annotations(&client, &ns, &format!("es-{i}")).await);
    }
    for _ in 0..3 {
        let (status, body) = k.post(&delivery, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["triggered"], 0, "{body}");
    }
    for (i, was) in before.iter().enumerate() {
        assert_eq!(
            &annotations(&client, &ns, &format!("es-{i}")).await,
            was,
            "es-{i} changed"
        );
    }
}

/// Two events for two keys of one ExternalSecret in one batch make one patch.
#[tokio::test]
async fn two_keys_of_one_external_secret_in_one_batch_make_one_patch() {
    let client = support::client().await;
    let ns = support::namespace("trigger-coalesce");
    let k = kvsync::start(client.clone(), &["--namespace", &ns]);
    store(&client, &ns, "kv", "coalesce-kv").await;
    let created = es(&client, "v1", &ns, "both", "kv", &["user", "password"]).await;
    k.ready().await;
    k.indexed(1).await;
    let api = eso_api(&client, "ExternalSecret", "v1", Some(&ns));
    let rv0 = created.metadata.resource_version.clone().unwrap();
    let wp = kube::api::WatchParams::default().fields("metadata.name=both");
    let mut watch = api.watch(&wp, &rv0).await.unwrap().boxed();

    let (status, body) = k
        .post(
            &batch(&[
                event("coalesce-kv", "secret", "user", "1"),
                event("coalesce-kv", "secret", "password", "1"),
            ]),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["triggered"], 1, "{body}");
    // Exactly one modification reaches a watch: wait for the first as long as a loaded machine
    // may need, then make sure no second one follows.
    let mut modifications = 0;
    let mut wait = Duration::from_secs(30);
    while let Ok(Some(ev)) = tokio::time::timeout(wait, watch.next()).await {
        if let Ok(kube::api::WatchEvent::Modified(_)) = ev {
            modifications += 1;
            wait = Duration::from_secs(2);
        }
    }
    assert_eq!(modifications, 1);
}

/// A thousand ExternalSecrets reading one key are all triggered by one event.
#[tokio::test]
async fn one_event_triggers_a_thousand_readers() {
    let client = support::client().await;
    let ns = support::namespace("trigger-1000");
    let k = kvsync::start(client.clone(), &["--namespace", &ns]);
    store(&client, &ns, "kv", "big-kv").await;
    let api = eso_api(&client, "ExternalSecret", "v1", Some(&ns));
    futures::stream::iter(0..1000)
        .for_each_concurrent(16, |i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &obj(json!({
                    "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": format!("es-{i:04}")},
                    "spec": {"secretStoreRef": {"name": "kv"}, "data": [{"secretKey": "p", "remoteRef": {"key": "shared-key"}}]},
                }))).await.unwrap();
            }
        })
        .await;
    k.ready().await;
    k.indexed(1000).await;
    let (status, body) = k
        .post(&batch(&[event("big-kv", "secret", "shared-key", "v1")]), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["triggered"], 1000, "{body}");
    let list = api.list(&Default::default()).await.unwrap();
    let annotated = list
        .items
        .iter()
        .filter(|o| {
            o.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(FORCE_SYNC))
        })
        .count();
    assert_eq!(annotated, 1000);
}

/// An ExternalSecret owned by a ClusterExternalSecret is refreshed through its parent.
#[tokio::test]
async fn cluster_external_secret_children_are_triggered_through_the_parent() {
    let client = support::client().await;
    let ns = support::namespace("trigger-ces");
    let ces_name = format!("ces-{ns}");
    let k = kvsync::start(client.clone(), &[]);
    store(&client, &ns, "kv", "ces-kv").await;
    let ces = create(&client, "v1", None, json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret", "metadata": {"name": ces_name},
        "spec": {"externalSecretSpec": {"secretStoreRef": {"name": "kv"}, "data": [{"secretKey": "p", "remoteRef": {"key": "shared"}}]}},
    })).await;
    create(&client, "v1", Some(&ns), json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "child", "ownerReferences": [{"apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
            "name": ces_name, "uid": ces.metadata.uid.clone().unwrap(), "controller": true}]},
        "spec": {"secretStoreRef": {"name": "kv"}, "data": [{"secretKey": "p", "remoteRef": {"key": "shared"}}]},
    })).await;
    k.ready().await;
    let index = k.engine.index.clone();
    support::wait_until(Duration::from_secs(20), "child indexed", || {
        let index = index.clone();
        let ns = ns.clone();
        async move {
            index
                .read()
                .unwrap()
                .external_secret_keys()
                .iter()
                .any(|e| *e.namespace == *ns)
        }
    })
    .await;
    let (status, body) = k
        .post(&batch(&[event("ces-kv", "secret", "shared", "v1")]), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let parent = eso_api(&client, "ClusterExternalSecret", "v1", None)
        .get(&ces_name)
        .await
        .unwrap();
    assert!(
        parent
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(FORCE_SYNC),
        "parent not triggered"
    );
    assert!(
        !annotations(&client, &ns, "child")
            .await
            .0
            .contains_key(FORCE_SYNC),
        "child patched directly"
    );
}

/// Until every watch has listed, deliveries get 503 and /readyz is not green.
#[tokio::test]
async fn deliveries_wait_for_the_initial_list() {
    // A client to a port nobody listens on: discovery never succeeds.
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let k = kvsync::start(client, &[]);
    assert_eq!(k.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(k.get("/healthz").await.0, StatusCode::OK);
    let (status, _) = k.post(&batch(&[event("kv", "secret", "x", "1")]), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

/// Confirmation: a test-side stand-in for ESO writes the status ESO would; kvsync records the
/// trigger→confirmed latency.
#[tokio::test]
async fn the_refresh_is_confirmed_from_eso_status() {
    let client = support::client().await;
    let ns = support::namespace("trigger-confirm");
    let k = kvsync::start(client.clone(), &["--namespace", &ns]);
    store(&client, &ns, "kv", "confirm-kv").await;
    es(&client, "v1", &ns, "confirmed", "kv", &["db-password"]).await;
    k.ready().await;
    k.indexed(1).await;
    let (status, _) = k
        .post(&batch(&[event("confirm-kv", "secret", "db-password", "v1")]), &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    until_annotated(&client, &ns, "confirmed").await;
    // ESO stand-in: status.syncedResourceVersion = generation-sha3(meta), Ready=True.
    let api = eso_api(&client, "ExternalSecret", "v1", Some(&ns));
    let o = api.get("confirmed").await.unwrap();
    let synced = ::kvsync::core::confirm::synced_resource_version(
        o.metadata.generation.unwrap(),
        &o.metadata.annotations.clone().unwrap_or_default(),
        &o.metadata.labels.clone().unwrap_or_default(),
    );
    let status = json!({"status": {"syncedResourceVersion": synced, "refreshTime": "2026-11-28T10:00:00Z",
        "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced", "message": "secret synced"}]}});
    api.patch_status("confirmed", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let metrics = k.metrics.clone();
    support::wait_until(Duration::from_secs(10), "confirmation recorded", || {
        let metrics = metrics.clone();
        async move {
            metrics
                .render()
                .contains("kvsync_confirm_latency_seconds_count 1")
        }
    })
    .await;
    // And a Kubernetes Event was recorded on the ExternalSecret.
    let events: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("events.k8s.io", "v1", "Event"),
            "events",
        ),
    );
    let client2 = events.clone();
    support::wait_until(Duration::from_secs(10), "KeyVaultChange event", || {
        let events = client2.clone();
        async move {
            events
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|e| e.data["reason"] == "KeyVaultChange")
        }
    })
    .await;
}

/// Servers that serve only v1, or only v1beta1 (ESO < 0.16), both work.
#[tokio::test]
async fn works_on_v1_only_and_v1beta1_only_servers() {
    for (versions, version) in [(EsoVersions::V1Only, "v1"), (EsoVersions::V1Beta1Only, "v1beta1")] {
        let server = support::ApiServer::start(versions);
        let client = server.client().await;
        let ns = "apps";
        create(&client, version, Some(ns), json!({
            "apiVersion": format!("external-secrets.io/{version}"), "kind": "SecretStore", "metadata": {"name": "kv"},
            "spec": {"provider": {"azurekv": {"vaultUrl": "https://only-kv.vault.azure.net"}}},
        })).await;
        create(&client, version, Some(ns), json!({
            "apiVersion": format!("external-secrets.io/{version}"), "kind": "ExternalSecret", "metadata": {"name": "reader"},
            "spec": {"secretStoreRef": {"name": "kv"}, "data": [{"secretKey": "p", "remoteRef": {"key": "db"}}]},
        })).await;
        let k = kvsync::start(client.clone(), &[]);
        k.ready().await;
        k.indexed(1).await;
        let (status, body) = k
            .post(&batch(&[event("only-kv", "secret", "db", "1")]), &[])
            .await;
        assert_eq!(status, StatusCode::OK, "{version}: {body}");
        assert_eq!(body["triggered"], 1, "{version}: {body}");
        let o = eso_api(&client, "ExternalSecret", version, Some(ns))
            .get("reader")
            .await
            .unwrap();
        assert!(
            o.metadata
                .annotations
                .unwrap_or_default()
                .contains_key(FORCE_SYNC),
            "{version}"
        );
    }
}

/// After the API server restarts, the watches resume and the index follows changes made since.
#[tokio::test]
async fn watches_recover_after_an_api_server_restart() {
    let server = support::ApiServer::start(EsoVersions::Both);
    let client = server.client().await;
    let ns = "apps";
    store(&client, ns, "kv", "restart-kv").await;
    es(&client, "v1", ns, "before", "kv", &["db"]).await;
    let k = kvsync::start(client.clone(), &[]);
    k.ready().await;
    k.indexed(1).await;
    server.restart_apiserver();
    let client = server.client().await;
    support::wait_until(Duration::from_secs(30), "collections serve again", || {
        let client = client.clone();
        async move {
            eso_api(&client, "ExternalSecret", "v1", Some("apps"))
                .list(&Default::default())
                .await
                .is_ok()
        }
    })
    .await;
    es(&client, "v1", ns, "after", "kv", &["db"]).await;
    eso_api(&client, "ExternalSecret", "v1", Some(ns))
        .delete("before", &Default::default())
        .await
        .unwrap();
    let index = k.engine.index.clone();
    support::wait_until(Duration::from_secs(60), "index follows the cluster", || {
        let index = index.clone();
        async move {
            let keys: Vec<String> = index
                .read()
                .unwrap()
                .external_secret_keys()
                .iter()
                .map(|e| e.name.to_string())
                .collect();
            keys == vec!["after".to_string()]
        }
    })
    .await;
    let (status, body) = k
        .post(&batch(&[event("restart-kv", "secret", "db", "2")]), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["triggered"], 1, "{body}");
}

async fn event_reasons(client: &kube::Client, ns: &str) -> Vec<String> {
    let events: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("events.k8s.io", "v1", "Event"),
            "events",
        ),
    );
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|e| e.data["reason"].as_str().map(str::to_string))
        .collect()
}

/// ExternalSecrets whose refresh policy makes ESO ignore triggers are not patched; each gets one
/// Warning Event, however many events arrive.
#[tokio::test]
async fn policy_ignored_readers_get_one_warning_event_and_no_patch() {
    let client = support::client().await;
    let ns = support::namespace("trigger-policy");
    let k = kvsync::start(client.clone(), &["--namespace", &ns]);
    store(&client, &ns, "kv", "policy-kv").await;
    create(
        &client,
        "v1",
        Some(&ns),
        json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": "once"},
            "spec": {"refreshPolicy": "CreatedOnce", "secretStoreRef": {"name": "kv"},
                     "data": [{"secretKey": "p", "remoteRef": {"key": "db"}}]},
        }),
    )
    .await;
    k.ready().await;
    k.indexed(1).await;
    for version in ["1", "2", "3"] {
        let (status, body) = k
            .post(&batch(&[event("policy-kv", "secret", "db", version)]), &[])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["triggered"], 0, "{body}");
        assert_eq!(body["skipped"], 1, "{body}");
    }
    assert!(!annotations(&client, &ns, "once").await.0.contains_key(FORCE_SYNC));
    let client2 = client.clone();
    let ns2 = ns.clone();
    support::wait_until(Duration::from_secs(10), "KeyVaultChangeIgnored event", || {
        let (client, ns) = (client2.clone(), ns2.clone());
        async move {
            event_reasons(&client, &ns)
                .await
                .iter()
                .any(|r| r == "KeyVaultChangeIgnored")
        }
    })
    .await;
    let ignored = event_reasons(&client, &ns)
        .await
        .iter()
        .filter(|r| *r == "KeyVaultChangeIgnored")
        .count();
    assert_eq!(ignored, 1);
    assert!(
        k.metrics
            .render()
            .contains("kvsync_trigger_skipped_total{reason=\"created_once\"} 3")
    );
}

/// ESO reporting Ready=False after a trigger gives a Warning Event and a failure metric.
#[tokio::test]
async fn a_failed_refresh_is_reported() {
    let client = support::client().await;
    let ns = support::namespace("trigger-failed");
    let k = kvsync::start(client.clone(), &["--namespace", &ns]);
    store(&client, &ns, "kv", "failed-kv").await;
    es(&client, "v1", &ns, "failing", "kv", &["db"]).await;
    k.ready().await;
    k.indexed(1).await;
    assert_eq!(
        k.post(&batch(&[event("failed-kv", "secret", "db", "1")]), &[])
            .await
            .0,
        StatusCode::OK
    );
    until_annotated(&client, &ns, "failing").await;
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "SecretSyncedError",
        "message": "could not get secret data from provider"}]}});
    eso_api(&client, "ExternalSecret", "v1", Some(&ns))
        .patch_status("failing", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let metrics = k.metrics.clone();
    support::wait_until(Duration::from_secs(10), "failure recorded", || {
        let metrics = metrics.clone();
        async move {
            metrics
                .render()
                .contains("kvsync_confirm_failures_total{reason=\"not_ready\"} 1")
        }
    })
    .await;
    let client2 = client.clone();
    support::wait_until(Duration::from_secs(10), "RefreshFailed event", || {
        let (client, ns) = (client2.clone(), ns.clone());
        async move {
            event_reasons(&client, &ns)
                .await
                .iter()
                .any(|r| r == "RefreshFailed")
        }
    })
    .await;
}

/// A Ready=False that was already there before the trigger is not blamed on it: the refresh is
/// confirmed when ESO later succeeds, and no failure is reported.
#[tokio::test]
async fn a_failure_from_before_the_trigger_is_not_blamed_on_it() {
    let client = support::client().await;
    let ns = support::namespace("trigger-prefail");
    let k = kvsync::start(client.clone(), &["--namespace", &ns]);
    store(&client, &ns, "kv", "prefail-kv").await;
    es(&client, "v1", &ns, "flaky", "kv", &["db"]).await;
    let api = eso_api(&client, "ExternalSecret", "v1", Some(&ns));
    let failed = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "SecretSyncedError",
        "message": "could not get secret data from provider"}]}});
    api.patch_status("flaky", &PatchParams::default(), &Patch::Merge(&failed))
        .await
        .unwrap();
    k.ready().await;
    let index = k.engine.index.clone();
    let key = ::kvsync::core::objects::EsKey::new(ns.clone(), "flaky");
    support::wait_until(Duration::from_secs(10), "failing status indexed", || {
        let (index, key) = (index.clone(), key.clone());
        async move {
            index
                .read()
                .unwrap()
                .external_secret(&key)
                .is_some_and(|e| e.ready() == Some(::kvsync::core::index::ReadyStatus::False))
        }
    })
    .await;
    assert_eq!(
        k.post(&batch(&[event("prefail-kv", "secret", "db", "1")]), &[])
            .await
            .0,
        StatusCode::OK
    );
    until_annotated(&client, &ns, "flaky").await;
    let o = api.get("flaky").await.unwrap();
    let synced = ::kvsync::core::confirm::synced_resource_version(
        o.metadata.generation.unwrap(),
        &o.metadata.annotations.clone().unwrap_or_default(),
        &o.metadata.labels.clone().unwrap_or_default(),
    );
    let ok = json!({"status": {"syncedResourceVersion": synced, "conditions": [{"type": "Ready", "status": "True",
        "reason": "SecretSynced", "message": "secret synced"}]}});
    api.patch_status("flaky", &PatchParams::default(), &Patch::Merge(&ok))
        .await
        .unwrap();
    let metrics = k.metrics.clone();
    support::wait_until(Duration::from_secs(10), "confirmation recorded", || {
        let metrics = metrics.clone();
        async move {
            metrics
                .render()
                .contains("kvsync_confirm_latency_seconds_count 1")
        }
    })
    .await;
    assert!(
        !k.metrics
            .render()
            .contains("kvsync_confirm_failures_total{reason=\"not_ready\"}")
    );
}

/// Kubernetes Events draw from their own budget: a rotation read by more ExternalSecrets than the
/// burst patches every one of them, records Events for the first `--event-burst` only and counts
/// the rest as suppressed; `--event-rate 0` records none.
#[tokio::test]
async fn events_beyond_the_budget_are_counted_not_sent() {
    let client = support::client().await;
    for (rate, burst, recorded) in [("1", "3", 3usize), ("0", "3", 0)] {
        let ns = support::namespace(&format!("trigger-event-budget-{rate}"));
        let k = kvsync::start(
            client.clone(),
            &["--namespace", &ns, "--event-rate", rate, "--event-burst", burst],
        );
        store(&client, &ns, "kv", &format!("budget-kv-{rate}")).await;
        for i in 0..10 {
            es(&client, "v1", &ns, &format!("es-{i}"), "kv", &["shared"]).await;
        }
        k.ready().await;
        k.indexed(10).await;
        let (status, body) = k
            .post(
                &batch(&[event(&format!("budget-kv-{rate}"), "secret", "shared", "1")]),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["triggered"], 10, "{body}");
        let suppressed = format!(
            "kvsync_kube_events_suppressed_total{{reason=\"KeyVaultChange\"}} {}",
            10 - recorded
        );
        let metrics = k.metrics.clone();
        support::wait_until(Duration::from_secs(10), "suppressed count", || {
            let (metrics, suppressed) = (metrics.clone(), suppressed.clone());
            async move { metrics.render().contains(&suppressed) }
        })
        .await;
        if recorded > 0 {
            let (client2, ns2) = (client.clone(), ns.clone());
            support::wait_until(Duration::from_secs(10), "budgeted events", || {
                let (client, ns) = (client2.clone(), ns2.clone());
                async move { event_reasons(&client, &ns).await.len() >= recorded }
            })
            .await;
        }
        // Give any (wrongly) unbudgeted Event time to land before counting.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let reasons = event_reasons(&client, &ns).await;
        assert_eq!(reasons.len(), recorded, "{reasons:?}");
        assert!(reasons.iter().all(|r| r == "KeyVaultChange"), "{reasons:?}");
        for i in 0..10 {
            assert!(
                annotations(&client, &ns, &format!("es-{i}"))
                    .await
                    .0
                    .contains_key(FORCE_SYNC)
            );
        }
    }
}
