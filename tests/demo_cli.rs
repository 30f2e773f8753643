//! The binary's no-cluster paths: `kvsync demo --once` replays the bundled deliveries through the
//! real server, and `kvsync explain --manifests` answers from YAML files.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

fn kvsync(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kvsync"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The demo validates, refreshes exactly the right readers, dedupes the redelivery and explains.
#[test]
fn demo_replays_the_samples_through_its_own_endpoint() {
    let (ok, out, err) = kvsync(&["demo", "--once", "--listen", "127.0.0.1:0"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("subscription-validation.json: HTTP 200 OK {\"validationResponse\":\"512d38b6-c7b8-40c8-89fe-f46f9e9622b6\"}"), "{out}");
    for expected in [
        "refresh (dry-run patch): ExternalSecret payments/db-credentials external-secrets.io/force-sync=kv-",
        "refresh (dry-run patch): ExternalSecret payments/db-credentials-legacy ",
        "refresh (dry-run patch): ClusterExternalSecret shared-db ",
        "refresh (dry-run patch): ExternalSecret web/api-tls ",
        "refresh (dry-run patch): ExternalSecret web/token-signing ",
        "not refreshed: payments/db-password-pinned",
        "not refreshed: payments/db-bootstrap",
        "nothing to patch: these versions were already applied",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    // The same name in another vault is never refreshed, and the CES child is never patched directly.
    assert!(
        !out.contains("db-credentials-other-vault external-secrets.io"),
        "{out}"
    );
    assert!(
        !out.contains("ExternalSecret payments/shared-db external-secrets.io"),
        "{out}"
    );
}

/// `explain --manifests` prints readers and non-readers with reasons, as text and JSON.
#[test]
fn explain_reads_manifests() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/demo");
    let (ok, out, err) = kvsync(&[
        "explain",
        "--manifests",
        dir,
        "--vault",
        "sample-kv",
        "--name",
        "DB-PASSWORD",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("refreshed on a new version (4)"), "{out}");
    assert!(
        out.contains("payments/shared-db via ClusterExternalSecret shared-db"),
        "{out}"
    );
    let (ok, out, _) = kvsync(&[
        "explain",
        "--manifests",
        dir,
        "--vault",
        "https://sample-kv.vault.azure.net/",
        "--name",
        "api-cert",
        "--kind",
        "certificate",
        "--json",
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["refreshed"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["refreshed"][0]["externalSecret"], "web/api-tls");
}

/// `serve` refuses to start without delivery authentication.
#[test]
fn serve_refuses_to_start_without_authentication() {
    let (ok, _, err) = kvsync(&[
        "serve",
        "--manifests",
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/demo"),
        "--dry-run",
    ]);
    assert!(!ok);
    assert!(err.contains("authentication"), "{err}");
}
