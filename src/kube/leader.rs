//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one replica runs the fallback
//! reconcile (every replica keeps ingesting deliveries).
//!
//! Own module rather than a crate: `kube-leader-election` is on kube 4; `kube-lease-manager` 0.13
//! fits kube 5, but when renewing fails (API server unreachable) it keeps reporting leadership
//! while another replica may take over after expiry. Here a holder steps down on its own once
//! `leaseDuration` has passed since its last *successful* renewal started, whatever the API server
//! says, so two replicas never reconcile at once for longer than a renewal round trip.
//!
//! Protocol (client-go's, simplified): read the Lease; [`decide`] (pure) says whether to renew
//! (we hold it), acquire (absent, released or expired by `renewTime + leaseDurationSeconds`) or
//! wait; writes are optimistic `replace`s carrying the read `resourceVersion`, so of two replicas
//! acquiring at once exactly one succeeds (the other gets 409). Renewal every third of the
//! duration. A replica takes over at most one duration (+ one retry period) after the leader
//! stopped renewing. On a clean stop the holder clears `holderIdentity` so others take over at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// What a replica saw in the Lease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseView {
    /// `spec.holderIdentity` (empty: released).
    pub holder: Option<String>,
    /// `spec.renewTime`, unix microseconds.
    pub renew_micros: Option<i64>,
    /// `spec.leaseDurationSeconds`.
    pub duration_secs: Option<i32>,
}

/// What to do with the Lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseAction {
    /// There is no Lease: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// It is free or expired: take it (a transition).
    Acquire,
    /// Someone else holds it: wait.
    Wait,
}

/// Decides from the Lease as read (`None`: absent), who we are and the time (unix microseconds).
/// A Lease without `renewTime` or duration that someone holds counts as expired (as client-go).
pub fn decide(lease: Option<&LeaseView>, me: &str, now_micros: i64) -> LeaseAction {
    let Some(lease) = lease else {
        return LeaseAction::Create;
    };
    match lease.holder.as_deref() {
        Some(h) if h == me => LeaseAction::Renew,
        None | Some("") => LeaseAction::Acquire,
        Some(_) => {
            let expires = match (lease.renew_micros, lease.duration_secs) {
                (Some(renew), Some(d)) => renew.saturating_add(i64::from(d.max(0)).saturating_mul(1_000_000)),
                _ => i64::MIN,
            };
            if now_micros >= expires {
                LeaseAction::Acquire
            } else {
                LeaseAction::Wait
            }
        }
    }
}

/// Whether a holder whose last successful renewal *started* `since_renewal` ago may still act as
/// leader: only within the lease duration (others may take over right after it).
pub fn still_leader(since_renewal: Duration, duration: Duration) -> bool {
    since_renewal < duration
}

/// Settings of the election.
#[derive(Clone, Debug)]
pub struct LeaderSettings {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (unique among replicas).
    pub identity: String,
    /// `leaseDurationSeconds` (whole seconds, at least 1).
    pub duration: Duration,
}

impl LeaderSettings {
    fn retry_period(&self) -> Duration {
        (self.duration / 3).max(Duration::from_millis(200))
    }
}

fn view(lease: &Lease) -> LeaseView {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseView {
        holder: spec.holder_identity,
        renew_micros: spec.renew_time.map(|t| t.0.as_microsecond()),
        duration_secs: spec.lease_duration_seconds,
    }
}

fn now_micros() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// Runs the election until the returned sender's receivers are all gone or the task is aborted.
/// The receiver says whether this replica leads now.
pub fn spawn(
    client: kube::Client,
    settings: LeaderSettings,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
        let mut last_renewal: Option<Instant> = None;
        loop {
            let attempt_started = Instant::now();
            match step(&api, &settings).await {
                Ok(true) => last_renewal = Some(attempt_started),
                Ok(false) => last_renewal = None,
                Err(e) => {
                    tracing::warn!(lease = %settings.name, error = %e, "leader election: lease update failed")
                }
            }
            let leading = last_renewal.is_some_and(|t| still_leader(t.elapsed(), settings.duration));
            if *tx.borrow() != leading {
                tracing::info!(lease = %settings.name, identity = %settings.identity, leading, "leadership changed");
            }
            tx.send_if_modified(|v| std::mem::replace(v, leading) != leading);
            // Step down on time even if the API server does not answer.
            let until_expiry = last_renewal
                .map(|t| settings.duration.saturating_sub(t.elapsed()))
                .unwrap_or(Duration::MAX);
            tokio::select! {
                _ = tokio::time::sleep(settings.retry_period().min(until_expiry)) => {}
                _ = tx.closed() => {
                    if last_renewal.is_some() {
                        release(&api, &settings).await;
                    }
                    return;
                }
            }
        }
    });
    (rx, handle)
}

/// One read-decide-write round; `Ok(true)` when we hold the Lease afterwards.
async fn step(api: &Api<Lease>, s: &LeaderSettings) -> Result<bool, kube::Error> {
    let current = api.get_opt(&s.name).await?;
    let action = decide(current.as_ref().map(view).as_ref(), &s.identity, now_micros());
    let now = MicroTime(jiff::Timestamp::now());
    let duration_secs = i32::try_from(s.duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let result = match (action, current) {
        (LeaseAction::Wait, _) => return Ok(false),
        (LeaseAction::Create, _) | (_, None) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(s.name.clone()),
                    namespace: Some(s.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(s.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        (action, Some(mut lease)) => {
            let mut spec = lease.spec.take().unwrap_or_default();
            if action == LeaseAction::Acquire {
                spec.holder_identity = Some(s.identity.clone());
                spec.acquire_time = Some(now.clone());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            }
            spec.lease_duration_seconds = Some(duration_secs);
            spec.renew_time = Some(now);
            lease.spec = Some(spec);
            // `replace` sends the read resourceVersion: a concurrent writer makes this a 409.
            api.replace(&s.name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Clears the holder so another replica takes over at once (best effort).
async fn release(api: &Api<Lease>, s: &LeaderSettings) {
    let Ok(Some(mut lease)) = api.get_opt(&s.name).await else {
        return;
    };
    let mut spec = lease.spec.take().unwrap_or_default();
    if spec.holder_identity.as_deref() != Some(s.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    lease.spec = Some(spec);
    if let Err(e) = api.replace(&s.name, &PostParams::default(), &lease).await {
        tracing::info!(error = %e, "leader election: could not release the lease");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn held(by: &str, renew_s: i64, duration: i32) -> LeaseView {
        LeaseView {
            holder: Some(by.into()),
            renew_micros: Some(renew_s * S),
            duration_secs: Some(duration),
        }
    }

    #[test]
    fn absent_lease_is_created() {
        assert_eq!(decide(None, "me", 0), LeaseAction::Create);
    }

    #[test]
    fn our_own_lease_is_renewed_even_when_expired() {
        assert_eq!(
            decide(Some(&held("me", 100, 15)), "me", 110 * S),
            LeaseAction::Renew
        );
        assert_eq!(
            decide(Some(&held("me", 100, 15)), "me", 500 * S),
            LeaseAction::Renew
        );
    }

    #[test]
    fn another_holder_is_respected_until_expiry() {
        let l = held("other", 100, 15);
        assert_eq!(decide(Some(&l), "me", 100 * S), LeaseAction::Wait);
        assert_eq!(decide(Some(&l), "me", 115 * S - 1), LeaseAction::Wait);
        assert_eq!(decide(Some(&l), "me", 115 * S), LeaseAction::Acquire);
    }

    #[test]
    fn released_or_incomplete_leases_are_free() {
        let mut l = held("", 100, 15);
        assert_eq!(decide(Some(&l), "me", 100 * S), LeaseAction::Acquire);
        l.holder = None;
        assert_eq!(decide(Some(&l), "me", 100 * S), LeaseAction::Acquire);
        let no_renew = LeaseView {
            holder: Some("other".into()),
            renew_micros: None,
            duration_secs: Some(15),
        };
        assert_eq!(decide(Some(&no_renew), "me", 0), LeaseAction::Acquire);
    }

    #[test]
    fn a_holder_steps_down_once_the_duration_has_passed_since_its_last_renewal() {
        let d = Duration::from_secs(15);
        assert!(still_leader(Duration::from_secs(14), d));
        assert!(!still_leader(Duration::from_secs(15), d));
        assert!(!still_leader(Duration::from_secs(60), d));
    }
}
