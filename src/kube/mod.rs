//! Kubernetes adapter: the client, discovery of ESO's served versions, the watches that feed the
//! index, and the one write kvsync makes (an annotation patch), with its events and confirmation.

pub mod client;
pub mod confirm;
pub mod convert;
pub mod discovery;
pub mod events;
pub mod leader;
pub mod manifests;
pub mod namespaces;
pub mod observe;
pub mod patch;
pub mod snapshot;
pub mod store_ready;
pub mod trigger;
pub mod trigger_metrics;

use std::sync::{Arc, RwLock};

use crate::core::index::Index;

/// The index shared between the watches (writers) and the apply step and explain (readers).
/// Locks are held only for in-memory work, never across an `.await`.
pub type SharedIndex = Arc<RwLock<Index>>;
