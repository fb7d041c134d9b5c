//! Loading a role-shaped config file from disk.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Result;
use serde::Deserialize;
use shikko_runtime::config::{
    ConfigError, EXIT_CONFIG, LogFormat, ShutdownConfig, TelemetryConfig, load_toml,
};

/// A config file as a role would declare it: its own listen address plus the
/// shared sections.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleConfig {
    /// gRPC listen address.
    grpc_addr: SocketAddr,
    #[serde(default)]
    telemetry: TelemetryConfig,
    #[serde(default)]
    shutdown: ShutdownConfig,
}

fn write_config(text: &str) -> Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile()?;
    file.write_all(text.as_bytes())?;
    file.flush()?;
    Ok(file)
}

#[test]
fn valid_file_fills_in_defaults() -> Result<()> {
    let file = write_config(
        r#"
grpc_addr = "127.0.0.1:50051"

[telemetry]
log_format = "json"
"#,
    )?;
    let config: RoleConfig = load_toml(file.path())?;
    assert_eq!(config.grpc_addr.port(), 50051);
    assert_eq!(config.telemetry.log_format, LogFormat::Json);
    assert_eq!(config.telemetry.log_filter, "info");
    assert_eq!(
        config.telemetry.metrics_listen.to_string(),
        "127.0.0.1:9090"
    );
    assert_eq!(config.shutdown.drain_timeout_secs, 10);
    Ok(())
}

#[test]
fn unknown_field_is_named_with_file_and_line() -> Result<()> {
    let file = write_config(
        r#"grpc_addr = "127.0.0.1:50051"

[shutdown]
drain_timeout_secs = 5
drain_timout = 7
"#,
    )?;
    let err = load_toml::<RoleConfig>(file.path()).unwrap_err();
    let ConfigError::Parse { line, .. } = &err else {
        panic!("expected a parse error, got {err:?}");
    };
    assert_eq!(*line, Some(5));
    let text = err.to_string();
    assert!(text.contains("`drain_timout`"), "{text}");
    assert!(
        text.starts_with(&format!("{}:5:", file.path().display())),
        "{text}"
    );
    assert!(!text.contains('\n'), "reason must be one line: {text}");
    assert_eq!(err.exit_code(), EXIT_CONFIG);
    assert_eq!(EXIT_CONFIG, 64);
    Ok(())
}

#[test]
fn unknown_top_level_section_is_rejected() -> Result<()> {
    let file = write_config("grpc_addr = \"127.0.0.1:1\"\n[telemetri]\nlog_filter = \"debug\"\n")?;
    let text = load_toml::<RoleConfig>(file.path())
        .unwrap_err()
        .to_string();
    assert!(text.contains("`telemetri`"), "{text}");
    Ok(())
}

#[test]
fn wrong_type_and_missing_field_are_errors() -> Result<()> {
    let file =
        write_config("grpc_addr = \"127.0.0.1:1\"\n[shutdown]\ndrain_timeout_secs = \"ten\"\n")?;
    let text = load_toml::<RoleConfig>(file.path())
        .unwrap_err()
        .to_string();
    assert!(text.contains(":3:"), "{text}");
    assert!(
        text.contains("field `shutdown.drain_timeout_secs`"),
        "{text}"
    );

    let file = write_config("[telemetry]\n")?;
    let text = load_toml::<RoleConfig>(file.path())
        .unwrap_err()
        .to_string();
    assert!(text.contains("grpc_addr"), "{text}");
    Ok(())
}

#[test]
fn missing_file_names_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.toml");
    let err = load_toml::<RoleConfig>(&path).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.toml"), "{err}");
}
