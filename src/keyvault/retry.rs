//! Retry and budget arithmetic for Key Vault requests, pure (the caller passes the random unit).
//!
//! Key Vault answers throttling with 429 and, as observed, without `Retry-After`
//! (`/work/shared/reference/eventgrid.md` §8), so kvsync never waits for that header: it backs off
//! exponentially from a base (default 1 s: 1, 2, 4, 8, 16 s …) up to a cap, with jitter so that
//! replicas and vaults do not retry in lockstep. 429s do not count against Key Vault's limits;
//! the client-side budget (a token bucket per vault, default 100 requests/s = 1,000 per 10 s, a
//! quarter of Key Vault's 4,000 per 10 s) keeps kvsync from causing them in the first place.

use std::time::Duration;

/// Backoff settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// Upper bound of any one delay.
    pub cap: Duration,
    /// Retries after the first attempt before giving up.
    pub max_retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(32),
            max_retries: 6,
        }
    }
}

impl Backoff {
    /// Delay before retry number `retry` (0 = first retry): `min(cap, base·2^retry)`, scaled by a
    /// jitter factor in `[0.5, 1.0)` drawn from `unit` (`[0, 1)`): "equal jitter", never shorter
    /// than half the exponential step, so backing off always slows down.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let step = self
            .base
            .checked_mul(2u32.saturating_pow(retry.min(31)))
            .unwrap_or(self.cap)
            .min(self.cap);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        step.mul_f64(0.5 + 0.5 * unit)
    }

    /// Whether another attempt may follow attempt number `attempt` (0 = the first request).
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.max_retries
    }
}

/// Whether a response status is worth retrying: 429 (throttled), 408, and 5xx.
pub fn retryable_status(status: u16) -> bool {
    status == 429 || status == 408 || (500..=599).contains(&status)
}

/// The operation a Key Vault request performs, for metrics: the listing kvsync does, else `other`.
pub fn operation(path: &str) -> &'static str {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    match last {
        "secrets" => "list_secrets",
        "certificates" => "list_certificates",
        "keys" => "list_keys",
        _ => "other",
    }
}

/// A number in `[0, 1)` that differs between calls (jitter source; not for cryptography).
pub fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let b = Backoff::default();
        let max: Vec<u64> = (0..8).map(|r| b.delay(r, 0.999_999).as_millis() as u64).collect();
        assert_eq!(max, vec![999, 1999, 3999, 7999, 15_999, 31_999, 31_999, 31_999]);
        let min: Vec<u64> = (0..4).map(|r| b.delay(r, 0.0).as_millis() as u64).collect();
        assert_eq!(min, vec![500, 1000, 2000, 4000]);
    }

    #[test]
    fn jitter_stays_in_bounds_whatever_the_unit() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_retries: 3,
        };
        for unit in [-1.0, 0.0, 0.3, 0.99, 1.0, 7.0, f64::NAN] {
            let d = b.delay(2, unit);
            assert!(
                d >= Duration::from_millis(200) && d <= Duration::from_millis(400),
                "{unit}: {d:?}"
            );
        }
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_millis(500));
    }

    #[test]
    fn retries_are_bounded() {
        let b = Backoff {
            max_retries: 2,
            ..Backoff::default()
        };
        assert!(b.may_retry(0) && b.may_retry(1) && !b.may_retry(2));
    }

    #[test]
    fn throttling_and_server_errors_are_retried_client_errors_not() {
        for s in [429, 408, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [200, 401, 403, 404, 400] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn operations_are_named_from_the_path() {
        assert_eq!(operation("/secrets"), "list_secrets");
        assert_eq!(operation("/prod-kv/certificates/"), "list_certificates");
        assert_eq!(operation("/keys"), "list_keys");
        assert_eq!(operation("/secrets/db/versions"), "other");
    }

    #[test]
    fn random_units_are_in_range_and_vary() {
        let v: Vec<f64> = (0..32).map(|_| random_unit()).collect();
        assert!(v.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(v.windows(2).any(|w| w[0] != w[1]));
    }
}
