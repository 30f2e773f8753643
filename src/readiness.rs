//! Readiness gates: `/readyz` and deliveries wait until every registered gate has opened.
//!
//! Each long-running part that must finish something before kvsync can act correctly (e.g. the
//! initial list of a watched resource) registers a gate and opens it once. Gates never close again:
//! a watch that restarts keeps serving from the last complete view, which is what ESO itself does.

use std::sync::{Arc, Mutex};

/// Shared set of readiness gates.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    inner: Arc<Mutex<Vec<Gate>>>,
}

#[derive(Debug)]
struct Gate {
    name: String,
    open: bool,
}

/// Handle to one gate; opening it is idempotent.
#[derive(Clone, Debug)]
pub struct GateHandle {
    readiness: Readiness,
    index: usize,
}

impl Readiness {
    /// Registers a closed gate named `name` (shown by `/readyz` while it is closed).
    pub fn gate(&self, name: impl Into<String>) -> GateHandle {
        let mut gates = self.lock();
        gates.push(Gate {
            name: name.into(),
            open: false,
        });
        GateHandle {
            readiness: self.clone(),
            index: gates.len() - 1,
        }
    }

    /// True when every registered gate is open (and trivially when none is registered).
    pub fn is_ready(&self) -> bool {
        self.lock().iter().all(|g| g.open)
    }

    /// Names of the gates still closed, in registration order.
    pub fn pending(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|g| !g.open)
            .map(|g| g.name.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Gate>> {
        // A poisoned lock only means another thread panicked mid-update of a bool: the data is fine.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl GateHandle {
    /// Opens the gate.
    pub fn open(&self) {
        if let Some(g) = self.readiness.lock().get_mut(self.index) {
            g.open = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_gate_is_open() {
        let r = Readiness::default();
        assert!(r.is_ready(), "no gate means nothing to wait for");
        let a = r.gate("externalsecrets");
        let b = r.gate("secretstores");
        assert!(!r.is_ready());
        a.open();
        assert_eq!(r.pending(), vec!["secretstores".to_string()]);
        b.open();
        b.open();
        assert!(r.is_ready());
    }
}
