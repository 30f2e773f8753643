//! Command line / environment settings of delivery authentication (flattened into `serve`).

use std::fmt;
use std::path::PathBuf;

/// Header that carries a shared secret unless `KVSYNC_SECRET_HEADER` says otherwise.
pub const DEFAULT_SECRET_HEADER: &str = "x-kvsync-key";

/// Application id of the Microsoft.EventGrid service principal in the Azure public cloud.
///
/// Azure Government uses `54316b56-3481-47f9-8f30-0300f5542a7b`; set `KVSYNC_ENTRA_CALLER_APP_ID`
/// there.
pub const EVENT_GRID_APP_ID: &str = "4962773b-9cdb-44cf-a8bf-237846a00ab7";

/// How deliveries prove that they come from our Event Grid subscription.
///
/// Shared secrets and Microsoft Entra ID bearer tokens may both be on; a delivery that passes
/// either is allowed. With neither configured kvsync refuses to start unless `--insecure-no-auth`.
///
/// `Debug` never prints a secret: secrets are shown as a count.
#[derive(Clone, clap::Args)]
pub struct AuthArgs {
    /// Shared secrets accepted in the secret header or the `code` query parameter
    /// (comma-separated; several at once for rotation; at least 16 characters each).
    #[arg(
        long,
        env = "KVSYNC_SHARED_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub shared_secrets: Vec<String>,
    /// File with shared secrets, one per line; blank lines and lines starting with `#` are ignored.
    #[arg(long, env = "KVSYNC_SHARED_SECRETS_FILE")]
    pub shared_secrets_file: Option<PathBuf>,
    /// Header that carries a shared secret (the `code` query parameter is always accepted too).
    #[arg(long, env = "KVSYNC_SECRET_HEADER", default_value = DEFAULT_SECRET_HEADER)]
    pub secret_header: String,
    /// Microsoft Entra tenant id (a GUID) whose bearer tokens are accepted; turns Entra on.
    #[arg(long, env = "KVSYNC_ENTRA_TENANT_ID")]
    pub entra_tenant_id: Option<String>,
    /// Accepted token audiences: the webhook app's client id and/or App ID URI (comma-separated).
    #[arg(long, env = "KVSYNC_ENTRA_AUDIENCE", value_delimiter = ',')]
    pub entra_audience: Vec<String>,
    /// OpenID configuration document; default
    /// `https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration`.
    #[arg(long, env = "KVSYNC_ENTRA_METADATA_URL")]
    pub entra_metadata_url: Option<String>,
    /// Accepted caller application ids (`appid` in v1 tokens, `azp` in v2 tokens).
    #[arg(
        long,
        env = "KVSYNC_ENTRA_CALLER_APP_ID",
        value_delimiter = ',',
        default_value = EVENT_GRID_APP_ID
    )]
    pub entra_caller_app_id: Vec<String>,
    /// Require the app role `AzureEventGridSecureWebhookSubscriber` in the token's `roles`.
    #[arg(long, env = "KVSYNC_ENTRA_REQUIRE_ROLE")]
    pub entra_require_role: bool,
    /// Key Vault ARM ids (event `topic` / `source`) accepted, case-insensitive; empty = all.
    #[arg(long, env = "KVSYNC_ALLOWED_SOURCES", value_delimiter = ',')]
    pub allowed_sources: Vec<String>,
    /// Event Grid subscription names (`aeg-subscription-name`) accepted, case-insensitive;
    /// empty = all.
    #[arg(long, env = "KVSYNC_ALLOWED_SUBSCRIPTIONS", value_delimiter = ',')]
    pub allowed_subscriptions: Vec<String>,
    /// Accept deliveries without any authentication. Never use on a public endpoint.
    #[arg(long, env = "KVSYNC_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
}

impl Default for AuthArgs {
    /// The same values as the command line without any flag or environment variable.
    fn default() -> Self {
        AuthArgs {
            shared_secrets: Vec::new(),
            shared_secrets_file: None,
            secret_header: DEFAULT_SECRET_HEADER.to_owned(),
            entra_tenant_id: None,
            entra_audience: Vec::new(),
            entra_metadata_url: None,
            entra_caller_app_id: vec![EVENT_GRID_APP_ID.to_owned()],
            entra_require_role: false,
            allowed_sources: Vec::new(),
            allowed_subscriptions: Vec::new(),
            insecure_no_auth: false,
        }
    }
}

impl AuthArgs {
    /// Shared-secret authentication with one secret (the demo, tests).
    pub fn for_shared_secret(secret: String) -> Self {
        AuthArgs {
            shared_secrets: vec![secret],
            ..AuthArgs::default()
        }
    }

    /// Entra ID authentication for `tenant` and `audience`, keys from `metadata_url`.
    pub fn for_entra(tenant: &str, audience: &str, metadata_url: &str) -> Self {
        AuthArgs {
            entra_tenant_id: Some(tenant.to_owned()),
            entra_audience: vec![audience.to_owned()],
            entra_metadata_url: Some(metadata_url.to_owned()),
            ..AuthArgs::default()
        }
    }

    /// No delivery authentication (`--insecure-no-auth`), optionally with a source allow-list.
    /// Used by Functions mode, where the Functions host authenticates Event Grid (system key) and
    /// is the only caller, on loopback.
    pub fn insecure_with_sources(allowed_sources: Vec<String>) -> Self {
        AuthArgs {
            insecure_no_auth: true,
            allowed_sources,
            ..AuthArgs::default()
        }
    }

    /// No delivery authentication at all (in-process tests).
    pub fn insecure() -> Self {
        Self::insecure_with_sources(Vec::new())
    }
}

impl fmt::Debug for AuthArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthArgs")
            .field(
                "shared_secrets",
                &format_args!("<{} redacted>", self.shared_secrets.len()),
            )
            .field("shared_secrets_file", &self.shared_secrets_file)
            .field("secret_header", &self.secret_header)
            .field("entra_tenant_id", &self.entra_tenant_id)
            .field("entra_audience", &self.entra_audience)
            .field("entra_metadata_url", &self.entra_metadata_url)
            .field("entra_caller_app_id", &self.entra_caller_app_id)
            .field("entra_require_role", &self.entra_require_role)
            .field("allowed_sources", &self.allowed_sources)
            .field("allowed_subscriptions", &self.allowed_subscriptions)
            .field("insecure_no_auth", &self.insecure_no_auth)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        auth: AuthArgs,
    }

    fn parse(args: &[&str]) -> AuthArgs {
        let mut argv = vec!["kvsync"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().auth
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_default_impl() {
        let parsed = parse(&[]);
        let default = AuthArgs::default();
        assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
    }

    #[test]
    fn lists_are_comma_separated_and_flags_parse() {
        let args = parse(&[
            "--shared-secrets",
            "aaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbb",
            "--entra-audience",
            "api://kvsync,11111111-1111-1111-1111-111111111111",
            "--entra-require-role",
            "--insecure-no-auth",
        ]);
        assert_eq!(args.shared_secrets.len(), 2);
        assert_eq!(args.entra_audience.len(), 2);
        assert!(args.entra_require_role);
        assert!(args.insecure_no_auth);
    }

    #[test]
    fn debug_redacts_secrets() {
        let args = AuthArgs {
            shared_secrets: vec!["super-secret-value-1".into()],
            ..AuthArgs::default()
        };
        let dbg = format!("{args:?}");
        assert!(!dbg.contains("super-secret-value-1"), "{dbg}");
        assert!(dbg.contains("<1 redacted>"), "{dbg}");
    }
}
