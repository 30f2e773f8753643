//! Shared secrets: loaded once, kept only as SHA-256 digests, compared in constant time.
//!
//! A delivery presents a secret in the configured header or in the `code` query parameter
//! (percent-decoded; `+` is not turned into a space, so prefer URL-safe secrets). Every presented
//! value is compared against every configured secret without an early exit; comparing digests
//! also hides the secrets' lengths.

use std::fmt;
use std::path::Path;

use aws_lc_rs::digest::{SHA256, digest};
use http::{HeaderMap, HeaderName};
use percent_encoding::percent_decode_str;
use subtle::{Choice, ConstantTimeEq};

use super::AuthConfigError;

/// Shortest secret accepted, in bytes: shorter ones are guessable.
pub const MIN_SECRET_LEN: usize = 16;

/// The query parameter that may carry a secret (Azure Functions' convention).
pub const CODE_PARAM: &str = "code";

/// What a request's shared-secret credentials amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretCheck {
    /// Neither the header nor the `code` parameter is present.
    NotPresented,
    /// One presented value equals one configured secret.
    Matched,
    /// Values were presented; none equals a configured secret.
    Mismatch,
}

/// The configured shared secrets (digests only) and the header that carries one.
pub(crate) struct SharedSecrets {
    digests: Vec<[u8; 32]>,
    header: HeaderName,
}

impl fmt::Debug for SharedSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSecrets")
            .field("count", &self.digests.len())
            .field("header", &self.header)
            .finish()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

impl SharedSecrets {
    /// Builds from the inline list and the optional file; `Ok(None)` when neither yields a secret.
    pub(crate) fn load(
        inline: &[String],
        file: Option<&Path>,
        header: &str,
    ) -> Result<Option<SharedSecrets>, AuthConfigError> {
        let mut secrets: Vec<(String, String)> = Vec::new();
        for (i, s) in inline.iter().enumerate() {
            let s = s.trim();
            if !s.is_empty() {
                secrets.push((format!("KVSYNC_SHARED_SECRETS entry {}", i + 1), s.to_owned()));
            }
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| AuthConfigError::ReadSecretsFile {
                path: path.to_owned(),
                source,
            })?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                secrets.push((format!("{} line {}", path.display(), i + 1), line.to_owned()));
            }
        }
        if secrets.is_empty() {
            return Ok(None);
        }
        if let Some((origin, _)) = secrets.iter().find(|(_, s)| s.len() < MIN_SECRET_LEN) {
            return Err(AuthConfigError::WeakSharedSecret {
                origin: origin.clone(),
                min_len: MIN_SECRET_LEN,
            });
        }
        let header = HeaderName::from_bytes(header.trim().as_bytes())
            .map_err(|_| AuthConfigError::InvalidSecretHeader(header.to_owned()))?;
        let mut digests: Vec<[u8; 32]> = secrets.iter().map(|(_, s)| sha256(s.as_bytes())).collect();
        digests.sort_unstable();
        digests.dedup();
        Ok(Some(SharedSecrets { digests, header }))
    }

    /// How many distinct secrets are accepted.
    pub(crate) fn count(&self) -> usize {
        self.digests.len()
    }

    /// The header that carries a secret.
    pub(crate) fn header(&self) -> &HeaderName {
        &self.header
    }

    /// Compares every presented value (all header values, all `code` parameters) with every
    /// configured secret.
    pub(crate) fn check(&self, headers: &HeaderMap, query: Option<&str>) -> SecretCheck {
        let mut presented = false;
        let mut matched = Choice::from(0);
        for value in headers.get_all(&self.header) {
            presented = true;
            matched |= self.matches(value.as_bytes());
        }
        for value in code_params(query) {
            presented = true;
            matched |= self.matches(&value);
        }
        match (presented, bool::from(matched)) {
            (false, _) => SecretCheck::NotPresented,
            (true, true) => SecretCheck::Matched,
            (true, false) => SecretCheck::Mismatch,
        }
    }

    fn matches(&self, candidate: &[u8]) -> Choice {
        let candidate = sha256(candidate);
        self.digests
            .iter()
            .fold(Choice::from(0), |acc, d| acc | d.ct_eq(&candidate))
    }
}

/// Every `code` parameter of a raw query string, percent-decoded.
fn code_params(query: Option<&str>) -> impl Iterator<Item = Vec<u8>> + '_ {
    query.unwrap_or_default().split('&').filter_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key: Vec<u8> = percent_decode_str(key).collect();
        (key == CODE_PARAM.as_bytes()).then(|| percent_decode_str(value).collect())
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use http::HeaderValue;

    use super::*;

    const S1: &str = "first-secret-0123456789";
    const S2: &str = "second-secret-abcdefghij";

    fn secrets(list: &[&str]) -> SharedSecrets {
        let inline: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        SharedSecrets::load(&inline, None, "x-kvsync-key")
            .unwrap()
            .unwrap()
    }

    fn header(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn right_secret_in_header_matches() {
        let s = secrets(&[S1]);
        assert_eq!(s.check(&header("x-kvsync-key", S1), None), SecretCheck::Matched);
    }

    #[test]
    fn right_secret_in_code_parameter_matches_percent_decoded() {
        let s = secrets(&["sec/ret+with=odd&chars"]);
        let q = "a=1&code=sec%2Fret%2Bwith%3Dodd%26chars&b=2";
        assert_eq!(s.check(&HeaderMap::new(), Some(q)), SecretCheck::Matched);
    }

    #[test]
    fn wrong_secret_is_a_mismatch() {
        let s = secrets(&[S1]);
        assert_eq!(
            s.check(&header("x-kvsync-key", "first-secret-0123456780"), None),
            SecretCheck::Mismatch
        );
        assert_eq!(
            s.check(&HeaderMap::new(), Some("code=nope")),
            SecretCheck::Mismatch
        );
        assert_eq!(s.check(&HeaderMap::new(), Some("code")), SecretCheck::Mismatch);
    }

    #[test]
    fn nothing_presented() {
        let s = secrets(&[S1]);
        assert_eq!(
            s.check(&header("x-other", S1), Some("key=x&codes=y")),
            SecretCheck::NotPresented
        );
        assert_eq!(s.check(&HeaderMap::new(), None), SecretCheck::NotPresented);
    }

    #[test]
    fn rotation_accepts_every_configured_secret() {
        let s = secrets(&[S1, S2]);
        assert_eq!(s.count(), 2);
        assert_eq!(s.check(&header("x-kvsync-key", S1), None), SecretCheck::Matched);
        assert_eq!(
            s.check(&HeaderMap::new(), Some(&format!("code={S2}"))),
            SecretCheck::Matched
        );
    }

    #[test]
    fn custom_header_name_is_case_insensitive() {
        let s = SharedSecrets::load(&[S1.to_owned()], None, "X-Event-Key")
            .unwrap()
            .unwrap();
        assert_eq!(s.check(&header("x-event-key", S1), None), SecretCheck::Matched);
        assert_eq!(
            s.check(&header("x-kvsync-key", S1), None),
            SecretCheck::NotPresented
        );
    }

    #[test]
    fn file_with_comments_and_blank_lines() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "# rotated 2026-11\n\n  {S1}  \r\n# {S2} is not active\n").unwrap();
        let s = SharedSecrets::load(&[], Some(f.path()), "x-kvsync-key")
            .unwrap()
            .unwrap();
        assert_eq!(s.count(), 1);
        assert_eq!(s.check(&header("x-kvsync-key", S1), None), SecretCheck::Matched);
        assert_eq!(s.check(&header("x-kvsync-key", S2), None), SecretCheck::Mismatch);
        assert_eq!(
            s.check(&header("x-kvsync-key", &format!("# {S2} is not active")), None),
            SecretCheck::Mismatch
        );
    }

    #[test]
    fn file_and_inline_secrets_combine() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "{S2}").unwrap();
        let s = SharedSecrets::load(&[S1.to_owned()], Some(f.path()), "x-kvsync-key")
            .unwrap()
            .unwrap();
        assert_eq!(s.count(), 2);
    }

    #[test]
    fn unreadable_file_names_the_path() {
        let err = SharedSecrets::load(&[], Some(Path::new("/nonexistent/kvsync")), "x").unwrap_err();
        assert!(matches!(err, AuthConfigError::ReadSecretsFile { .. }));
        assert!(err.to_string().contains("/nonexistent/kvsync"), "{err}");
    }

    #[test]
    fn short_secret_is_refused_without_echoing_it() {
        let err = SharedSecrets::load(&[S1.to_owned(), "tooshort".to_owned()], None, "x").unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains("entry 2"), "{text}");
        assert!(!text.contains("tooshort"), "{text}");
    }

    #[test]
    fn blank_entries_are_ignored() {
        assert!(
            SharedSecrets::load(&["".into(), "  ".into()], None, "x")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn invalid_header_name_is_a_config_error() {
        let err = SharedSecrets::load(&[S1.to_owned()], None, "bad header").unwrap_err();
        assert!(matches!(err, AuthConfigError::InvalidSecretHeader(_)));
    }

    #[test]
    fn debug_shows_no_secret() {
        let s = secrets(&[S1, S2]);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(S1) && !dbg.contains(S2), "{dbg}");
    }
}
