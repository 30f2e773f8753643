//! A bounded memory of changes already acted on, so a redelivered or reordered event (Event Grid is
//! at-least-once, unordered) costs nothing. Entries expire after a TTL (24 h by default, Event
//! Grid's maximum retry span); when full, the oldest entries go first. Time is passed in.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

/// Remembers keys for `ttl`, at most `capacity` of them.
#[derive(Debug)]
pub struct Recent<K> {
    ttl: Duration,
    capacity: usize,
    /// key → time (as offset from an arbitrary epoch the caller chooses) it was inserted.
    at: HashMap<K, Duration>,
    /// insertion order, for expiry and eviction; may hold stale duplicates (checked against `at`).
    order: VecDeque<(Duration, K)>,
}

impl<K: Clone + Eq + Hash> Recent<K> {
    /// An empty memory.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Recent {
            ttl,
            capacity: capacity.max(1),
            at: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// True when `key` was remembered less than `ttl` before `now`.
    pub fn contains(&self, key: &K, now: Duration) -> bool {
        self.at
            .get(key)
            .is_some_and(|t| now.saturating_sub(*t) < self.ttl)
    }

    /// Remembers `key` as of `now` (refreshing it if present).
    pub fn insert(&mut self, key: K, now: Duration) {
        self.expire(now);
        self.at.insert(key.clone(), now);
        self.order.push_back((now, key));
        while self.at.len() > self.capacity {
            match self.order.pop_front() {
                Some((t, k)) => {
                    if self.at.get(&k) == Some(&t) {
                        self.at.remove(&k);
                    }
                }
                None => break,
            }
        }
        // Keep the order queue from growing without bound through refreshed duplicates.
        if self.order.len() > 2 * self.capacity + 16 {
            let at = &self.at;
            self.order.retain(|(t, k)| at.get(k) == Some(t));
        }
    }

    /// Number of live entries (expired ones may linger until the next insert).
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    fn expire(&mut self, now: Duration) {
        while let Some((t, _)) = self.order.front() {
            if now.saturating_sub(*t) < self.ttl {
                break;
            }
            if let Some((t, k)) = self.order.pop_front()
                && self.at.get(&k) == Some(&t)
            {
                self.at.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn remembers_for_the_ttl_only() {
        let mut r = Recent::new(24 * H, 10);
        r.insert("a", Duration::ZERO);
        assert!(r.contains(&"a", 23 * H));
        assert!(!r.contains(&"a", 24 * H));
        assert!(!r.contains(&"b", H));
    }

    #[test]
    fn evicts_oldest_when_full() {
        let mut r = Recent::new(24 * H, 3);
        for (i, k) in ["a", "b", "c", "d"].into_iter().enumerate() {
            r.insert(k, Duration::from_secs(i as u64));
        }
        assert_eq!(r.len(), 3);
        assert!(!r.contains(&"a", Duration::from_secs(5)));
        assert!(r.contains(&"d", Duration::from_secs(5)));
    }

    #[test]
    fn refreshing_a_key_keeps_memory_bounded() {
        let mut r = Recent::new(24 * H, 4);
        for i in 0..10_000u64 {
            r.insert(i % 3, Duration::from_secs(i));
        }
        assert_eq!(r.len(), 3);
        assert!(r.order.len() <= 2 * 4 + 16 + 1);
        // expired entries are dropped on the next insert
        r.insert(99, Duration::from_secs(10_000) + 25 * H);
        assert_eq!(r.len(), 1);
    }
}
