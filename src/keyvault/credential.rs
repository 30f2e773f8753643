//! Which Azure credential kvsync uses to list Key Vault properties.
//!
//! Order in `auto` mode (the choice itself is the pure [`choose`]):
//! 1. **Workload Identity** when `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and
//!    `AZURE_FEDERATED_TOKEN_FILE` are set (what the AKS workload-identity webhook injects, and
//!    usually already set up for ESO). `AZURE_AUTHORITY_HOST` is honoured by the SDK;
//!    `KVSYNC_AZURE_AUTHORITY_HOST` overrides it (tests point it at a local token endpoint).
//! 2. **Managed identity** when the platform advertises one (`IDENTITY_ENDPOINT`: App Service,
//!    Functions, Arc); on AKS/VMs (IMDS, nothing in the environment tells) choose it explicitly
//!    with `KVSYNC_AZURE_CREDENTIAL=managed` (`AZURE_CLIENT_ID` selects a user-assigned identity).
//! 3. **Client secret** (`AZURE_CLIENT_SECRET` with client and tenant ids) — for development only;
//!    a warning says so.
//!
//! Nothing configured ⇒ no credential: the fallback reconcile is disabled (logged once) and
//! everything else runs.

use std::path::PathBuf;
use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, HttpClient, Transport};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};

use super::KeyVaultError;

/// `KVSYNC_AZURE_CREDENTIAL`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CredentialMode {
    /// Workload Identity, else managed identity if advertised, else a client secret, else none.
    #[default]
    Auto,
    /// Workload Identity only.
    Workload,
    /// Managed identity (IMDS or the platform's identity endpoint).
    Managed,
    /// Client secret (development only).
    ClientSecret,
    /// No credential: the fallback reconcile is off.
    None,
}

/// The credential chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Workload Identity.
    Workload,
    /// Managed identity.
    Managed,
    /// Client secret.
    ClientSecret,
    /// Nothing configured.
    None,
}

/// What the environment provides, as seen by [`choose`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Available {
    /// `AZURE_CLIENT_ID` is set.
    pub client_id: bool,
    /// `AZURE_TENANT_ID` is set.
    pub tenant_id: bool,
    /// `AZURE_FEDERATED_TOKEN_FILE` is set.
    pub token_file: bool,
    /// `AZURE_CLIENT_SECRET` is set.
    pub client_secret: bool,
    /// `IDENTITY_ENDPOINT` (or `MSI_ENDPOINT`) is set.
    pub identity_endpoint: bool,
}

/// Picks the credential (pure).
pub fn choose(mode: CredentialMode, a: Available) -> Choice {
    match mode {
        CredentialMode::Workload => Choice::Workload,
        CredentialMode::Managed => Choice::Managed,
        CredentialMode::ClientSecret => Choice::ClientSecret,
        CredentialMode::None => Choice::None,
        CredentialMode::Auto if a.client_id && a.tenant_id && a.token_file => Choice::Workload,
        CredentialMode::Auto if a.identity_endpoint => Choice::Managed,
        CredentialMode::Auto if a.client_id && a.tenant_id && a.client_secret => Choice::ClientSecret,
        CredentialMode::Auto => Choice::None,
    }
}

/// Inputs to build the credential (from the configuration).
#[derive(Clone, Debug, Default)]
pub struct CredentialConfig {
    /// Which credential.
    pub mode: CredentialMode,
    /// `AZURE_CLIENT_ID`.
    pub client_id: Option<String>,
    /// `AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// `AZURE_FEDERATED_TOKEN_FILE`.
    pub token_file: Option<PathBuf>,
    /// `AZURE_CLIENT_SECRET` (development only; never logged).
    pub client_secret: Option<crate::config::SecretString>,
    /// `IDENTITY_ENDPOINT` is set.
    pub identity_endpoint: bool,
    /// Authority host override (`https://…`).
    pub authority_host: Option<String>,
}

impl CredentialConfig {
    /// What is available.
    pub fn available(&self) -> Available {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        Available {
            client_id: set(&self.client_id),
            tenant_id: set(&self.tenant_id),
            token_file: self.token_file.is_some(),
            client_secret: self
                .client_secret
                .as_ref()
                .is_some_and(|s| !s.expose().is_empty()),
            identity_endpoint: self.identity_endpoint,
        }
    }
}

/// A credential and which one it is.
pub type BuiltCredential = (Choice, Arc<dyn TokenCredential>);

/// Builds the chosen credential; `Ok(None)` when none is configured. `http` carries token requests
/// (it trusts the configured extra CA, if any).
pub fn build(
    config: &CredentialConfig,
    http: Arc<dyn HttpClient>,
) -> Result<Option<BuiltCredential>, KeyVaultError> {
    let choice = choose(config.mode, config.available());
    let client_options = ClientOptions {
        transport: Some(Transport::new(http)),
        cloud: config.authority_host.as_ref().map(|host| {
            let mut custom = CustomConfiguration::default();
            custom.authority_host = host.clone();
            Arc::new(CloudConfiguration::from(custom))
        }),
        ..ClientOptions::default()
    };
    let err = |e: azure_core::Error| KeyVaultError::Credential(format!("{choice:?}: {e}"));
    let credential: Arc<dyn TokenCredential> = match choice {
        Choice::None => return Ok(None),
        Choice::Workload => WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions { client_options },
            client_id: config.client_id.clone(),
            tenant_id: config.tenant_id.clone(),
            token_file_path: config.token_file.clone(),
        }))
        .map_err(err)?,
        Choice::Managed => ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            user_assigned_id: config.client_id.clone().map(UserAssignedId::ClientId),
            client_options,
        }))
        .map_err(err)?,
        Choice::ClientSecret => {
            tracing::warn!("Key Vault access with a client secret: meant for development only");
            let secret = config
                .client_secret
                .as_ref()
                .map(|s| Secret::new(s.expose().to_string()))
                .ok_or_else(|| KeyVaultError::Credential("AZURE_CLIENT_SECRET is not set".into()))?;
            ClientSecretCredential::new(
                config.tenant_id.as_deref().unwrap_or(""),
                config.client_id.clone().unwrap_or_default(),
                secret,
                Some(ClientSecretCredentialOptions { client_options }),
            )
            .map_err(err)?
        }
    };
    Ok(Some((choice, credential)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Available {
        Available {
            client_id: true,
            tenant_id: true,
            token_file: true,
            client_secret: true,
            identity_endpoint: true,
        }
    }

    #[test]
    fn auto_prefers_workload_identity_then_managed_then_secret() {
        assert_eq!(choose(CredentialMode::Auto, all()), Choice::Workload);
        let no_wi = Available {
            token_file: false,
            ..all()
        };
        assert_eq!(choose(CredentialMode::Auto, no_wi), Choice::Managed);
        let secret_only = Available {
            token_file: false,
            identity_endpoint: false,
            ..all()
        };
        assert_eq!(choose(CredentialMode::Auto, secret_only), Choice::ClientSecret);
        assert_eq!(choose(CredentialMode::Auto, Available::default()), Choice::None);
        let partial_wi = Available {
            token_file: true,
            client_id: true,
            ..Available::default()
        };
        assert_eq!(choose(CredentialMode::Auto, partial_wi), Choice::None);
    }

    #[test]
    fn explicit_modes_win() {
        assert_eq!(choose(CredentialMode::Managed, all()), Choice::Managed);
        assert_eq!(choose(CredentialMode::None, all()), Choice::None);
        assert_eq!(
            choose(CredentialMode::ClientSecret, Available::default()),
            Choice::ClientSecret
        );
    }

    #[test]
    fn nothing_configured_builds_nothing() {
        let http: Arc<dyn HttpClient> = Arc::new(reqwest::Client::new());
        assert!(build(&CredentialConfig::default(), http).unwrap().is_none());
    }
}
