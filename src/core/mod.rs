//! The pure core: domain types, the index from Key Vault objects to ExternalSecrets, and the
//! decisions made from it. Nothing here does I/O, reads a clock, or imports kube or axum: inputs
//! are plain values, outputs are plain values, and every rule is tested directly.
//!
//! - [`model`]: vaults, objects, changes.
//! - [`objects`]: the ESO objects as the adapter hands them in (spec/status stay JSON).
//! - [`index`]: the incremental reverse index `ObjectRef → ExternalSecrets`.
//! - [`decide`]: [`decide::plan`] (triggers and skips for a batch of changes) and
//!   [`decide::explain`] (why each reader would or would not refresh).
//! - [`confirm`]: ESO's `syncedResourceVersion` hash and trigger confirmation.
//! - [`staleness`]: the fallback reconcile's comparison of Key Vault `updated` with `refreshTime`.
//! - [`store_ready`]: which ExternalSecrets to re-trigger when a store turns Ready.
//!
//! The matching rules mirror ESO (v2.9.0); see `/work/shared/reference/eso.md`.

pub mod confirm;
pub mod decide;
pub mod index;
pub mod model;
pub mod objects;
pub mod recent;
mod spec;
pub mod staleness;
pub mod store_ready;

#[cfg(test)]
mod tests;
