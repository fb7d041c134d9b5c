//! Telemetry: the process-wide `tracing` subscriber ([`init_tracing`]) and
//! the Prometheus registry roles register their metrics in ([`Metrics`]).
//!
//! Logs and metric labels never carry certificate serial numbers, holder ids
//! or any of the 4 information: see [`Metrics`] for the label rule.

mod metrics;

pub use metrics::{Metrics, MetricsError};

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetryConfig};

/// Environment variable whose value, when set and not empty, replaces
/// [`TelemetryConfig::log_filter`].
pub const LOG_FILTER_ENV: &str = "RUST_LOG";

/// The log filter could not be parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// A filter directive is malformed.
    #[error("invalid log filter {filter:?} (from {origin}): {reason}")]
    InvalidFilter {
        /// Where the filter came from: `RUST_LOG` or `telemetry.log_filter`.
        origin: &'static str,
        /// The filter as given.
        filter: String,
        /// What the parser found wrong.
        reason: String,
    },
}

/// Installs the global `tracing` subscriber: `fmt` lines on stderr, as text
/// or JSON per [`TelemetryConfig::log_format`], filtered by `RUST_LOG` when
/// set and not empty, else by [`TelemetryConfig::log_filter`].
///
/// Returns `Ok(true)` if this call installed the subscriber and `Ok(false)` if
/// one was already installed (a second call is a no-op, so tests and
/// embedding code may call it freely). A malformed filter is an error; the
/// CLI treats it as bad configuration.
pub fn init_tracing(config: &TelemetryConfig) -> Result<bool, TelemetryError> {
    let env = std::env::var(LOG_FILTER_ENV).ok();
    let (origin, filter) = select_filter(&config.log_filter, env.as_deref());
    let env_filter = EnvFilter::try_new(filter).map_err(|error| TelemetryError::InvalidFilter {
        origin,
        filter: filter.to_owned(),
        reason: error.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in files or log collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // try_init fails only when a global subscriber (or `log` logger) is
    // already set, which is the documented no-op case.
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init().is_ok(),
        LogFormat::Json => builder.json().try_init().is_ok(),
    };
    Ok(installed)
}

/// Picks the filter string and names its origin: `RUST_LOG` wins when it is
/// set to something other than whitespace.
fn select_filter<'a>(config_filter: &'a str, env: Option<&'a str>) -> (&'static str, &'a str) {
    match env {
        Some(env) if !env.trim().is_empty() => (LOG_FILTER_ENV, env),
        _ => ("telemetry.log_filter", config_filter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_unless_blank() {
        assert_eq!(
            select_filter("info", None),
            ("telemetry.log_filter", "info")
        );
        assert_eq!(
            select_filter("info", Some("  ")),
            ("telemetry.log_filter", "info")
        );
        assert_eq!(select_filter("info", Some("debug")), ("RUST_LOG", "debug"));
    }

    #[test]
    fn malformed_config_filter_is_an_error() {
        let config = TelemetryConfig {
            log_filter: "shikko=loud".to_owned(),
            ..TelemetryConfig::default()
        };
        // Only meaningful when RUST_LOG does not override the config filter.
        if std::env::var(LOG_FILTER_ENV).is_ok_and(|v| !v.trim().is_empty()) {
            return;
        }
        let err = init_tracing(&config).unwrap_err();
        assert!(err.to_string().contains("telemetry.log_filter"), "{err}");
    }
}
