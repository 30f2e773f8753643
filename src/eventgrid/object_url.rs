//! Key Vault object URLs (`data.Id`, e.g. `https://kv.vault.azure.net/secrets/name/version`): the
//! vault host, and the object name and version after the collection.
//!
//! URLs are parsed by the `url` crate. Within one delivery most events share a few vaults, so
//! [`ObjectUrls`] reads each distinct `scheme://authority` once: a plain lowercase host is taken as
//! it is ([`VaultId::from_plain_host`]), any other goes through the `url` crate. Plain paths are
//! split here; anything unusual (other characters, percent-escapes, dots, query, fragment) takes
//! the full parse.

use std::borrow::Cow;

use crate::core::model::{ObjectKind, VaultId};

/// What an `Id` URL says: its vault (host), and the object name and version after the collection.
#[derive(Debug, Default)]
pub(crate) struct IdParts<'s> {
    /// The vault host, when the URL is absolute http(s) with a host.
    pub vault: Option<VaultId>,
    /// The segment after the collection, when it looks like an object name.
    pub name: Option<Cow<'s, str>>,
    /// The segment after the name.
    pub version: Option<Cow<'s, str>>,
}

/// What the `url` crate says about `scheme://authority`.
#[derive(Clone, Debug)]
struct Authority {
    /// Parses as an absolute http(s) URL with a non-empty host.
    usable: bool,
    /// `VaultId::from_url` of it.
    vault: Option<VaultId>,
}

impl Authority {
    fn of(url: &str) -> Authority {
        // Most vault hosts are plain lowercase DNS names: no URL parse needed.
        if let Some(vault) = url
            .split_once("://")
            .and_then(|(_, host)| VaultId::from_plain_host(host))
        {
            return Authority {
                usable: true,
                vault: Some(vault),
            };
        }
        let usable = url::Url::parse(url).is_ok_and(|u| {
            matches!(u.scheme(), "https" | "http") && u.host_str().is_some_and(|h| !h.is_empty())
        });
        Authority {
            usable,
            vault: if usable { VaultId::from_url(url).ok() } else { None },
        }
    }
}

/// Splits object URLs, remembering the hosts already parsed (one per delivery).
#[derive(Debug, Default)]
pub(crate) struct ObjectUrls {
    authorities: hashbrown::HashMap<Box<str>, Authority>,
}

impl ObjectUrls {
    /// Splits an object URL. Only absolute http(s) URLs count; the collection matching `kind` is
    /// preferred, any of the three is accepted.
    pub(crate) fn parts<'s>(&mut self, id: &'s str, kind: Option<ObjectKind>) -> IdParts<'s> {
        let Some((authority, path)) = split_plain(id) else {
            return full_parse(id, kind);
        };
        let found = match self.authorities.get(authority) {
            Some(found) => found,
            None => self
                .authorities
                .entry(authority.into())
                .or_insert_with(|| Authority::of(authority)),
        };
        if !found.usable {
            return IdParts::default();
        }
        // `Url` gives an empty path as `/`.
        let segments = path.strip_prefix('/').unwrap_or(path);
        let (name, version) = after_collection(segments.split('/'), kind);
        IdParts {
            vault: found.vault.clone(),
            name: name.map(Cow::Borrowed),
            version: version.map(Cow::Borrowed),
        }
    }
}

/// `(scheme://authority, path)` when `id` is a lowercase http(s) URL whose path the `url` crate
/// keeps as it is (`[0-9A-Za-z_/-]`) and whose authority cannot end anywhere else: printable ASCII
/// without spaces, `\`, `?` or `#`, and not starting with `/`. `None` otherwise.
fn split_plain(id: &str) -> Option<(&str, &str)> {
    let rest = id
        .strip_prefix("https://")
        .or_else(|| id.strip_prefix("http://"))?;
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let plain_authority = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'\\' | b'?' | b'#'));
    let plain_path = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/'));
    (plain_authority && plain_path).then(|| id.split_at(id.len() - path.len()))
}

/// The full `url` crate parse, for URLs [`split_plain`] does not take.
fn full_parse(id: &str, kind: Option<ObjectKind>) -> IdParts<'static> {
    let Ok(url) = url::Url::parse(id) else {
        return IdParts::default();
    };
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none_or(str::is_empty) {
        return IdParts::default();
    }
    let vault = VaultId::from_url(id).ok();
    let (name, version) = match url.path_segments() {
        Some(segments) => after_collection(segments, kind),
        None => (None, None),
    };
    IdParts {
        vault,
        name: name.map(|n| Cow::Owned(n.to_string())),
        version: version.map(|v| Cow::Owned(v.to_string())),
    }
}

/// The name (when it looks like one) and the version after the collection segment: the one matching
/// `kind` first, else any of the three.
fn after_collection<'s>(
    segments: impl Iterator<Item = &'s str> + Clone,
    kind: Option<ObjectKind>,
) -> (Option<&'s str>, Option<&'s str>) {
    let is_collection = |s: &str, want: Option<ObjectKind>| {
        [ObjectKind::Secret, ObjectKind::Certificate, ObjectKind::Key]
            .into_iter()
            .any(|k| want.is_none_or(|w| w == k) && s.eq_ignore_ascii_case(k.url_collection()))
    };
    let at = kind
        .and_then(|k| segments.clone().position(|s| is_collection(s, Some(k))))
        .or_else(|| segments.clone().position(|s| is_collection(s, None)));
    match at {
        Some(i) => {
            let mut after = segments.skip(i + 1).map(str::trim);
            let mut seg = || after.next().filter(|s| !s.is_empty());
            let name = seg().filter(|n| is_object_name(n));
            (name, seg())
        }
        None => (None, None),
    }
}

/// Whether `name` looks like a Key Vault object name: `[0-9A-Za-z-]`, 1 to 127 characters.
pub(crate) fn is_object_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 127 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full parse, with owned strings, for comparing.
    fn full(id: &str, kind: Option<ObjectKind>) -> (Option<VaultId>, Option<String>, Option<String>) {
        let p = full_parse(id, kind);
        (
            p.vault,
            p.name.map(Cow::into_owned),
            p.version.map(Cow::into_owned),
        )
    }

    #[test]
    fn the_plain_split_agrees_with_the_full_parse() {
        let mut urls = ObjectUrls::default();
        let ids = [
            "https://kv.vault.azure.net/secrets/a/v1",
            "https://KV.Vault.Azure.Net:443/secrets/a/v1",
            "https://kv.vault.azure.net:8443/keys/k",
            "https://kv.vault.azure.net./certificates/c/",
            "https://kv.vault.azure.net",
            "https://kv.vault.azure.net/",
            "https://kv.vault.azure.net//secrets//a/v",
            "http://kv.localtest.me/secrets/a/b/c",
            "https://user:pw@kv.vault.azure.net/secrets/a/v",
            "https://kv.vault.azure.net/Secrets/A_b/v",
            "https://kv.vault.azure.net/secrets/a%2fb/v",
            "https://kv.vault.azure.net/secrets/../keys/a/v",
            "https://kv.vault.azure.net/secrets/a/v?x=1",
            "https://kv.vault.azure.net\\secrets\\a",
            "https:///secrets/a/v",
            "https://[::1]/secrets/a/v",
            "https://%6bv.vault.azure.net/secrets/a/v",
            "https://kv vault/secrets/a",
            "https://:443/secrets/a",
            "https://kv.vault.azure.net:99999/secrets/a",
            "https://xn--nxasmq6b.example/secrets/a",
            "https://EXAMPLE.com@kv.vault.azure.net/secrets/a",
            "https://x.invalid/secrets/sub-ject",
        ];
        for id in ids {
            for kind in [
                None,
                Some(ObjectKind::Secret),
                Some(ObjectKind::Key),
                Some(ObjectKind::Certificate),
            ] {
                // Twice: the second time from the cache.
                for _ in 0..2 {
                    let p = urls.parts(id, kind);
                    let got = (
                        p.vault,
                        p.name.map(Cow::into_owned),
                        p.version.map(Cow::into_owned),
                    );
                    assert_eq!(got, full(id, kind), "{id} {kind:?}");
                }
            }
        }
        assert!(urls.authorities.len() < ids.len());
    }
}
