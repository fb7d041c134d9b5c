//! The global tracing subscriber. Its own test binary: installing a global
//! subscriber affects the whole process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anyhow::Result;
use shikko_runtime::config::{LogFormat, TelemetryConfig};
use shikko_runtime::telemetry::init_tracing;

#[test]
fn second_init_is_a_no_op() -> Result<()> {
    let config = TelemetryConfig {
        log_format: LogFormat::Json,
        log_filter: "info,shikko_runtime=debug".to_owned(),
        ..TelemetryConfig::default()
    };
    // Ok(true) unless RUST_LOG is malformed in the test environment.
    assert!(init_tracing(&config)?);
    assert!(!init_tracing(&TelemetryConfig::default())?);
    tracing::info!("logged through the installed subscriber");
    Ok(())
}
