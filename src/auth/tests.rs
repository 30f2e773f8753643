//! End-to-end tests of the authenticator: real RSA keys generated at run time, a local identity
//! provider (wiremock) serving the OpenID metadata and the JWKS.

use std::sync::OnceLock;
use std::time::Duration;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OTHER_TENANT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";
const AUDIENCE_URI: &str = "api://kvsync-webhook";
const CLIENT_ID: &str = "0a1b2c3d-1111-2222-3333-444455556666";
const SECRET_1: &str = "rotation-secret-one-0123";
const SECRET_2: &str = "rotation-secret-two-4567";
const METADATA_PATH: &str = "/tenant/v2.0/.well-known/openid-configuration";
const JWKS_PATH: &str = "/tenant/discovery/v2.0/keys";

// === RSA test keys ===

struct TestKey {
    kid: &'static str,
    encoding: EncodingKey,
    n: String,
    e: String,
    /// The public key (SubjectPublicKeyInfo DER): what an attacker would use as an HMAC key.
    public_der: Vec<u8>,
}

impl TestKey {
    fn generate(kid: &'static str) -> TestKey {
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8: Pkcs8V1Der<'static> = pair.as_der().unwrap();
        let pkcs1 = pkcs8_to_pkcs1(pkcs8.as_ref());
        let public = pair.public_key();
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        TestKey {
            kid,
            encoding: EncodingKey::from_rsa_der(&pkcs1),
            n: b64(public.modulus().big_endian_without_leading_zero()),
            e: b64(public.exponent().big_endian_without_leading_zero()),
            public_der: public.as_ref().to_vec(),
        }
    }

    fn jwk(&self) -> Value {
        // Shaped like Microsoft's JWKS entries, including fields jsonwebtoken does not model.
        json!({
            "kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid,
            "n": self.n, "e": self.e,
            "issuer": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
        })
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// The `RSAPrivateKey` (PKCS#1) inside a PKCS#8 `PrivateKeyInfo`, which is what
/// `EncodingKey::from_rsa_der` wants.
fn pkcs8_to_pkcs1(der: &[u8]) -> Vec<u8> {
    /// One DER TLV: (tag, contents, rest).
    fn tlv(b: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = b[0];
        let (len, hdr) = if b[1] < 0x80 {
            (b[1] as usize, 2)
        } else {
            let n = (b[1] & 0x7f) as usize;
            let len = b[2..2 + n].iter().fold(0usize, |acc, &x| (acc << 8) | x as usize);
            (len, 2 + n)
        };
        (tag, &b[hdr..hdr + len], &b[hdr + len..])
    }
    let (tag, seq, _) = tlv(der);
    assert_eq!(tag, 0x30);
    let (tag, _version, rest) = tlv(seq);
    assert_eq!(tag, 0x02);
    let (tag, _alg, rest) = tlv(rest);
    assert_eq!(tag, 0x30);
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

fn key_a() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| TestKey::generate("key-a"))
}

fn key_b() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| TestKey::generate("key-b"))
}

fn jwks(keys: &[&TestKey]) -> Value {
    let mut list: Vec<Value> = keys.iter().map(|k| k.jwk()).collect();
    // Entries that must be skipped without spoiling the set.
    list.push(json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"}));
    list.push(json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0c2VjcmV0"}));
    json!({ "keys": list })
}

// === Local identity provider ===

struct Idp {
    server: MockServer,
}

impl Idp {
    /// Metadata and a JWKS holding `keys`.
    async fn start(keys: &[&TestKey]) -> Idp {
        let idp = Idp::bare().await;
        idp.serve_metadata().await;
        Mock::given(method("GET"))
            .and(path(JWKS_PATH))
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks(keys)))
            .mount(&idp.server)
            .await;
        idp
    }

    /// No route mounted: every request gets 404.
    async fn bare() -> Idp {
        Idp {
            server: MockServer::start().await,
        }
    }

    async fn serve_metadata(&self) {
        self.serve_metadata_pointing_to(&format!("{}{JWKS_PATH}", self.server.uri()))
            .await;
    }

    async fn serve_metadata_pointing_to(&self, jwks_uri: &str) {
        let body = json!({
            "issuer": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
            "jwks_uri": jwks_uri,
            "token_endpoint": "https://login.microsoftonline.com/x/oauth2/v2.0/token",
        });
        Mock::given(method("GET"))
            .and(path(METADATA_PATH))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&self.server)
            .await;
    }

    fn metadata_url(&self) -> String {
        format!("{}{METADATA_PATH}", self.server.uri())
    }

    async fn hits(&self, p: &str) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == p)
            .count()
    }

    async fn jwks_hits(&self) -> usize {
        self.hits(JWKS_PATH).await
    }
}

// === Helpers ===

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A v1 app-only token as Event Grid presents it (see the reference sample).
fn v1_claims() -> Value {
    let t = now();
    json!({
        "aud": AUDIENCE_URI,
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "iat": t - 60, "nbf": t - 60, "exp": t + 3600,
        "appid": EVENT_GRID_APP_ID, "appidacr": "2",
        "idp": format!("https://sts.windows.net/{TENANT}/"),
        "oid": "9f6a1b2c-0000-4000-8000-000000000001",
        "sub": "9f6a1b2c-0000-4000-8000-000000000001",
        "roles": [EVENT_GRID_ROLE],
        "tid": TENANT,
        "ver": "1.0",
    })
}

fn v2_claims() -> Value {
    let t = now();
    json!({
        "aud": CLIENT_ID,
        "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
        "iat": t - 60, "nbf": t - 60, "exp": t + 3600,
        "azp": EVENT_GRID_APP_ID, "azpacr": "2",
        "oid": "9f6a1b2c-0000-4000-8000-000000000001",
        "sub": "9f6a1b2c-0000-4000-8000-000000000001",
        "roles": [EVENT_GRID_ROLE],
        "tid": TENANT,
        "ver": "2.0",
    })
}

fn with(mut claims: Value, changes: Value) -> Value {
    if let (Some(c), Some(changes)) = (claims.as_object_mut(), changes.as_object()) {
        for (k, v) in changes {
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.clone(), v.clone());
            }
        }
    }
    claims
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

fn entra_args(idp: &Idp) -> AuthArgs {
    AuthArgs {
        entra_tenant_id: Some(TENANT.to_owned()),
        entra_audience: vec![AUDIENCE_URI.to_owned(), CLIENT_ID.to_owned()],
        entra_metadata_url: Some(idp.metadata_url()),
        ..AuthArgs::default()
    }
}

fn test_options() -> EntraOptions {
    EntraOptions {
        http_timeout: Duration::from_secs(2),
        ..EntraOptions::default()
    }
}

fn entra_auth(idp: &Idp) -> Authenticator {
    Authenticator::from_args_with(&entra_args(idp), test_options()).unwrap()
}

fn shared_auth() -> Authenticator {
    Authenticator::from_args(&AuthArgs {
        shared_secrets: vec![SECRET_1.to_owned(), SECRET_2.to_owned()],
        ..AuthArgs::default()
    })
    .unwrap()
}

fn secret_header(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(DEFAULT_SECRET_HEADER, HeaderValue::from_str(value).unwrap());
    h
}

fn denied(reason: DenyReason) -> AuthOutcome {
    AuthOutcome::Denied(reason)
}

const ENTRA: AuthOutcome = AuthOutcome::Allowed { method: "entra" };
const SHARED: AuthOutcome = AuthOutcome::Allowed {
    method: "shared_secret",
};

async fn check_token(claims: Value, expected: AuthOutcome) {
    let idp = Idp::start(&[key_a()]).await;
    let auth = entra_auth(&idp);
    let token = key_a().sign(&claims);
    assert_eq!(auth.authenticate(&bearer(&token), None).await, expected);
}

fn assert_unavailable(outcome: AuthOutcome) {
    assert!(matches!(outcome, AuthOutcome::Unavailable(_)), "{outcome:?}");
}

// === Configuration ===

#[test]
fn nothing_configured_is_refused() {
    let err = Authenticator::from_args(&AuthArgs::default()).unwrap_err();
    assert!(matches!(err, AuthConfigError::NothingConfigured), "{err}");
}

#[tokio::test]
async fn insecure_no_auth_allows_everything() {
    let auth = Authenticator::from_args(&AuthArgs {
        insecure_no_auth: true,
        ..AuthArgs::default()
    })
    .unwrap();
    assert_eq!(auth.mode(), AuthMode::Disabled);
    let none = AuthOutcome::Allowed { method: "none" };
    assert_eq!(auth.authenticate(&HeaderMap::new(), None).await, none);
    assert_eq!(auth.authenticate(&bearer("garbage"), Some("code=x")).await, none);
}

#[test]
fn insecure_no_auth_with_credentials_is_refused() {
    let err = Authenticator::from_args(&AuthArgs {
        insecure_no_auth: true,
        shared_secrets: vec![SECRET_1.to_owned()],
        ..AuthArgs::default()
    })
    .unwrap_err();
    assert!(matches!(err, AuthConfigError::InsecureWithCredentials));
}

#[test]
fn entra_settings_are_validated() {
    let base = AuthArgs {
        entra_tenant_id: Some(TENANT.to_owned()),
        entra_audience: vec![AUDIENCE_URI.to_owned()],
        ..AuthArgs::default()
    };
    let auth = Authenticator::from_args(&base).unwrap();
    assert_eq!(auth.mode(), AuthMode::Entra);

    let err = |args: AuthArgs| Authenticator::from_args(&args).unwrap_err();
    assert!(matches!(
        err(AuthArgs {
            entra_audience: vec![],
            ..base.clone()
        }),
        AuthConfigError::EntraAudienceMissing
    ));
    assert!(matches!(
        err(AuthArgs {
            entra_tenant_id: None,
            ..base.clone()
        }),
        AuthConfigError::EntraTenantMissing
    ));
    assert!(matches!(
        err(AuthArgs {
            entra_tenant_id: Some("contoso.onmicrosoft.com".into()),
            ..base.clone()
        }),
        AuthConfigError::InvalidTenantId(_)
    ));
    assert!(matches!(
        err(AuthArgs {
            entra_caller_app_id: vec![" ".into()],
            ..base.clone()
        }),
        AuthConfigError::EntraCallerMissing
    ));
    assert!(matches!(
        err(AuthArgs {
            entra_metadata_url: Some("http://idp.example.com/.well-known/openid-configuration".into()),
            ..base.clone()
        }),
        AuthConfigError::InvalidMetadataUrl { .. }
    ));
}

#[test]
fn modes_follow_what_is_configured() {
    let both = Authenticator::from_args(&AuthArgs {
        shared_secrets: vec![SECRET_1.to_owned()],
        entra_tenant_id: Some(TENANT.to_owned()),
        entra_audience: vec![CLIENT_ID.to_owned()],
        ..AuthArgs::default()
    })
    .unwrap();
    assert_eq!(both.mode(), AuthMode::Both);
    assert_eq!(shared_auth().mode(), AuthMode::SharedSecret);
}

#[test]
fn debug_prints_no_secret() {
    let auth = shared_auth();
    let dbg = format!("{auth:?}");
    assert!(!dbg.contains(SECRET_1) && !dbg.contains(SECRET_2), "{dbg}");
    assert!(dbg.contains("shared_secrets: Some(2)"), "{dbg}");
}

#[test]
fn deny_labels_are_unique_snake_case() {
    let labels: std::collections::HashSet<&str> = DenyReason::ALL.iter().map(DenyReason::label).collect();
    assert_eq!(labels.len(), DenyReason::ALL.len());
    for l in labels {
        assert!(l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{l}");
    }
}

// === Shared secrets through the authenticator ===

#[tokio::test]
async fn shared_secret_in_header_or_code_is_allowed() {
    let auth = shared_auth();
    assert_eq!(auth.authenticate(&secret_header(SECRET_1), None).await, SHARED);
    let q = format!("api-version=1&code={}", SECRET_1.replace('-', "%2D"));
    assert_eq!(auth.authenticate(&HeaderMap::new(), Some(&q)).await, SHARED);
}

#[tokio::test]
async fn both_rotation_secrets_are_accepted() {
    let auth = shared_auth();
    assert_eq!(auth.authenticate(&secret_header(SECRET_1), None).await, SHARED);
    assert_eq!(auth.authenticate(&secret_header(SECRET_2), None).await, SHARED);
}

#[tokio::test]
async fn wrong_or_missing_shared_secret_is_denied() {
    let auth = shared_auth();
    assert_eq!(
        auth.authenticate(&secret_header("rotation-secret-one-0124"), None)
            .await,
        denied(DenyReason::BadSharedSecret)
    );
    assert_eq!(
        auth.authenticate(&HeaderMap::new(), Some("code=wrong")).await,
        denied(DenyReason::BadSharedSecret)
    );
    assert_eq!(
        auth.authenticate(&HeaderMap::new(), None).await,
        denied(DenyReason::MissingCredentials)
    );
    // A bearer token is not a credential when Entra is off.
    assert_eq!(
        auth.authenticate(&bearer(&key_a().sign(&v1_claims())), None)
            .await,
        denied(DenyReason::MissingCredentials)
    );
}

#[tokio::test]
async fn secrets_file_with_comments() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(
        &mut f,
        format!("# current\n{SECRET_1}\n\n# next, not yet\n#{SECRET_2}\n").as_bytes(),
    )
    .unwrap();
    let auth = Authenticator::from_args(&AuthArgs {
        shared_secrets_file: Some(f.path().to_owned()),
        ..AuthArgs::default()
    })
    .unwrap();
    assert_eq!(auth.mode(), AuthMode::SharedSecret);
    assert_eq!(auth.authenticate(&secret_header(SECRET_1), None).await, SHARED);
    assert_eq!(
        auth.authenticate(&secret_header(SECRET_2), None).await,
        denied(DenyReason::BadSharedSecret)
    );
}

#[test]
fn missing_secrets_file_is_a_config_error() {
    let err = Authenticator::from_args(&AuthArgs {
        shared_secrets_file: Some("/nonexistent/secrets".into()),
        ..AuthArgs::default()
    })
    .unwrap_err();
    assert!(matches!(err, AuthConfigError::ReadSecretsFile { .. }));
}

// === Entra tokens ===

#[tokio::test]
async fn valid_v1_token_is_allowed() {
    check_token(v1_claims(), ENTRA).await;
}

#[tokio::test]
async fn valid_v2_token_is_allowed() {
    check_token(v2_claims(), ENTRA).await;
}

#[tokio::test]
async fn audience_may_be_client_id_or_app_id_uri_in_any_case() {
    check_token(with(v1_claims(), json!({"aud": CLIENT_ID.to_uppercase()})), ENTRA).await;
    check_token(with(v1_claims(), json!({"aud": [AUDIENCE_URI]})), ENTRA).await;
}

#[tokio::test]
async fn expired_token_is_denied() {
    check_token(
        with(v1_claims(), json!({"exp": now() - 3600})),
        denied(DenyReason::Expired),
    )
    .await;
}

#[tokio::test]
async fn token_expired_within_leeway_is_allowed() {
    check_token(with(v1_claims(), json!({"exp": now() - 20})), ENTRA).await;
}

#[tokio::test]
async fn token_without_exp_is_malformed() {
    check_token(
        with(v1_claims(), json!({"exp": null})),
        denied(DenyReason::MalformedToken),
    )
    .await;
}

#[tokio::test]
async fn not_yet_valid_token_is_denied() {
    check_token(
        with(v1_claims(), json!({"nbf": now() + 3600})),
        denied(DenyReason::NotYetValid),
    )
    .await;
}

#[tokio::test]
async fn wrong_audience_is_denied() {
    check_token(
        with(v1_claims(), json!({"aud": "api://someone-else"})),
        denied(DenyReason::WrongAudience),
    )
    .await;
    check_token(
        with(v1_claims(), json!({"aud": null})),
        denied(DenyReason::WrongAudience),
    )
    .await;
}

#[tokio::test]
async fn wrong_issuer_is_denied() {
    for iss in [
        format!("https://sts.windows.net/{OTHER_TENANT}/"),
        format!("https://login.microsoftonline.com/{TENANT}/v2.0/extra"),
        "https://evil.example/".to_owned(),
    ] {
        check_token(
            with(v1_claims(), json!({"iss": iss})),
            denied(DenyReason::WrongIssuer),
        )
        .await;
    }
}

#[tokio::test]
async fn wrong_tenant_is_denied() {
    let other_iss = format!("https://sts.windows.net/{OTHER_TENANT}/");
    check_token(
        with(v1_claims(), json!({"tid": OTHER_TENANT, "iss": other_iss})),
        denied(DenyReason::WrongTenant),
    )
    .await;
    check_token(
        with(v1_claims(), json!({"tid": OTHER_TENANT})),
        denied(DenyReason::WrongTenant),
    )
    .await;
}

#[tokio::test]
async fn wrong_caller_app_is_denied() {
    let other = "00000000-0000-0000-0000-00000000abcd";
    check_token(
        with(v1_claims(), json!({"appid": other})),
        denied(DenyReason::WrongCaller),
    )
    .await;
    check_token(
        with(v1_claims(), json!({"appid": null})),
        denied(DenyReason::WrongCaller),
    )
    .await;
    // v2 tokens name the caller in `azp`.
    check_token(
        with(v2_claims(), json!({"azp": other, "appid": EVENT_GRID_APP_ID})),
        denied(DenyReason::WrongCaller),
    )
    .await;
}

#[tokio::test]
async fn configured_caller_app_ids_replace_the_default() {
    let gov = "54316b56-3481-47f9-8f30-0300f5542a7b";
    let idp = Idp::start(&[key_a()]).await;
    let auth = Authenticator::from_args_with(
        &AuthArgs {
            entra_caller_app_id: vec![gov.to_owned()],
            ..entra_args(&idp)
        },
        test_options(),
    )
    .unwrap();
    let gov_token = key_a().sign(&with(v1_claims(), json!({"appid": gov})));
    let public_token = key_a().sign(&v1_claims());
    assert_eq!(auth.authenticate(&bearer(&gov_token), None).await, ENTRA);
    assert_eq!(
        auth.authenticate(&bearer(&public_token), None).await,
        denied(DenyReason::WrongCaller)
    );
}

#[tokio::test]
async fn role_is_checked_only_when_required() {
    let idp = Idp::start(&[key_a()]).await;
    let strict = Authenticator::from_args_with(
        &AuthArgs {
            entra_require_role: true,
            ..entra_args(&idp)
        },
        test_options(),
    )
    .unwrap();
    let lax = entra_auth(&idp);
    let no_role = key_a().sign(&with(v1_claims(), json!({"roles": null})));
    let other_role = key_a().sign(&with(v1_claims(), json!({"roles": ["Reader"]})));
    let with_role = key_a().sign(&v1_claims());
    for t in [&no_role, &other_role] {
        assert_eq!(
            strict.authenticate(&bearer(t), None).await,
            denied(DenyReason::MissingRole)
        );
        assert_eq!(lax.authenticate(&bearer(t), None).await, ENTRA);
    }
    assert_eq!(strict.authenticate(&bearer(&with_role), None).await, ENTRA);
}

fn unsigned(header: &Value, claims: &Value) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.", b64(header), b64(claims))
}

#[tokio::test]
async fn alg_none_is_disallowed() {
    let idp = Idp::start(&[key_a()]).await;
    let auth = entra_auth(&idp);
    for alg in ["none", "None", "NONE"] {
        let token = unsigned(&json!({"alg": alg, "typ": "JWT", "kid": "key-a"}), &v1_claims());
        assert_eq!(
            auth.authenticate(&bearer(&token), None).await,
            denied(DenyReason::DisallowedAlgorithm)
        );
    }
    assert_eq!(idp.jwks_hits().await, 0, "rejected before any key lookup");
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_disallowed() {
    let idp = Idp::start(&[key_a()]).await;
    let auth = entra_auth(&idp);
    let key = key_a();
    let modulus = URL_SAFE_NO_PAD.decode(&key.n).unwrap();
    for secret in [&key.public_der, &modulus, &key.n.as_bytes().to_vec()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.to_owned());
        let hmac = EncodingKey::from_secret(secret).unwrap();
        let token = jsonwebtoken::encode(&header, &v1_claims(), &hmac).unwrap();
        assert_eq!(
            auth.authenticate(&bearer(&token), None).await,
            denied(DenyReason::DisallowedAlgorithm)
        );
    }
}

#[tokio::test]
async fn other_algorithms_are_disallowed() {
    let idp = Idp::start(&[key_a()]).await;
    let auth = entra_auth(&idp);
    let mut header = Header::new(Algorithm::RS512);
    header.kid = Some("key-a".to_owned());
    let token = jsonwebtoken::encode(&header, &v1_claims(), &key_a().encoding).unwrap();
    assert_eq!(
        auth.authenticate(&bearer(&token), None).await,
        denied(DenyReason::DisallowedAlgorithm)
    );
}

#[tokio::test]
async fn tampered_token_has_a_bad_signature() {
    let idp = Idp::start(&[key_a()]).await;
    let auth = entra_auth(&idp);
    let genuine = key_a().sign(&v1_claims());
    let parts: Vec<&str> = genuine.split('.').collect();

    // Claims changed (a role added), signature kept.
    let forged_claims = with(v1_claims(), json!({"roles": [EVENT_GRID_ROLE, "Admin"]}));
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap());
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(
        auth.authenticate(&bearer(&tampered), None).await,
        denied(DenyReason::BadSignature)
    );

    // Signature of another key under this key's kid.
    let wrong_key = key_b().sign(&v1_claims());
    let sig_b = wrong_key.rsplit('.').next().unwrap();
    let swapped = format!("{}.{}.{}", parts[0], parts[1], sig_b);
    assert_eq!(
        auth.authenticate(&bearer(&swapped), None).await,
        denied(DenyReason::BadSignature)
    );

    // Not a token at all.
    for bad in ["not-a-jwt", "a.b.c", "..."] {
        assert_eq!(
            auth.authenticate(&bearer(bad), None).await,
            denied(DenyReason::MalformedToken),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn authorization_header_variants() {
    let idp = Idp::start(&[key_a()]).await;
    let auth = entra_auth(&idp);
    assert_eq!(
        auth.authenticate(&HeaderMap::new(), None).await,
        denied(DenyReason::MissingCredentials)
    );
    let mut basic = HeaderMap::new();
    basic.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
    );
    assert_eq!(
        auth.authenticate(&basic, None).await,
        denied(DenyReason::MalformedToken)
    );
    let token = key_a().sign(&v1_claims());
    let mut upper = HeaderMap::new();
    upper.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("BEARER {token}")).unwrap(),
    );
    assert_eq!(auth.authenticate(&upper, None).await, ENTRA);
    // A shared secret is not a credential when only Entra is on.
    assert_eq!(
        auth.authenticate(&secret_header(SECRET_1), None).await,
        denied(DenyReason::MissingCredentials)
    );
}

// === Key cache ===

#[tokio::test]
async fn unknown_kid_triggers_one_refetch() {
    let idp = Idp::start(&[key_a()]).await;
    let auth = Authenticator::from_args_with(
        &entra_args(&idp),
        EntraOptions {
            min_refresh_interval: Duration::ZERO,
            ..test_options()
        },
    )
    .unwrap();
    assert_eq!(
        auth.authenticate(&bearer(&key_a().sign(&v1_claims())), None)
            .await,
        ENTRA
    );
    assert_eq!(idp.jwks_hits().await, 1);
    assert_eq!(
        auth.authenticate(&bearer(&key_b().sign(&v1_claims())), None)
            .await,
        denied(DenyReason::UnknownKey)
    );
    assert_eq!(idp.jwks_hits().await, 2, "one refetch for the unknown kid");
}

#[tokio::test]
async fn unknown_kid_refetch_is_rate_limited() {
    let idp = Idp::start(&[key_a()]).await;
    let auth = entra_auth(&idp); // 30 s minimum between fetches
    let unknown = key_b().sign(&v1_claims());
    assert_eq!(
        auth.authenticate(&bearer(&key_a().sign(&v1_claims())), None)
            .await,
        ENTRA
    );
    for _ in 0..3 {
        assert_eq!(
            auth.authenticate(&bearer(&unknown), None).await,
            denied(DenyReason::UnknownKey)
        );
    }
    assert_eq!(idp.jwks_hits().await, 1, "no refetch within 30 s of the load");

    auth.entra()
        .unwrap()
        .keys()
        .advance_clock(Duration::from_secs(31));
    for _ in 0..3 {
        assert_eq!(
            auth.authenticate(&bearer(&unknown), None).await,
            denied(DenyReason::UnknownKey)
        );
    }
    assert_eq!(idp.jwks_hits().await, 2, "exactly one refetch after 30 s");
}

#[tokio::test]
async fn rotated_key_is_picked_up_on_first_sight() {
    let idp = Idp::bare().await;
    idp.serve_metadata().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[key_a()])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&idp.server)
        .await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[key_a(), key_b()])))
        .mount(&idp.server)
        .await;
    let auth = entra_auth(&idp);
    assert_eq!(
        auth.authenticate(&bearer(&key_a().sign(&v1_claims())), None)
            .await,
        ENTRA
    );
    auth.entra()
        .unwrap()
        .keys()
        .advance_clock(Duration::from_secs(31));
    assert_eq!(
        auth.authenticate(&bearer(&key_b().sign(&v2_claims())), None)
            .await,
        ENTRA
    );
    assert_eq!(idp.jwks_hits().await, 2);
}

#[tokio::test]
async fn keys_are_refreshed_after_24_hours() {
    let idp = Idp::start(&[key_a()]).await;
    let auth = entra_auth(&idp);
    let token = key_a().sign(&v1_claims());
    assert_eq!(auth.authenticate(&bearer(&token), None).await, ENTRA);
    assert_eq!(auth.authenticate(&bearer(&token), None).await, ENTRA);
    assert_eq!(idp.jwks_hits().await, 1, "known kid: served from cache");
    auth.entra()
        .unwrap()
        .keys()
        .advance_clock(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(auth.authenticate(&bearer(&token), None).await, ENTRA);
    assert_eq!(idp.jwks_hits().await, 2);
}

#[tokio::test]
async fn held_keys_stay_in_use_when_a_scheduled_refresh_fails() {
    let idp = Idp::bare().await;
    idp.serve_metadata().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[key_a()])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&idp.server)
        .await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(503))
        .mount(&idp.server)
        .await;
    let auth = entra_auth(&idp);
    let token = key_a().sign(&v1_claims());
    assert_eq!(auth.authenticate(&bearer(&token), None).await, ENTRA);
    auth.entra()
        .unwrap()
        .keys()
        .advance_clock(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(auth.authenticate(&bearer(&token), None).await, ENTRA);
    assert_eq!(idp.jwks_hits().await, 2);
    // An unknown kid might be a key we failed to fetch: undecidable, not denied.
    auth.entra()
        .unwrap()
        .keys()
        .advance_clock(Duration::from_secs(31));
    assert_unavailable(
        auth.authenticate(&bearer(&key_b().sign(&v1_claims())), None)
            .await,
    );
}

#[tokio::test]
async fn concurrent_first_requests_fetch_once() {
    let idp = Idp::start(&[key_a()]).await;
    let auth = entra_auth(&idp);
    let token = key_a().sign(&v1_claims());
    let outcomes = futures::future::join_all((0..8).map(|_| {
        let auth = auth.clone();
        let token = token.clone();
        tokio::spawn(async move { auth.authenticate(&bearer(&token), None).await })
    }))
    .await;
    for o in outcomes {
        assert_eq!(o.unwrap(), ENTRA);
    }
    assert_eq!(idp.hits(METADATA_PATH).await, 1);
    assert_eq!(idp.jwks_hits().await, 1);
}

// === Identity provider unavailable ⇒ Unavailable (503), never Denied (401) ===

async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}{JWKS_PATH}")
}

async fn outcome_for_valid_token(idp: &Idp) -> AuthOutcome {
    entra_auth(idp)
        .authenticate(&bearer(&key_a().sign(&v1_claims())), None)
        .await
}

#[tokio::test]
async fn jwks_server_down_is_unavailable() {
    let idp = Idp::bare().await;
    idp.serve_metadata_pointing_to(&closed_port_url().await).await;
    assert_unavailable(outcome_for_valid_token(&idp).await);
}

#[tokio::test]
async fn metadata_server_down_is_unavailable() {
    let url = closed_port_url().await.replace(JWKS_PATH, METADATA_PATH);
    let auth = Authenticator::from_args_with(
        &AuthArgs {
            entra_tenant_id: Some(TENANT.to_owned()),
            entra_audience: vec![AUDIENCE_URI.to_owned()],
            entra_metadata_url: Some(url),
            ..AuthArgs::default()
        },
        test_options(),
    )
    .unwrap();
    assert_unavailable(
        auth.authenticate(&bearer(&key_a().sign(&v1_claims())), None)
            .await,
    );
}

#[tokio::test]
async fn metadata_500_is_unavailable() {
    let idp = Idp::bare().await;
    Mock::given(method("GET"))
        .and(path(METADATA_PATH))
        .respond_with(ResponseTemplate::new(500))
        .mount(&idp.server)
        .await;
    let outcome = outcome_for_valid_token(&idp).await;
    match &outcome {
        AuthOutcome::Unavailable(why) => assert!(why.contains("500"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn jwks_500_is_unavailable() {
    let idp = Idp::bare().await;
    idp.serve_metadata().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(500))
        .mount(&idp.server)
        .await;
    assert_unavailable(outcome_for_valid_token(&idp).await);
}

#[tokio::test]
async fn unparseable_documents_are_unavailable() {
    let idp = Idp::bare().await;
    Mock::given(method("GET"))
        .and(path(METADATA_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>sign in</html>"))
        .mount(&idp.server)
        .await;
    assert_unavailable(outcome_for_valid_token(&idp).await);

    let idp = Idp::bare().await;
    idp.serve_metadata().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": []})))
        .mount(&idp.server)
        .await;
    assert_unavailable(outcome_for_valid_token(&idp).await);
}

#[tokio::test]
async fn slow_identity_provider_is_unavailable() {
    let idp = Idp::bare().await;
    Mock::given(method("GET"))
        .and(path(METADATA_PATH))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&idp.server)
        .await;
    let auth = Authenticator::from_args_with(
        &entra_args(&idp),
        EntraOptions {
            http_timeout: Duration::from_millis(200),
            ..EntraOptions::default()
        },
    )
    .unwrap();
    let started = std::time::Instant::now();
    assert_unavailable(
        auth.authenticate(&bearer(&key_a().sign(&v1_claims())), None)
            .await,
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn insecure_jwks_uri_is_not_fetched() {
    let idp = Idp::bare().await;
    idp.serve_metadata_pointing_to("http://keys.example.com/keys")
        .await;
    match outcome_for_valid_token(&idp).await {
        AuthOutcome::Unavailable(why) => assert!(why.contains("loopback"), "{why}"),
        other => panic!("{other:?}"),
    }
}

// === Both modes ===

async fn both_auth(idp: &Idp) -> Authenticator {
    Authenticator::from_args_with(
        &AuthArgs {
            shared_secrets: vec![SECRET_1.to_owned()],
            ..entra_args(idp)
        },
        test_options(),
    )
    .unwrap()
}

#[tokio::test]
async fn with_both_modes_either_credential_suffices() {
    let idp = Idp::start(&[key_a()]).await;
    let auth = both_auth(&idp).await;
    assert_eq!(auth.mode(), AuthMode::Both);
    let good = key_a().sign(&v1_claims());
    let expired = key_a().sign(&with(v1_claims(), json!({"exp": now() - 3600})));

    assert_eq!(auth.authenticate(&bearer(&good), None).await, ENTRA);
    assert_eq!(auth.authenticate(&secret_header(SECRET_1), None).await, SHARED);

    let mut secret_and_bad_token = bearer(&expired);
    secret_and_bad_token.insert(DEFAULT_SECRET_HEADER, HeaderValue::from_static(SECRET_1));
    assert_eq!(auth.authenticate(&secret_and_bad_token, None).await, SHARED);

    assert_eq!(auth.authenticate(&bearer(&good), Some("code=wrong")).await, ENTRA);
}

#[tokio::test]
async fn with_both_modes_the_reasons_are_precise() {
    let idp = Idp::start(&[key_a()]).await;
    let auth = both_auth(&idp).await;
    let expired = key_a().sign(&with(v1_claims(), json!({"exp": now() - 3600})));
    assert_eq!(
        auth.authenticate(&HeaderMap::new(), None).await,
        denied(DenyReason::MissingCredentials)
    );
    assert_eq!(
        auth.authenticate(&secret_header("wrong-secret-but-long-enough"), None)
            .await,
        denied(DenyReason::BadSharedSecret)
    );
    // Both present, both wrong: the token's reason.
    assert_eq!(
        auth.authenticate(&bearer(&expired), Some("code=wrong")).await,
        denied(DenyReason::Expired)
    );
}

#[tokio::test]
async fn with_both_modes_keys_unavailable_and_wrong_secret_is_unavailable() {
    let idp = Idp::bare().await; // metadata 404
    let auth = both_auth(&idp).await;
    let token = key_a().sign(&v1_claims());
    assert_unavailable(auth.authenticate(&bearer(&token), Some("code=wrong")).await);
    // A right secret does not need the keys.
    assert_eq!(
        auth.authenticate(&bearer(&token), Some(&format!("code={SECRET_1}")))
            .await,
        SHARED
    );
}

// === Source and subscription filters ===

#[test]
fn source_filter_is_case_insensitive_and_empty_means_all() {
    let vault = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1";
    let auth = Authenticator::from_args(&AuthArgs {
        shared_secrets: vec![SECRET_1.to_owned()],
        allowed_sources: vec![vault.to_owned()],
        ..AuthArgs::default()
    })
    .unwrap();
    assert!(auth.source_allowed(Some(vault)));
    assert!(auth.source_allowed(Some(&vault.to_uppercase())));
    assert!(!auth.source_allowed(Some(&vault.replace("kv1", "kv2"))));
    assert!(!auth.source_allowed(None));

    let open = shared_auth();
    assert!(open.source_allowed(Some(vault)));
    assert!(open.source_allowed(None));
}

#[test]
fn subscription_filter_reads_aeg_subscription_name() {
    let auth = Authenticator::from_args(&AuthArgs {
        shared_secrets: vec![SECRET_1.to_owned()],
        allowed_subscriptions: vec!["kv-to-kvsync".to_owned(), "second".to_owned()],
        ..AuthArgs::default()
    })
    .unwrap();
    let named = |n: &'static str| {
        let mut h = HeaderMap::new();
        h.insert(SUBSCRIPTION_NAME_HEADER, HeaderValue::from_static(n));
        h
    };
    assert!(auth.subscription_allowed(&named("KV-TO-KVSYNC")));
    assert!(auth.subscription_allowed(&named("second")));
    assert!(!auth.subscription_allowed(&named("other")));
    assert!(!auth.subscription_allowed(&HeaderMap::new()));
    assert!(shared_auth().subscription_allowed(&HeaderMap::new()));
}
