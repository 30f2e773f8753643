//! Hostile deliveries through the production router (`kvsync::http::router` with `service::ingest`):
//! garbage, attacks and near misses, each with its exact status code and exactly the changes that
//! reach the apply step (a `RecordingApply`), and the service healthy afterwards.
//!
//! Policy under test (see docs/RELIABILITY.md): a delivery is refused with 400 only when nothing in
//! it is usable (Event Grid drops a 400, so a batch with one good event must not be refused); the
//! usable events of a mixed batch are applied and the rest are listed as `rejected` and logged.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::{Body, Bytes};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use kvsync::apply::RecordingApply;
use kvsync::auth::{AuthArgs, Authenticator};
use kvsync::config::EngineArgs;
use kvsync::core::decide::NoNamespaceLabels;
use kvsync::core::index::Index;
use kvsync::http::explain::ExplainState;
use kvsync::http::{AppState, router};
use kvsync::metrics::Metrics;
use kvsync::readiness::Readiness;
use kvsync::service;
use serde_json::{Value, json};
use tower::ServiceExt;

const KEY: &str = "hostile-suite-shared-secret";
const NEW_VERSION: &str = "Microsoft.KeyVault.SecretNewVersionCreated";
const TOPIC: &str = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/sample-kv";

struct Front {
    app: axum::Router,
    apply: RecordingApply,
}

fn front(flags: &[&str]) -> Front {
    let args = EngineArgs::from_flags(flags).unwrap();
    let auth = Authenticator::from_args(&AuthArgs::for_shared_secret(KEY.into())).unwrap();
    let apply = RecordingApply::default();
    let mut metrics = Metrics::new();
    let readiness = Readiness::default();
    let ingest = service::ingest(
        &args,
        auth.clone(),
        Arc::new(apply.clone()),
        readiness.clone(),
        &mut metrics,
    );
    let explain = ExplainState {
        index: Arc::new(RwLock::new(Index::default())),
        namespaces: Arc::new(NoNamespaceLabels),
        cloud: args.cloud,
        auth,
    };
    let state = AppState {
        metrics: Arc::new(metrics),
        readiness,
        ingest: Arc::new(ingest),
        explain: Arc::new(explain),
    };
    Front {
        app: router(state),
        apply,
    }
}

/// One hostile delivery and what must come of it.
struct Case {
    name: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
    status: StatusCode,
    /// `vault/kind/name` of every change handed to the apply step, in order.
    applied: Vec<&'static str>,
}

fn case(name: impl Into<String>, body: impl Into<Vec<u8>>, status: StatusCode) -> Case {
    Case {
        name: name.into(),
        headers: vec![("content-type", b"application/json; charset=utf-8".to_vec())],
        body: body.into(),
        status,
        applied: Vec::new(),
    }
}

impl Case {
    fn applies(mut self, changes: &[&'static str]) -> Case {
        self.applied = changes.to_vec();
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Case {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.into()));
        self
    }
}

/// An Event Grid schema Key Vault event (`data` as given).
fn eg(id: &str, event_type: &str, data: Value) -> Value {
    json!({
        "id": id, "topic": TOPIC, "subject": "db-password", "eventType": event_type,
        "eventTime": "2026-11-28T10:00:00Z", "data": data, "dataVersion": "1", "metadataVersion": "1"
    })
}

/// The data of a new version of `name` in `sample-kv`.
fn data(name: &str) -> Value {
    json!({
        "Id": format!("https://sample-kv.vault.azure.net/secrets/{name}/v1"), "VaultName": "sample-kv",
        "ObjectType": "Secret", "ObjectName": name, "Version": "v1", "NBF": null, "EXP": null
    })
}

fn good(id: &str, name: &str) -> Value {
    eg(id, NEW_VERSION, data(name))
}

fn batch(events: &[Value]) -> Vec<u8> {
    Value::Array(events.to_vec()).to_string().into_bytes()
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn healthy(app: &axum::Router) {
    let req = Request::get("/healthz").body(Body::empty()).unwrap();
    assert_eq!(
        send(app, req).await.0,
        StatusCode::OK,
        "/healthz after hostile input"
    );
}

/// Runs every case on a fresh front door: exact status, exactly the expected changes applied (none
/// for a refused delivery), and `/healthz` still 200.
async fn run(cases: Vec<Case>) -> usize {
    let n = cases.len();
    for c in cases {
        let f = front(&[]);
        let mut req = Request::post("/api/eventgrid").header("x-kvsync-key", KEY);
        for (k, v) in &c.headers {
            req = req.header(*k, http::HeaderValue::from_bytes(v).unwrap());
        }
        let (status, body) = send(&f.app, req.body(Body::from(c.body.clone())).unwrap()).await;
        assert_eq!(status, c.status, "{}: {body}", c.name);
        let applied: Vec<String> = f
            .apply
            .calls()
            .into_iter()
            .flat_map(|(changes, _)| changes)
            .map(|ch| ch.object.to_string())
            .collect();
        assert_eq!(applied, c.applied, "{}: changes handed to the apply step", c.name);
        if status == StatusCode::OK
            && let Some(obj) = body.as_object()
            && obj.contains_key("changes")
        {
            assert_eq!(body["changes"], c.applied.len(), "{}: {body}", c.name);
        }
        healthy(&f.app).await;
    }
    n
}

const OK: StatusCode = StatusCode::OK;
const BAD: StatusCode = StatusCode::BAD_REQUEST;
const GOOD_CHANGE: &str = "sample-kv.vault.azure.net/secret/db-password";

/// Truncated, invalid and non-container JSON is refused with 400 and applies nothing.
#[tokio::test]
async fn invalid_json_is_400() {
    let full = String::from_utf8(batch(&[good("1", "db-password")])).unwrap();
    let mut cases = vec![
        case("empty body", "", BAD),
        case("whitespace only", "  \n\t ", BAD),
        case("truncated after [", "[", BAD),
        case("truncated event", &full[..full.len() / 2], BAD),
        case("missing final bracket", &full[..full.len() - 1], BAD),
        case("trailing garbage", format!("{full}xyz"), BAD),
        case("two documents", format!("{full}{full}"), BAD),
        case("single quotes", "[{'id': '1'}]", BAD),
        case("trailing comma", "[{\"id\": \"1\",}]", BAD),
        case("NaN literal", "[{\"id\": NaN}]", BAD),
        case("null", "null", BAD),
        case("number", "42", BAD),
        case("string", "\"Microsoft.KeyVault.SecretNewVersionCreated\"", BAD),
        case("boolean", "true", BAD),
        case(
            "BOM before JSON",
            [b"\xef\xbb\xbf".as_slice(), full.as_bytes()].concat(),
            BAD,
        ),
        case("XML", "<events><event/></events>", BAD),
    ];
    // An empty array is a valid delivery of nothing: 200, nothing applied.
    cases.push(case("empty array", "[]", OK));
    assert_eq!(run(cases).await, 17);
}

/// Wrong types and missing envelope fields: an unusable element is rejected, and a delivery made
/// only of such elements is 400.
#[tokio::test]
async fn wrong_types_are_400() {
    let cases = vec![
        case("array of numbers", "[1, 2, 3]", BAD),
        case("array of nulls", "[null]", BAD),
        case("nested array", batch(&[json!([good("1", "db-password")])]), BAD),
        case("object without schema keys", "{}", BAD),
        case(
            "eventType is a number",
            batch(&[eg("1", "x", data("a")).tap(|e| e["eventType"] = json!(42))]),
            BAD,
        ),
        case(
            "eventType is null",
            batch(&[eg("1", "x", data("a")).tap(|e| e["eventType"] = Value::Null)]),
            BAD,
        ),
        case(
            "id missing",
            batch(&[good("1", "db-password").tap(|e| {
                e.as_object_mut().unwrap().remove("id");
            })]),
            BAD,
        ),
        case(
            "id is an object",
            batch(&[good("1", "db-password").tap(|e| e["id"] = json!({"a": 1}))]),
            BAD,
        ),
        case(
            "data is an array",
            batch(&[eg("1", NEW_VERSION, json!(["db-password"]))]),
            BAD,
        ),
        case("data is a number", batch(&[eg("1", NEW_VERSION, json!(7))]), BAD),
        case(
            "data is a non-JSON string",
            batch(&[eg("1", NEW_VERSION, json!("db-password"))]),
            BAD,
        ),
        case(
            "ObjectName is a number, no other name",
            batch(&[eg(
                "1",
                NEW_VERSION,
                json!({"VaultName": "sample-kv", "ObjectName": 5}),
            )
            .tap(|e| {
                e.as_object_mut().unwrap().remove("subject");
            })]),
            BAD,
        ),
        case(
            "VaultName is an array, no Id, no topic",
            batch(&[eg(
                "1",
                NEW_VERSION,
                json!({"VaultName": ["sample-kv"], "ObjectName": "a"}),
            )
            .tap(|e| {
                e.as_object_mut().unwrap().remove("topic");
            })]),
            BAD,
        ),
        // A numeric id is rendered as text (Event Grid ids are strings, but a number is unambiguous).
        case(
            "id is a number",
            batch(&[good("1", "db-password").tap(|e| e["id"] = json!(17))]),
            OK,
        )
        .applies(&[GOOD_CHANGE]),
    ];
    assert_eq!(run(cases).await, 14);
}

/// 10^5-deep nesting (at the top level and inside `data`) is refused by the JSON recursion limit:
/// 400, no stack overflow, the service stays up.
#[tokio::test]
async fn deep_nesting_is_400_without_overflow() {
    let depth = 100_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let in_data = format!(
        r#"[{{"id":"1","eventType":"{NEW_VERSION}","subject":"a","data":{}}}]"#,
        objects
    );
    let in_data_string = batch(&[eg("1", NEW_VERSION, json!(arrays.clone()))]);
    let cases = vec![
        case("10^5 nested arrays", arrays.clone(), BAD),
        case("10^5 nested objects", objects, BAD),
        case("10^5 nested data", in_data, BAD),
        // `data` as a JSON string holding the nesting: the inner parse hits the same limit.
        case("10^5 nested data string", in_data_string, BAD),
        case("unclosed 10^5 nesting", "[".repeat(depth), BAD),
    ];
    assert_eq!(run(cases).await, 5);
}

/// Invalid UTF-8 anywhere in the body is 400; in a header it is handled without panicking.
#[tokio::test]
async fn invalid_utf8_is_400() {
    let good_text = String::from_utf8(batch(&[good("1", "db-password")])).unwrap();
    let at = good_text.find("db-password").unwrap();
    let raw = [
        &good_text.as_bytes()[..at + 3],
        b"\xff",
        &good_text.as_bytes()[at + 3..],
    ]
    .concat();
    let cases = vec![
        case("0xff inside a string", raw, BAD),
        case("lone continuation byte", b"[\x80]".to_vec(), BAD),
        case("overlong encoding", b"[\"\xc0\xaf\"]".to_vec(), BAD),
        case(
            "UTF-16 body",
            "[{}]"
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes())
                .collect::<Vec<u8>>(),
            BAD,
        ),
        case(
            "lone surrogate escape",
            "[{\"id\":\"\\ud800\",\"eventType\":\"x\"}]",
            BAD,
        ),
        // A content type that is not UTF-8 is not a content type kvsync accepts.
        case(
            "0xff in content type",
            good_text.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        )
        .header("content-type", b"application/\xffjson".to_vec()),
        // A non-UTF-8 aeg-event-type is just not a handshake.
        case("0xff in aeg-event-type", good_text, OK)
            .header("aeg-event-type", b"Subscription\xffValidation".to_vec())
            .applies(&[GOOD_CHANGE]),
    ];
    assert_eq!(run(cases).await, 7);
}

/// Duplicate keys: the last one wins (serde_json, like `JSON.parse`), with exact keys preferred
/// over case variants; no duplicate can smuggle a second event in.
#[tokio::test]
async fn duplicate_keys_take_the_last_value() {
    let two_types = format!(
        r#"[{{"id":"1","topic":"{TOPIC}","eventType":"Microsoft.Storage.BlobCreated","eventType":"{NEW_VERSION}","data":{}}}]"#,
        data("db-password")
    );
    let reverse = format!(
        r#"[{{"id":"1","topic":"{TOPIC}","eventType":"{NEW_VERSION}","eventType":"Microsoft.Storage.BlobCreated","data":{}}}]"#,
        data("db-password")
    );
    let two_names = format!(
        r#"[{{"id":"1","topic":"{TOPIC}","eventType":"{NEW_VERSION}","data":{{"VaultName":"sample-kv","ObjectName":"first","ObjectName":"second"}}}}]"#
    );
    let case_variant = format!(
        r#"[{{"id":"1","topic":"{TOPIC}","EVENTTYPE":"Microsoft.Storage.BlobCreated","eventType":"{NEW_VERSION}","data":{}}}]"#,
        data("db-password")
    );
    let cases = vec![
        case("duplicate eventType, Key Vault last", two_types, OK).applies(&[GOOD_CHANGE]),
        case("duplicate eventType, other last", reverse, OK),
        case("duplicate ObjectName", two_names, OK).applies(&["sample-kv.vault.azure.net/secret/second"]),
        case("exact key beats case variant", case_variant, OK).applies(&[GOOD_CHANGE]),
    ];
    assert_eq!(run(cases).await, 4);
}

/// Huge strings under the body limit: names over 127 characters are not Key Vault names (400),
/// other oversized fields are cut where they are quoted; over the limit is 413.
#[tokio::test]
async fn huge_strings_are_bounded() {
    let big = "a".repeat(1_500_000);
    let cases = vec![
        case(
            "1.5 MB object name",
            batch(&[eg(
                "1",
                NEW_VERSION,
                json!({"VaultName": "sample-kv", "ObjectName": big}),
            )
            .tap(no_subject)]),
            BAD,
        ),
        case(
            "128-char object name",
            batch(&[eg(
                "1",
                NEW_VERSION,
                json!({"VaultName": "sample-kv", "ObjectName": "a".repeat(128)}),
            )
            .tap(no_subject)]),
            BAD,
        ),
        // Every source of the name is validated; a bad ObjectName falls back to a good `subject`.
        case(
            "1.5 MB object name, good subject",
            batch(&[eg(
                "1",
                NEW_VERSION,
                json!({"VaultName": "sample-kv", "ObjectName": big}),
            )]),
            OK,
        )
        .applies(&[GOOD_CHANGE]),
        case(
            "1.5 MB vault name, no Id, no topic",
            batch(&[
                eg("1", NEW_VERSION, json!({"VaultName": big, "ObjectName": "a"})).tap(|e| {
                    e.as_object_mut().unwrap().remove("topic");
                }),
            ]),
            BAD,
        ),
        case(
            "1.5 MB event type",
            batch(&[eg("1", &big, data("db-password"))]),
            OK,
        ),
        // Applied; the id is only logged, cut to 256 characters.
        case("1.5 MB id", batch(&[good(&big, "db-password")]), OK).applies(&[GOOD_CHANGE]),
        case(
            "3 MB body",
            batch(&[eg("1", &"x".repeat(3_000_000), data("a"))]),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        case(
            "127-char object name",
            batch(&[eg(
                "1",
                NEW_VERSION,
                json!({"VaultName": "sample-kv", "ObjectName": "a".repeat(127)}),
            )]),
            OK,
        )
        .applies(&[Box::leak(
            format!("sample-kv.vault.azure.net/secret/{}", "a".repeat(127)).into_boxed_str(),
        )]),
    ];
    assert_eq!(run(cases).await, 8);
}

/// Control characters and path-like names are never accepted as object or vault names: such an
/// event is rejected (400 when alone), nothing reaches the apply step.
#[tokio::test]
async fn control_characters_and_path_like_names_are_rejected() {
    let named = |n: &str| {
        let mut e = eg(
            "1",
            NEW_VERSION,
            json!({"VaultName": "sample-kv", "ObjectName": n}),
        );
        e["subject"] = json!(n);
        batch(&[e])
    };
    let cases = vec![
        case("../ in ObjectName", named("../../etc/passwd"), BAD),
        case("%2F in ObjectName", named("db%2Fpassword"), BAD),
        case("slash in ObjectName", named("db/password"), BAD),
        case("NUL in ObjectName", named("db\u{0}password"), BAD),
        case("newline in ObjectName", named("db\npassword"), BAD),
        case("ANSI escape in ObjectName", named("\u{1b}[31mdb"), BAD),
        case("RTL override in ObjectName", named("db\u{202e}drowssap"), BAD),
        case("dot-dot ObjectName", named(".."), BAD),
        case(
            "path traversal in VaultName, no Id, no topic",
            batch(&[eg(
                "1",
                NEW_VERSION,
                json!({"VaultName": "../sample-kv", "ObjectName": "a"}),
            )
            .tap(|e| {
                e.as_object_mut().unwrap().remove("topic");
            })]),
            BAD,
        ),
        // In `data.Id` the URL is normalised first: `..` segments are resolved (here to the name
        // `x`), so a traversal can only ever name a plain Key Vault object of the same vault.
        case(
            "../ in data.Id, no other name",
            batch(&[eg(
                "1",
                NEW_VERSION,
                json!({"Id": "https://sample-kv.vault.azure.net/secrets/../keys/x/v1"}),
            )
            .tap(no_subject)]),
            OK,
        )
        .applies(&["sample-kv.vault.azure.net/secret/x"]),
        case(
            "../ past the root in data.Id, no other name",
            batch(&[eg(
                "1",
                NEW_VERSION,
                json!({"Id": "https://sample-kv.vault.azure.net/../../secrets/"}),
            )
            .tap(no_subject)]),
            BAD,
        ),
        case(
            "%2F in data.Id, no other name",
            batch(&[eg(
                "1",
                NEW_VERSION,
                json!({"Id": "https://sample-kv.vault.azure.net/secrets/a%2F..%2Fb/v1"}),
            )
            .tap(no_subject)]),
            BAD,
        ),
    ];
    assert_eq!(run(cases).await, 12);
}

/// Look-alike vault hosts never refresh readers of the real vault: a host that merely starts like
/// a vault host keeps its own identity, and a confusable host that disagrees with `VaultName` is
/// not trusted (the vault the event names is used).
#[tokio::test]
async fn look_alike_vault_hosts_keep_their_own_identity() {
    let with_id = |id: &str, vault_name: Option<&str>| {
        let mut d = json!({"Id": id, "ObjectName": "db-password", "Version": "v1"});
        if let Some(v) = vault_name {
            d["VaultName"] = json!(v);
        }
        let mut e = eg("1", NEW_VERSION, d);
        e.as_object_mut().unwrap().remove("topic");
        batch(&[e])
    };
    let cases = vec![
        case(
            "suffix look-alike",
            with_id(
                "https://sample-kv.vault.azure.net.evil.com/secrets/db-password/v1",
                Some("sample-kv"),
            ),
            OK,
        )
        .applies(&["sample-kv.vault.azure.net.evil.com/secret/db-password"]),
        case(
            "vault.azure.net.attacker.io",
            with_id("https://vault.azure.net.attacker.io/secrets/db-password/v1", None),
            OK,
        )
        .applies(&["vault.azure.net.attacker.io/secret/db-password"]),
        case(
            "userinfo trick",
            with_id(
                "https://sample-kv.vault.azure.net@evil.com/secrets/db-password/v1",
                None,
            ),
            OK,
        )
        .applies(&["evil.com/secret/db-password"]),
        case(
            "port trick",
            with_id(
                "https://sample-kv.vault.azure.net:444/secrets/db-password/v1",
                None,
            ),
            OK,
        )
        .applies(&["sample-kv.vault.azure.net:444/secret/db-password"]),
        // Cyrillic "а" in "sample": IDNA turns the host into its punycode form, a different vault
        // (under the public vault suffix, so it is taken as the vault): never sample-kv.
        case(
            "confusable host with VaultName",
            with_id(
                "https://s\u{0430}mple-kv.vault.azure.net/secrets/db-password/v1",
                Some("sample-kv"),
            ),
            OK,
        )
        .applies(&["xn--smple-kv-16g.vault.azure.net/secret/db-password"]),
        case(
            "confusable host alone",
            with_id(
                "https://s\u{0430}mple-kv.vault.azure.net/secrets/db-password/v1",
                None,
            ),
            OK,
        )
        .applies(&["xn--smple-kv-16g.vault.azure.net/secret/db-password"]),
        // A foreign confusable host that disagrees with VaultName is not trusted: the vault the
        // event names is used (as for any foreign host).
        case(
            "foreign confusable host with VaultName",
            with_id(
                "https://s\u{0430}mple-kv.vault.azure.net.evil.com/secrets/db-password/v1",
                Some("sample-kv"),
            ),
            OK,
        )
        .applies(&[GOOD_CHANGE]),
        case(
            "fullwidth dot host",
            with_id(
                "https://sample-kv\u{ff0e}vault\u{ff0e}azure\u{ff0e}net.evil.com/secrets/db-password/v1",
                None,
            ),
            OK,
        )
        .applies(&["sample-kv.vault.azure.net.evil.com/secret/db-password"]),
        // A confusable VaultName is not a vault name at all.
        case(
            "confusable VaultName, no Id, no topic",
            with_id("", Some("s\u{0430}mple-kv")),
            BAD,
        ),
    ];
    assert_eq!(run(cases).await, 9);
}

/// Near-miss event types are acknowledged without action; only the ten Key Vault types (any ASCII
/// case, as Event Grid type names are case-insensitive) are acted on.
#[tokio::test]
async fn near_miss_event_types_are_not_acted_on() {
    let typed = |t: &str| batch(&[eg("1", t, data("db-password"))]);
    let cases = vec![
        case(
            "trailing X",
            typed("Microsoft.KeyVault.SecretNewVersionCreatedX"),
            OK,
        ),
        case(
            "missing letter",
            typed("Microsoft.KeyVault.SecretNewVersionCreate"),
            OK,
        ),
        case(
            "other namespace",
            typed("Microsoft.KeyVaults.SecretNewVersionCreated"),
            OK,
        ),
        case("prefix only", typed("Microsoft.KeyVault."), OK),
        case(
            "zero-width space",
            typed("Microsoft.KeyVault.Secret\u{200b}NewVersionCreated"),
            OK,
        ),
        case(
            "Cyrillic letter",
            typed("Microsoft.KeyVault.S\u{0435}cretNewVersionCreated"),
            OK,
        ),
        case(
            "NUL suffix",
            typed("Microsoft.KeyVault.SecretNewVersionCreated\u{0}"),
            OK,
        ),
        case(
            "lower case",
            typed("microsoft.keyvault.secretnewversioncreated"),
            OK,
        )
        .applies(&[GOOD_CHANGE]),
        case(
            "upper case",
            typed("MICROSOFT.KEYVAULT.SECRETNEWVERSIONCREATED"),
            OK,
        )
        .applies(&[GOOD_CHANGE]),
        case(
            "surrounding spaces are trimmed",
            typed("  Microsoft.KeyVault.SecretNewVersionCreated "),
            OK,
        )
        .applies(&[GOOD_CHANGE]),
    ];
    assert_eq!(run(cases).await, 10);
}

/// Validation handshakes without a usable code are 400 and never let events through.
#[tokio::test]
async fn validation_events_without_a_code_are_400() {
    let validation = |data: Value| {
        batch(&[json!({"id": "v", "topic": "/subscriptions/0", "subject": "",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "data": data,
            "eventTime": "2026-11-28T10:00:00Z", "metadataVersion": "1", "dataVersion": "1"})])
    };
    let cases = vec![
        case("no data", validation(Value::Null), BAD),
        case("empty data", validation(json!({})), BAD),
        case(
            "code is a number",
            validation(json!({"validationCode": 12345})),
            BAD,
        ),
        case("code is empty", validation(json!({"validationCode": "  "})), BAD),
        case("data is a non-JSON string", validation(json!("code")), BAD),
        case("header without any event", "[]", BAD).header("aeg-event-type", "SubscriptionValidation"),
        // A validation header on a Key Vault event: the event is not a handshake and has no code.
        case(
            "header on a Key Vault event",
            batch(&[good("1", "db-password")]),
            BAD,
        )
        .header("aeg-event-type", "SubscriptionValidation"),
        // A validation event hidden among Key Vault events wins (handshakes arrive alone): no event is applied.
        case(
            "validation among events",
            [
                b"[".as_slice(),
                &good("1", "db-password").to_string().into_bytes(),
                b",",
                &validation(json!({"validationCode": "abc"}))[1..],
            ]
            .concat(),
            OK,
        ),
    ];
    assert_eq!(run(cases).await, 8);
}

/// Mixed batches: the usable events are applied (200) and the others are counted as rejected; a
/// batch in which nothing is usable is 400.
#[tokio::test]
async fn mixed_batches_apply_the_valid_part() {
    let f = front(&[]);
    let body = batch(&[
        good("1", "db-password"),
        json!(42),
        eg(
            "3",
            NEW_VERSION,
            json!({"VaultName": "sample-kv", "ObjectName": "../etc"}),
        )
        .tap(|e| e["subject"] = json!("../etc")),
        eg("4", "Microsoft.Storage.BlobCreated", json!({})),
        json!({"no": "schema"}),
        good("6", "api-key"),
    ]);
    let req = Request::post("/api/eventgrid")
        .header("x-kvsync-key", KEY)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let (status, resp) = send(&f.app, req).await;
    assert_eq!(status, OK, "{resp}");
    assert_eq!(resp["changes"], 2, "{resp}");
    assert_eq!(resp["ignored"], 1, "{resp}");
    assert_eq!(resp["rejected"], 3, "{resp}");
    let calls = f.apply.calls();
    assert_eq!(calls.len(), 1);
    let names: Vec<&str> = calls[0].0.iter().map(|c| c.object.name.as_str()).collect();
    assert_eq!(names, ["db-password", "api-key"]);
    healthy(&f.app).await;

    let cases = vec![
        case(
            "nothing usable",
            batch(&[
                json!(1),
                json!({}),
                eg("3", NEW_VERSION, json!({"ObjectName": "../x"})).tap(no_subject),
            ]),
            BAD,
        ),
        case(
            "only other types",
            batch(&[
                eg("1", "Microsoft.Storage.BlobCreated", json!({})),
                eg("2", "Custom.Type", json!(null)),
            ]),
            OK,
        ),
        case(
            "one good among garbage",
            batch(&[json!("x"), json!(null), good("3", "db-password"), json!([1])]),
            OK,
        )
        .applies(&[GOOD_CHANGE]),
    ];
    assert_eq!(run(cases).await, 3);
}

/// Credentials are checked before anything is applied, whatever the body: hostile bodies without the
/// key get 401, with a huge or non-UTF-8 `Authorization` header too.
#[tokio::test]
async fn hostile_bodies_without_credentials_get_401() {
    let f = front(&[]);
    for (name, auth, body) in [
        ("garbage, no key", None, b"not json".to_vec()),
        ("good event, no key", None, batch(&[good("1", "db-password")])),
        (
            "huge bearer",
            Some(format!("Bearer {}", "a".repeat(60_000)).into_bytes()),
            batch(&[good("1", "db-password")]),
        ),
        (
            "non-UTF-8 bearer",
            Some(b"Bearer \xff\xfe".to_vec()),
            batch(&[good("1", "db-password")]),
        ),
    ] {
        let mut req = Request::post("/api/eventgrid").header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", http::HeaderValue::from_bytes(&a).unwrap());
        }
        let (status, _) = send(&f.app, req.body(Body::from(body)).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
    }
    assert!(f.apply.calls().is_empty());
    healthy(&f.app).await;
}

/// A 100 MB body streamed without Content-Length is cut at the 2 MiB limit: 413, and the server
/// pulled no more than the limit plus one chunk from the stream (it never buffers the rest).
#[tokio::test]
async fn a_100_mb_streamed_body_is_cut_at_the_limit() {
    const CHUNK: usize = 64 * 1024;
    const TOTAL: usize = 100 * 1024 * 1024;
    let f = front(&[]);
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = produced.clone();
    let chunks = futures::stream::iter(0..TOTAL / CHUNK).map(move |i| {
        counter.fetch_add(CHUNK, Ordering::SeqCst);
        let mut chunk = vec![b' '; CHUNK];
        if i == 0 {
            chunk[0] = b'[';
        }
        Ok::<_, std::io::Error>(Bytes::from(chunk))
    });
    let req = Request::post("/api/eventgrid")
        .header("x-kvsync-key", KEY)
        .header("content-type", "application/json")
        .body(Body::from_stream(chunks))
        .unwrap();
    let (status, _) = send(&f.app, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let pulled = produced.load(Ordering::SeqCst);
    assert!(
        pulled <= 2 * 1024 * 1024 + 2 * CHUNK,
        "pulled {pulled} bytes of a 100 MB stream"
    );
    assert!(f.apply.calls().is_empty());

    // A declared Content-Length of 100 MB is refused before reading anything.
    let req = Request::post("/api/eventgrid")
        .header("x-kvsync-key", KEY)
        .header("content-type", "application/json")
        .header("content-length", TOTAL.to_string())
        .body(Body::from("[]"))
        .unwrap();
    assert_eq!(send(&f.app, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    healthy(&f.app).await;
}

use futures::StreamExt as _;

/// Removes `subject`, so the name can only come from `data`.
fn no_subject(e: &mut Value) {
    e.as_object_mut().unwrap().remove("subject");
}

/// `tap` for building a JSON value in place.
trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for Value {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

/// Regression: event-supplied strings that kvsync keeps (the version in its 24 h dedupe memory and
/// in Kubernetes Event notes, the vault host in every key) are bounded. A 1.5 MB `Version` is not a
/// Key Vault version: it is ignored (the refresh still happens, unversioned) instead of being
/// remembered; a vault host longer than DNS allows is not a vault.
#[tokio::test]
async fn oversized_versions_and_hosts_are_not_kept() {
    let f = front(&[]);
    let mut d = data("db-password");
    d["Version"] = json!("v".repeat(1_500_000));
    d["Id"] = json!(format!(
        "https://sample-kv.vault.azure.net/secrets/db-password/{}",
        "w".repeat(300_000)
    ));
    let req = Request::post("/api/eventgrid")
        .header("x-kvsync-key", KEY)
        .header("content-type", "application/json")
        .body(Body::from(batch(&[eg("1", NEW_VERSION, d)])))
        .unwrap();
    let (status, body) = send(&f.app, req).await;
    assert_eq!(status, OK, "{body}");
    let calls = f.apply.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0[0].object.to_string(), GOOD_CHANGE);
    let kept = calls[0].0[0].version.as_deref().map_or(0, str::len);
    assert_eq!(
        kept, 0,
        "an oversized version must not be kept ({kept} bytes kept)"
    );

    let long_host = format!("{}.vault.azure.net", vec!["a".repeat(60); 5].join("."));
    let mut e = eg(
        "2",
        NEW_VERSION,
        json!({"Id": format!("https://{long_host}/secrets/db-password/v1")}),
    );
    e.as_object_mut().unwrap().remove("topic");
    let req = Request::post("/api/eventgrid")
        .header("x-kvsync-key", KEY)
        .header("content-type", "application/json")
        .body(Body::from(batch(&[e])))
        .unwrap();
    let (status, body) = send(&f.app, req).await;
    assert_eq!(status, BAD, "{body}");
    assert_eq!(f.apply.calls().len(), 1, "nothing more applied");
    healthy(&f.app).await;
}
