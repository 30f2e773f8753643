//! Azure Key Vault adapter for the fallback reconcile: lists the **properties** of a vault's
//! secrets, certificates or keys (name, `attributes.updated`, `enabled`), with paging.
//!
//! - Official SDK: `azure_security_keyvault_secrets` 1.0, `…_certificates` 1.0 and `…_keys` 1.0
//!   (`list_secret_properties`, `list_certificate_properties`, `list_key_properties`; each follows
//!   `nextLink` until it is absent). Every call kvsync needs exists there, so no REST fallback is
//!   used. kvsync never calls an endpoint that returns a value (no `get_secret`, no key
//!   operations): the list operations return identifiers and attributes only, so the built-in
//!   Azure role **"Key Vault Reader"** suffices (data actions `…/secrets/readMetadata/action`,
//!   `…/certificates/read`, `…/keys/read`; with access policies: `list` on secrets, certificates
//!   and keys).
//! - Identity: [`credential`] (Workload Identity → managed identity → client secret for dev).
//! - Throttling: [`transport::KvHttp`] under the SDK (the SDK's retry is off): a token bucket per
//!   vault, exponential backoff with jitter on 429/5xx ([`retry`]), metrics
//!   `kvsync_keyvault_requests_total{vault,operation,status}`.
//! - Tests: the vault URL (`KVSYNC_KEYVAULT_URL_OVERRIDE`), the authority host
//!   (`KVSYNC_AZURE_AUTHORITY_HOST`) and an extra trusted CA (`KVSYNC_AZURE_CA_FILE`) can be
//!   overridden, so a local HTTPS stand-in can play Key Vault and Entra ID.

pub mod credential;
pub mod retry;
pub mod transport;

use std::num::NonZeroU32;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, HttpClient, RetryOptions, Transport};
use futures::StreamExt;
use prometheus_client::registry::Registry;

use crate::config::ReconcileArgs;
use crate::core::model::{ObjectKind, ObjectName, VaultId};
use transport::{KeyVaultMetrics, KvHttp, UrlOverrides};

/// One listed object's properties (never a value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The object name (lowercase).
    pub name: ObjectName,
    /// `attributes.updated`, unix seconds (`None` when Key Vault did not say).
    pub updated: Option<i64>,
    /// `attributes.enabled` (`true` when absent).
    pub enabled: bool,
}

/// A failure listing Key Vault.
#[derive(Debug, thiserror::Error)]
pub enum KeyVaultError {
    /// The credential could not be built.
    #[error("Azure credential: {0}")]
    Credential(String),
    /// The configuration is unusable (override, CA file).
    #[error("Key Vault configuration: {0}")]
    Config(String),
    /// A list request failed after its retries.
    #[error("listing {kind}s of {vault} failed: {message}")]
    List {
        /// The vault.
        vault: String,
        /// The kind listed.
        kind: ObjectKind,
        /// What went wrong.
        message: String,
    },
}

/// Lists object properties of a vault.
#[async_trait]
pub trait KeyVault: Send + Sync + 'static {
    /// Every object of `kind` in `vault`, all pages.
    async fn list_properties(&self, vault: &VaultId, kind: ObjectKind) -> Result<Vec<Listed>, KeyVaultError>;
}

/// The Azure implementation.
pub struct AzureKeyVault {
    credential: Arc<dyn TokenCredential>,
    transport: Arc<KvHttp>,
}

impl AzureKeyVault {
    /// Builds the adapter from the configuration; `Ok(None)` when no Azure credential is
    /// configured (the caller logs that the reconcile is disabled).
    pub fn from_args(args: &ReconcileArgs, registry: &mut Registry) -> Result<Option<Self>, KeyVaultError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60));
        if let Some(path) = &args.azure_ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| KeyVaultError::Config(format!("CA file {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| KeyVaultError::Config(format!("CA file {}: {e}", path.display())))?;
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| KeyVaultError::Config(format!("HTTP client: {e}")))?;
        let token_http: Arc<dyn HttpClient> = Arc::new(client.clone());
        let Some((choice, credential)) = credential::build(&args.credential_config(), token_http)? else {
            return Ok(None);
        };
        tracing::info!(credential = ?choice, "Key Vault credential configured");
        let overrides = UrlOverrides::parse(&args.keyvault_url_override).map_err(KeyVaultError::Config)?;
        let transport = KvHttp::new(
            client,
            overrides,
            NonZeroU32::new(args.keyvault_rate.max(1)).unwrap_or(NonZeroU32::MIN),
            args.backoff(),
            KeyVaultMetrics::register(registry),
        );
        Ok(Some(AzureKeyVault {
            credential,
            transport: Arc::new(transport),
        }))
    }

    fn client_options(&self) -> ClientOptions {
        ClientOptions {
            transport: Some(Transport::new(self.transport.clone())),
            retry: RetryOptions::none(),
            ..ClientOptions::default()
        }
    }
}

fn vault_url(vault: &VaultId) -> String {
    format!("https://{vault}/")
}

/// The object name from a Key Vault id `https://{vault}/{collection}/{name}[/{version}]`.
pub fn name_from_id(id: &str, kind: ObjectKind) -> Option<ObjectName> {
    let marker = format!("/{}/", kind.url_collection());
    let rest = &id[id.find(&marker)? + marker.len()..];
    let name = rest.split(['/', '?']).next().filter(|n| !n.is_empty())?;
    Some(ObjectName::new(name))
}

fn listed(
    id: Option<&str>,
    kind: ObjectKind,
    updated: Option<azure_core::time::OffsetDateTime>,
    enabled: Option<bool>,
) -> Option<Listed> {
    Some(Listed {
        name: name_from_id(id?, kind)?,
        updated: updated.map(|t| t.unix_timestamp()),
        enabled: enabled.unwrap_or(true),
    })
}

#[async_trait]
impl KeyVault for AzureKeyVault {
    async fn list_properties(&self, vault: &VaultId, kind: ObjectKind) -> Result<Vec<Listed>, KeyVaultError> {
        let url = vault_url(vault);
        let fail = |e: azure_core::Error| KeyVaultError::List {
            vault: vault.to_string(),
            kind,
            message: format!("{} ({:?})", e, e.kind()),
        };
        let mut out = Vec::new();
        match kind {
            ObjectKind::Secret => {
                use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
                let client = SecretClient::new(
                    &url,
                    self.credential.clone(),
                    Some(SecretClientOptions {
                        client_options: self.client_options(),
                        ..Default::default()
                    }),
                )
                .map_err(fail)?;
                let mut pager = client.list_secret_properties(None).map_err(fail)?;
                while let Some(item) = pager.next().await {
                    let p = item.map_err(fail)?;
                    let attrs = p.attributes.as_ref();
                    out.extend(listed(
                        p.id.as_deref(),
                        kind,
                        attrs.and_then(|a| a.updated),
                        attrs.and_then(|a| a.enabled),
                    ));
                }
            }
            ObjectKind::Certificate => {
                use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
                let client = CertificateClient::new(
                    &url,
                    self.credential.clone(),
                    Some(CertificateClientOptions {
                        client_options: self.client_options(),
                        ..Default::default()
                    }),
                )
                .map_err(fail)?;
                let mut pager = client.list_certificate_properties(None).map_err(fail)?;
                while let Some(item) = pager.next().await {
                    let p = item.map_err(fail)?;
                    let attrs = p.attributes.as_ref();
                    out.extend(listed(
                        p.id.as_deref(),
                        kind,
                        attrs.and_then(|a| a.updated),
                        attrs.and_then(|a| a.enabled),
                    ));
                }
            }
            ObjectKind::Key => {
                use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
                let client = KeyClient::new(
                    &url,
                    self.credential.clone(),
                    Some(KeyClientOptions {
                        client_options: self.client_options(),
                        ..Default::default()
                    }),
                )
                .map_err(fail)?;
                let mut pager = client.list_key_properties(None).map_err(fail)?;
                while let Some(item) = pager.next().await {
                    let p = item.map_err(fail)?;
                    let attrs = p.attributes.as_ref();
                    out.extend(listed(
                        p.kid.as_deref(),
                        kind,
                        attrs.and_then(|a| a.updated),
                        attrs.and_then(|a| a.enabled),
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_ids_with_or_without_version() {
        assert_eq!(
            name_from_id(
                "https://kv.vault.azure.net/secrets/DB-Password",
                ObjectKind::Secret
            ),
            Some(ObjectName::new("db-password"))
        );
        assert_eq!(
            name_from_id("https://kv.vault.azure.net/keys/k1/abc123", ObjectKind::Key),
            Some(ObjectName::new("k1"))
        );
        assert_eq!(
            name_from_id("https://kv.vault.azure.net/secrets/", ObjectKind::Secret),
            None
        );
        assert_eq!(
            name_from_id("https://kv.vault.azure.net/keys/k1", ObjectKind::Secret),
            None
        );
    }

    #[test]
    fn vault_urls_keep_a_non_default_port() {
        let v = VaultId::from_url("https://127.0.0.1:8443").unwrap();
        assert_eq!(vault_url(&v), "https://127.0.0.1:8443/");
    }
}
