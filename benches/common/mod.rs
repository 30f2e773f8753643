//! Shared fixtures for the benchmarks and the load tool: a realistic, deterministic population of
//! ESO objects and Event Grid / CloudEvents deliveries about them.
//!
//! Population for `n` ExternalSecrets (see `docs/BENCHMARKS.md`):
//! - `ceil(n / 50)` namespaces `team-00000…`, each with a `SecretStore` `kv`; ten namespaces share
//!   one vault `kv-0000…` (so a vault is read by ~500 ESs);
//! - one `ClusterSecretStore` `shared` (vault `shared-kv`) allowing namespaces `^team-`;
//! - ES `i` (namespace `i / 50`), by `i % 100`:
//!   - 0–59: three `data` refs, `app-i-db`, `secret/app-i-api`, `cert/app-i-tls`;
//!   - 60–74: `app-i-db` plus `secret/shared-(i % 200)` through the ClusterSecretStore;
//!   - 75–89: `dataFrom.extract` `app-i-json` plus `key/app-i-sign`;
//!   - 90–94: `app-i-db` pinned to a version plus `app-i-api`;
//!   - 95–97: `refreshPolicy: OnChange`, `app-i-db`;
//!   - 98–99: `dataFrom.find.name.regexp: ^app-i-` (2 % finders).
//!
//! Every ES reads `secret app-i-db` of its namespace's vault except the extract/find kinds; a
//! delivery for that object triggers exactly ES `i` (used by the load tool: one delivery → one patch).

#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

/// ESs per namespace.
pub const PER_NS: usize = 50;
/// Namespaces per vault.
pub const NS_PER_VAULT: usize = 10;

pub fn namespace(ns: usize) -> String {
    format!("team-{ns:05}")
}

pub fn vault_of_ns(ns: usize) -> String {
    format!("kv-{:04}", ns / NS_PER_VAULT)
}

pub fn namespace_of(i: usize) -> usize {
    i / PER_NS
}

pub fn es_name(i: usize) -> String {
    format!("app-{i:06}")
}

fn meta(name: &str, ns: Option<&str>, i: usize) -> Value {
    let mut m = json!({
        "name": name,
        "uid": format!("6f1c2d3e-0000-4000-8000-{i:012}"),
        "resourceVersion": format!("{}", 1000 + i),
        "generation": 1,
        "creationTimestamp": "2026-11-01T10:00:00Z",
        "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "payments"},
    });
    if let Some(ns) = ns {
        m["namespace"] = json!(ns);
    }
    m
}

/// The `SecretStore` of namespace `ns`.
pub fn secret_store(ns: usize) -> Value {
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": meta("kv", Some(&namespace(ns)), ns),
        "spec": {"provider": {"azurekv": {
            "authType": "WorkloadIdentity",
            "vaultUrl": format!("https://{}.vault.azure.net", vault_of_ns(ns)),
            "serviceAccountRef": {"name": "eso"}}}},
    })
}

/// The one `ClusterSecretStore`.
pub fn cluster_store() -> Value {
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": meta("shared", None, 0),
        "spec": {
            "provider": {"azurekv": {"authType": "WorkloadIdentity",
                "vaultUrl": "https://shared-kv.vault.azure.net",
                "serviceAccountRef": {"name": "eso", "namespace": "eso"}}},
            "conditions": [{"namespaceRegexes": ["^team-"]}],
        },
    })
}

fn data(key: &str, secret_key: &str) -> Value {
    json!({"secretKey": secret_key, "remoteRef": {"key": key}})
}

/// ExternalSecret number `i`.
pub fn external_secret(i: usize) -> Value {
    let ns = namespace(namespace_of(i));
    let name = es_name(i);
    let mut spec = json!({
        "refreshInterval": "1h0m0s",
        "secretStoreRef": {"kind": "SecretStore", "name": "kv"},
        "target": {"name": name, "creationPolicy": "Owner"},
    });
    match i % 100 {
        0..=59 => {
            spec["data"] = json!([
                data(&format!("{name}-db"), "DB_PASSWORD"),
                data(&format!("secret/{name}-api"), "API_KEY"),
                data(&format!("cert/{name}-tls"), "tls.crt"),
            ]);
        }
        60..=74 => {
            spec["data"] = json!([
                data(&format!("{name}-db"), "DB_PASSWORD"),
                {"secretKey": "SHARED", "remoteRef": {"key": format!("secret/shared-{}", i % 200)},
                 "sourceRef": {"storeRef": {"kind": "ClusterSecretStore", "name": "shared"}}},
            ]);
        }
        75..=89 => {
            spec["dataFrom"] = json!([{"extract": {"key": format!("{name}-json")}}]);
            spec["data"] = json!([data(&format!("key/{name}-sign"), "SIGNING_KEY")]);
        }
        90..=94 => {
            spec["data"] = json!([
                {"secretKey": "DB_PASSWORD", "remoteRef": {"key": format!("{name}-db"), "version": "0123456789abcdef0123456789abcdef"}},
                data(&format!("{name}-api"), "API_KEY"),
            ]);
        }
        95..=97 => {
            spec["refreshPolicy"] = json!("OnChange");
            spec["data"] = json!([data(&format!("{name}-db"), "DB_PASSWORD")]);
        }
        _ => {
            spec["dataFrom"] = json!([{"find": {"name": {"regexp": format!("^{name}-")}}}]);
        }
    }
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": meta(&name, Some(&ns), i),
        "spec": spec,
        "status": {"refreshTime": "2026-11-01T10:00:05Z", "syncedResourceVersion": format!("1-{i:032x}"),
                   "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced",
                                   "message": "secret synced", "lastTransitionTime": "2026-11-01T10:00:05Z"}]},
    })
}

/// Does ES `i` read `secret app-i-db` at its latest version (so an event for it triggers ES `i`)?
pub fn triggers_on_db(i: usize) -> bool {
    matches!(i % 100, 0..=74 | 95..=97)
}

/// Every store and ExternalSecret for `n` ESs, stores first.
pub fn population(n: usize) -> Vec<Value> {
    (0..population_len(n)).map(|k| population_item(n, k)).collect()
}

/// How many objects [`population`] has.
pub fn population_len(n: usize) -> usize {
    1 + n.div_ceil(PER_NS) + n
}

/// Object `k` of [`population`]`(n)`, without building the rest.
pub fn population_item(n: usize, k: usize) -> Value {
    let namespaces = n.div_ceil(PER_NS);
    match k {
        0 => cluster_store(),
        k if k <= namespaces => secret_store(k - 1),
        k => external_secret(k - 1 - namespaces),
    }
}

/// The Key Vault object of ES `i` used by deliveries: `secret app-i-db` in its vault.
pub fn db_object(i: usize) -> (String, String) {
    (vault_of_ns(namespace_of(i)), format!("{}-db", es_name(i)))
}

/// One Event Grid schema `SecretNewVersionCreated` event.
pub fn eg_event(vault: &str, name: &str, version: &str) -> Value {
    json!({
        "id": format!("{vault}-{name}-{version}"),
        "topic": format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{vault}"),
        "subject": name,
        "eventType": "Microsoft.KeyVault.SecretNewVersionCreated",
        "eventTime": "2026-11-28T10:00:00.0000000Z",
        "data": {
            "Id": format!("https://{vault}.vault.azure.net/secrets/{name}/{version}"),
            "VaultName": vault, "ObjectType": "Secret", "ObjectName": name, "Version": version,
            "NBF": null, "EXP": null
        },
        "dataVersion": "1", "metadataVersion": "1"
    })
}

/// One CloudEvents 1.0 `SecretNewVersionCreated` event.
pub fn ce_event(vault: &str, name: &str, version: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": format!("{vault}-{name}-{version}"),
        "source": format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{vault}"),
        "subject": name,
        "type": "Microsoft.KeyVault.SecretNewVersionCreated",
        "time": "2026-11-28T10:00:00.0000000Z",
        "data": {
            "Id": format!("https://{vault}.vault.azure.net/secrets/{name}/{version}"),
            "VaultName": vault, "ObjectType": "Secret", "ObjectName": name, "Version": version,
            "NBF": null, "EXP": null
        }
    })
}

/// A batch of `k` events about the db objects of ESs spread over `0..n`.
pub fn batch(k: usize, n: usize, cloudevents: bool) -> Vec<u8> {
    let events: Vec<Value> = (0..k)
        .map(|j| {
            let i = (j * 7919) % n.max(1);
            let (vault, name) = db_object(i);
            let version = format!("{j:032x}");
            if cloudevents {
                ce_event(&vault, &name, &version)
            } else {
                eg_event(&vault, &name, &version)
            }
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

/// Headers of a webhook delivery.
pub fn headers(cloudevents: bool) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    let ct = if cloudevents {
        "application/cloudevents-batch+json"
    } else {
        "application/json"
    };
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(ct));
    h.insert("aeg-event-type", http::HeaderValue::from_static("Notification"));
    h
}

/// Builds the index as the watch path does: `DynamicObject` → `convert` → `Index::apply_*`.
pub fn apply_all(index: &mut kvsync::core::index::Index, objects: &[kube::core::DynamicObject]) {
    use kvsync::core::objects::StoreKind;
    use kvsync::kube::convert;
    for o in objects {
        match o.types.as_ref().map(|t| t.kind.as_str()) {
            Some("SecretStore") => index.apply_store(convert::store(StoreKind::SecretStore, o)),
            Some("ClusterSecretStore") => index.apply_store(convert::store(StoreKind::ClusterSecretStore, o)),
            Some("ExternalSecret") => index.apply_external_secret(convert::external_secret(o)),
            _ => {}
        }
    }
}

/// The population as `DynamicObject`s.
pub fn dynamic_objects(n: usize) -> Vec<kube::core::DynamicObject> {
    population(n)
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect()
}

/// A built index of `n` ESs.
pub fn index(n: usize) -> kvsync::core::index::Index {
    let mut idx = kvsync::core::index::Index::new();
    apply_all(&mut idx, &dynamic_objects(n));
    idx
}

/// `count` changes (new versions of db objects) spread over `0..n`, for lookups.
pub fn changes(count: usize, n: usize) -> Vec<kvsync::core::model::VaultChange> {
    use kvsync::core::model::{ChangeKind, ObjectKind, ObjectName, ObjectRef, VaultChange, VaultId};
    (0..count)
        .map(|j| {
            let i = (j * 7919 + 13) % n;
            let (vault, name) = db_object(i);
            VaultChange {
                object: ObjectRef {
                    vault: VaultId::from_name(&vault, kvsync::core::model::Cloud::Public).unwrap(),
                    kind: ObjectKind::Secret,
                    name: ObjectName::new(&name),
                },
                version: Some(format!("{j:032x}").into()),
                kind: ChangeKind::NewVersion,
            }
        })
        .collect()
}

/// `VmRSS` and `VmHWM` of a process in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Percentile (0–100) of sorted samples.
pub fn pct<T: Copy>(sorted: &[T], p: f64) -> T {
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}
