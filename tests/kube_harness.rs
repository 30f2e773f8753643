//! Proves the integration harness: a real API server with kvsync's CRDs, serving ESO's resources in
//! `v1` and `v1beta1`, accepting ESO's own example manifests, with merge patch and watch working.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

fn secret_store(version: &str, name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("external-secrets.io/{version}"),
        "kind": "SecretStore",
        "metadata": {"name": name},
        "spec": {"provider": {"azurekv": {
            "authType": "WorkloadIdentity",
            "vaultUrl": "https://my-vault.vault.azure.net",
            "serviceAccountRef": {"name": "workload-identity-sa"},
        }}},
    }))
    .unwrap()
}

fn external_secret(version: &str, name: &str, store: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("external-secrets.io/{version}"),
        "kind": "ExternalSecret",
        "metadata": {"name": name},
        "spec": {
            "secretStoreRef": {"kind": "SecretStore", "name": store},
            "target": {"name": name},
            "data": [{"secretKey": "password", "remoteRef": {"key": "secret/db-password"}}],
        },
    }))
    .unwrap()
}

/// A SecretStore and an ExternalSecret round-trip through both served versions, and the CRD
/// defaults `refreshInterval` like ESO's does.
#[tokio::test]
async fn store_and_external_secret_round_trip_in_v1_and_v1beta1() {
    let client = support::client().await;
    let ns = support::namespace("harness");
    for version in ["v1", "v1beta1"] {
        let stores = support::eso_api(&client, "SecretStore", version, Some(&ns));
        let ess = support::eso_api(&client, "ExternalSecret", version, Some(&ns));
        let store_name = format!("store-{version}");
        let es_name = format!("es-{version}");
        stores
            .create(&PostParams::default(), &secret_store(version, &store_name))
            .await
            .unwrap();
        ess.create(
            &PostParams::default(),
            &external_secret(version, &es_name, &store_name),
        )
        .await
        .unwrap();

        let store = stores.get(&store_name).await.unwrap();
        assert_eq!(
            store.data["spec"]["provider"]["azurekv"]["vaultUrl"],
            "https://my-vault.vault.azure.net"
        );
        assert_eq!(
            store.data["spec"]["provider"]["azurekv"]["authType"],
            "WorkloadIdentity"
        );
        let es = ess.get(&es_name).await.unwrap();
        assert_eq!(
            es.data["spec"]["data"][0]["remoteRef"]["key"],
            "secret/db-password"
        );
        assert_eq!(
            es.data["spec"]["refreshInterval"], "1h0m0s",
            "CRD default applies"
        );
        assert_eq!(es.metadata.generation, Some(1));
    }
    // Both versions are views of one storage: the v1beta1 object is readable as v1.
    let v1 = support::eso_api(&client, "ExternalSecret", "v1", Some(&ns));
    let names: Vec<_> = v1
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.metadata.name.unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// A JSON merge patch of one annotation is observed through a watch as a new resourceVersion, and
/// (thanks to the status subresource) leaves `metadata.generation` alone — as on ESO's CRDs.
#[tokio::test]
async fn annotation_merge_patch_is_seen_by_a_watch() {
    let client = support::client().await;
    let ns = support::namespace("harness-watch");
    let ess = support::eso_api(&client, "ExternalSecret", "v1", Some(&ns));
    let created = ess
        .create(&PostParams::default(), &external_secret("v1", "watched", "store"))
        .await
        .unwrap();
    let rv0 = created.metadata.resource_version.clone().unwrap();

    let mut stream = watcher::watcher(ess.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    // The initial list delivers the object as it is now.
    let first = tokio::time::timeout(Duration::from_secs(20), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.resource_version.as_deref(), Some(rv0.as_str()));

    let patch = json!({"metadata": {"annotations": {"external-secrets.io/force-sync": "kvsync-test-1"}}});
    let patched = ess
        .patch("watched", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let rv1 = patched.metadata.resource_version.clone().unwrap();
    assert_ne!(rv0, rv1);
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "metadata-only change keeps the generation"
    );

    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let obj = stream.try_next().await.unwrap().unwrap();
            if obj.metadata.resource_version.as_deref() == Some(rv1.as_str()) {
                return obj;
            }
        }
    })
    .await
    .expect("watch delivers the patched object");
    assert_eq!(
        seen.metadata.annotations.unwrap()["external-secrets.io/force-sync"],
        "kvsync-test-1"
    );
}

/// ESO's own Azure Key Vault example manifests are accepted by kvsync's CRDs.
#[tokio::test]
async fn eso_example_manifests_are_accepted() {
    let client = support::client().await;
    let ns = support::namespace("harness-examples");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eso");
    let mut created = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in support::yaml_documents(&text) {
            let api_version = doc["apiVersion"].as_str().unwrap().to_string();
            let Some(version) = api_version.strip_prefix("external-secrets.io/") else {
                continue; // ServiceAccounts: no core group on the test server
            };
            let kind = doc["kind"].as_str().unwrap().to_string();
            let namespaced = !kind.starts_with("Cluster");
            let mut obj: DynamicObject = serde_json::from_value(doc).unwrap();
            let unique = format!("{}-{created}", obj.metadata.name.clone().unwrap());
            obj.metadata.name = Some(unique);
            let api = support::eso_api(&client, &kind, version, namespaced.then_some(ns.as_str()));
            api.create(&PostParams::default(), &obj)
                .await
                .unwrap_or_else(|e| panic!("{} ({kind}) rejected: {e}", path.display()));
            created += 1;
        }
    }
    assert!(created >= 8, "only {created} ESO objects in the examples");
}
