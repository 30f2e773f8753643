//! Prometheus metrics: one registry with the `kvsync_` prefix, rendered by `GET /metrics`.
//!
//! Each area of the service owns a typed group of metric families (a struct with a `register`
//! function next to the code that updates it); this file assembles them into one registry.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Content type of the OpenMetrics text rendered by [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry and every metric family kvsync exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// Builds the registry with process-level metrics (build info, start time).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kvsync");
        let build = Info::new(vec![
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("name", env!("CARGO_PKG_NAME").to_string()),
        ]);
        registry.register("build", "kvsync build information", build);
        let start: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        start.set(now);
        registry.register(
            "process_start_time_seconds",
            "Start time of the process since unix epoch",
            start,
        );
        Self { registry }
    }

    /// Mutable access for the areas that register their own families at start-up.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Renders the registry as OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error here would be a bug in an encoder.
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "failed to encode metrics");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_build_info_and_start_time() {
        let text = Metrics::new().render();
        assert!(text.contains("kvsync_build_info{version=\""), "{text}");
        assert!(text.contains("kvsync_process_start_time_seconds "), "{text}");
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
