//! kvsync makes Kubernetes Secrets follow Azure Key Vault within seconds.
//!
//! Azure Event Grid tells kvsync that a Key Vault object changed; kvsync finds exactly the
//! ExternalSecrets that read that object and makes the External Secrets Operator (ESO) refresh them
//! now, by patching one annotation.
//!
//! ```text
//! Event Grid ──HTTPS──▶ http/ (auth, limits, status codes)
//! Functions host ─────▶      │ bytes + headers
//!                            ▼
//!                      eventgrid/ (pure parse) ──▶ key-vault changes | handshake
//!                            │
//!                            ▼
//! Kubernetes ──watch──▶ kube/ (observe) ──▶ core/ (pure index + decide) ──▶ plan ──▶ kube/ (apply)
//! ```
//!
//! Events can be lost: the fallback reconcile (`reconcile`, leader only) compares Key Vault
//! metadata (`keyvault`) with ExternalSecret refresh times and triggers the stale ones through the
//! same apply step.
//!
//! Decision logic (`eventgrid`, `core`) is pure: no I/O, no clock, no kube or axum types. The
//! adapters (`http`, `kube`) translate between those pure types and the outside world.

pub mod apply;
pub mod auth;
pub mod config;
pub mod core;
pub mod demo;
pub mod error;
pub mod eventgrid;
pub mod http;
pub mod keyvault;
pub mod kube;
pub mod metrics;
pub mod readiness;
pub mod reconcile;
pub mod report;
pub mod service;
pub mod telemetry;

pub use error::{Error, Result};
