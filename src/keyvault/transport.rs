//! The HTTP transport under the Azure SDK's Key Vault clients: the per-vault request budget,
//! backoff with jitter on 429/5xx/connection errors (never waiting for `Retry-After`), the request
//! metric, and the test-only vault URL override. The SDK's own retry policy is switched off, so
//! every request, including each `nextLink` page, is governed here.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::http::{AsyncRawResponse, HttpClient, Request, Url};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::retry::{Backoff, operation, random_unit, retryable_status};
use crate::core::model::VaultId;

/// Labels of `kvsync_keyvault_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The vault host.
    pub vault: String,
    /// `list_secrets`, `list_certificates`, `list_keys`, `other`.
    pub operation: String,
    /// HTTP status code, or `error` when no response came.
    pub status: String,
}

/// Key Vault request metrics.
#[derive(Clone, Debug, Default)]
pub struct KeyVaultMetrics {
    /// `kvsync_keyvault_requests_total{vault,operation,status}`: every attempt, retries included.
    pub requests: Family<RequestLabels, Counter>,
}

impl KeyVaultMetrics {
    /// Creates and registers the family.
    pub fn register(registry: &mut Registry) -> Self {
        let m = KeyVaultMetrics::default();
        registry.register(
            "keyvault_requests",
            "Key Vault requests by vault, operation and status (each attempt)",
            m.requests.clone(),
        );
        m
    }
}

/// Maps vault hosts to other base URLs (tests point a vault at a local HTTPS stand-in).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlOverrides(Vec<(VaultId, Url)>);

impl UrlOverrides {
    /// Parses `host=https://base[/prefix]` entries (e.g.
    /// `prod-kv.vault.azure.net=https://127.0.0.1:8443/prod-kv`).
    pub fn parse(entries: &[String]) -> Result<UrlOverrides, String> {
        let mut out = Vec::new();
        for e in entries.iter().filter(|e| !e.trim().is_empty()) {
            let (host, base) = e
                .split_once('=')
                .ok_or_else(|| format!("vault URL override {e:?} is not host=url"))?;
            let vault = VaultId::from_url(host).map_err(|err| format!("vault URL override {e:?}: {err}"))?;
            let base = Url::parse(base.trim()).map_err(|err| format!("vault URL override {e:?}: {err}"))?;
            out.push((vault, base));
        }
        Ok(UrlOverrides(out))
    }

    /// The URL a request to `url` goes to: with the override's scheme, host and port, and the
    /// override's path prepended; unchanged when no override matches.
    pub fn rewrite(&self, url: &Url) -> Url {
        let Ok(vault) = VaultId::from_url(url.as_str()) else {
            return url.clone();
        };
        let Some((_, base)) = self.0.iter().find(|(v, _)| v == &vault) else {
            return url.clone();
        };
        let mut out = base.clone();
        let prefix = base.path().trim_end_matches('/');
        out.set_path(&format!("{prefix}{}", url.path()));
        out.set_query(url.query());
        out
    }
}

/// The transport: budget, backoff, metrics, overrides, then reqwest.
pub struct KvHttp {
    client: reqwest::Client,
    overrides: UrlOverrides,
    rate: NonZeroU32,
    limiters: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
    backoff: Backoff,
    metrics: KeyVaultMetrics,
}

impl std::fmt::Debug for KvHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvHttp")
            .field("rate", &self.rate)
            .field("backoff", &self.backoff)
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

impl KvHttp {
    /// A transport allowing `rate` requests per second per vault.
    pub fn new(
        client: reqwest::Client,
        overrides: UrlOverrides,
        rate: NonZeroU32,
        backoff: Backoff,
        metrics: KeyVaultMetrics,
    ) -> Self {
        KvHttp {
            client,
            overrides,
            rate,
            limiters: Mutex::new(HashMap::new()),
            backoff,
            metrics,
        }
    }

    fn limiter(&self, vault: &str) -> Arc<DefaultDirectRateLimiter> {
        let mut limiters = self
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        limiters
            .entry(vault.to_string())
            .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_second(self.rate))))
            .clone()
    }

    fn count(&self, vault: &str, op: &str, status: &str) {
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                vault: vault.to_string(),
                operation: op.to_string(),
                status: status.to_string(),
            })
            .inc();
    }
}

#[async_trait]
impl HttpClient for KvHttp {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let vault = VaultId::from_url(request.url().as_str())
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        let op = operation(request.url().path());
        let mut sent = request.clone();
        *sent.url_mut() = self.overrides.rewrite(request.url());
        let limiter = self.limiter(&vault);
        let mut attempt = 0u32;
        loop {
            limiter.until_ready().await;
            let result = self.client.execute_request(&sent).await;
            let retry = match &result {
                Ok(rsp) => {
                    let status = u16::from(rsp.status());
                    self.count(&vault, op, &status.to_string());
                    retryable_status(status)
                }
                Err(_) => {
                    self.count(&vault, op, "error");
                    true
                }
            };
            if !retry || !self.backoff.may_retry(attempt) {
                return result;
            }
            let delay = self.backoff.delay(attempt, random_unit());
            match &result {
                Ok(rsp) => tracing::info!(vault = %vault, operation = op, status = u16::from(rsp.status()),
                    retry_in_ms = delay.as_millis() as u64, attempt, "Key Vault request throttled or failed: backing off"),
                Err(e) => tracing::info!(vault = %vault, operation = op, error = %e,
                    retry_in_ms = delay.as_millis() as u64, attempt, "Key Vault request failed: backing off"),
            }
            drop(result);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_rewrite_the_origin_and_keep_path_and_query() {
        let o = UrlOverrides::parse(&["prod-kv.vault.azure.net=https://127.0.0.1:8443/prod-kv".to_string()])
            .unwrap();
        let rewritten = o.rewrite(
            &Url::parse("https://prod-kv.vault.azure.net:443/secrets?api-version=7.5&$skiptoken=2").unwrap(),
        );
        assert_eq!(
            rewritten.as_str(),
            "https://127.0.0.1:8443/prod-kv/secrets?api-version=7.5&$skiptoken=2"
        );
        let other = Url::parse("https://other.vault.azure.net/secrets").unwrap();
        assert_eq!(o.rewrite(&other), other);
        assert!(UrlOverrides::parse(&["nonsense".to_string()]).is_err());
        assert_eq!(UrlOverrides::parse(&[]).unwrap(), UrlOverrides::default());
    }
}
