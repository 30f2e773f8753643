//! The pure core: domain types, the index from Key Vault objects to ExternalSecrets, and the
//! decisions made from it. Nothing here does I/O, reads a clock, or imports kube or axum: inputs
//! are plain values, outputs are plain values, and every rule is tested directly.

pub mod confirm;
pub mod decide;
pub mod index;
pub mod model;
pub mod objects;
mod spec;

#[cfg(test)]
mod tests;
