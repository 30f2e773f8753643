//! Tests of the matching rules through the public API (`Index` + `plan`/`explain`). Each rule of
//! the brief has a test that fails when the rule is removed.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::decide::{NoNamespaceLabels, Plan, SkipReason, explain, plan, trigger_value};
use super::index::Index;
use super::model::{ChangeKind, Cloud, ObjectKind, ObjectName, ObjectRef, VaultChange, VaultId};
use super::objects::{
    ClusterExternalSecretObject, EsKey, ExternalSecretObject, Meta, OwnerRef, StoreKind, StoreObject, Target,
};

pub(super) fn vault(name: &str) -> VaultId {
    VaultId::from_name(name, Cloud::Public).unwrap()
}

pub(super) fn url(name: &str) -> String {
    format!("https://{name}.vault.azure.net")
}

pub(super) fn store(kind: StoreKind, ns: Option<&str>, name: &str, spec: Value) -> StoreObject {
    StoreObject {
        kind,
        meta: Meta {
            namespace: ns.map(str::to_string),
            name: name.to_string(),
            ..Meta::default()
        },
        spec,
        status: Value::Null,
    }
}

pub(super) fn azure_spec(vault_name: &str) -> Value {
    json!({"provider": {"azurekv": {"vaultUrl": url(vault_name)}}})
}

pub(super) fn ss(ns: &str, name: &str, vault_name: &str) -> StoreObject {
    store(StoreKind::SecretStore, Some(ns), name, azure_spec(vault_name))
}

pub(super) fn css(name: &str, vault_name: &str, conditions: Value) -> StoreObject {
    let mut spec = azure_spec(vault_name);
    spec["conditions"] = conditions;
    store(StoreKind::ClusterSecretStore, None, name, spec)
}

pub(super) fn es(ns: &str, name: &str, spec: Value) -> ExternalSecretObject {
    es_with_status(ns, name, spec, Value::Null)
}

pub(super) fn es_with_status(ns: &str, name: &str, spec: Value, status: Value) -> ExternalSecretObject {
    // Tests classify intervals with the adapter's parser (kube's Go-duration parser): one grammar.
    let refresh_interval = crate::kube::convert::refresh_interval(&spec);
    ExternalSecretObject {
        meta: Meta {
            namespace: Some(ns.to_string()),
            name: name.to_string(),
            generation: Some(1),
            ..Meta::default()
        },
        spec,
        status,
        refresh_interval,
    }
}

/// An ES reading `keys` (as `data[].remoteRef.key`) from SecretStore `store`.
pub(super) fn data_es(ns: &str, name: &str, store: &str, keys: &[&str]) -> ExternalSecretObject {
    let data: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"secretKey": format!("k{i}"), "remoteRef": {"key": k}}))
        .collect();
    es(
        ns,
        name,
        json!({"secretStoreRef": {"name": store, "kind": "SecretStore"}, "data": data}),
    )
}

pub(super) fn obj(vault_name: &str, kind: ObjectKind, name: &str) -> ObjectRef {
    ObjectRef {
        vault: vault(vault_name),
        kind,
        name: ObjectName::new(name),
    }
}

pub(super) fn new_version(vault_name: &str, kind: ObjectKind, name: &str, v: &str) -> VaultChange {
    VaultChange {
        object: obj(vault_name, kind, name),
        version: Some(v.into()),
        kind: ChangeKind::NewVersion,
    }
}

fn secret(name: &str) -> VaultChange {
    new_version("kv1", ObjectKind::Secret, name, "v1")
}

fn run(index: &Index, changes: &[VaultChange]) -> Plan {
    plan(index, changes, &NoNamespaceLabels)
}

/// Targets of a plan, as strings.
pub(super) fn targets(p: &Plan) -> Vec<String> {
    p.triggers.iter().map(|t| t.target.to_string()).collect()
}

fn es_target(ns: &str, name: &str) -> String {
    Target::ExternalSecret(EsKey::new(ns, name)).to_string()
}

fn triggered(index: &Index, change: VaultChange) -> bool {
    !run(index, &[change]).triggers.is_empty()
}

fn base_index() -> Index {
    let mut ix = Index::default();
    ix.apply_store(ss("ns", "store", "kv1"));
    ix
}

// Rule 1: remoteRef.key prefixes.
#[test]
fn rule1_prefixes_select_the_object_kind() {
    let mut ix = base_index();
    ix.apply_external_secret(data_es("ns", "plain", "store", &["db"]));
    ix.apply_external_secret(data_es("ns", "sec", "store", &["secret/pw"]));
    ix.apply_external_secret(data_es("ns", "cert", "store", &["cert/tls"]));
    ix.apply_external_secret(data_es("ns", "key", "store", &["key/sign"]));
    let one = |c| targets(&run(&ix, &[c]));
    assert_eq!(one(secret("db")), vec![es_target("ns", "plain")]);
    assert_eq!(one(secret("pw")), vec![es_target("ns", "sec")]);
    assert_eq!(
        one(new_version("kv1", ObjectKind::Certificate, "tls", "v")),
        vec![es_target("ns", "cert")]
    );
    assert_eq!(
        one(new_version("kv1", ObjectKind::Key, "sign", "v")),
        vec![es_target("ns", "key")]
    );
    // Kinds do not cross the other way: a secret or key named like a cert/ ref is not it.
    assert!(one(secret("tls")).is_empty());
    assert!(one(new_version("kv1", ObjectKind::Key, "pw", "v")).is_empty());
    assert!(one(secret("sign")).is_empty());
}

#[test]
fn rule1_only_the_second_segment_is_the_name() {
    let mut ix = base_index();
    ix.apply_external_secret(data_es("ns", "es", "store", &["secret/db/ignored/too"]));
    assert!(triggered(&ix, secret("db")));
    assert!(!triggered(&ix, secret("ignored")));
}

#[test]
fn rule1_unknown_or_miscased_prefixes_read_nothing() {
    let mut ix = base_index();
    ix.apply_external_secret(data_es("ns", "es", "store", &["Secret/db", "certs/c", "blob/x"]));
    assert!(!triggered(&ix, secret("db")));
    assert!(!triggered(
        &ix,
        new_version("kv1", ObjectKind::Certificate, "c", "v")
    ));
    assert!(!triggered(&ix, secret("x")));
}

#[test]
fn rule1_names_compare_case_insensitively() {
    let mut ix = base_index();
    ix.apply_external_secret(data_es("ns", "es", "store", &["secret/DB-Password"]));
    assert!(triggered(&ix, secret("db-password")));
    assert!(triggered(&ix, secret("DB-PASSWORD")));
}

#[test]
fn rule1_certificate_versions_match_secret_and_unprefixed_refs() {
    let mut ix = base_index();
    ix.apply_external_secret(data_es("ns", "pfx", "store", &["secret/tls"]));
    ix.apply_external_secret(data_es("ns", "bare", "store", &["tls"]));
    ix.apply_external_secret(data_es("ns", "other", "store", &["secret/other"]));
    let p = run(&ix, &[new_version("kv1", ObjectKind::Certificate, "tls", "v2")]);
    assert_eq!(targets(&p), vec![es_target("ns", "bare"), es_target("ns", "pfx")]);
}

#[test]
fn certificate_versions_also_match_backing_key_refs() {
    // Deviation beyond the brief: a certificate version also creates a version of its backing key.
    let mut ix = base_index();
    ix.apply_external_secret(data_es("ns", "jwk", "store", &["key/tls"]));
    assert!(triggered(
        &ix,
        new_version("kv1", ObjectKind::Certificate, "tls", "v")
    ));
}

// Rule 2: pinned versions.
#[test]
fn rule2_pinned_versions_are_skipped_and_explained() {
    let mut ix = base_index();
    ix.apply_external_secret(es(
        "ns",
        "pinned",
        json!({"secretStoreRef": {"name": "store"}, "data": [
            {"secretKey": "a", "remoteRef": {"key": "db", "version": "abc123"}}]}),
    ));
    ix.apply_external_secret(es(
        "ns",
        "empty-version",
        json!({"secretStoreRef": {"name": "store"}, "data": [
            {"secretKey": "a", "remoteRef": {"key": "db", "version": ""}}]}),
    ));
    let p = run(&ix, &[secret("db")]);
    assert_eq!(targets(&p), vec![es_target("ns", "empty-version")]);
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].es, EsKey::new("ns", "pinned"));
    assert_eq!(p.skipped[0].reason, SkipReason::PinnedVersion("abc123".into()));
    let e = explain(&ix, &obj("kv1", ObjectKind::Secret, "db"), &NoNamespaceLabels);
    assert_eq!(e.refreshed.len(), 1);
    assert_eq!(e.not_refreshed.len(), 1);
    assert_eq!(e.not_refreshed[0].how, "data[0].remoteRef.key=db");
    assert_eq!(
        e.not_refreshed[0].reason,
        Some(SkipReason::PinnedVersion("abc123".into()))
    );
    assert_eq!(
        ix.readers_of(&obj("kv1", ObjectKind::Secret, "db")),
        vec![EsKey::new("ns", "empty-version")]
    );
}

#[test]
fn a_pinned_ref_does_not_hide_a_latest_ref_of_the_same_es() {
    let mut ix = base_index();
    ix.apply_external_secret(es(
        "ns",
        "mixed",
        json!({"secretStoreRef": {"name": "store"}, "data": [
            {"secretKey": "old", "remoteRef": {"key": "db", "version": "v0"}},
            {"secretKey": "new", "remoteRef": {"key": "secret/db"}}]}),
    ));
    let p = run(&ix, &[secret("db")]);
    assert_eq!(targets(&p), vec![es_target("ns", "mixed")]);
    let e = explain(&ix, &obj("kv1", ObjectKind::Secret, "db"), &NoNamespaceLabels);
    assert_eq!(e.refreshed[0].how, "data[1].remoteRef.key=secret/db");
}

// Rule 3: dataFrom.
#[test]
fn rule3_extract_matches_like_data_but_only_secrets() {
    let mut ix = base_index();
    ix.apply_external_secret(es(
        "ns",
        "ex",
        json!({"secretStoreRef": {"name": "store"}, "dataFrom": [
            {"extract": {"key": "json-blob"}},
            {"extract": {"key": "secret/other"}},
            {"extract": {"key": "cert/c"}},
            {"extract": {"key": "key/k"}},
            {"extract": {"key": "pinned", "version": "v9"}}]}),
    ));
    assert!(triggered(&ix, secret("json-blob")));
    assert!(triggered(&ix, secret("other")));
    assert!(!triggered(
        &ix,
        new_version("kv1", ObjectKind::Certificate, "c", "v")
    ));
    assert!(!triggered(&ix, new_version("kv1", ObjectKind::Key, "k", "v")));
    let p = run(&ix, &[secret("pinned")]);
    assert!(p.triggers.is_empty());
    assert_eq!(p.skipped[0].reason, SkipReason::PinnedVersion("v9".into()));
    let e = explain(
        &ix,
        &obj("kv1", ObjectKind::Secret, "json-blob"),
        &NoNamespaceLabels,
    );
    assert_eq!(e.refreshed[0].how, "dataFrom[0].extract.key=json-blob");
}

fn find_es(name: &str, find: Value) -> ExternalSecretObject {
    es(
        "ns",
        name,
        json!({"secretStoreRef": {"name": "store"}, "dataFrom": [{"find": find}]}),
    )
}

#[test]
fn rule3_find_regexp_is_unanchored_and_secrets_only() {
    let mut ix = base_index();
    ix.apply_external_secret(find_es("re", json!({"name": {"regexp": "db"}})));
    assert!(triggered(&ix, secret("my-db-password")));
    assert!(!triggered(&ix, secret("cache")));
    assert!(!triggered(&ix, new_version("kv1", ObjectKind::Key, "db", "v")));
    // Another vault's secrets never match.
    assert!(!triggered(&ix, new_version("kv2", ObjectKind::Secret, "db", "v")));
    let e = explain(&ix, &obj("kv1", ObjectKind::Secret, "xdbx"), &NoNamespaceLabels);
    assert_eq!(e.refreshed[0].how, "dataFrom[0].find.name.regexp=db");
    assert!(ix.readers_of(&obj("kv1", ObjectKind::Secret, "xdbx")).len() == 1);
    assert!(ix.readers_of(&obj("kv1", ObjectKind::Secret, "cache")).is_empty());
}

#[test]
fn rule3_invalid_find_regexp_matches_nothing_and_says_so() {
    let mut ix = base_index();
    ix.apply_external_secret(find_es("bad", json!({"name": {"regexp": "db("}})));
    let p = run(&ix, &[secret("db")]);
    assert!(p.triggers.is_empty());
    assert_eq!(p.skipped[0].reason.as_str(), "invalid_find_regex");
    let e = explain(&ix, &obj("kv1", ObjectKind::Secret, "db"), &NoNamespaceLabels);
    assert!(e.refreshed.is_empty());
    let reason = e.not_refreshed[0].reason.clone().unwrap();
    assert!(reason.to_string().contains("does not compile"), "{reason}");
}

#[test]
fn rule3_find_tags_are_candidates_for_every_secret_of_the_vault() {
    let mut ix = base_index();
    ix.apply_external_secret(find_es("tags", json!({"tags": {"env": "dev"}})));
    assert!(triggered(&ix, secret("anything")));
    assert!(!triggered(
        &ix,
        new_version("kv1", ObjectKind::Key, "anything", "v")
    ));
    let e = explain(&ix, &obj("kv1", ObjectKind::Secret, "x"), &NoNamespaceLabels);
    assert_eq!(
        e.refreshed[0].how,
        "dataFrom[0].find.tags (cannot be evaluated from an event)"
    );
}

#[test]
fn rule3_find_name_and_tags_must_both_hold() {
    let mut ix = base_index();
    ix.apply_external_secret(find_es(
        "both",
        json!({"name": {"regexp": "^app-"}, "tags": {"env": "dev"}}),
    ));
    assert!(triggered(&ix, secret("app-x")));
    assert!(!triggered(&ix, secret("db")));
}

#[test]
fn rule3_find_without_name_or_tags_reads_all_secrets() {
    let mut ix = base_index();
    ix.apply_external_secret(find_es("all", json!({})));
    ix.apply_external_secret(find_es("empty-re", json!({"name": {"regexp": ""}, "path": "x"})));
    let p = run(&ix, &[secret("whatever")]);
    assert_eq!(targets(&p).len(), 2);
    // A certificate version changes its backing secret, which find lists.
    assert!(triggered(
        &ix,
        new_version("kv1", ObjectKind::Certificate, "c", "v")
    ));
}

#[test]
fn find_regexp_matches_names_case_insensitively() {
    // Events carry lowercased names; ESO matches the listed name, whose case we cannot know.
    let mut ix = base_index();
    ix.apply_external_secret(find_es("upper", json!({"name": {"regexp": "^DB"}})));
    assert!(triggered(&ix, secret("DB-Password")));
}

// Rule 4: store refs.
#[test]
fn rule4_item_store_refs_override_the_es_store() {
    let mut ix = Index::default();
    ix.apply_store(ss("ns", "default-store", "kv1"));
    ix.apply_store(ss("ns", "item-store", "kv2"));
    ix.apply_store(css("cluster", "kv3", Value::Null));
    ix.apply_external_secret(es(
        "ns",
        "es",
        json!({"secretStoreRef": {"name": "default-store", "kind": "SecretStore"},
            "data": [
                {"secretKey": "a", "remoteRef": {"key": "a"}},
                {"secretKey": "b", "remoteRef": {"key": "b"},
                 "sourceRef": {"storeRef": {"name": "item-store"}}}],
            "dataFrom": [
                {"extract": {"key": "c"},
                 "sourceRef": {"storeRef": {"name": "cluster", "kind": "ClusterSecretStore"}}}]}),
    ));
    assert!(triggered(&ix, new_version("kv1", ObjectKind::Secret, "a", "v")));
    assert!(!triggered(&ix, new_version("kv1", ObjectKind::Secret, "b", "v")));
    assert!(triggered(&ix, new_version("kv2", ObjectKind::Secret, "b", "v")));
    assert!(!triggered(&ix, new_version("kv1", ObjectKind::Secret, "c", "v")));
    assert!(triggered(&ix, new_version("kv3", ObjectKind::Secret, "c", "v")));
}

#[test]
fn rule4_missing_kind_is_a_secret_store_in_the_es_namespace() {
    let mut ix = Index::default();
    ix.apply_store(ss("other-ns", "store", "kv1"));
    ix.apply_store(css("store", "kv2", Value::Null));
    ix.apply_external_secret(data_es("ns", "es", "store", &["db"]));
    // Neither the same-named store of another namespace nor the cluster store.
    assert!(!triggered(&ix, new_version("kv1", ObjectKind::Secret, "db", "v")));
    assert!(!triggered(&ix, new_version("kv2", ObjectKind::Secret, "db", "v")));
    ix.apply_store(ss("ns", "store", "kv3"));
    assert!(triggered(&ix, new_version("kv3", ObjectKind::Secret, "db", "v")));
    let mut ix2 = Index::default();
    ix2.apply_store(ss("ns", "s", "kv1"));
    ix2.apply_external_secret(es(
        "ns",
        "e",
        json!({"secretStoreRef": {"name": "s", "kind": ""}, "data": [{"secretKey": "k", "remoteRef": {"key": "db"}}]}),
    ));
    assert!(triggered(&ix2, new_version("kv1", ObjectKind::Secret, "db", "v")));
}

#[test]
fn rule4_store_changes_update_the_reverse_map() {
    let mut ix = Index::default();
    // ES first, store later.
    ix.apply_external_secret(data_es("ns", "es", "store", &["db"]));
    assert!(!triggered(&ix, new_version("kv1", ObjectKind::Secret, "db", "v")));
    ix.apply_store(ss("ns", "store", "kv1"));
    assert!(triggered(&ix, new_version("kv1", ObjectKind::Secret, "db", "v")));
    // vaultUrl changes.
    ix.apply_store(ss("ns", "store", "kv2"));
    assert!(!triggered(&ix, new_version("kv1", ObjectKind::Secret, "db", "v")));
    assert!(triggered(&ix, new_version("kv2", ObjectKind::Secret, "db", "v")));
    assert_eq!(ix.referenced_kinds(&vault("kv1")).len(), 0);
    // Not azurekv any more.
    ix.apply_store(store(
        StoreKind::SecretStore,
        Some("ns"),
        "store",
        json!({"provider": {"vault": {"server": "https://kv2.vault.azure.net"}}}),
    ));
    assert!(!triggered(&ix, new_version("kv2", ObjectKind::Secret, "db", "v")));
    ix.apply_store(ss("ns", "store", "kv2"));
    assert!(triggered(&ix, new_version("kv2", ObjectKind::Secret, "db", "v")));
    // Deleted.
    ix.delete_store(StoreKind::SecretStore, Some("ns"), "store");
    assert!(!triggered(&ix, new_version("kv2", ObjectKind::Secret, "db", "v")));
    assert!(ix.store_keys().is_empty());
}

// Rule 5: ClusterSecretStore conditions.
fn css_es(ns: &str, name: &str) -> ExternalSecretObject {
    es(
        ns,
        name,
        json!({"secretStoreRef": {"name": "shared", "kind": "ClusterSecretStore"},
            "data": [{"secretKey": "k", "remoteRef": {"key": "db"}}]}),
    )
}

#[test]
fn rule5_cluster_store_conditions_gate_namespaces() {
    let mut ix = Index::default();
    ix.apply_store(css(
        "shared",
        "kv1",
        json!([{"namespaces": ["team-a"]}, {"namespaceRegexes": ["prod"]},
               {"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev"]}]}}]),
    ));
    for (ns, name) in [
        ("team-a", "a"),
        ("my-prod-1", "p"),
        ("labelled", "l"),
        ("team-b", "b"),
        ("unknown", "u"),
    ] {
        ix.apply_external_secret(css_es(ns, name));
    }
    let mut labels: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    labels.insert("labelled".into(), [("env".to_string(), "dev".to_string())].into());
    labels.insert("team-b".into(), BTreeMap::new());
    labels.insert("team-a".into(), BTreeMap::new());
    labels.insert("my-prod-1".into(), BTreeMap::new());
    let p = plan(&ix, &[secret("db")], &labels);
    assert_eq!(
        targets(&p),
        vec![
            es_target("labelled", "l"),
            es_target("my-prod-1", "p"),
            es_target("team-a", "a")
        ]
    );
    let reasons: Vec<(String, &str)> = p
        .skipped
        .iter()
        .map(|s| (s.es.to_string(), s.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("team-b/b".to_string(), "namespace_not_allowed"),
            ("unknown/u".to_string(), "namespace_labels_unknown")
        ]
    );
    assert_eq!(
        p.skipped[0].reason,
        SkipReason::NamespaceNotAllowed {
            store: "ClusterSecretStore shared".into()
        }
    );
    // Without any labels, names and regexes still decide; the selector is unknown.
    let p = plan(&ix, &[secret("db")], &NoNamespaceLabels);
    assert_eq!(targets(&p).len(), 2);
    assert!(
        p.skipped
            .iter()
            .all(|s| s.reason.as_str() == "namespace_labels_unknown")
    );
}

#[test]
fn rule5_no_conditions_allow_all_and_secret_stores_ignore_conditions() {
    let mut ix = Index::default();
    ix.apply_store(css("shared", "kv1", Value::Null));
    ix.apply_external_secret(css_es("any", "e"));
    assert!(triggered(&ix, secret("db")));
    let mut spec = azure_spec("kv2");
    spec["conditions"] = json!([{"namespaces": ["nobody"]}]);
    ix.apply_store(store(StoreKind::SecretStore, Some("ns"), "local", spec));
    ix.apply_external_secret(data_es("ns", "local-es", "local", &["db"]));
    assert!(triggered(&ix, new_version("kv2", ObjectKind::Secret, "db", "v")));
}

// Rule 6: only azurekv; vault from vaultUrl.
#[test]
fn rule6_vault_comes_from_a_normalised_vault_url() {
    let mut ix = Index::default();
    ix.apply_store(store(
        StoreKind::SecretStore,
        Some("ns"),
        "store",
        json!({"provider": {"azurekv": {"vaultUrl": "HTTPS://KV1.Vault.Azure.Net/"}}}),
    ));
    ix.apply_store(store(
        StoreKind::SecretStore,
        Some("ns"),
        "aws",
        json!({"provider": {"aws": {"service": "SecretsManager"}}}),
    ));
    ix.apply_external_secret(data_es("ns", "es", "store", &["db"]));
    ix.apply_external_secret(data_es("ns", "aws-es", "aws", &["db"]));
    assert_eq!(targets(&run(&ix, &[secret("db")])), vec![es_target("ns", "es")]);
    assert_eq!(ix.vaults().into_iter().collect::<Vec<_>>(), vec![vault("kv1")]);
    assert_eq!(ix.stats().azurekv_stores, 1);
}

// Rule 7: CES children.
#[test]
fn rule7_ces_children_trigger_their_parent_once() {
    let mut ix = Index::default();
    ix.apply_store(css("shared", "kv1", Value::Null));
    ix.apply_cluster_external_secret(ClusterExternalSecretObject {
        meta: Meta {
            name: "parent".into(),
            ..Meta::default()
        },
        spec: json!({}),
    });
    for ns in ["a", "b"] {
        let mut child = css_es(ns, "child");
        child.meta.controller = Some(OwnerRef {
            kind: "ClusterExternalSecret".into(),
            name: "parent".into(),
        });
        ix.apply_external_secret(child);
    }
    let p = run(&ix, &[secret("db")]);
    assert_eq!(p.triggers.len(), 1);
    assert_eq!(
        p.triggers[0].target,
        Target::ClusterExternalSecret("parent".into())
    );
    assert_eq!(
        p.triggers[0].via.as_slice(),
        [EsKey::new("a", "child"), EsKey::new("b", "child")]
    );
    assert_eq!(p.triggers[0].causes.len(), 1);
    let e = explain(&ix, &obj("kv1", ObjectKind::Secret, "db"), &NoNamespaceLabels);
    assert!(
        e.refreshed
            .iter()
            .all(|x| x.target == Target::ClusterExternalSecret("parent".into()))
    );
    assert_eq!(ix.cluster_external_secret_keys(), vec!["parent".to_string()]);
}

// Rule 8: refresh policies.
#[test]
fn rule8_refresh_policies() {
    let synced = json!({"syncedResourceVersion": "1-abc"});
    let spec = |extra: Value| {
        let mut s = json!({"secretStoreRef": {"name": "store"},
            "data": [{"secretKey": "k", "remoteRef": {"key": "db"}}]});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    };
    let cases = [
        (
            "created-once",
            json!({"refreshPolicy": "CreatedOnce"}),
            Some("created_once"),
        ),
        (
            "periodic-zero",
            json!({"refreshPolicy": "Periodic", "refreshInterval": "0s"}),
            Some("refresh_interval_zero"),
        ),
        (
            "unset-zero",
            json!({"refreshInterval": "0"}),
            Some("refresh_interval_zero"),
        ),
        (
            "on-change-zero",
            json!({"refreshPolicy": "OnChange", "refreshInterval": "0s"}),
            None,
        ),
        (
            "periodic-1h",
            json!({"refreshPolicy": "Periodic", "refreshInterval": "1h"}),
            None,
        ),
        ("default", json!({}), None),
        (
            "invalid",
            json!({"refreshInterval": "soon"}),
            Some("invalid_refresh_interval"),
        ),
    ];
    let mut ix = base_index();
    for (name, extra, _) in &cases {
        ix.apply_external_secret(es_with_status("ns", name, spec(extra.clone()), synced.clone()));
    }
    // Zero interval but never synced: ESO still refreshes.
    ix.apply_external_secret(es("ns", "zero-unsynced", spec(json!({"refreshInterval": "0s"}))));
    let p = run(&ix, &[secret("db")]);
    for (name, _, want) in &cases {
        let skip = p
            .skipped
            .iter()
            .find(|s| &*s.es.name == *name)
            .map(|s| s.reason.as_str());
        assert_eq!(skip, *want, "{name}");
        assert_eq!(
            targets(&p).contains(&es_target("ns", name)),
            want.is_none(),
            "{name}"
        );
    }
    assert!(targets(&p).contains(&es_target("ns", "zero-unsynced")));
}

// Rule 9: v1beta1.
#[test]
fn rule9_v1beta1_manifests_read_the_same() {
    let docs = r#"
apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata: {name: store, namespace: ns}
spec: {provider: {azurekv: {vaultUrl: "https://kv1.vault.azure.net"}}}
---
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {name: old, namespace: ns}
spec:
  refreshInterval: 15m
  secretStoreRef: {name: store, kind: SecretStore}
  data:
  - secretKey: a
    remoteRef: {key: secret/db}
  dataFrom:
  - find: {name: {regexp: "^app"}}
"#;
    let mut ix = Index::default();
    crate::kube::manifests::load_str(docs, &mut ix).unwrap();
    assert!(triggered(&ix, secret("db")));
    assert!(triggered(&ix, secret("app-1")));
    assert!(!triggered(&ix, secret("other")));
}

// Plan shape.
#[test]
fn plan_groups_changes_per_target_with_a_deterministic_value() {
    let mut ix = base_index();
    ix.apply_external_secret(data_es("ns", "es", "store", &["a", "b"]));
    ix.apply_external_secret(data_es("ns", "only-b", "store", &["b"]));
    let ca = secret("a");
    let cb = secret("b");
    let p = run(&ix, &[ca.clone(), cb.clone(), ca.clone()]);
    assert_eq!(p.triggers.len(), 2);
    let t = &p.triggers[0];
    assert_eq!(t.target, Target::ExternalSecret(EsKey::new("ns", "es")));
    assert_eq!(t.causes.as_slice(), [ca.clone(), cb.clone()]);
    assert_eq!(t.via.as_slice(), [EsKey::new("ns", "es")]);
    assert!(t.value.starts_with("kv-") && t.value.len() <= 63, "{}", t.value);
    assert!(t.value[3..].chars().all(|c| c.is_ascii_hexdigit()));
    // Order and duplicates do not matter; redelivery gives the same value.
    let again = run(&ix, &[cb.clone(), ca.clone()]);
    assert_eq!(again, p);
    assert_eq!(t.value, trigger_value(&[cb.clone(), ca.clone(), cb.clone()]));
    // A different version or a different set gives a different value.
    assert_ne!(t.value, trigger_value(std::slice::from_ref(&ca)));
    assert_ne!(
        trigger_value(std::slice::from_ref(&ca)),
        trigger_value(&[new_version("kv1", ObjectKind::Secret, "a", "v2")])
    );
    assert_eq!(p.triggers[1].value, trigger_value(&[cb]));
    // The formula is pinned (values are written into clusters: an upgrade must not re-trigger
    // every ES): SHA3-256 over the fields, each ended by 0x1f, each cause by 0x1e.
    use sha3::Digest;
    let mut h = sha3::Sha3_256::new();
    for field in [
        ca.object.vault.as_str(),
        "secret",
        ca.object.name.as_str(),
        ca.version.as_deref().unwrap(),
    ] {
        h.update(field.as_bytes());
        h.update([0x1f]);
    }
    h.update([0x1e]);
    assert_eq!(
        trigger_value(std::slice::from_ref(&ca)),
        format!("kv-{}", hex::encode(&h.finalize()[..8]))
    );
}

#[test]
fn expiry_changes_never_trigger() {
    let mut ix = base_index();
    ix.apply_external_secret(data_es("ns", "es", "store", &["db"]));
    for kind in [ChangeKind::NearExpiry, ChangeKind::Expired] {
        let change = VaultChange { kind, ..secret("db") };
        let p = run(&ix, &[change]);
        assert!(p.triggers.is_empty());
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].reason, SkipReason::NotNewVersion(kind));
    }
    // With a new version in the same batch, only the new version is a cause.
    let p = run(
        &ix,
        &[
            VaultChange {
                kind: ChangeKind::Expired,
                ..secret("db")
            },
            secret("db"),
        ],
    );
    assert_eq!(p.triggers.len(), 1);
    assert_eq!(p.triggers[0].causes.as_slice(), [secret("db")]);
}

#[test]
fn skip_reasons_have_labels_and_sentences() {
    let reasons = [
        SkipReason::PinnedVersion("v".into()),
        SkipReason::CreatedOnce,
        SkipReason::RefreshIntervalZero,
        SkipReason::InvalidRefreshInterval("x".into()),
        SkipReason::NamespaceNotAllowed { store: "s".into() },
        SkipReason::NamespaceLabelsUnknown { store: "s".into() },
        SkipReason::NotNewVersion(ChangeKind::Expired),
        SkipReason::InvalidFindRegex {
            regexp: "(".into(),
            error: "e".into(),
        },
        SkipReason::StoreNotFound { store: "s".into() },
        SkipReason::StoreVaultUrlInvalid {
            store: "s".into(),
            url: "u".into(),
        },
    ];
    let labels: std::collections::BTreeSet<&str> = reasons.iter().map(SkipReason::as_str).collect();
    assert_eq!(labels.len(), reasons.len());
    for r in &reasons {
        assert!(r.to_string().len() > 20, "{r}");
    }
}

#[test]
fn explain_names_readers_whose_store_is_missing_or_unusable() {
    let mut ix = base_index();
    ix.apply_external_secret(data_es("ns", "ok", "store", &["db"]));
    ix.apply_external_secret(data_es("ns", "typo", "stroe", &["db", "secret/db", "other"]));
    ix.apply_store(store(
        StoreKind::SecretStore,
        Some("ns"),
        "bad-url",
        json!({"provider": {"azurekv": {"vaultUrl": ""}}}),
    ));
    ix.apply_external_secret(data_es("ns", "bad", "bad-url", &["cert/db"]));
    ix.apply_store(store(
        StoreKind::SecretStore,
        Some("ns"),
        "aws",
        json!({"provider": {"aws": {}}}),
    ));
    ix.apply_external_secret(data_es("ns", "aws-es", "aws", &["db"]));
    let e = explain(
        &ix,
        &obj("kv1", ObjectKind::Certificate, "db"),
        &NoNamespaceLabels,
    );
    assert_eq!(e.refreshed.len(), 1);
    let not: Vec<(String, String, &str)> = e
        .not_refreshed
        .iter()
        .map(|x| {
            (
                x.es.to_string(),
                x.how.clone(),
                x.reason.as_ref().unwrap().as_str(),
            )
        })
        .collect();
    assert_eq!(
        not,
        vec![
            (
                "ns/bad".to_string(),
                "data[0].remoteRef.key=cert/db".to_string(),
                "store_vault_url_invalid"
            ),
            (
                "ns/typo".to_string(),
                "data[0].remoteRef.key=db; data[1].remoteRef.key=secret/db".to_string(),
                "store_not_found"
            ),
        ]
    );
    assert_eq!(
        e.not_refreshed[1].reason,
        Some(SkipReason::StoreNotFound {
            store: "SecretStore ns/stroe".into()
        })
    );
    // Plans never act on them.
    let p = run(&ix, &[new_version("kv1", ObjectKind::Certificate, "db", "v")]);
    assert_eq!(targets(&p), vec![es_target("ns", "ok")]);
    assert!(p.skipped.is_empty());
    // Once the store exists, the ES is an ordinary reader.
    ix.apply_store(ss("ns", "stroe", "kv1"));
    let e = explain(&ix, &obj("kv1", ObjectKind::Secret, "db"), &NoNamespaceLabels);
    assert_eq!(e.refreshed.len(), 2);
    assert!(e.not_refreshed.is_empty());
}

#[test]
fn lookups_keys_kinds_and_stats() {
    let mut ix = base_index();
    ix.apply_store(ss("ns", "unused", "kv9"));
    ix.apply_external_secret(data_es("ns", "es", "store", &["cert/c", "key/k"]));
    ix.apply_external_secret(find_es("f", json!({})));
    let kinds: Vec<ObjectKind> = ix.referenced_kinds(&vault("kv1")).into_iter().collect();
    assert_eq!(
        kinds,
        vec![ObjectKind::Secret, ObjectKind::Certificate, ObjectKind::Key]
    );
    assert!(ix.referenced_kinds(&vault("kv9")).is_empty());
    assert_eq!(ix.vaults().len(), 2);
    assert_eq!(
        ix.external_secret_keys(),
        vec![EsKey::new("ns", "es"), EsKey::new("ns", "f")]
    );
    assert!(ix.external_secret(&EsKey::new("ns", "es")).is_some());
    let st = ix.stats();
    assert_eq!(
        (
            st.stores,
            st.external_secrets,
            st.indexed_objects,
            st.find_readers,
            st.vaults
        ),
        (2, 2, 2, 1, 2)
    );
    ix.delete_external_secret("ns", "f");
    ix.delete_external_secret("ns", "es");
    assert!(ix.referenced_kinds(&vault("kv1")).is_empty());
    assert_eq!(ix.stats().indexed_objects, 0);
}

#[test]
fn one_change_triggers_a_thousand_readers() {
    let mut ix = base_index();
    for i in 0..1000 {
        ix.apply_external_secret(data_es("ns", &format!("es-{i:04}"), "store", &["shared"]));
    }
    let p = run(&ix, &[secret("shared")]);
    assert_eq!(p.triggers.len(), 1000);
    assert!(p.skipped.is_empty());
    let value = &p.triggers[0].value;
    assert!(p.triggers.iter().all(|t| &t.value == value));
    assert_eq!(
        ix.readers_of(&obj("kv1", ObjectKind::Secret, "shared")).len(),
        1000
    );
}

// ESO's own documentation examples.
mod fixtures {
    use super::*;

    const FILES: [&str; 8] = [
        include_str!("../../tests/fixtures/eso/azkv-datafrom-external-secret.yaml"),
        include_str!("../../tests/fixtures/eso/azkv-external-secret.yaml"),
        include_str!("../../tests/fixtures/eso/azkv-pkcs12-cert-external-secret.yaml"),
        include_str!("../../tests/fixtures/eso/azkv-secret-store-mi.yaml"),
        include_str!("../../tests/fixtures/eso/azkv-secret-store-spn-secret.yaml"),
        include_str!("../../tests/fixtures/eso/azkv-workload-identity-mounted.yaml"),
        include_str!("../../tests/fixtures/eso/azkv-workload-identity-secretref.yaml"),
        include_str!("../../tests/fixtures/eso/azkv-workload-identity.yaml"),
    ];

    fn load(ix: &mut Index, text: &str) -> usize {
        crate::kube::manifests::load_str(text, ix).unwrap().objects
    }

    fn plan_for(ix: &Index, vault_host: &str, kind: ObjectKind, name: &str) -> Vec<String> {
        let change = VaultChange {
            object: ObjectRef {
                vault: VaultId::from_url(vault_host).unwrap(),
                kind,
                name: ObjectName::new(name),
            },
            version: Some("0123456789abcdef".into()),
            kind: ChangeKind::NewVersion,
        };
        targets(&plan(ix, &[change], &NoNamespaceLabels))
            .into_iter()
            .map(|t| t.trim_start_matches("ExternalSecret default/").to_string())
            .collect()
    }

    #[test]
    fn eso_examples_build_an_index_and_plan() {
        let mut ix = Index::default();
        let loaded: usize = FILES.iter().map(|f| load(&mut ix, f)).sum();
        assert_eq!(loaded, 8, "3 ExternalSecrets and 5 SecretStores");
        assert_eq!(ix.external_secret_keys().len(), 3);
        // `azure-store` is defined four times; the last (workload identity) wins.
        assert_eq!(ix.store_keys().len(), 2);
        let wi = "https://xx-xxxx-xx.vault.azure.net";
        use ObjectKind::*;
        assert_eq!(
            plan_for(&ix, wi, Secret, "database-username"),
            ["all-secrets", "database-credentials"]
        );
        assert_eq!(plan_for(&ix, wi, Secret, "dev-api-token"), ["all-secrets"]);
        assert_eq!(
            plan_for(&ix, wi, Secret, "database-credentials"),
            ["all-secrets", "database-credentials"]
        );
        assert_eq!(
            plan_for(&ix, wi, Certificate, "db-client-cert"),
            ["all-secrets", "database-credentials"]
        );
        assert_eq!(
            plan_for(&ix, wi, Key, "encryption-pubkey"),
            ["database-credentials"]
        );
        assert_eq!(
            plan_for(&ix, wi, Certificate, "tls-client-credentials"),
            ["all-secrets", "tls-client-credentials"]
        );
        assert!(
            plan_for(
                &ix,
                "https://kvtestpushsecret.vault.azure.net",
                Secret,
                "database-username"
            )
            .is_empty()
        );
        assert!(
            plan_for(
                &ix,
                "https://my-keyvault-name.vault.azure.net",
                Secret,
                "database-username"
            )
            .is_empty()
        );

        let e = explain(
            &ix,
            &ObjectRef {
                vault: VaultId::from_url(wi).unwrap(),
                kind: Secret,
                name: ObjectName::new("dev-x"),
            },
            &NoNamespaceLabels,
        );
        assert_eq!(e.refreshed.len(), 1);
        assert_eq!(
            e.refreshed[0].how,
            "dataFrom[0].find.name.regexp=^dev; dataFrom[1].find.tags (cannot be evaluated from an event)"
        );

        // Re-applying the managed-identity store moves every reader to its vault.
        load(&mut ix, FILES[3]);
        let mi = "https://my-keyvault-name.vault.azure.net";
        assert!(plan_for(&ix, wi, Secret, "database-username").is_empty());
        assert_eq!(
            plan_for(&ix, mi, Secret, "database-username"),
            ["all-secrets", "database-credentials"]
        );
        assert_eq!(
            plan_for(&ix, mi, Secret, "database-password"),
            ["all-secrets", "database-credentials"]
        );
    }
}

// Incremental updates end where a fresh build does.
mod incremental {
    use super::*;
    use proptest::prelude::*;

    const NAMESPACES: [&str; 2] = ["a", "b"];
    const KEYS: [&str; 6] = ["x", "secret/y", "cert/z", "key/x", "z", "bogus/x"];

    #[derive(Clone, Debug)]
    enum Op {
        ApplyStore {
            slot: usize,
            provider: usize,
        },
        DeleteStore {
            slot: usize,
        },
        ApplyEs {
            slot: usize,
            items: Vec<(usize, usize, bool)>,
            find: Option<usize>,
        },
        DeleteEs {
            slot: usize,
        },
    }

    /// Store slots: (kind, namespace, name).
    fn store_slot(slot: usize) -> (StoreKind, Option<&'static str>, &'static str) {
        let name = ["s0", "s1"][slot % 2];
        match slot / 2 {
            0 => (StoreKind::SecretStore, Some("a"), name),
            1 => (StoreKind::SecretStore, Some("b"), name),
            _ => (StoreKind::ClusterSecretStore, None, name),
        }
    }

    fn store_object(slot: usize, provider: usize) -> StoreObject {
        let (kind, ns, name) = store_slot(slot);
        let spec = match provider {
            0 => azure_spec("kv1"),
            1 => azure_spec("kv2"),
            _ => json!({"provider": {"fake": {}}}),
        };
        store(kind, ns, name, spec)
    }

    /// A store ref choice: 0..2 SecretStore s0/s1 (kind omitted for s0), 2..4 ClusterSecretStore.
    fn store_ref(choice: usize) -> Value {
        match choice {
            0 => json!({"name": "s0"}),
            1 => json!({"name": "s1", "kind": "SecretStore"}),
            2 => json!({"name": "s0", "kind": "ClusterSecretStore"}),
            _ => json!({"name": "s1", "kind": "ClusterSecretStore"}),
        }
    }

    fn es_object(slot: usize, items: &[(usize, usize, bool)], find: Option<usize>) -> ExternalSecretObject {
        let ns = NAMESPACES[slot % 2];
        let name = format!("e{}", slot / 2);
        let data: Vec<Value> = items
            .iter()
            .map(|(key, store, pinned)| {
                let mut d = json!({"secretKey": "k", "remoteRef": {"key": KEYS[*key % KEYS.len()]}});
                if *pinned {
                    d["remoteRef"]["version"] = json!("v1");
                }
                if *store < 4 {
                    d["sourceRef"] = json!({"storeRef": store_ref(*store)});
                }
                d
            })
            .collect();
        let mut spec = json!({"secretStoreRef": store_ref(slot % 4), "data": data});
        if let Some(f) = find {
            // Unanchored, and anchored fixed text (the finder lists' heads).
            let regexp = ["x", "^X", "^y-"][(f / 4) % 3];
            spec["dataFrom"] = json!([{"find": {"name": {"regexp": regexp}},
                "sourceRef": {"storeRef": store_ref(f % 4)}}]);
        }
        es(ns, &name, spec)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..6usize, 0..3usize).prop_map(|(slot, provider)| Op::ApplyStore { slot, provider }),
            1 => (0..6usize).prop_map(|slot| Op::DeleteStore { slot }),
            3 => (
                0..6usize,
                prop::collection::vec((0..6usize, 0..6usize, any::<bool>()), 0..4),
                prop::option::of(0..12usize)
            )
                .prop_map(|(slot, items, find)| Op::ApplyEs { slot, items, find }),
            1 => (0..6usize).prop_map(|slot| Op::DeleteEs { slot }),
        ]
    }

    fn probe_changes() -> Vec<VaultChange> {
        let mut out = Vec::new();
        for v in ["kv1", "kv2"] {
            for kind in [ObjectKind::Secret, ObjectKind::Certificate, ObjectKind::Key] {
                for name in ["x", "y", "z", "y-1", "x-y"] {
                    out.push(new_version(v, kind, name, "v2"));
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_order_of_updates_matches_a_fresh_build(ops in prop::collection::vec(op(), 1..40)) {
            let mut ix = Index::default();
            let mut stores: BTreeMap<usize, StoreObject> = BTreeMap::new();
            let mut ess: BTreeMap<usize, ExternalSecretObject> = BTreeMap::new();
            for op in &ops {
                match op {
                    Op::ApplyStore { slot, provider } => {
                        let s = store_object(*slot, *provider);
                        stores.insert(*slot, s.clone());
                        ix.apply_store(s);
                    }
                    Op::DeleteStore { slot } => {
                        let (kind, ns, name) = store_slot(*slot);
                        stores.remove(slot);
                        // Cluster stores ignore the namespace argument.
                        let ns = if kind == StoreKind::SecretStore { ns } else { Some("ignored") };
                        ix.delete_store(kind, ns, name);
                    }
                    Op::ApplyEs { slot, items, find } => {
                        let e = es_object(*slot, items, *find);
                        ess.insert(*slot, e.clone());
                        ix.apply_external_secret(e);
                    }
                    Op::DeleteEs { slot } => {
                        ess.remove(slot);
                        ix.delete_external_secret(NAMESPACES[slot % 2], &format!("e{}", slot / 2));
                    }
                }
            }
            let mut stores_first = Index::default();
            stores.values().for_each(|s| stores_first.apply_store(s.clone()));
            ess.values().for_each(|e| stores_first.apply_external_secret(e.clone()));
            let mut ess_first = Index::default();
            ess.values().rev().for_each(|e| ess_first.apply_external_secret(e.clone()));
            stores.values().rev().for_each(|s| ess_first.apply_store(s.clone()));

            prop_assert_eq!(ix.reverse_maps(), stores_first.reverse_maps());
            prop_assert_eq!(ix.reverse_maps(), ess_first.reverse_maps());
            prop_assert_eq!(ix.stats(), stores_first.stats());
            let changes = probe_changes();
            // The reverse maps (finder heads included) never leave out an ES that reads a
            // changed object: checked against every ES.
            for c in &changes {
                let candidates = ix.candidates(&c.object);
                for key in ix.external_secret_keys() {
                    let entry = ix.entry(&key).unwrap();
                    if !ix.item_matches(entry, &c.object).is_empty() {
                        prop_assert!(
                            candidates.iter().any(|e| e.key == key),
                            "{} misses {}", c.object, key
                        );
                    }
                }
            }
            prop_assert_eq!(
                plan(&ix, &changes, &NoNamespaceLabels),
                plan(&stores_first, &changes, &NoNamespaceLabels)
            );
        }
    }
}

/// The index keeps what later decisions read of an ES (annotations but kubectl's copy of the
/// object, the Ready status, `refreshTime`) and reuses the slot of a deleted ES.
#[test]
fn the_index_keeps_annotations_ready_and_refresh_time_only() {
    let mut ix = base_index();
    let status = json!({"refreshTime": "2026-11-01T10:00:05Z", "syncedResourceVersion": "1-abc",
        "conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "False", "reason": "SecretSyncedError"}]});
    let mut e = es_with_status(
        "ns",
        "a",
        json!({"secretStoreRef": {"name": "store"}, "data": []}),
        status,
    );
    e.meta
        .annotations
        .insert("external-secrets.io/force-sync".into(), "kv-1".into());
    e.meta.annotations.insert(
        "kubectl.kubernetes.io/last-applied-configuration".into(),
        "{\"a\": \"copy of the object\"}".into(),
    );
    ix.apply_external_secret(e);
    let kept = ix.external_secret(&EsKey::new("ns", "a")).unwrap();
    assert_eq!(kept.annotation("external-secrets.io/force-sync"), Some("kv-1"));
    assert_eq!(
        kept.annotation("kubectl.kubernetes.io/last-applied-configuration"),
        None
    );
    assert_eq!(kept.ready(), Some(super::index::ReadyStatus::False));
    assert_eq!(kept.refresh_time(), Some(1_793_527_205));

    ix.apply_external_secret(es("ns", "b", json!({})));
    let plain = ix.external_secret(&EsKey::new("ns", "b")).unwrap();
    assert_eq!((plain.ready(), plain.refresh_time()), (None, None));

    ix.delete_external_secret("ns", "a");
    ix.apply_external_secret(data_es("ns", "c", "store", &["db"]));
    assert_eq!(
        ix.external_secret_keys(),
        vec![EsKey::new("ns", "b"), EsKey::new("ns", "c")]
    );
    assert_eq!(ix.readers_of(&secret("db").object), vec![EsKey::new("ns", "c")]);
}
