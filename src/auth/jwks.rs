//! Signing keys of the Entra tenant: OpenID metadata → `jwks_uri` → RSA keys by `kid`, cached.
//!
//! - Loaded on first use, then refreshed every `refresh_interval` (24 h) and whenever a token
//!   names a `kid` the cache does not know, but never more than once per `min_refresh_interval`
//!   (30 s): a flood of tokens with made-up `kid`s costs one fetch per interval.
//! - One refresh at a time (single flight); requests waiting for it then read its result.
//! - If a scheduled refresh fails, the keys already held stay in use; an unknown `kid` then
//!   yields [`KeyLookup::Unavailable`], because it might be a new key we could not fetch.
//! - Only `https` URLs are fetched, except for loopback hosts (tests, local identity providers).
//!   Redirects are not followed and bodies are capped at 1 MiB.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use serde::Deserialize;
use url::Url;

/// Largest metadata or JWKS document read.
const MAX_BODY: usize = 1024 * 1024;

/// The outcome of looking a `kid` up.
pub(crate) enum KeyLookup {
    /// The key to verify with.
    Found(DecodingKey),
    /// The JWKS was fetched (now or within the rate limit) and has no such key.
    Unknown,
    /// The keys could not be fetched; the text says why (no secret in it).
    Unavailable(String),
}

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("GET {url} failed: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url} answered {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("GET {url}: body larger than {MAX_BODY} bytes")]
    TooLarge { url: String },
    #[error("GET {url}: unparseable document: {source}")]
    Parse {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("refusing to fetch {url}: {reason}")]
    InsecureUrl { url: String, reason: &'static str },
    #[error("JWKS at {url} holds no usable RSA signing key")]
    NoKeys { url: String },
}

/// Checks that `url` is `https`, or `http` to a loopback host.
pub(crate) fn check_url(url: &str) -> Result<Url, &'static str> {
    let parsed = Url::parse(url).map_err(|_| "not a URL")?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(parsed)
            } else {
                Err("plain http is only allowed to loopback hosts")
            }
        }
        _ => Err("scheme must be https"),
    }
}

#[derive(Deserialize)]
struct Metadata {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

#[derive(Default)]
struct CacheState {
    /// Keys by `kid`, once a fetch succeeded.
    keys: Option<Arc<HashMap<String, DecodingKey>>>,
    /// When `keys` was fetched.
    fetched_at: Option<Instant>,
    /// When a fetch was last started, successful or not.
    last_attempt: Option<Instant>,
    /// Why the last fetch failed; `None` after a success.
    last_error: Option<String>,
}

/// The tenant's signing keys, fetched lazily and cached.
pub(crate) struct KeyCache {
    metadata_url: String,
    client: reqwest::Client,
    min_refresh_interval: Duration,
    refresh_interval: Duration,
    state: Mutex<CacheState>,
    refresh: tokio::sync::Mutex<()>,
    /// Added to `Instant::now()`; only tests advance it.
    clock_skew_ms: AtomicU64,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("KeyCache")
            .field("metadata_url", &self.metadata_url)
            .field("keys", &st.keys.as_ref().map(|k| k.len()))
            .field("last_error", &st.last_error)
            .finish()
    }
}

impl KeyCache {
    pub(crate) fn new(
        metadata_url: String,
        client: reqwest::Client,
        min_refresh_interval: Duration,
        refresh_interval: Duration,
    ) -> KeyCache {
        KeyCache {
            metadata_url,
            client,
            min_refresh_interval,
            refresh_interval,
            state: Mutex::new(CacheState::default()),
            refresh: tokio::sync::Mutex::new(()),
            clock_skew_ms: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Instant {
        let skew = Duration::from_millis(self.clock_skew_ms.load(Ordering::Relaxed));
        let now = Instant::now();
        now.checked_add(skew).unwrap_or(now)
    }

    /// Moves this cache's clock forward (tests only).
    #[cfg(test)]
    pub(crate) fn advance_clock(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.clock_skew_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// The key for `kid` from a fresh cache, without waiting for anything.
    fn fresh_key(&self, st: &CacheState, now: Instant, kid: &str) -> Option<DecodingKey> {
        let fresh = st
            .fetched_at
            .is_some_and(|t| now.saturating_duration_since(t) < self.refresh_interval);
        if !fresh {
            return None;
        }
        st.keys.as_ref()?.get(kid).cloned()
    }

    /// Looks `kid` up, refreshing the cache first when it is empty, stale or lacks `kid`, as far
    /// as the rate limit allows.
    pub(crate) async fn key(&self, kid: &str) -> KeyLookup {
        if let Some(key) = self.fresh_key(&self.lock(), self.now(), kid) {
            return KeyLookup::Found(key);
        }
        let _single_flight = self.refresh.lock().await;
        let now = self.now();
        let may_fetch = {
            let st = self.lock();
            if let Some(key) = self.fresh_key(&st, now, kid) {
                return KeyLookup::Found(key);
            }
            st.last_attempt
                .is_none_or(|t| now.saturating_duration_since(t) >= self.min_refresh_interval)
        };
        if may_fetch {
            let result = self.fetch().await;
            let mut st = self.lock();
            st.last_attempt = Some(now);
            match result {
                Ok(keys) => {
                    tracing::info!(
                        keys = keys.len(),
                        url = %self.metadata_url,
                        "fetched Entra signing keys"
                    );
                    st.keys = Some(Arc::new(keys));
                    st.fetched_at = Some(now);
                    st.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fetch Entra signing keys");
                    st.last_error = Some(e.to_string());
                }
            }
        }
        let st = self.lock();
        match (&st.keys, &st.last_error) {
            (Some(keys), last_error) => match keys.get(kid) {
                Some(key) => KeyLookup::Found(key.clone()),
                None => match last_error {
                    None => KeyLookup::Unknown,
                    Some(e) => KeyLookup::Unavailable(format!(
                        "token signing key unknown and the key refresh failed: {e}"
                    )),
                },
            },
            (None, Some(e)) => KeyLookup::Unavailable(e.clone()),
            (None, None) => KeyLookup::Unavailable("signing keys not loaded yet".to_owned()),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, FetchError> {
        let metadata: Metadata = self.get_json(&self.metadata_url).await?;
        let jwks: JwksDocument = self.get_json(&metadata.jwks_uri).await?;
        let keys: HashMap<String, DecodingKey> = jwks.keys.into_iter().filter_map(usable_key).collect();
        if keys.is_empty() {
            return Err(FetchError::NoKeys {
                url: metadata.jwks_uri,
            });
        }
        Ok(keys)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, FetchError> {
        let parsed = check_url(url).map_err(|reason| FetchError::InsecureUrl {
            url: url.to_owned(),
            reason,
        })?;
        let request_error = |source| FetchError::Request {
            url: url.to_owned(),
            source,
        };
        let mut response = self
            .client
            .get(parsed)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(request_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status,
            });
        }
        let too_large = || FetchError::TooLarge { url: url.to_owned() };
        if response.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|source| FetchError::Parse {
            url: url.to_owned(),
            source,
        })
    }
}

/// An RSA signing key with a `kid`, usable for RS256; anything else in the set is skipped.
fn usable_key(value: serde_json::Value) -> Option<(String, DecodingKey)> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    if !matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) {
        return None;
    }
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    if jwk.common.key_algorithm.is_some_and(|a| a != KeyAlgorithm::RS256) {
        return None;
    }
    let kid = jwk.common.key_id.clone()?;
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, key))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        assert!(check_url("https://login.microsoftonline.com/t/v2.0").is_ok());
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        assert!(check_url("http://[::1]:8080/x").is_ok());
        assert!(check_url("http://localhost/x").is_ok());
        assert!(check_url("http://login.microsoftonline.com/x").is_err());
        assert!(check_url("ftp://127.0.0.1/x").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn keys_that_cannot_sign_rs256_are_skipped() {
        let rsa = |extra: serde_json::Value| {
            let mut k = json!({"kty": "RSA", "kid": "k", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"});
            if let (Some(k), Some(extra)) = (k.as_object_mut(), extra.as_object()) {
                k.extend(extra.clone());
            }
            k
        };
        assert!(usable_key(rsa(json!({}))).is_some());
        assert!(
            usable_key(rsa(
                json!({"use": "sig", "alg": "RS256", "x5t": "abc", "issuer": "https://x"})
            ))
            .is_some()
        );
        assert!(usable_key(rsa(json!({"use": "enc"}))).is_none());
        assert!(usable_key(rsa(json!({"alg": "RS512"}))).is_none());
        assert!(usable_key(rsa(json!({"kid": null}))).is_none());
        assert!(usable_key(json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"})).is_none());
        assert!(usable_key(json!({"kty": "EC", "kid": "e", "crv": "P-256", "x": "AA", "y": "AA"})).is_none());
        assert!(usable_key(json!("garbage")).is_none());
    }
}
