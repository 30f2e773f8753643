//! Delivery authentication: shared secrets and Microsoft Entra ID bearer tokens.
//!
//! [`Authenticator::from_args`] turns [`AuthArgs`] into an [`Authenticator`]; the HTTP layer calls
//! [`Authenticator::authenticate`] for each delivery and maps the [`AuthOutcome`]:
//! `Allowed` → go on, `Denied` → 401, `Unavailable` → **503** (the signing keys could not be
//! fetched; Event Grid drops a webhook delivery answered 401 but retries one answered 503).
//!
//! - **Modes.** Shared secrets, Entra, or both ([`AuthMode`]). With both on, a delivery passing
//!   *either* check is allowed. Without any, [`Authenticator::from_args`] refuses
//!   ([`AuthConfigError::NothingConfigured`]) unless `--insecure-no-auth` says to allow everything.
//! - **Which reason.** Credentials present but wrong give the precise [`DenyReason`]; none
//!   present gives [`DenyReason::MissingCredentials`]. When both a secret and a token are present
//!   and both fail, the token's reason is reported; when the token cannot be checked for lack of
//!   keys and the secret does not match, the outcome is `Unavailable`.
//! - **Secrets** never appear in `Debug`, logs, errors or labels: they are kept as SHA-256
//!   digests only.
//! - **Filters.** [`Authenticator::source_allowed`] and [`Authenticator::subscription_allowed`]
//!   apply `KVSYNC_ALLOWED_SOURCES` / `KVSYNC_ALLOWED_SUBSCRIPTIONS`; they are not part of
//!   `authenticate` because the caller decides what a non-matching event means.

mod args;
mod entra;
mod jwks;
mod shared_secret;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

pub use args::{AuthArgs, DEFAULT_SECRET_HEADER, EVENT_GRID_APP_ID};
pub use entra::EVENT_GRID_ROLE;
pub use shared_secret::{CODE_PARAM, MIN_SECRET_LEN};

use entra::{EntraValidator, TokenVerdict};
use jwks::KeyCache;
use shared_secret::{SecretCheck, SharedSecrets};

/// The header in which Event Grid names the subscription that delivers.
pub const SUBSCRIPTION_NAME_HEADER: &str = "aeg-subscription-name";

/// Which delivery authentication is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMode {
    /// Nothing is checked (`--insecure-no-auth`); the caller should warn loudly.
    Disabled,
    /// Shared secrets only.
    SharedSecret,
    /// Entra ID bearer tokens only.
    Entra,
    /// Both; either one suffices.
    Both,
}

impl AuthMode {
    /// A stable lower-case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Disabled => "disabled",
            AuthMode::SharedSecret => "shared_secret",
            AuthMode::Entra => "entra",
            AuthMode::Both => "shared_secret+entra",
        }
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict on one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Let it through.
    Allowed {
        /// How it was authenticated: `"shared_secret"`, `"entra"` or `"none"` (mode Disabled).
        method: &'static str,
    },
    /// Reject it (401).
    Denied(DenyReason),
    /// Cannot decide now: the Entra signing keys are unreachable or unusable (answer 503).
    /// The text is for logs; it holds no secret.
    Unavailable(String),
}

/// Why a delivery was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// No secret header, no `code` parameter, no bearer token (of an enabled mode).
    MissingCredentials,
    /// A shared secret was presented and matches none configured.
    BadSharedSecret,
    /// The `Authorization` header or the token is not a well-formed bearer JWT.
    MalformedToken,
    /// The token's signature does not verify.
    BadSignature,
    /// The token's `kid` is not among the tenant's signing keys, even after a refresh.
    UnknownKey,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iss` is not the tenant's v1 or v2 issuer.
    WrongIssuer,
    /// `aud` is not a configured audience.
    WrongAudience,
    /// `tid` is not the configured tenant.
    WrongTenant,
    /// The calling application (`appid` / `azp`) is not a configured caller.
    WrongCaller,
    /// The role `AzureEventGridSecureWebhookSubscriber` is required and missing.
    MissingRole,
    /// The token's `alg` is not RS256 (`none`, HS256, …).
    DisallowedAlgorithm,
}

impl DenyReason {
    /// Every reason, for metric pre-registration.
    pub const ALL: [DenyReason; 13] = [
        DenyReason::MissingCredentials,
        DenyReason::BadSharedSecret,
        DenyReason::MalformedToken,
        DenyReason::BadSignature,
        DenyReason::UnknownKey,
        DenyReason::Expired,
        DenyReason::NotYetValid,
        DenyReason::WrongIssuer,
        DenyReason::WrongAudience,
        DenyReason::WrongTenant,
        DenyReason::WrongCaller,
        DenyReason::MissingRole,
        DenyReason::DisallowedAlgorithm,
    ];

    /// The metric label: snake_case, stable.
    pub fn label(&self) -> &'static str {
        match self {
            DenyReason::MissingCredentials => "missing_credentials",
            DenyReason::BadSharedSecret => "bad_shared_secret",
            DenyReason::MalformedToken => "malformed_token",
            DenyReason::BadSignature => "bad_signature",
            DenyReason::UnknownKey => "unknown_key",
            DenyReason::Expired => "expired",
            DenyReason::NotYetValid => "not_yet_valid",
            DenyReason::WrongIssuer => "wrong_issuer",
            DenyReason::WrongAudience => "wrong_audience",
            DenyReason::WrongTenant => "wrong_tenant",
            DenyReason::WrongCaller => "wrong_caller",
            DenyReason::MissingRole => "missing_role",
            DenyReason::DisallowedAlgorithm => "disallowed_algorithm",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Why the authentication settings cannot be used. Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// Neither a shared secret nor an Entra tenant, and `--insecure-no-auth` not given.
    #[error(
        "no delivery authentication configured: set KVSYNC_SHARED_SECRETS, \
         KVSYNC_SHARED_SECRETS_FILE or KVSYNC_ENTRA_TENANT_ID, or pass --insecure-no-auth"
    )]
    NothingConfigured,
    /// `--insecure-no-auth` together with credentials: ambiguous, so refused.
    #[error("--insecure-no-auth conflicts with configured shared secrets or Entra settings")]
    InsecureWithCredentials,
    /// The secrets file could not be read.
    #[error("failed to read shared secrets file {path}")]
    ReadSecretsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A shared secret is too short.
    #[error("shared secret ({origin}) is shorter than {min_len} bytes")]
    WeakSharedSecret {
        /// Where it came from (list entry or file line), never its content.
        origin: String,
        /// The minimum length.
        min_len: usize,
    },
    /// `KVSYNC_SECRET_HEADER` is not a valid header name.
    #[error("invalid secret header name {0:?}")]
    InvalidSecretHeader(String),
    /// Entra settings without `KVSYNC_ENTRA_TENANT_ID`.
    #[error("KVSYNC_ENTRA_AUDIENCE / KVSYNC_ENTRA_METADATA_URL need KVSYNC_ENTRA_TENANT_ID")]
    EntraTenantMissing,
    /// The tenant id is not a GUID (issuers carry the GUID, never a domain name).
    #[error("KVSYNC_ENTRA_TENANT_ID must be the tenant GUID, got {0:?}")]
    InvalidTenantId(String),
    /// Entra on without any audience.
    #[error("KVSYNC_ENTRA_AUDIENCE is required when KVSYNC_ENTRA_TENANT_ID is set")]
    EntraAudienceMissing,
    /// Entra on without any caller app id.
    #[error("KVSYNC_ENTRA_CALLER_APP_ID must name at least one application")]
    EntraCallerMissing,
    /// The metadata URL is unusable.
    #[error("invalid KVSYNC_ENTRA_METADATA_URL {url:?}: {reason}")]
    InvalidMetadataUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// The HTTP client for the key fetches could not be built.
    #[error("failed to build the HTTP client for Entra key fetches")]
    HttpClient(#[source] reqwest::Error),
}

/// Tuning of the Entra key cache and token checks; the defaults suit production.
#[derive(Debug, Clone)]
pub struct EntraOptions {
    /// Least time between two key fetches (an unknown `kid` triggers one at most this often).
    pub min_refresh_interval: Duration,
    /// Keys older than this are refetched.
    pub refresh_interval: Duration,
    /// Timeout of each metadata / JWKS request.
    pub http_timeout: Duration,
    /// Clock skew allowed on `exp` and `nbf` (whole seconds are used).
    pub leeway: Duration,
}

impl Default for EntraOptions {
    fn default() -> Self {
        EntraOptions {
            min_refresh_interval: Duration::from_secs(30),
            refresh_interval: Duration::from_secs(24 * 60 * 60),
            http_timeout: Duration::from_secs(5),
            leeway: Duration::from_secs(60),
        }
    }
}

/// Checks deliveries; cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    mode: AuthMode,
    shared: Option<SharedSecrets>,
    entra: Option<EntraValidator>,
    /// Lower-cased.
    allowed_sources: Vec<String>,
    /// Lower-cased.
    allowed_subscriptions: Vec<String>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Authenticator")
            .field("mode", &i.mode)
            .field("shared_secrets", &i.shared.as_ref().map(SharedSecrets::count))
            .field("secret_header", &i.shared.as_ref().map(SharedSecrets::header))
            .field("entra_tenant", &i.entra.as_ref().map(EntraValidator::tenant))
            .field(
                "entra_audiences",
                &i.entra.as_ref().map(EntraValidator::audiences),
            )
            .field("allowed_sources", &i.allowed_sources)
            .field("allowed_subscriptions", &i.allowed_subscriptions)
            .finish()
    }
}

impl Authenticator {
    /// Builds from the command line with production [`EntraOptions`].
    pub fn from_args(args: &AuthArgs) -> Result<Authenticator, AuthConfigError> {
        Self::from_args_with(args, EntraOptions::default())
    }

    /// Builds from the command line with explicit [`EntraOptions`] (tests shorten intervals).
    pub fn from_args_with(args: &AuthArgs, options: EntraOptions) -> Result<Authenticator, AuthConfigError> {
        let shared = SharedSecrets::load(
            &args.shared_secrets,
            args.shared_secrets_file.as_deref(),
            &args.secret_header,
        )?;
        let entra = entra_from_args(args, &options)?;
        let mode = match (&shared, &entra) {
            (Some(_), Some(_)) => AuthMode::Both,
            (Some(_), None) => AuthMode::SharedSecret,
            (None, Some(_)) => AuthMode::Entra,
            (None, None) if args.insecure_no_auth => AuthMode::Disabled,
            (None, None) => return Err(AuthConfigError::NothingConfigured),
        };
        if args.insecure_no_auth && mode != AuthMode::Disabled {
            return Err(AuthConfigError::InsecureWithCredentials);
        }
        let lower = |v: &[String]| -> Vec<String> {
            entra::clean_list(v)
                .into_iter()
                .map(|s| s.to_ascii_lowercase())
                .collect()
        };
        Ok(Authenticator {
            inner: Arc::new(Inner {
                mode,
                shared,
                entra,
                allowed_sources: lower(&args.allowed_sources),
                allowed_subscriptions: lower(&args.allowed_subscriptions),
            }),
        })
    }

    /// Which authentication is on (for the startup log).
    pub fn mode(&self) -> AuthMode {
        self.inner.mode
    }

    /// Checks one delivery's credentials: the secret header, the `code` query parameter (raw
    /// query string, without `?`) and `Authorization: Bearer`.
    pub async fn authenticate(&self, headers: &HeaderMap, query: Option<&str>) -> AuthOutcome {
        let inner = &self.inner;
        if inner.mode == AuthMode::Disabled {
            return AuthOutcome::Allowed { method: "none" };
        }
        let secret = inner
            .shared
            .as_ref()
            .map_or(SecretCheck::NotPresented, |s| s.check(headers, query));
        if secret == SecretCheck::Matched {
            return AuthOutcome::Allowed {
                method: "shared_secret",
            };
        }
        let token = match &inner.entra {
            Some(entra) => entra.check(headers).await,
            None => TokenVerdict::Absent,
        };
        match (token, secret) {
            (TokenVerdict::Valid, _) => AuthOutcome::Allowed { method: "entra" },
            (TokenVerdict::Unavailable(why), _) => AuthOutcome::Unavailable(why),
            (TokenVerdict::Invalid(reason), _) => AuthOutcome::Denied(reason),
            (TokenVerdict::Absent, SecretCheck::Mismatch) => AuthOutcome::Denied(DenyReason::BadSharedSecret),
            (TokenVerdict::Absent, _) => AuthOutcome::Denied(DenyReason::MissingCredentials),
        }
    }

    /// Whether events from `source` (the vault's ARM id: Event Grid `topic` / CloudEvents
    /// `source`) are accepted. Case-insensitive; an empty allow-list accepts everything, a
    /// non-empty one rejects a missing source.
    pub fn source_allowed(&self, source: Option<&str>) -> bool {
        allowed(&self.inner.allowed_sources, source)
    }

    /// Whether the delivering subscription (header `aeg-subscription-name`) is accepted.
    /// Case-insensitive; an empty allow-list accepts everything, a non-empty one rejects a
    /// missing or non-text header.
    pub fn subscription_allowed(&self, headers: &HeaderMap) -> bool {
        let name = headers
            .get(SUBSCRIPTION_NAME_HEADER)
            .and_then(|v| v.to_str().ok());
        allowed(&self.inner.allowed_subscriptions, name)
    }

    #[cfg(test)]
    fn entra(&self) -> Option<&EntraValidator> {
        self.inner.entra.as_ref()
    }
}

fn allowed(list: &[String], value: Option<&str>) -> bool {
    if list.is_empty() {
        return true;
    }
    value.is_some_and(|v| {
        let v = v.trim();
        list.iter().any(|a| a.eq_ignore_ascii_case(v))
    })
}

fn entra_from_args(
    args: &AuthArgs,
    options: &EntraOptions,
) -> Result<Option<EntraValidator>, AuthConfigError> {
    let audiences = entra::clean_list(&args.entra_audience);
    let tenant = args
        .entra_tenant_id
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(tenant) = tenant else {
        if !audiences.is_empty() || args.entra_metadata_url.is_some() {
            return Err(AuthConfigError::EntraTenantMissing);
        }
        return Ok(None);
    };
    if !entra::is_guid(tenant) {
        return Err(AuthConfigError::InvalidTenantId(tenant.to_owned()));
    }
    if audiences.is_empty() {
        return Err(AuthConfigError::EntraAudienceMissing);
    }
    let callers = entra::clean_list(&args.entra_caller_app_id);
    if callers.is_empty() {
        return Err(AuthConfigError::EntraCallerMissing);
    }
    let metadata_url = match args.entra_metadata_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => url.to_owned(),
        _ => entra::default_metadata_url(tenant),
    };
    jwks::check_url(&metadata_url).map_err(|reason| AuthConfigError::InvalidMetadataUrl {
        url: metadata_url.clone(),
        reason,
    })?;
    let client = reqwest::Client::builder()
        .timeout(options.http_timeout)
        .connect_timeout(options.http_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("kvsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(AuthConfigError::HttpClient)?;
    let keys = KeyCache::new(
        metadata_url,
        client,
        options.min_refresh_interval,
        options.refresh_interval,
    );
    Ok(Some(EntraValidator::new(
        tenant,
        audiences,
        callers,
        args.entra_require_role,
        options.leeway,
        keys,
    )))
}
