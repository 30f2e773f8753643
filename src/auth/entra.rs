//! Microsoft Entra ID bearer tokens: header checks, RS256 signature, claims.
//!
//! Order of checks (the first failure is the reason reported):
//! 1. `Authorization: Bearer <jwt>` with three parts and a JSON header → else `MalformedToken`.
//! 2. header `alg` is exactly `RS256` → else `DisallowedAlgorithm` (`none`, `HS256`, …).
//! 3. header `kid` names a key of the tenant's JWKS → else `UnknownKey` (or `Unavailable` when
//!    the keys cannot be fetched).
//! 4. signature → `BadSignature`; `exp` (required) / `nbf` with leeway → `Expired` / `NotYetValid`.
//! 5. `tid` (when present) is the tenant → `WrongTenant`; `iss` is the tenant's v1
//!    (`https://sts.windows.net/{tid}/`) or v2 (`https://login.microsoftonline.com/{tid}/v2.0`)
//!    issuer → `WrongIssuer`; `aud` is a configured audience → `WrongAudience`; the caller
//!    (`azp` in v2 tokens, `appid` in v1 tokens) is a configured app → `WrongCaller`; `roles`
//!    holds `AzureEventGridSecureWebhookSubscriber` when required → `MissingRole`.
//!
//! GUIDs, issuers and audiences are compared case-insensitively.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::DenyReason;
use super::jwks::{KeyCache, KeyLookup};

/// The app role Event Grid's service principal is assigned on the webhook app.
pub const EVENT_GRID_ROLE: &str = "AzureEventGridSecureWebhookSubscriber";

/// Longest bearer token looked at; Entra access tokens are a few KiB.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A token's verdict before it is folded into an `AuthOutcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenVerdict {
    /// No `Authorization` header.
    Absent,
    /// Valid.
    Valid,
    /// Invalid, and why.
    Invalid(DenyReason),
    /// Cannot be decided now (keys unavailable).
    Unavailable(String),
}

/// What an Entra token must satisfy.
#[derive(Debug)]
pub(crate) struct EntraValidator {
    tenant: String,
    issuers: [String; 2],
    audiences: Vec<String>,
    caller_app_ids: Vec<String>,
    require_role: bool,
    leeway: Duration,
    keys: KeyCache,
}

#[derive(Deserialize)]
struct TokenHeader {
    alg: Option<serde_json::Value>,
    kid: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<OneOrMany>,
    tid: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
    ver: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// Whether `s` is a GUID (`8-4-4-4-12` hex digits).
pub(crate) fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The default OpenID configuration document of `tenant`.
pub(crate) fn default_metadata_url(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration")
}

impl EntraValidator {
    pub(crate) fn new(
        tenant: &str,
        audiences: Vec<String>,
        caller_app_ids: Vec<String>,
        require_role: bool,
        leeway: Duration,
        keys: KeyCache,
    ) -> EntraValidator {
        let tenant = tenant.to_ascii_lowercase();
        EntraValidator {
            issuers: [
                format!("https://sts.windows.net/{tenant}/"),
                format!("https://login.microsoftonline.com/{tenant}/v2.0"),
            ],
            tenant,
            audiences,
            caller_app_ids,
            require_role,
            leeway,
            keys,
        }
    }

    /// The key cache (tests reach into it to move its clock).
    #[cfg(test)]
    pub(crate) fn keys(&self) -> &KeyCache {
        &self.keys
    }

    /// The configured tenant id, lower-cased.
    pub(crate) fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The accepted audiences.
    pub(crate) fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// Validates the request's bearer token, if any.
    pub(crate) async fn check(&self, headers: &HeaderMap) -> TokenVerdict {
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return TokenVerdict::Absent;
        };
        if values.next().is_some() {
            return TokenVerdict::Invalid(DenyReason::MalformedToken);
        }
        let token = match bearer_token(value.as_bytes()) {
            Ok(t) => t,
            Err(reason) => return TokenVerdict::Invalid(reason),
        };
        match self.validate(token).await {
            Ok(()) => TokenVerdict::Valid,
            Err(Failure::Deny(reason)) => TokenVerdict::Invalid(reason),
            Err(Failure::Unavailable(why)) => TokenVerdict::Unavailable(why),
        }
    }

    async fn validate(&self, token: &str) -> Result<(), Failure> {
        let kid = check_header(token)?;
        let key = match self.keys.key(&kid).await {
            KeyLookup::Found(key) => key,
            KeyLookup::Unknown => return Err(DenyReason::UnknownKey.into()),
            KeyLookup::Unavailable(why) => return Err(Failure::Unavailable(why)),
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = self.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // Audience and issuer are checked below, to report which one is wrong.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| Failure::Deny(map_jwt_error(e.kind())))?;
        self.check_claims(&data.claims)?;
        Ok(())
    }

    fn check_claims(&self, c: &Claims) -> Result<(), DenyReason> {
        if c.tid
            .as_deref()
            .is_some_and(|tid| !tid.eq_ignore_ascii_case(&self.tenant))
        {
            return Err(DenyReason::WrongTenant);
        }
        let iss = c.iss.as_deref().unwrap_or_default();
        if !self.issuers.iter().any(|i| i.eq_ignore_ascii_case(iss)) {
            return Err(DenyReason::WrongIssuer);
        }
        let auds: Vec<&str> = match &c.aud {
            None => Vec::new(),
            Some(OneOrMany::One(a)) => vec![a.as_str()],
            Some(OneOrMany::Many(v)) => v.iter().map(String::as_str).collect(),
        };
        if !auds
            .iter()
            .any(|a| self.audiences.iter().any(|c| c.eq_ignore_ascii_case(a)))
        {
            return Err(DenyReason::WrongAudience);
        }
        let caller = if c.ver.as_deref() == Some("2.0") {
            c.azp.as_deref().or(c.appid.as_deref())
        } else {
            c.appid.as_deref().or(c.azp.as_deref())
        };
        let caller_ok = caller.is_some_and(|caller| {
            self.caller_app_ids
                .iter()
                .any(|id| id.eq_ignore_ascii_case(caller))
        });
        if !caller_ok {
            return Err(DenyReason::WrongCaller);
        }
        if self.require_role && !c.roles.iter().any(|r| r == EVENT_GRID_ROLE) {
            return Err(DenyReason::MissingRole);
        }
        Ok(())
    }
}

enum Failure {
    Deny(DenyReason),
    Unavailable(String),
}

impl From<DenyReason> for Failure {
    fn from(r: DenyReason) -> Self {
        Failure::Deny(r)
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn bearer_token(value: &[u8]) -> Result<&str, DenyReason> {
    let value = std::str::from_utf8(value).map_err(|_| DenyReason::MalformedToken)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(DenyReason::MalformedToken)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(DenyReason::MalformedToken);
    }
    Ok(token)
}

/// Reads the JOSE header without trusting it: `alg` must be RS256, `kid` a string.
fn check_header(token: &str) -> Result<String, DenyReason> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, _, _] = parts.as_slice() else {
        return Err(DenyReason::MalformedToken);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| DenyReason::MalformedToken)?;
    let header: TokenHeader = serde_json::from_slice(&bytes).map_err(|_| DenyReason::MalformedToken)?;
    match header.alg {
        Some(serde_json::Value::String(alg)) if alg == "RS256" => {}
        Some(serde_json::Value::String(_)) => return Err(DenyReason::DisallowedAlgorithm),
        _ => return Err(DenyReason::MalformedToken),
    }
    match header.kid {
        Some(serde_json::Value::String(kid)) if !kid.is_empty() => Ok(kid),
        _ => Err(DenyReason::MalformedToken),
    }
}

fn map_jwt_error(kind: &ErrorKind) -> DenyReason {
    match kind {
        ErrorKind::InvalidSignature => DenyReason::BadSignature,
        ErrorKind::ExpiredSignature => DenyReason::Expired,
        ErrorKind::ImmatureSignature => DenyReason::NotYetValid,
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => DenyReason::DisallowedAlgorithm,
        ErrorKind::InvalidIssuer => DenyReason::WrongIssuer,
        ErrorKind::InvalidAudience => DenyReason::WrongAudience,
        ErrorKind::InvalidToken
        | ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => DenyReason::MalformedToken,
        _ => DenyReason::BadSignature,
    }
}

/// Distinct, non-empty, trimmed entries.
pub(crate) fn clean_list(items: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && seen.insert(s.to_ascii_lowercase()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_shape() {
        assert!(is_guid("4962773b-9cdb-44cf-a8bf-237846a00ab7"));
        assert!(is_guid("4962773B-9CDB-44CF-A8BF-237846A00AB7"));
        assert!(!is_guid("contoso.onmicrosoft.com"));
        assert!(!is_guid("4962773b-9cdb-44cf-a8bf-237846a00ab"));
        assert!(!is_guid("4962773b9cdb44cfa8bf237846a00ab7"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(b"Bearer a.b.c"), Ok("a.b.c"));
        assert_eq!(bearer_token(b"BEARER a.b.c"), Ok("a.b.c"));
        assert_eq!(bearer_token(b"Basic dXNlcg=="), Err(DenyReason::MalformedToken));
        assert_eq!(bearer_token(b"Bearer "), Err(DenyReason::MalformedToken));
        assert_eq!(bearer_token(b"Bearer"), Err(DenyReason::MalformedToken));
    }

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn header_alg_must_be_rs256() {
        let tok = |h: &str| format!("{}.e30.sig", b64(h));
        assert_eq!(check_header(&tok(r#"{"alg":"RS256","kid":"k"}"#)), Ok("k".into()));
        for alg in ["none", "HS256", "RS512", "PS256", "ES256", "rs256"] {
            assert_eq!(
                check_header(&tok(&format!(r#"{{"alg":"{alg}","kid":"k"}}"#))),
                Err(DenyReason::DisallowedAlgorithm),
                "{alg}"
            );
        }
        assert_eq!(
            check_header(&tok(r#"{"kid":"k"}"#)),
            Err(DenyReason::MalformedToken)
        );
        assert_eq!(
            check_header(&tok(r#"{"alg":"RS256"}"#)),
            Err(DenyReason::MalformedToken)
        );
        assert_eq!(check_header("a.b"), Err(DenyReason::MalformedToken));
        assert_eq!(check_header("!!.e30.sig"), Err(DenyReason::MalformedToken));
        assert_eq!(
            check_header(&format!("{}.e30.s.x", b64(r#"{"alg":"RS256","kid":"k"}"#))),
            Err(DenyReason::MalformedToken)
        );
    }

    #[test]
    fn clean_list_trims_and_dedupes() {
        let v = clean_list(&[" a ".into(), "".into(), "A".into(), "b".into()]);
        assert_eq!(v, vec!["a".to_owned(), "b".to_owned()]);
    }
}
