//! Domain types shared by parsing, the index and the decisions: which vault, which object, what
//! changed. Constructors normalise, so equality of values is equality of the things they name.

use std::fmt;

/// An Azure cloud, for turning a bare vault name into a host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Cloud {
    /// Azure public cloud: `*.vault.azure.net`.
    #[default]
    Public,
    /// Azure China (21Vianet): `*.vault.azure.cn`.
    China,
    /// Azure US Government: `*.vault.usgovcloudapi.net`.
    UsGov,
    /// Azure Germany (legacy): `*.vault.microsoftazure.de`.
    Germany,
}

impl Cloud {
    /// Every cloud, for recognising hosts.
    pub const ALL: [Cloud; 4] = [Cloud::Public, Cloud::China, Cloud::UsGov, Cloud::Germany];

    /// The vault DNS suffix of this cloud (without a leading dot).
    pub fn vault_dns_suffix(self) -> &'static str {
        match self {
            Cloud::Public => "vault.azure.net",
            Cloud::China => "vault.azure.cn",
            Cloud::UsGov => "vault.usgovcloudapi.net",
            Cloud::Germany => "vault.microsoftazure.de",
        }
    }

    /// The cloud whose vault suffix `host` ends with, if any.
    pub fn of_host(host: &str) -> Option<Cloud> {
        Cloud::ALL.into_iter().find(|c| {
            host.strip_suffix(c.vault_dns_suffix())
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1)
        })
    }
}

/// Why a vault reference could not be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VaultIdError {
    /// The text is empty after trimming.
    #[error("empty vault reference")]
    Empty,
    /// The URL does not parse or has no host.
    #[error("invalid vault url {0:?}")]
    InvalidUrl(String),
    /// A vault name with characters Key Vault does not allow (`[0-9a-zA-Z-]`, 3–24 chars).
    #[error("invalid vault name {0:?}")]
    InvalidName(String),
}

/// A vault's identity: its normalised host (lowercase, no trailing dot, `:port` only when it is not
/// 443), e.g. `myvault.vault.azure.net`. Two references name the same vault iff their `VaultId`s are
/// equal; scheme, case, trailing slash, path and default port do not matter.
///
/// Shared (`Arc<str>`): the index keeps one per ref, and clones of a store's vault share it.
/// Comparing two clones of one value skips the text (the events of one delivery share their
/// vault, so sorting a batch mostly compares pointers).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VaultId(std::sync::Arc<str>);

impl Ord for VaultId {
    fn cmp(&self, other: &VaultId) -> std::cmp::Ordering {
        if std::sync::Arc::ptr_eq(&self.0, &other.0) {
            std::cmp::Ordering::Equal
        } else {
            self.0.cmp(&other.0)
        }
    }
}

impl PartialOrd for VaultId {
    fn partial_cmp(&self, other: &VaultId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl VaultId {
    /// From a URL such as a store's `vaultUrl` or an event's `data.Id`.
    pub fn from_url(url: &str) -> Result<VaultId, VaultIdError> {
        let trimmed = url.trim();
        if trimmed.is_empty() {
            return Err(VaultIdError::Empty);
        }
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("https://{trimmed}")
        };
        let parsed =
            url::Url::parse(&with_scheme).map_err(|_| VaultIdError::InvalidUrl(trimmed.to_string()))?;
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| VaultIdError::InvalidUrl(trimmed.to_string()))?;
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        // DNS names have at most 253 characters; a longer "host" is no vault (and would be kept,
        // as part of every key, in the index and the dedupe memory).
        if host.is_empty() || host.len() > 253 {
            return Err(VaultIdError::InvalidUrl(trimmed.to_string()));
        }
        // `Url` drops the scheme's default port itself; a vault is always https, so 443 is default too.
        Ok(match parsed.port() {
            Some(p) if p != 443 => VaultId(format!("{host}:{p}").into()),
            _ => VaultId(host.into()),
        })
    }

    /// From a host that needs no normalising: lowercase DNS labels of `[a-z0-9-]`, none empty
    /// or starting `xn--`, the last starting with a letter (so it cannot be read as an IPv4
    /// address), at most 253 characters. Exactly what [`VaultId::from_url`] gives for
    /// `https://<host>`, without parsing a URL; `None` for anything else (use `from_url`).
    pub fn from_plain_host(host: &str) -> Option<VaultId> {
        let plain = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && host
                .split('.')
                .all(|label| !label.is_empty() && !label.starts_with("xn--"))
            && host
                .rsplit('.')
                .next()
                .is_some_and(|last| last.starts_with(|c: char| c.is_ascii_lowercase()));
        plain.then(|| VaultId(host.into()))
    }

    /// From a bare vault name (`VaultName` of an event) in `cloud`.
    pub fn from_name(name: &str, cloud: Cloud) -> Result<VaultId, VaultIdError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(VaultIdError::Empty);
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || name.len() > 63 {
            return Err(VaultIdError::InvalidName(name.to_string()));
        }
        Ok(VaultId(
            format!("{}.{}", name.to_ascii_lowercase(), cloud.vault_dns_suffix()).into(),
        ))
    }

    /// From what a person types: a name (`myvault`), a host (`myvault.vault.azure.cn`) or a URL.
    pub fn parse_flexible(text: &str, cloud: Cloud) -> Result<VaultId, VaultIdError> {
        let t = text.trim();
        if t.contains('.') || t.contains("://") || t.contains(':') {
            VaultId::from_url(t)
        } else {
            VaultId::from_name(t, cloud)
        }
    }

    /// The normalised host (with `:port` when not 443).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The vault's short name: the first DNS label.
    pub fn short_name(&self) -> &str {
        self.0.split(['.', ':']).next().unwrap_or(&self.0)
    }
}

impl fmt::Display for VaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The three kinds of Key Vault object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum ObjectKind {
    /// A secret (`/secrets/`; ESO key prefix `secret/` or none).
    Secret,
    /// A certificate (`/certificates/`; ESO prefix `cert/`).
    Certificate,
    /// A key (`/keys/`; ESO prefix `key/`).
    Key,
}

impl ObjectKind {
    /// Lowercase name used in logs, metrics and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secret",
            ObjectKind::Certificate => "certificate",
            ObjectKind::Key => "key",
        }
    }

    /// The collection segment in Key Vault URLs (`secrets`, `certificates`, `keys`).
    pub fn url_collection(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secrets",
            ObjectKind::Certificate => "certificates",
            ObjectKind::Key => "keys",
        }
    }

    /// Parses `secret`/`certificate`/`key` (also `cert`, plurals, any case).
    pub fn parse(text: &str) -> Option<ObjectKind> {
        match text.trim().to_ascii_lowercase().as_str() {
            "secret" | "secrets" => Some(ObjectKind::Secret),
            "certificate" | "certificates" | "cert" | "certs" => Some(ObjectKind::Certificate),
            "key" | "keys" => Some(ObjectKind::Key),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Key Vault object name, compared case-insensitively (Key Vault names are): stored lowercase.
/// Shared (`Arc`): the index keys its reverse map with the same allocation as the refs that name
/// the object, and a cloned change costs a reference count, not a copy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName(std::sync::Arc<str>);

impl ObjectName {
    /// Normalises `name` (trimmed, lowercased).
    pub fn new(name: &str) -> ObjectName {
        let name = name.trim();
        if !name.is_ascii() || name.bytes().any(|b| b.is_ascii_uppercase()) {
            ObjectName(name.to_lowercase().into())
        } else {
            ObjectName(name.into())
        }
    }

    /// The lowercase name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One Key Vault object: the unit a change event names and an ExternalSecret reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// The vault.
    pub vault: VaultId,
    /// Secret, certificate or key.
    pub kind: ObjectKind,
    /// The object name (lowercase).
    pub name: ObjectName,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.vault, self.kind, self.name)
    }
}

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    /// A new version was created (the only change that alters what ESO would read).
    NewVersion,
    /// The current version is about to expire.
    NearExpiry,
    /// The current version expired.
    Expired,
}

impl ChangeKind {
    /// Lowercase name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::NewVersion => "new_version",
            ChangeKind::NearExpiry => "near_expiry",
            ChangeKind::Expired => "expired",
        }
    }
}

/// A change to one Key Vault object, from an event or from the fallback reconcile.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VaultChange {
    /// The object that changed.
    pub object: ObjectRef,
    /// The object version the change is about, when known (events carry it). Shared: a change
    /// is copied into every trigger it causes.
    pub version: Option<std::sync::Arc<str>>,
    /// What happened.
    pub kind: ChangeKind,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A plain host is taken as is exactly when the URL parse would give the same vault.
        #[test]
        fn plain_hosts_agree_with_the_url_parse(host in "[a-z0-9.xnX-]{0,12}(\\.[a-z0-9-]{0,6}){0,3}") {
            if let Some(fast) = VaultId::from_plain_host(&host) {
                prop_assert_eq!(Ok(fast), VaultId::from_url(&format!("https://{host}")));
            }
        }
    }

    #[test]
    fn plain_hosts_are_only_the_unambiguous_ones() {
        for host in [
            "kv.vault.azure.net",
            "kv-1.vault.azure.cn",
            "a--b.c",
            "1.2.3.com",
            "x",
        ] {
            assert_eq!(
                VaultId::from_plain_host(host),
                Some(VaultId::from_url(&format!("https://{host}")).unwrap()),
                "{host}"
            );
        }
        for host in [
            "",
            "KV.vault.azure.net",
            "kv.vault.azure.net.",
            ".kv",
            "a..b",
            "xn--kv.net",
            "kv.xn--p1ai",
            "10.0.0.1",
            "kv.0x7f",
            "kv.123",
            "kv:8443",
            "user@kv",
            "k_v.net",
            "kv.net/",
        ] {
            assert_eq!(VaultId::from_plain_host(host), None, "{host}");
        }
    }

    #[test]
    fn vault_urls_normalise_scheme_case_slash_and_default_port() {
        let want = VaultId::from_url("https://myvault.vault.azure.net").unwrap();
        for url in [
            "https://MyVault.Vault.Azure.Net/",
            "https://myvault.vault.azure.net:443/",
            "myvault.vault.azure.net",
            "  https://myvault.vault.azure.net/secrets/x/abc ",
            "https://myvault.vault.azure.net./",
        ] {
            assert_eq!(VaultId::from_url(url).unwrap(), want, "{url}");
        }
        assert_eq!(want.as_str(), "myvault.vault.azure.net");
        assert_eq!(want.short_name(), "myvault");
        assert_ne!(VaultId::from_url("https://myvault.vault.azure.cn").unwrap(), want);
        assert_ne!(
            VaultId::from_url("https://myvault2.vault.azure.net").unwrap(),
            want
        );
        assert_eq!(
            VaultId::from_url("https://127.0.0.1:8443/").unwrap().as_str(),
            "127.0.0.1:8443"
        );
    }

    #[test]
    fn bad_vault_references_are_errors() {
        assert_eq!(VaultId::from_url(""), Err(VaultIdError::Empty));
        assert!(VaultId::from_url("https://").is_err());
        assert!(VaultId::from_name("my vault", Cloud::Public).is_err());
        assert!(VaultId::from_name("a/b", Cloud::Public).is_err());
        // Longer than any DNS name.
        let long = format!("https://{}.vault.azure.net/", vec!["a".repeat(60); 5].join("."));
        assert!(VaultId::from_url(&long).is_err());
        let longest = format!(
            "{}.{}.vault.azure.net",
            vec!["a".repeat(58); 3].join("."),
            "b".repeat(60)
        );
        assert_eq!(longest.len(), 253);
        assert!(VaultId::from_url(&longest).is_ok());
    }

    #[test]
    fn names_join_their_cloud_suffix() {
        let cases = [
            (Cloud::Public, "kv.vault.azure.net"),
            (Cloud::China, "kv.vault.azure.cn"),
            (Cloud::UsGov, "kv.vault.usgovcloudapi.net"),
            (Cloud::Germany, "kv.vault.microsoftazure.de"),
        ];
        for (cloud, host) in cases {
            let id = VaultId::from_name("KV", cloud).unwrap();
            assert_eq!(id.as_str(), host);
            assert_eq!(id, VaultId::from_url(&format!("https://{host}/")).unwrap());
            assert_eq!(Cloud::of_host(host), Some(cloud));
        }
        assert_eq!(Cloud::of_host("vault.azure.net"), None);
        assert_eq!(Cloud::of_host("evil-vault.azure.net"), None);
    }

    #[test]
    fn flexible_parse_accepts_name_host_or_url() {
        let want = VaultId::from_name("kv", Cloud::China).unwrap();
        assert_eq!(VaultId::parse_flexible("kv", Cloud::China).unwrap(), want);
        assert_eq!(
            VaultId::parse_flexible("kv.vault.azure.cn", Cloud::Public).unwrap(),
            want
        );
        assert_eq!(
            VaultId::parse_flexible("https://KV.vault.azure.cn/", Cloud::Public).unwrap(),
            want
        );
    }

    #[test]
    fn object_names_compare_case_insensitively() {
        assert_eq!(ObjectName::new(" DB-Password"), ObjectName::new("db-password"));
        assert_eq!(ObjectKind::parse("Certificates"), Some(ObjectKind::Certificate));
        assert_eq!(ObjectKind::parse("cert"), Some(ObjectKind::Certificate));
        assert_eq!(ObjectKind::parse("blob"), None);
    }
}
