//! Command line and environment configuration (clap derive; every flag has an `env` twin).

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

/// kvsync: make Kubernetes Secrets follow Azure Key Vault within seconds.
#[derive(Debug, Parser)]
#[command(name = "kvsync", version, about, long_about = None)]
pub struct Cli {
    /// Log format; the filter comes from RUST_LOG (default `info`).
    #[arg(
        long,
        env = "KVSYNC_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The ways to run kvsync.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the in-cluster service: Event Grid webhook, Kubernetes watches, triggers.
    Serve(ServeArgs),
}

/// Settings of `kvsync serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address the HTTP server listens on.
    #[arg(long, env = "KVSYNC_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_listens_on_8080_by_default() {
        let cli = Cli::try_parse_from(["kvsync", "serve"]).unwrap();
        let Command::Serve(args) = cli.command;
        assert_eq!(args.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(cli.log_format, LogFormat::Text);
    }

    #[test]
    fn listen_and_log_format_are_flags() {
        let cli = Cli::try_parse_from([
            "kvsync",
            "serve",
            "--listen",
            "127.0.0.1:9",
            "--log-format",
            "json",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command;
        assert_eq!(args.listen, "127.0.0.1:9".parse().unwrap());
        assert_eq!(cli.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_listen_address_is_a_clear_error() {
        let err = Cli::try_parse_from(["kvsync", "serve", "--listen", "nonsense"]).unwrap_err();
        assert!(err.to_string().contains("--listen"), "{err}");
    }
}
