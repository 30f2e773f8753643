//! Table tests over every file in `eventgrid/samples/`, and property tests over arbitrary input.
//!
//! Each sample body may have a sibling `<name>.headers.json` (a JSON object of header name →
//! value) that is sent with it; `subscription-validation.response.json` is the response the HTTP
//! layer must send for `subscription-validation.json`. A test fails when a file in the directory is
//! not used by the table.

use std::collections::BTreeSet;

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::core::model::{Cloud, ObjectKind, ObjectName, ObjectRef, VaultId};

/// `(file name, contents)` of a sample.
macro_rules! sample {
    ($name:literal) => {
        ($name, include_str!(concat!("../../eventgrid/samples/", $name)))
    };
}

const TOPIC: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/sample-rg/providers/Microsoft.KeyVault/vaults/sample-kv";
const DB_V: &str = "6f0c3a2d9e8b4c1f8a7d5e3b2c1a0f9e";
const CERT_V: &str = "3b9d1e7c5a2f4860b1c3d5e7f9a2b4c6";
const KEY_V: &str = "9a8b7c6d5e4f40312a1b2c3d4e5f6a7b";
const PUBLIC: &str = "sample-kv.vault.azure.net";

/// How a sample is fed to the parser.
#[derive(Clone, Copy, Debug)]
enum Input {
    /// `parse_delivery` with the sample's headers (if any) and this cloud.
    Webhook(Cloud),
    /// `parse_functions_request` with this binding name, in the public cloud.
    Functions(&'static str),
}

struct Case {
    body: (&'static str, &'static str),
    headers: Option<(&'static str, &'static str)>,
    input: Input,
    want: Result<Delivery, DeliveryError>,
}

/// The expected Key Vault event, field by field.
struct Kv {
    id: &'static str,
    event_type: &'static str,
    kind: KeyVaultEventKind,
    object: Option<(ObjectKind, &'static str)>,
    host: &'static str,
    version: Option<&'static str>,
    dates: (Option<i64>, Option<i64>),
    time: &'static str,
    subject: &'static str,
}

impl Kv {
    fn event(self) -> Event {
        let vault = VaultId::from_url(self.host).unwrap();
        Event::KeyVault(KeyVaultEvent {
            texts: Texts::new(self.id, Some(self.time), Some(self.subject)),
            event_type: self.event_type.into(),
            kind: self.kind,
            vault: vault.clone(),
            object: self.object.map(|(kind, name)| ObjectRef {
                vault,
                kind,
                name: ObjectName::new(name),
            }),
            version: self.version.map(Into::into),
            nbf: self.dates.0,
            exp: self.dates.1,
            source: Some(TOPIC.into()),
        })
    }
}

/// A Key Vault object event in the public cloud vault `sample-kv`.
#[allow(clippy::too_many_arguments)]
fn obj_event(
    id: &'static str,
    event_type: &'static str,
    kind: KeyVaultEventKind,
    object: (ObjectKind, &'static str),
    version: &'static str,
    dates: (Option<i64>, Option<i64>),
    time: &'static str,
) -> Event {
    Kv {
        id,
        event_type,
        kind,
        object: Some(object),
        host: PUBLIC,
        version: Some(version),
        dates,
        time,
        subject: object.1,
    }
    .event()
}

fn events(format: Format, events: Vec<Event>, rejected: Vec<Rejected>) -> Result<Delivery, DeliveryError> {
    Ok(Delivery::Events(Events {
        format,
        events,
        rejected,
    }))
}

/// The first sample event (`db-password`, new version), as many samples carry it.
fn db_password_new_version(dates: (Option<i64>, Option<i64>)) -> Event {
    obj_event(
        "0b3c5f0e-6d8a-4f4c-9a51-2f0a6c1e7d21",
        "Microsoft.KeyVault.SecretNewVersionCreated",
        KeyVaultEventKind::NewVersion,
        (ObjectKind::Secret, "db-password"),
        DB_V,
        dates,
        "2025-03-14T09:26:53.5897932Z",
    )
}

fn cases() -> Vec<Case> {
    use KeyVaultEventKind::*;
    use ObjectKind::*;
    let webhook = Input::Webhook(Cloud::Public);
    let some = |n: i64, x: i64| (Some(n), Some(x));
    vec![
        Case {
            body: sample!("eventgrid-secret-new-version.json"),
            headers: Some(sample!("eventgrid-secret-new-version.headers.json")),
            input: webhook,
            want: events(
                Format::EventGrid,
                vec![db_password_new_version(some(1741944413, 1773480413))],
                vec![],
            ),
        },
        Case {
            body: sample!("eventgrid-secret-new-version-null-dates.json"),
            headers: None,
            input: webhook,
            want: events(
                Format::EventGrid,
                vec![obj_event(
                    "a8e0e366-5bdc-4a55-aadb-cb2b7c6ce26a",
                    "Microsoft.KeyVault.SecretNewVersionCreated",
                    NewVersion,
                    (Secret, "db-password"),
                    "ee059b2bb5bc48398a53b168c6cdcb10",
                    (None, None),
                    "2025-03-14T09:30:57.4662141Z",
                )],
                vec![],
            ),
        },
        Case {
            body: sample!("eventgrid-batch-new-versions.json"),
            headers: None,
            input: webhook,
            want: events(
                Format::EventGrid,
                vec![
                    obj_event(
                        "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
                        "Microsoft.KeyVault.SecretNewVersionCreated",
                        NewVersion,
                        (Secret, "db-password"),
                        DB_V,
                        (Some(1741946401), None),
                        "2025-03-14T10:00:01.1000000Z",
                    ),
                    obj_event(
                        "8d2f3e4a-5b6c-4d7e-9f8a-0b1c2d3e4f5a",
                        "Microsoft.KeyVault.CertificateNewVersionCreated",
                        NewVersion,
                        (Certificate, "api-cert"),
                        CERT_V,
                        some(1741945802, 1773481802),
                        "2025-03-14T10:00:02.2000000Z",
                    ),
                    obj_event(
                        "9e3a4f5b-6c7d-4e8f-a09b-1c2d3e4f5a6b",
                        "Microsoft.KeyVault.KeyNewVersionCreated",
                        NewVersion,
                        (Key, "signing-key"),
                        KEY_V,
                        (None, None),
                        "2025-03-14T10:00:03.3000000Z",
                    ),
                ],
                vec![],
            ),
        },
        Case {
            body: sample!("eventgrid-near-expiry.json"),
            headers: None,
            input: webhook,
            want: events(
                Format::EventGrid,
                vec![
                    obj_event(
                        "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b",
                        "Microsoft.KeyVault.SecretNearExpiry",
                        NearExpiry,
                        (Secret, "db-password"),
                        DB_V,
                        some(1741944413, 1773480413),
                        "2026-02-12T09:26:53.0000000Z",
                    ),
                    obj_event(
                        "2a3b4c5d-6e7f-4081-9a2b-3c4d5e6f7a8b",
                        "Microsoft.KeyVault.CertificateNearExpiry",
                        NearExpiry,
                        (Certificate, "api-cert"),
                        CERT_V,
                        some(1741945802, 1773481802),
                        "2026-02-12T10:10:02.0000000Z",
                    ),
                    obj_event(
                        "3b4c5d6e-7f80-4192-a3b4-c5d6e7f8a9b0",
                        "Microsoft.KeyVault.KeyNearExpiry",
                        NearExpiry,
                        (Key, "signing-key"),
                        KEY_V,
                        some(1741946400, 1773482400),
                        "2026-02-12T11:00:00.0000000Z",
                    ),
                ],
                vec![],
            ),
        },
        Case {
            body: sample!("eventgrid-expired.json"),
            headers: None,
            input: webhook,
            want: events(
                Format::EventGrid,
                vec![
                    obj_event(
                        "4c5d6e7f-8091-42a3-b4c5-d6e7f8a9b0c1",
                        "Microsoft.KeyVault.SecretExpired",
                        Expired,
                        (Secret, "db-password"),
                        DB_V,
                        some(1741944413, 1773480413),
                        "2026-03-14T09:26:55.0000000Z",
                    ),
                    obj_event(
                        "5d6e7f80-91a2-43b4-c5d6-e7f8a9b0c1d2",
                        "Microsoft.KeyVault.CertificateExpired",
                        Expired,
                        (Certificate, "api-cert"),
                        CERT_V,
                        some(1741945802, 1773481802),
                        "2026-03-14T09:50:04.0000000Z",
                    ),
                    obj_event(
                        "6e7f8091-a2b3-44c5-d6e7-f8a9b0c1d2e3",
                        "Microsoft.KeyVault.KeyExpired",
                        Expired,
                        (Key, "signing-key"),
                        KEY_V,
                        some(1741946400, 1773482400),
                        "2026-03-14T10:00:01.0000000Z",
                    ),
                ],
                vec![],
            ),
        },
        Case {
            body: sample!("eventgrid-vault-access-policy-changed.json"),
            headers: None,
            input: webhook,
            want: events(
                Format::EventGrid,
                vec![
                    Kv {
                        id: "7f8091a2-b3c4-45d6-e7f8-a9b0c1d2e3f4",
                        event_type: "Microsoft.KeyVault.VaultAccessPolicyChanged",
                        kind: AccessPolicyChanged,
                        object: None,
                        host: PUBLIC,
                        version: None,
                        dates: (None, None),
                        time: "2025-03-14T11:12:13.1415926Z",
                        subject: "sample-kv",
                    }
                    .event(),
                ],
                vec![],
            ),
        },
        Case {
            body: sample!("eventgrid-camelcase-data.json"),
            headers: None,
            input: webhook,
            want: events(
                Format::EventGrid,
                vec![obj_event(
                    "8091a2b3-c4d5-46e7-f8a9-b0c1d2e3f4a5",
                    "Microsoft.KeyVault.SecretNewVersionCreated",
                    NewVersion,
                    (Secret, "db-password"),
                    "0a1b2c3d4e5f40718293a4b5c6d7e8f9",
                    some(1741953600, 1773489600),
                    "2025-03-14T12:00:00.0000000Z",
                )],
                vec![],
            ),
        },
        Case {
            body: sample!("eventgrid-single-object.json"),
            headers: None,
            input: webhook,
            want: events(
                Format::EventGrid,
                vec![obj_event(
                    "91a2b3c4-d5e6-47f8-a9b0-c1d2e3f4a5b6",
                    "Microsoft.KeyVault.KeyNewVersionCreated",
                    NewVersion,
                    (Key, "signing-key"),
                    "1b2c3d4e5f6a40718293a4b5c6d7e8f9",
                    (None, None),
                    "2025-03-14T13:00:00.0000000Z",
                )],
                vec![],
            ),
        },
        Case {
            // The Id host (China) wins over VaultName + the configured (public) cloud.
            body: sample!("eventgrid-china-vault.json"),
            headers: None,
            input: webhook,
            want: events(
                Format::EventGrid,
                vec![
                    Kv {
                        id: "a2b3c4d5-e6f7-48a9-b0c1-d2e3f4a5b6c7",
                        event_type: "Microsoft.KeyVault.SecretNewVersionCreated",
                        kind: NewVersion,
                        object: Some((Secret, "db-password")),
                        host: "sample-kv.vault.azure.cn",
                        version: Some("2c3d4e5f6a7b40718293a4b5c6d7e8f9"),
                        dates: (None, None),
                        time: "2025-03-14T14:00:00.0000000Z",
                        subject: "db-password",
                    }
                    .event(),
                ],
                vec![],
            ),
        },
        Case {
            body: sample!("eventgrid-usgov-vault.json"),
            headers: None,
            input: webhook,
            want: events(
                Format::EventGrid,
                vec![
                    Kv {
                        id: "b3c4d5e6-f7a8-49b0-c1d2-e3f4a5b6c7d8",
                        event_type: "Microsoft.KeyVault.CertificateNewVersionCreated",
                        kind: NewVersion,
                        object: Some((Certificate, "api-cert")),
                        host: "sample-kv.vault.usgovcloudapi.net",
                        version: Some("3d4e5f6a7b8c40718293a4b5c6d7e8f9"),
                        dates: some(1741964400, 1773500400),
                        time: "2025-03-14T15:00:00.0000000Z",
                        subject: "api-cert",
                    }
                    .event(),
                ],
                vec![],
            ),
        },
        Case {
            body: sample!("eventgrid-storage-blob-created.json"),
            headers: None,
            input: webhook,
            want: events(
                Format::EventGrid,
                vec![Event::Other {
                    id: "c4d5e6f7-a8b9-40c1-d2e3-f4a5b6c7d8e9".into(),
                    event_type: "Microsoft.Storage.BlobCreated".into(),
                }],
                vec![],
            ),
        },
        Case {
            body: sample!("eventgrid-mixed-batch-with-invalid.json"),
            headers: None,
            input: webhook,
            want: events(
                Format::EventGrid,
                vec![
                    obj_event(
                        "d5e6f7a8-b9c0-41d2-e3f4-a5b6c7d8e9f0",
                        "Microsoft.KeyVault.SecretNewVersionCreated",
                        NewVersion,
                        (Secret, "db-password"),
                        "4e5f6a7b8c9d40718293a4b5c6d7e8f9",
                        (None, None),
                        "2025-03-14T17:00:00.0000000Z",
                    ),
                    Event::Other {
                        id: "c4d5e6f7-a8b9-40c1-d2e3-f4a5b6c7d8e9".into(),
                        event_type: "Microsoft.Storage.BlobCreated".into(),
                    },
                ],
                vec![
                    Rejected {
                        index: 1,
                        id: Some("e6f7a8b9-c0d1-42e3-f4a5-b6c7d8e9f0a1".into()),
                        reason: "Microsoft.KeyVault.SecretNewVersionCreated: no usable vault: data.Id, \
                                 data.VaultName and the source ARM id are missing or invalid"
                            .into(),
                    },
                    Rejected {
                        index: 2,
                        id: Some("f7a8b9c0-d1e2-43f4-a5b6-c7d8e9f0a1b2".into()),
                        reason: "Microsoft.KeyVault.CertificateNewVersionCreated: no object name in \
                                 data.ObjectName, data.Id or subject"
                            .into(),
                    },
                    Rejected {
                        index: 4,
                        id: None,
                        reason: "element is a JSON string, expected an object".into(),
                    },
                ],
            ),
        },
        Case {
            body: sample!("cloudevents-secret-new-version.json"),
            headers: Some(sample!("cloudevents-secret-new-version.headers.json")),
            input: webhook,
            want: events(
                Format::CloudEvents,
                vec![db_password_new_version(some(1741944413, 1773480413))],
                vec![],
            ),
        },
        Case {
            body: sample!("cloudevents-batch.json"),
            headers: Some(sample!("cloudevents-batch.headers.json")),
            input: webhook,
            want: events(
                Format::CloudEventsBatch,
                vec![
                    obj_event(
                        "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
                        "Microsoft.KeyVault.SecretNewVersionCreated",
                        NewVersion,
                        (Secret, "db-password"),
                        DB_V,
                        (None, None),
                        "2025-03-14T10:00:01.1000000Z",
                    ),
                    obj_event(
                        "2a3b4c5d-6e7f-4081-9a2b-3c4d5e6f7a8b",
                        "Microsoft.KeyVault.CertificateNearExpiry",
                        NearExpiry,
                        (Certificate, "api-cert"),
                        CERT_V,
                        some(1741945802, 1773481802),
                        "2026-02-12T10:10:02.0000000Z",
                    ),
                    obj_event(
                        "6e7f8091-a2b3-44c5-d6e7-f8a9b0c1d2e3",
                        "Microsoft.KeyVault.KeyExpired",
                        Expired,
                        (Key, "signing-key"),
                        KEY_V,
                        some(1741946400, 1773482400),
                        "2026-03-14T10:00:01.0000000Z",
                    ),
                ],
                vec![],
            ),
        },
        Case {
            body: sample!("cloudevents-binary-secret-new-version.json"),
            headers: Some(sample!("cloudevents-binary-secret-new-version.headers.json")),
            input: webhook,
            want: events(
                Format::CloudEventsBinary,
                vec![db_password_new_version(some(1741944413, 1773480413))],
                vec![],
            ),
        },
        Case {
            body: sample!("subscription-validation.json"),
            headers: Some(sample!("subscription-validation.headers.json")),
            input: webhook,
            want: Ok(Delivery::Validation {
                code: "512d38b6-c7b8-40c8-89fe-f46f9e9622b6".into(),
                validation_url: Some(
                    "https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/kvsync-sample-kv/validate\
                     ?id=0000000000-0000-0000-0000-00000000000000&t=2025-03-14T08:00:00.0000000Z\
                     &apiVersion=2018-05-01-preview&token=1A1A1A1A"
                        .into(),
                ),
            }),
        },
        Case {
            body: sample!("subscription-deleted.json"),
            headers: Some(sample!("subscription-deleted.headers.json")),
            input: webhook,
            want: Ok(Delivery::Deletion {
                subscription_id: Some(
                    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/sample-rg/providers/\
                     Microsoft.EventGrid/systemTopics/sample-kv-events/eventSubscriptions/kvsync-sample-kv"
                        .into(),
                ),
            }),
        },
        Case {
            body: sample!("functions-request-object.json"),
            headers: None,
            input: Input::Functions("eventGridEvent"),
            want: events(
                Format::EventGrid,
                vec![db_password_new_version((None, None))],
                vec![],
            ),
        },
        Case {
            body: sample!("functions-request-string.json"),
            headers: None,
            input: Input::Functions("eventGridEvent"),
            want: events(
                Format::EventGrid,
                vec![db_password_new_version((None, None))],
                vec![],
            ),
        },
        Case {
            body: sample!("functions-request-cloudevent.json"),
            headers: None,
            input: Input::Functions("eventGridEvent"),
            want: events(
                Format::CloudEvents,
                vec![obj_event(
                    "3b4c5d6e-7f80-4192-a3b4-c5d6e7f8a9b0",
                    "Microsoft.KeyVault.KeyNearExpiry",
                    NearExpiry,
                    (Key, "signing-key"),
                    KEY_V,
                    some(1741946400, 1773482400),
                    "2026-02-12T11:00:00.0000000Z",
                )],
                vec![],
            ),
        },
    ]
}

/// Files used outside the table's bodies and headers.
const OTHER_SAMPLES: [(&str, &str); 1] = [sample!("subscription-validation.response.json")];

fn header_map(json: &str) -> HeaderMap {
    let map: serde_json::Map<String, Value> = serde_json::from_str(json).unwrap();
    let mut headers = HeaderMap::new();
    for (k, v) in map {
        let v = v.as_str().unwrap();
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    headers
}

fn run(case: &Case) -> Result<Delivery, DeliveryError> {
    let body = case.body.1.as_bytes();
    match case.input {
        Input::Webhook(cloud) => {
            let headers = case.headers.map(|h| header_map(h.1)).unwrap_or_default();
            parse_delivery(body, &headers, cloud)
        }
        Input::Functions(binding) => parse_functions_request(body, binding, Cloud::Public),
    }
}

#[test]
fn every_sample_parses_to_its_expected_delivery() {
    for case in cases() {
        assert_eq!(run(&case), case.want, "sample {}", case.body.0);
    }
}

#[test]
fn samples_parse_the_same_in_every_cloud_because_their_ids_name_the_host() {
    for case in cases() {
        if let Input::Webhook(_) = case.input {
            for cloud in Cloud::ALL {
                let headers = case.headers.map(|h| header_map(h.1)).unwrap_or_default();
                assert_eq!(
                    parse_delivery(case.body.1.as_bytes(), &headers, cloud),
                    case.want,
                    "sample {} in {cloud:?}",
                    case.body.0
                );
            }
        }
    }
}

#[test]
fn the_validation_response_sample_echoes_the_code() {
    let case = cases()
        .into_iter()
        .find(|c| c.body.0 == "subscription-validation.json")
        .unwrap();
    let Ok(Delivery::Validation { code, .. }) = run(&case) else {
        panic!("not a validation")
    };
    let response: Value = serde_json::from_str(OTHER_SAMPLES[0].1).unwrap();
    assert_eq!(response, serde_json::json!({ "validationResponse": code }));
}

#[test]
fn event_grid_samples_also_parse_wrapped_in_a_functions_request() {
    for case in cases() {
        let (Input::Webhook(_), Ok(Delivery::Events(want))) = (case.input, &case.want) else {
            continue;
        };
        if want.format != Format::EventGrid {
            continue;
        }
        let body: Value = serde_json::from_str(case.body.1).unwrap();
        let request = serde_json::json!({"Data": {"ev": body}, "Metadata": {}}).to_string();
        assert_eq!(
            parse_functions_request(request.as_bytes(), "ev", Cloud::Public),
            case.want,
            "sample {}",
            case.body.0
        );
    }
}

#[test]
fn every_file_in_the_samples_directory_is_covered_by_the_table() {
    let mut used: BTreeSet<&str> = OTHER_SAMPLES.iter().map(|s| s.0).collect();
    for case in cases() {
        used.insert(case.body.0);
        if let Some(h) = case.headers {
            used.insert(h.0);
        }
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/eventgrid/samples");
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let used: BTreeSet<String> = used.into_iter().map(str::to_string).collect();
    let uncovered: Vec<&String> = on_disk.difference(&used).collect();
    assert!(
        uncovered.is_empty(),
        "samples not covered by the table: {uncovered:?}"
    );
    let missing: Vec<&String> = used.difference(&on_disk).collect();
    assert!(missing.is_empty(), "table names files not on disk: {missing:?}");
}

/// Arbitrary JSON values, nested a few levels, biased towards event-like keys.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("id".to_string()),
        Just("eventType".to_string()),
        Just("specversion".to_string()),
        Just("type".to_string()),
        Just("data".to_string()),
        Just("Data".to_string()),
        Just("e".to_string()),
        Just("Id".to_string()),
        Just("VaultName".to_string()),
        Just("ObjectName".to_string()),
        Just("NBF".to_string()),
        Just("validationCode".to_string()),
        ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(Value::from("Microsoft.KeyVault.SecretNewVersionCreated")),
        Just(Value::from("Microsoft.EventGrid.SubscriptionValidationEvent")),
        Just(Value::from("https://kv.vault.azure.net/secrets/a/v")),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner.clone(), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            inner.prop_map(|v| Value::String(v.to_string())),
        ]
    })
}

fn any_headers() -> impl Strategy<Value = HeaderMap> {
    let content_type = prop_oneof![
        Just(None),
        Just(Some("application/json; charset=utf-8")),
        Just(Some("application/cloudevents+json")),
        Just(Some("application/cloudevents-batch+json")),
        Just(Some("text/plain")),
        Just(Some("application/xml")),
    ];
    let aeg = prop_oneof![
        Just(None),
        Just(Some("Notification")),
        Just(Some("SubscriptionValidation")),
        Just(Some("SubscriptionDeletion")),
    ];
    let binary = any::<bool>();
    (content_type, aeg, binary, "[ -~]{0,12}").prop_map(|(ct, aeg, binary, text)| {
        let mut h = HeaderMap::new();
        if let Some(ct) = ct {
            h.insert("content-type", HeaderValue::from_static(ct));
        }
        if let Some(aeg) = aeg {
            h.insert("aeg-event-type", HeaderValue::from_static(aeg));
        }
        if binary {
            h.insert("ce-specversion", HeaderValue::from_static("1.0"));
            h.insert(
                "ce-type",
                HeaderValue::from_static("Microsoft.KeyVault.SecretNearExpiry"),
            );
            if let Ok(v) = HeaderValue::from_str(&text) {
                h.insert("ce-id", v.clone());
                h.insert("ce-subject", v);
            }
        }
        h
    })
}

/// Checks the invariants of any successful parse.
fn check(result: &Result<Delivery, DeliveryError>) {
    match result {
        Ok(Delivery::Events(e)) => {
            assert!(!e.events.is_empty() || e.rejected.is_empty());
            for r in &e.rejected {
                assert!(r.reason.chars().count() <= 300, "{}", r.reason);
            }
            for kv in e.key_vault() {
                assert_eq!(
                    kv.object.is_none(),
                    kv.kind == KeyVaultEventKind::AccessPolicyChanged
                );
                assert_eq!(kv.change().is_some(), kv.object.is_some());
            }
        }
        Ok(Delivery::Validation { code, .. }) => assert!(!code.is_empty()),
        Ok(Delivery::Deletion { .. }) => {}
        Err(DeliveryError::Malformed(m) | DeliveryError::UnsupportedContentType(m)) => {
            assert!(m.chars().count() <= 400, "{m}");
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), headers in any_headers()) {
        check(&parse_delivery(&body, &headers, Cloud::Public));
        check(&parse_functions_request(&body, "e", Cloud::China));
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value(), headers in any_headers()) {
        let body = value.to_string();
        check(&parse_delivery(body.as_bytes(), &headers, Cloud::UsGov));
        check(&parse_functions_request(body.as_bytes(), "e", Cloud::Public));
        let wrapped = serde_json::json!({"Data": {"e": value}}).to_string();
        check(&parse_functions_request(wrapped.as_bytes(), "e", Cloud::Germany));
    }

    #[test]
    fn arbitrary_json_in_event_fields_never_panics(
        data in json_value(),
        subject in json_value(),
        event_type in prop_oneof![
            Just("Microsoft.KeyVault.SecretNewVersionCreated"),
            Just("Microsoft.KeyVault.VaultAccessPolicyChanged"),
            Just("Microsoft.EventGrid.SubscriptionValidationEvent"),
            Just("Microsoft.EventGrid.SubscriptionDeletedEvent"),
            Just("Other.Type"),
        ],
        cloud_events in any::<bool>(),
    ) {
        let event = if cloud_events {
            serde_json::json!({"specversion": "1.0", "id": "1", "type": event_type, "subject": subject, "data": data})
        } else {
            serde_json::json!({"id": "1", "eventType": event_type, "subject": subject, "data": data})
        };
        let body = serde_json::json!([event]).to_string();
        check(&parse_delivery(body.as_bytes(), &HeaderMap::new(), Cloud::Public));
    }
}
