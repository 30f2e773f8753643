//! Key Vault event `data` → [`KeyVaultEvent`]: which object of which vault changed, and how.

use std::borrow::Cow;
use std::sync::Arc;

use super::object_url::{ObjectUrls, is_object_name};
use super::schema::{Envelope, data_object};
use super::view::{DataView, Scalar};
use super::{KeyVaultEvent, KeyVaultEventKind, Texts, excerpt};
use crate::core::model::{Cloud, ObjectKind, ObjectName, ObjectRef, VaultId};

/// `text` without its first `prefix.len()` bytes when they equal `prefix` ignoring ASCII case.
fn strip_prefix_ignore_case<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    let head = text.as_bytes().get(..prefix.len())?;
    // Equal to an ASCII prefix, so the cut is on a character boundary.
    head.eq_ignore_ascii_case(prefix.as_bytes())
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// The kind and object family of a Key Vault event type (matched ignoring ASCII case); `None` for
/// any other type. The family is `None` for `VaultAccessPolicyChanged`.
pub(crate) fn classify(event_type: &str) -> Option<(KeyVaultEventKind, Option<ObjectKind>)> {
    let rest = strip_prefix_ignore_case(event_type.trim(), "microsoft.keyvault.")?;
    if rest.eq_ignore_ascii_case("vaultaccesspolicychanged") {
        return Some((KeyVaultEventKind::AccessPolicyChanged, None));
    }
    let (family, rest) = [
        ("secret", ObjectKind::Secret),
        ("certificate", ObjectKind::Certificate),
        ("key", ObjectKind::Key),
    ]
    .into_iter()
    .find_map(|(p, k)| strip_prefix_ignore_case(rest, p).map(|r| (k, r)))?;
    let kind = [
        ("newversioncreated", KeyVaultEventKind::NewVersion),
        ("nearexpiry", KeyVaultEventKind::NearExpiry),
        ("expired", KeyVaultEventKind::Expired),
    ]
    .into_iter()
    .find_map(|(name, kind)| rest.eq_ignore_ascii_case(name).then_some(kind))?;
    Some((kind, Some(family)))
}

/// The documented name of a Key Vault event type (`family` `None`: `VaultAccessPolicyChanged`).
pub(crate) fn canonical_type(kind: KeyVaultEventKind, family: Option<ObjectKind>) -> &'static str {
    use KeyVaultEventKind::{AccessPolicyChanged, Expired, NearExpiry, NewVersion};
    match (family, kind) {
        (None, _) | (_, AccessPolicyChanged) => "Microsoft.KeyVault.VaultAccessPolicyChanged",
        (Some(ObjectKind::Secret), NewVersion) => "Microsoft.KeyVault.SecretNewVersionCreated",
        (Some(ObjectKind::Secret), NearExpiry) => "Microsoft.KeyVault.SecretNearExpiry",
        (Some(ObjectKind::Secret), Expired) => "Microsoft.KeyVault.SecretExpired",
        (Some(ObjectKind::Certificate), NewVersion) => "Microsoft.KeyVault.CertificateNewVersionCreated",
        (Some(ObjectKind::Certificate), NearExpiry) => "Microsoft.KeyVault.CertificateNearExpiry",
        (Some(ObjectKind::Certificate), Expired) => "Microsoft.KeyVault.CertificateExpired",
        (Some(ObjectKind::Key), NewVersion) => "Microsoft.KeyVault.KeyNewVersionCreated",
        (Some(ObjectKind::Key), NearExpiry) => "Microsoft.KeyVault.KeyNearExpiry",
        (Some(ObjectKind::Key), Expired) => "Microsoft.KeyVault.KeyExpired",
    }
}

/// The event type as sent, borrowed from [`canonical_type`] when it is spelled that way.
pub(crate) fn sent_type(
    sent: &str,
    kind: KeyVaultEventKind,
    family: Option<ObjectKind>,
) -> Cow<'static, str> {
    let canonical = canonical_type(kind, family);
    if sent == canonical {
        Cow::Borrowed(canonical)
    } else {
        Cow::Owned(sent.to_string())
    }
}

/// What the events of one delivery share: the vault hosts already parsed, and the last `source`
/// (a vault's ARM id, the same for all its events).
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Object URL splitting, with its host cache.
    pub(crate) urls: ObjectUrls,
    source: Option<Arc<str>>,
}

impl Shared {
    /// `text` as a shared string, reusing the previous one when equal.
    fn source(&mut self, text: &str) -> Arc<str> {
        match &self.source {
            Some(last) if **last == *text => last.clone(),
            _ => {
                let new: Arc<str> = text.into();
                self.source = Some(new.clone());
                new
            }
        }
    }
}

/// The fields of a Key Vault event's `data` (the same for all ten types), read leniently.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct KeyVaultData<'a> {
    /// `Id`: the object URL including the version.
    pub id: Option<Cow<'a, str>>,
    /// `VaultName`.
    pub vault_name: Option<Cow<'a, str>>,
    /// `ObjectType` (unconfirmed values for keys and certificates; not used for the kind).
    pub object_type: Option<Cow<'a, str>>,
    /// `ObjectName`.
    pub object_name: Option<Cow<'a, str>>,
    /// `Version`.
    pub version: Option<Cow<'a, str>>,
    /// `NBF`, seconds since the epoch.
    pub nbf: Option<i64>,
    /// `EXP`, seconds since the epoch.
    pub exp: Option<i64>,
}

impl<'a> KeyVaultData<'a> {
    /// Reads the fields of a `data` view. Keys match ignoring ASCII case and surrounding spaces; an
    /// exact PascalCase key wins over a differently cased duplicate (see [`super::view::KEY_VAULT_FIELDS`]).
    /// Strings are trimmed (empty ⇒ `None`).
    pub(crate) fn from_view(view: &'a DataView<'_>) -> KeyVaultData<'a> {
        let [id, vault_name, object_type, object_name, version, nbf, exp] = view.key_vault.each_ref();
        let s = |v: &'a Option<Scalar<'_>>| v.as_ref().and_then(Scalar::text).map(Cow::Borrowed);
        KeyVaultData {
            id: s(id),
            vault_name: s(vault_name),
            object_type: s(object_type),
            object_name: s(object_name),
            version: s(version),
            nbf: epoch_seconds(nbf.as_ref()),
            exp: epoch_seconds(exp.as_ref()),
        }
    }

    /// Reads the fields of `map` (see [`KeyVaultData::from_view`]).
    #[cfg(test)]
    pub(crate) fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> KeyVaultData<'static> {
        let view = DataView::from_map(map).unwrap_or_default();
        let d = KeyVaultData::from_view(&view);
        let own = |s: Option<Cow<'_, str>>| s.map(|s| Cow::Owned(s.into_owned()));
        KeyVaultData {
            id: own(d.id),
            vault_name: own(d.vault_name),
            object_type: own(d.object_type),
            object_name: own(d.object_name),
            version: own(d.version),
            nbf: d.nbf,
            exp: d.exp,
        }
    }
}

/// `NBF`/`EXP`: a number (integer or fractional, truncated toward zero) or a numeric string;
/// `None` for null, missing, or anything else.
pub(crate) fn epoch_seconds(value: Option<&Scalar<'_>>) -> Option<i64> {
    fn from_f64(f: f64) -> Option<i64> {
        // The range check keeps `as` from saturating silently; NaN fails it too.
        (f.is_finite() && (-9.0e18..=9.0e18).contains(&f)).then(|| f.trunc() as i64)
    }
    match value? {
        Scalar::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(from_f64)),
        Scalar::Str(s) => {
            let t = s.trim();
            t.parse::<i64>()
                .ok()
                .or_else(|| t.parse::<f64>().ok().and_then(from_f64))
        }
        _ => None,
    }
}

/// Whether `version` can be an object version. Key Vault's are 32 hex digits; anything made of
/// `[0-9A-Za-z-]` up to 64 characters is accepted. Anything else is ignored (the change is applied
/// unversioned): the version is kept in the dedupe memory and quoted in Kubernetes Events, so
/// untrusted input must not make it arbitrarily large.
fn is_version(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= 64
        && version.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The vault name at the end of an ARM id `…/providers/Microsoft.KeyVault/vaults/<name>`.
fn vault_name_from_arm_id(arm_id: &str) -> Option<&str> {
    let mut parts = arm_id.trim().trim_end_matches('/').rsplit('/');
    let name = parts.next()?;
    let vaults = parts.next()?;
    let provider = parts.next()?;
    (vaults.eq_ignore_ascii_case("vaults") && provider.eq_ignore_ascii_case("Microsoft.KeyVault"))
        .then_some(name)
}

/// Decides the vault: the `Id` host when trustworthy, else `VaultName` in `cloud`, else the vault
/// named by the ARM id in `source`.
fn choose_vault(
    from_id: Option<VaultId>,
    vault_name: Option<&str>,
    source: Option<&str>,
    cloud: Cloud,
) -> Result<VaultId, String> {
    let from_id = match from_id {
        Some(host) if Cloud::of_host(host.as_str()).is_some() => return Ok(host),
        other => other,
    };
    // Only now: a known cloud's host needs no `VaultName`.
    let named = vault_name.map(|n| VaultId::from_name(n, cloud));
    if let Some(host) = from_id {
        let trusted = match &named {
            None | Some(Err(_)) => true,
            Some(Ok(_)) => vault_name.is_some_and(|n| host.short_name().eq_ignore_ascii_case(n)),
        };
        if trusted {
            return Ok(host);
        }
    }
    match named {
        Some(Ok(v)) => return Ok(v),
        Some(Err(_)) => {
            if let Some(v) = source
                .and_then(vault_name_from_arm_id)
                .and_then(|n| VaultId::from_name(n, cloud).ok())
            {
                return Ok(v);
            }
            return Err(format!(
                "no usable vault: invalid VaultName {:?} and no vault host in data.Id",
                excerpt(vault_name.unwrap_or_default(), 60)
            ));
        }
        None => {}
    }
    source
        .and_then(vault_name_from_arm_id)
        .and_then(|n| VaultId::from_name(n, cloud).ok())
        .ok_or_else(|| {
            "no usable vault: data.Id, data.VaultName and the source ARM id are missing or invalid".into()
        })
}

/// Maps an envelope whose type is a Key Vault type (`kind`, `family` from [`classify`]) to a
/// [`KeyVaultEvent`]. `Err` carries the reason it cannot be used.
pub(crate) fn to_key_vault_event(
    env: Envelope<'_>,
    id: &str,
    event_type: Cow<'static, str>,
    kind: KeyVaultEventKind,
    family: Option<ObjectKind>,
    cloud: Cloud,
    shared: &mut Shared,
) -> Result<KeyVaultEvent, String> {
    let urls = &mut shared.urls;
    let view = data_object(env.data)?;
    let data = view.as_deref().map(KeyVaultData::from_view).unwrap_or_default();
    let parts = data
        .id
        .as_deref()
        .map(|i| urls.parts(i, family))
        .unwrap_or_default();
    let vault = choose_vault(
        parts.vault,
        data.vault_name.as_deref(),
        env.source.as_deref(),
        cloud,
    )?;
    let object = match family {
        None => None,
        Some(object_kind) => {
            let subject_name = env.subject.as_deref().and_then(|s| {
                if s.contains('/') {
                    // A path-like subject: take the segment after the collection.
                    urls.parts(
                        &format!("https://x.invalid/{}", s.trim_start_matches('/')),
                        family,
                    )
                    .name
                    .map(|n| Cow::Owned(n.into_owned()))
                } else {
                    Some(Cow::Borrowed(s))
                }
            });
            let name = data
                .object_name
                .as_deref()
                .filter(|n| is_object_name(n))
                .or(parts.name.as_deref())
                .or(subject_name.as_deref().filter(|n| is_object_name(n)))
                .ok_or_else(|| match &data.object_name {
                    Some(bad) => format!("invalid ObjectName {:?}", excerpt(bad, 60)),
                    None => "no object name in data.ObjectName, data.Id or subject".to_string(),
                })?;
            Some(ObjectRef {
                vault: vault.clone(),
                kind: object_kind,
                name: ObjectName::new(name),
            })
        }
    };
    let version = data
        .version
        .as_deref()
        .filter(|v| is_version(v))
        .or(parts.version.as_deref().filter(|v| is_version(v)))
        .map(Into::into);
    Ok(KeyVaultEvent {
        texts: Texts::new(id, env.time.as_deref(), env.subject.as_deref()),
        event_type,
        kind,
        vault,
        object,
        version,
        nbf: data.nbf,
        exp: data.exp,
        source: env.source.as_deref().map(|s| shared.source(s)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventgrid::schema::Schema;
    use serde_json::{Map, Value, json};

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn env(event_type: &str, subject: Option<&str>, data: Value) -> Envelope<'static> {
        Envelope {
            schema: Schema::EventGrid,
            id: Some("e1".into()),
            event_type: Some(event_type.to_string().into()),
            source: Some(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/sample-kv".into(),
            ),
            subject: subject.map(|s| s.to_string().into()),
            time: None,
            data: Some(Box::leak(Box::new(data)))
                .map(|d| &*Box::leak(Box::new(crate::eventgrid::view::Data::from_value(d).unwrap()))),
        }
    }

    fn map_event(e: Envelope<'_>, cloud: Cloud) -> Result<KeyVaultEvent, String> {
        let t = e.event_type.clone().unwrap().into_owned();
        let (kind, family) = classify(&t).unwrap();
        to_key_vault_event(
            e,
            "e1",
            sent_type(&t, kind, family),
            kind,
            family,
            cloud,
            &mut Shared::default(),
        )
    }

    /// [`super::epoch_seconds`] of a JSON value.
    fn epoch_seconds(value: Option<&Value>) -> Option<i64> {
        let scalar = value.map(|v| match crate::eventgrid::view::Data::from_value(v).unwrap() {
            crate::eventgrid::view::Data::Scalar(s) => s,
            crate::eventgrid::view::Data::Object(_) => Scalar::Object,
        });
        super::epoch_seconds(scalar.as_ref())
    }

    fn vault(host: &str) -> VaultId {
        VaultId::from_url(host).unwrap()
    }

    #[test]
    fn all_ten_types_classify_ignoring_case() {
        use KeyVaultEventKind::*;
        let cases = [
            (
                "Microsoft.KeyVault.SecretNewVersionCreated",
                NewVersion,
                Some(ObjectKind::Secret),
            ),
            (
                "Microsoft.KeyVault.SecretNearExpiry",
                NearExpiry,
                Some(ObjectKind::Secret),
            ),
            (
                "Microsoft.KeyVault.SecretExpired",
                Expired,
                Some(ObjectKind::Secret),
            ),
            (
                "Microsoft.KeyVault.CertificateNewVersionCreated",
                NewVersion,
                Some(ObjectKind::Certificate),
            ),
            (
                "Microsoft.KeyVault.CertificateNearExpiry",
                NearExpiry,
                Some(ObjectKind::Certificate),
            ),
            (
                "Microsoft.KeyVault.CertificateExpired",
                Expired,
                Some(ObjectKind::Certificate),
            ),
            (
                "Microsoft.KeyVault.KeyNewVersionCreated",
                NewVersion,
                Some(ObjectKind::Key),
            ),
            (
                "Microsoft.KeyVault.KeyNearExpiry",
                NearExpiry,
                Some(ObjectKind::Key),
            ),
            ("Microsoft.KeyVault.KeyExpired", Expired, Some(ObjectKind::Key)),
            (
                "Microsoft.KeyVault.VaultAccessPolicyChanged",
                AccessPolicyChanged,
                None,
            ),
        ];
        for (t, kind, family) in cases {
            assert_eq!(classify(t), Some((kind, family)), "{t}");
            assert_eq!(classify(&t.to_ascii_lowercase()), Some((kind, family)), "{t}");
            assert_eq!(classify(&t.to_ascii_uppercase()), Some((kind, family)), "{t}");
            // The documented spelling is kept without a copy; any other is kept as sent.
            assert_eq!(canonical_type(kind, family), t);
            assert!(matches!(sent_type(t, kind, family), Cow::Borrowed(s) if s == t));
            let lower = t.to_ascii_lowercase();
            assert!(matches!(sent_type(&lower, kind, family), Cow::Owned(s) if s == lower));
        }
        for t in [
            "Microsoft.KeyVault.SecretDeleted",
            "Microsoft.KeyVault.",
            "Microsoft.Storage.BlobCreated",
            "KeyVault.SecretNewVersionCreated",
            "",
        ] {
            assert_eq!(classify(t), None, "{t}");
        }
    }

    #[test]
    fn data_keys_match_ignoring_case_and_spaces() {
        for keys in [
            [
                "Id",
                "VaultName",
                "ObjectType",
                "ObjectName",
                "Version",
                "NBF",
                "EXP",
            ],
            [
                "id",
                "vaultName",
                "objectType",
                "objectName",
                "version",
                "nbf",
                "exp",
            ],
            [
                "ID",
                "VAULTNAME",
                "OBJECTTYPE",
                "OBJECTNAME",
                "VERSION",
                "NBF",
                "EXP",
            ],
            [
                "Id",
                "VaultName",
                "ObjectType",
                "ObjectName ",
                " Version",
                "Nbf",
                "Exp",
            ],
        ] {
            let vals = [
                json!("https://kv.vault.azure.net/secrets/a/v1"),
                json!("kv"),
                json!("Secret"),
                json!("a"),
                json!("v1"),
                json!(1),
                json!(2),
            ];
            let m: Map<String, Value> = keys.iter().map(|k| k.to_string()).zip(vals).collect();
            let d = KeyVaultData::from_map(&m);
            assert_eq!(
                d,
                KeyVaultData {
                    id: Some("https://kv.vault.azure.net/secrets/a/v1".into()),
                    vault_name: Some("kv".into()),
                    object_type: Some("Secret".into()),
                    object_name: Some("a".into()),
                    version: Some("v1".into()),
                    nbf: Some(1),
                    exp: Some(2),
                },
                "{keys:?}"
            );
        }
    }

    #[test]
    fn exact_keys_win_over_other_casings_whatever_the_order() {
        let d = KeyVaultData::from_map(&map(
            json!({"objectName": "b", "ObjectName": "a", "OBJECTNAME": "c"}),
        ));
        assert_eq!(d.object_name.as_deref(), Some("a"));
        let d = KeyVaultData::from_map(&map(json!({"OBJECTNAME": "c", "objectName": "b"})));
        assert!(matches!(d.object_name.as_deref(), Some("b" | "c")));
    }

    #[test]
    fn strings_are_trimmed_and_unknown_fields_ignored() {
        let d = KeyVaultData::from_map(&map(json!({
            "ObjectName": "  db-password ", "Version": " ee05 ", "VaultName": "", "Extra": {"x": [1]}, "Id": 3
        })));
        assert_eq!(d.object_name.as_deref(), Some("db-password"));
        assert_eq!(d.version.as_deref(), Some("ee05"));
        assert_eq!(d.vault_name, None);
        assert_eq!(d.id, None);
    }

    #[test]
    fn nbf_and_exp_accept_numbers_numeric_strings_null_and_missing() {
        let cases = [
            (json!(1559081980), Some(1559081980)),
            (json!(1559081980.75), Some(1559081980)),
            (json!(-1.5), Some(-1)),
            (json!("1559081980"), Some(1559081980)),
            (json!(" 1559081980 "), Some(1559081980)),
            (json!("1559081980.9"), Some(1559081980)),
            (json!("1.5e9"), Some(1_500_000_000)),
            (json!(null), None),
            (json!(""), None),
            (json!("soon"), None),
            (json!("NaN"), None),
            (json!("inf"), None),
            (json!(1e300), None),
            (json!(true), None),
            (json!([1]), None),
            (json!({"v": 1}), None),
            (json!(u64::MAX), None),
        ];
        for (v, want) in cases {
            assert_eq!(epoch_seconds(Some(&v)), want, "{v}");
        }
        assert_eq!(epoch_seconds(None), None);
        let d = KeyVaultData::from_map(&map(json!({"NBF": "12", "exp": 13.2})));
        assert_eq!((d.nbf, d.exp), (Some(12), Some(13)));
    }

    #[test]
    fn id_host_wins_over_vault_name_in_every_cloud() {
        let cases = [
            (
                "https://sample-kv.vault.azure.net/secrets/a/v",
                Cloud::China,
                "sample-kv.vault.azure.net",
            ),
            (
                "https://sample-kv.vault.azure.cn/secrets/a/v",
                Cloud::Public,
                "sample-kv.vault.azure.cn",
            ),
            (
                "https://sample-kv.vault.usgovcloudapi.net/secrets/a/v",
                Cloud::Public,
                "sample-kv.vault.usgovcloudapi.net",
            ),
            (
                "https://sample-kv.vault.microsoftazure.de/secrets/a/v",
                Cloud::Public,
                "sample-kv.vault.microsoftazure.de",
            ),
            (
                "https://SAMPLE-KV.Vault.Azure.Net:443/secrets/a/v",
                Cloud::UsGov,
                "sample-kv.vault.azure.net",
            ),
        ];
        for (id, cloud, want) in cases {
            let e = map_event(
                env(
                    "Microsoft.KeyVault.SecretNewVersionCreated",
                    None,
                    json!({"Id": id, "VaultName": "sample-kv"}),
                ),
                cloud,
            )
            .unwrap();
            assert_eq!(e.vault, vault(want), "{id}");
            assert_eq!(e.object.unwrap().vault, vault(want));
        }
    }

    #[test]
    fn vault_name_and_cloud_are_used_when_id_is_missing_or_unparseable() {
        for (cloud, want) in [
            (Cloud::Public, "sample-kv.vault.azure.net"),
            (Cloud::China, "sample-kv.vault.azure.cn"),
            (Cloud::UsGov, "sample-kv.vault.usgovcloudapi.net"),
            (Cloud::Germany, "sample-kv.vault.microsoftazure.de"),
        ] {
            for data in [
                json!({"VaultName": "Sample-KV", "ObjectName": "a"}),
                json!({"Id": "not a url", "VaultName": "sample-kv", "ObjectName": "a"}),
                json!({"Id": "sample-kv", "VaultName": "sample-kv", "ObjectName": "a"}),
                json!({"Id": "ftp://sample-kv.vault.azure.net/secrets/a", "VaultName": "sample-kv", "ObjectName": "a"}),
                // A foreign host that disagrees with VaultName is not trusted.
                json!({"Id": "https://evil.example.com/secrets/a/v", "VaultName": "sample-kv"}),
            ] {
                let e = map_event(
                    env("Microsoft.KeyVault.SecretNewVersionCreated", None, data.clone()),
                    cloud,
                )
                .unwrap();
                assert_eq!(e.vault, vault(want), "{data}");
                assert_eq!(e.object.unwrap().name, ObjectName::new("a"));
            }
        }
    }

    #[test]
    fn a_foreign_host_is_used_when_vault_name_agrees_or_is_absent() {
        for data in [
            json!({"Id": "https://sample-kv.localtest.me:8443/secrets/a/v", "VaultName": "sample-kv"}),
            json!({"Id": "https://sample-kv.localtest.me:8443/secrets/a/v"}),
        ] {
            let e = map_event(
                env("Microsoft.KeyVault.SecretNewVersionCreated", None, data.clone()),
                Cloud::Public,
            )
            .unwrap();
            assert_eq!(e.vault.as_str(), "sample-kv.localtest.me:8443", "{data}");
        }
    }

    #[test]
    fn the_source_arm_id_is_the_last_resort_for_the_vault() {
        let e = map_event(
            env("Microsoft.KeyVault.SecretNewVersionCreated", Some("a"), json!({})),
            Cloud::China,
        )
        .unwrap();
        assert_eq!(e.vault, vault("sample-kv.vault.azure.cn"));
        let mut no_source = env("Microsoft.KeyVault.SecretNewVersionCreated", Some("a"), json!({}));
        no_source.source = Some("/subscriptions/s/resourceGroups/rg".into());
        let err = map_event(no_source, Cloud::Public).unwrap_err();
        assert!(err.starts_with("no usable vault"), "{err}");
        let mut bad_name = env(
            "Microsoft.KeyVault.SecretNewVersionCreated",
            Some("a"),
            json!({"VaultName": "a b"}),
        );
        bad_name.source = None;
        let err = map_event(bad_name, Cloud::Public).unwrap_err();
        assert!(err.contains("invalid VaultName"), "{err}");
    }

    #[test]
    fn object_name_comes_from_object_name_then_id_then_subject() {
        let t = "Microsoft.KeyVault.CertificateNewVersionCreated";
        let id = "https://kv.vault.azure.net/certificates/from-id/v9";
        let cases = [
            (
                json!({"Id": id, "ObjectName": "From-Name"}),
                Some("s"),
                "from-name",
            ),
            (json!({"Id": id}), Some("s"), "from-id"),
            (json!({"Id": id, "ObjectName": "bad/name"}), Some("s"), "from-id"),
            (json!({"VaultName": "kv"}), Some("from-subject"), "from-subject"),
            (
                json!({"VaultName": "kv"}),
                Some("/certificates/path-subject"),
                "path-subject",
            ),
            (json!({"Id": "https://kv.vault.azure.net/"}), Some("s2"), "s2"),
        ];
        for (data, subject, want) in cases {
            let e = map_event(env(t, subject, data.clone()), Cloud::Public).unwrap();
            let o = e.object.unwrap();
            assert_eq!(o.name, ObjectName::new(want), "{data}");
            assert_eq!(o.kind, ObjectKind::Certificate);
        }
        let err = map_event(env(t, None, json!({"VaultName": "kv"})), Cloud::Public).unwrap_err();
        assert!(err.starts_with("no object name"), "{err}");
        let err = map_event(
            env(t, None, json!({"VaultName": "kv", "ObjectName": "x y"})),
            Cloud::Public,
        )
        .unwrap_err();
        assert!(err.starts_with("invalid ObjectName"), "{err}");
    }

    #[test]
    fn kind_comes_from_the_type_family_not_object_type() {
        let e = map_event(
            env(
                "Microsoft.KeyVault.KeyNewVersionCreated",
                None,
                json!({"Id": "https://kv.vault.azure.net/keys/signing-key/v1", "ObjectType": "Secret"}),
            ),
            Cloud::Public,
        )
        .unwrap();
        assert_eq!(e.object.as_ref().unwrap().kind, ObjectKind::Key);
        assert_eq!(e.version.as_deref(), Some("v1"));
    }

    #[test]
    fn version_falls_back_to_the_id_segment() {
        let e = map_event(
            env(
                "Microsoft.KeyVault.SecretNewVersionCreated",
                None,
                json!({"Id": "https://kv.vault.azure.net/secrets/a/abc123"}),
            ),
            Cloud::Public,
        )
        .unwrap();
        assert_eq!(e.version.as_deref(), Some("abc123"));
        let e = map_event(
            env(
                "Microsoft.KeyVault.SecretNewVersionCreated",
                None,
                json!({"Id": "https://kv.vault.azure.net/secrets/a"}),
            ),
            Cloud::Public,
        )
        .unwrap();
        assert_eq!(e.version, None);
    }

    #[test]
    fn oversized_or_odd_versions_are_ignored() {
        for (data, want) in [
            (
                json!({"Id": "https://kv.vault.azure.net/secrets/a/abc123", "Version": "v".repeat(65)}),
                Some("abc123"),
            ),
            (
                json!({"Id": "https://kv.vault.azure.net/secrets/a", "Version": "a b"}),
                None,
            ),
            (
                json!({"Id": format!("https://kv.vault.azure.net/secrets/a/{}", "9".repeat(65))}),
                None,
            ),
            (
                json!({"Id": "https://kv.vault.azure.net/secrets/a", "Version": "v".repeat(64)}),
                Some(&*"v".repeat(64).leak()),
            ),
        ] {
            let e = map_event(
                env("Microsoft.KeyVault.SecretNewVersionCreated", None, data),
                Cloud::Public,
            )
            .unwrap();
            assert_eq!(e.version.as_deref(), want);
        }
    }

    #[test]
    fn access_policy_changes_have_a_vault_but_no_object() {
        let e = map_event(
            env(
                "Microsoft.KeyVault.VaultAccessPolicyChanged",
                Some("sample-kv"),
                json!({"Id": "https://sample-kv.vault.azure.net/", "VaultName": "sample-kv", "ObjectType": "Vault"}),
            ),
            Cloud::Public,
        )
        .unwrap();
        assert_eq!(e.kind, KeyVaultEventKind::AccessPolicyChanged);
        assert_eq!(e.vault, vault("sample-kv.vault.azure.net"));
        assert_eq!(e.object, None);
        assert_eq!(e.change(), None);
    }

    #[test]
    fn data_that_is_not_an_object_is_a_reason() {
        let err = map_event(
            env(
                "Microsoft.KeyVault.SecretNewVersionCreated",
                Some("a"),
                json!([1]),
            ),
            Cloud::Public,
        )
        .unwrap_err();
        assert!(err.contains("array"), "{err}");
        let err = map_event(
            env(
                "Microsoft.KeyVault.SecretNewVersionCreated",
                Some("a"),
                json!("x".repeat(5000)),
            ),
            Cloud::Public,
        )
        .unwrap_err();
        assert!(err.len() < 200, "{err}");
    }

    #[test]
    fn arm_ids_name_their_vault() {
        assert_eq!(
            vault_name_from_arm_id(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/"
            ),
            Some("kv")
        );
        assert_eq!(
            vault_name_from_arm_id(
                "/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/VAULTS/kv"
            ),
            Some("kv")
        );
        assert_eq!(
            vault_name_from_arm_id("/subscriptions/s/providers/Microsoft.Storage/storageAccounts/x"),
            None
        );
        assert_eq!(vault_name_from_arm_id(""), None);
    }
}
