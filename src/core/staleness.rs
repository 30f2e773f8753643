//! When is an ExternalSecret stale with respect to a Key Vault object? (The fallback reconcile's
//! one comparison, pure: times come in as unix seconds, nothing reads a clock.)
//!
//! Inputs:
//! - `attributes.updated` of the object as Key Vault lists it: unix seconds, Key Vault's clock;
//! - `status.refreshTime` of the ExternalSecret: RFC 3339 truncated to the second, written by ESO
//!   with the time its last *successful* reconcile **started**, by the ESO pod's clock
//!   (`/work/shared/reference/eso.md` §2).
//!
//! Rule: the ES is stale iff `updated > refreshTime − margin` (or it has no `refreshTime`).
//! Equivalently, an ES counts as fresh only when ESO started its last successful refresh at least
//! `margin` after the object changed. Why subtract rather than add: the dangerous error is calling
//! an ES fresh that read the old value. That happens when ESO's clock runs *ahead* of Key Vault's:
//! ESO starts at real time 99, the change lands at 100, ESO stamps `refreshTime` 102. Comparing
//! `updated (100) > refreshTime (102)` would say fresh and miss the change for ever (the event was
//! lost, and nothing else will tell). Requiring `refreshTime ≥ updated + margin` absorbs any skew
//! up to `margin` plus the second truncation of both stamps and the time between ESO starting its
//! reconcile and reading the value. The price is one extra trigger of an ES that refreshed within
//! `margin` after a change: cheap, and done once only, because the trigger's version token is
//! derived from `updated` ([`version_token`]): the same object version always gives the same
//! annotation value, so later passes find it already applied and patch nothing.
//!
//! Default margin: [`DEFAULT_SKEW_MARGIN`] (5 minutes) — far above NTP-synchronised skew, and
//! small against the 10-minute reconcile interval and ESO's 1-hour default refresh.

use std::time::Duration;

use serde_json::Value;

/// Default clock-skew margin (`KVSYNC_RECONCILE_SKEW`).
pub const DEFAULT_SKEW_MARGIN: Duration = Duration::from_secs(300);

/// Whether an ES whose last successful refresh started at `refresh_time` (unix seconds, `None`:
/// never synced) has read the version of an object last updated at `updated` (unix seconds).
pub fn is_stale(updated: i64, refresh_time: Option<i64>, margin: Duration) -> bool {
    let margin = i64::try_from(margin.as_secs()).unwrap_or(i64::MAX);
    match refresh_time {
        None => true,
        Some(refreshed) => updated > refreshed.saturating_sub(margin),
    }
}

/// The change version the reconcile reports for an object updated at `updated`: stable per
/// object version, so repeated passes produce the same trigger value and repatch nothing.
pub fn version_token(updated: i64) -> String {
    format!("updated-{updated}")
}

/// `status.refreshTime` as unix seconds (`None` when absent or not RFC 3339).
pub fn refresh_time(status: &Value) -> Option<i64> {
    let text = status.get("refreshTime")?.as_str()?;
    text.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// `status.conditions[type=Ready].status`: `Some(true)` for `"True"`, `Some(false)` for any
/// other value, `None` when there is no Ready condition.
pub fn ready_condition(status: &Value) -> Option<bool> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        .map(|c| c.get("status").and_then(Value::as_str) == Some("True"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const M: Duration = Duration::from_secs(300);

    #[test]
    fn refreshed_well_after_the_change_is_fresh() {
        assert!(!is_stale(1_000, Some(1_300), M));
        assert!(!is_stale(1_000, Some(5_000), M));
    }

    #[test]
    fn a_change_after_the_refresh_is_stale() {
        assert!(is_stale(2_000, Some(1_000), M));
    }

    #[test]
    fn a_refresh_within_the_margin_after_the_change_counts_as_stale() {
        // ESO's clock may run ahead: a refresh stamped shortly after the change may have read
        // the old value.
        assert!(is_stale(1_000, Some(1_001), M));
        assert!(is_stale(1_000, Some(1_299), M));
        assert!(!is_stale(1_000, Some(1_300), M));
    }

    #[test]
    fn never_synced_is_stale_and_zero_margin_compares_directly() {
        assert!(is_stale(1_000, None, M));
        assert!(!is_stale(1_000, Some(1_000), Duration::ZERO));
        assert!(is_stale(1_001, Some(1_000), Duration::ZERO));
        assert!(is_stale(0, Some(i64::MIN), M), "no overflow");
    }

    #[test]
    fn version_tokens_differ_per_update() {
        assert_eq!(version_token(1_700_000_000), "updated-1700000000");
        assert_ne!(version_token(1), version_token(2));
    }

    #[test]
    fn refresh_time_parses_rfc3339_and_tolerates_junk() {
        assert_eq!(
            refresh_time(&json!({"refreshTime": "2026-11-28T10:00:00Z"})),
            Some(1_795_860_000)
        );
        assert_eq!(
            refresh_time(&json!({"refreshTime": "2026-11-28T11:00:00+01:00"})),
            Some(1_795_860_000)
        );
        assert_eq!(refresh_time(&json!({"refreshTime": "yesterday"})), None);
        assert_eq!(refresh_time(&json!({})), None);
        assert_eq!(refresh_time(&Value::Null), None);
    }

    #[test]
    fn ready_condition_reads_the_ready_type_only() {
        let s = |c: Value| json!({"conditions": c});
        assert_eq!(
            ready_condition(&s(json!([{"type": "Ready", "status": "True"}]))),
            Some(true)
        );
        assert_eq!(
            ready_condition(&s(json!([{"type": "Ready", "status": "False"}]))),
            Some(false)
        );
        assert_eq!(
            ready_condition(&s(json!([{"type": "Ready", "status": "Unknown"}]))),
            Some(false)
        );
        assert_eq!(
            ready_condition(&s(json!([{"type": "Other", "status": "True"}]))),
            None
        );
        assert_eq!(ready_condition(&Value::Null), None);
    }
}
