//! Config files: loading TOML into a role's config struct, and the sections
//! every role embeds ([`TelemetryConfig`], [`ShutdownConfig`]).
//!
//! Config structs are `#[serde(deny_unknown_fields)]` so that a misspelt key is
//! an error rather than a silently ignored setting, and every field carries a
//! doc comment with its meaning and default. A bad config file is reported
//! as one line naming the file, the line and the field, and makes the process
//! exit with [`EXIT_CONFIG`].

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Exit code for bad configuration or arguments (`EX_USAGE` from BSD
/// `sysexits.h`); the CLI exits with it when [`load_toml`] fails.
pub const EXIT_CONFIG: i32 = 64;

/// A config file that could not be read, parsed or accepted.
///
/// `Display` is a single line that starts with the file's path, suitable as
/// the one-line reason printed before exiting with [`EXIT_CONFIG`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: io::Error,
    },
    /// The file is not valid TOML, or does not match the config struct
    /// (unknown field, missing field, wrong type or value).
    #[error("{}{}: {}{message}", path.display(), location(*line, *column), field_prefix(field.as_deref(), message))]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending key or value, when known.
        line: Option<usize>,
        /// 1-based column (in characters) of the offending key or value, when known.
        column: Option<usize>,
        /// Dotted path of the key on the offending line (`telemetry.metrics_listen`),
        /// when the line is a `key = value` line; a hint read from the text.
        field: Option<String>,
        /// What is wrong, as toml reports it; for an unknown field it names
        /// the field and the expected ones.
        message: String,
    },
    /// The file parsed, but a value is not acceptable (checked by the role
    /// after loading).
    #[error("{}: field `{field}`: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The dotted path of the field, e.g. `shutdown.drain_timeout_secs`.
        field: String,
        /// Why the value is not acceptable.
        reason: String,
    },
}

impl ConfigError {
    /// A value that parsed but is not acceptable, for checks a role makes
    /// after [`load_toml`].
    pub fn invalid(path: &Path, field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The process exit code for this error: always [`EXIT_CONFIG`].
    pub fn exit_code(&self) -> i32 {
        EXIT_CONFIG
    }
}

fn field_prefix(field: Option<&str>, message: &str) -> String {
    match field {
        // toml already names unknown fields; do not say it twice.
        Some(field) if !message.contains(&format!("`{}`", last_key(field))) => {
            format!("field `{field}`: ")
        }
        _ => String::new(),
    }
}

fn last_key(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(":{line}:{column}"),
        (Some(line), None) => format!(":{line}"),
        _ => String::new(),
    }
}

/// Reads `path` and deserializes it as TOML into `T`.
///
/// Errors name the file and, for parse errors, the line and column and what
/// toml found wrong (for `deny_unknown_fields` structs, the unknown field).
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_toml(&text, path)
}

/// Deserializes `text` as TOML into `T`; `path` names where the text came
/// from in errors. [`load_toml`] without the file read.
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|error| {
        let (line, column, field) = match error.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                (Some(line), Some(column), key_at_line(text, line))
            }
            None => (None, None, None),
        };
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            field,
            // toml's messages are one line; keep the reason to one line anyway.
            message: error.message().trim().replace('\n', " "),
        }
    })
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The dotted key of `key = value` on 1-based `line`, prefixed with the
/// nearest table header above it. Only the key is taken, never the value,
/// so errors do not echo values (which may be secrets) into logs.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let (key, _) = lines.get(line.checked_sub(1)?)?.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
        return None;
    }
    let table = lines[..line - 1].iter().rev().find_map(|l| {
        let l = l.trim();
        let inner = l.strip_prefix('[')?.split(']').next()?;
        Some(inner.trim_start_matches('[').trim())
    });
    Some(match table {
        Some(table) if !table.is_empty() => format!("{table}.{key}"),
        _ => key.to_owned(),
    })
}

/// Format of log lines written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (`text`), for terminals.
    #[default]
    Text,
    /// One JSON object per line (`json`), for log collectors.
    Json,
}

/// The `[telemetry]` section: logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Log line format, `"text"` or `"json"`. Default: `"text"`.
    pub log_format: LogFormat,
    /// Which logs to keep, in `tracing_subscriber::EnvFilter` syntax
    /// (e.g. `"info,shikko_store=debug"`). The `RUST_LOG` environment
    /// variable, when set and not empty, takes precedence. Default: `"info"`.
    pub log_filter: String,
    /// Address the Prometheus endpoint (`/metrics`, `/healthz`) listens on.
    /// Default: `127.0.0.1:9090`. (`metrics_addr`, its former name, is
    /// still read.)
    #[serde(alias = "metrics_addr")]
    pub metrics_listen: SocketAddr,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
            metrics_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9090)),
        }
    }
}

/// The `[shutdown]` section: what happens after SIGTERM or Ctrl-C.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Seconds to let in-flight requests finish after a shutdown signal
    /// before the process exits anyway. Default: `10`.
    pub drain_timeout_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_timeout_secs: 10,
        }
    }
}

impl ShutdownConfig {
    /// [`Self::drain_timeout_secs`] as a `Duration`.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}

/// The `[http]` section of the roles that serve HTTP (crl, ocsp): limits
/// against slow and idle clients.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A request's headers must arrive within this many seconds; a
    /// keep-alive connection idle that long is closed. Default: `10`.
    pub header_read_timeout_secs: u64,
    /// Open connections at most; more wait in the accept backlog. Default: `50000`.
    pub max_connections: usize,
    /// An HTTP/2 connection without a request or a response for this many
    /// seconds is closed, keep-alive pings notwithstanding. Default: `120`.
    pub idle_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let d = crate::http_server::HttpLimits::default();
        HttpConfig {
            header_read_timeout_secs: d.header_read_timeout.as_secs(),
            max_connections: d.max_connections,
            idle_timeout_secs: d.idle_timeout.as_secs(),
        }
    }
}

impl HttpConfig {
    /// The limits, checked: timeouts of 1 to 3600 s, 1 to 1,000,000 connections.
    pub fn limits(&self) -> Result<crate::http_server::HttpLimits, String> {
        if !(1..=3600).contains(&self.header_read_timeout_secs) {
            return Err("[http] header_read_timeout_secs must be 1 to 3600".into());
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err("[http] max_connections must be 1 to 1000000".into());
        }
        if !(1..=3600).contains(&self.idle_timeout_secs) {
            return Err("[http] idle_timeout_secs must be 1 to 3600".into());
        }
        Ok(crate::http_server::HttpLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            max_connections: self.max_connections,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_column(text, 9), (2, 3));
        assert_eq!(line_column(text, 1_000), (3, 1));
    }

    #[test]
    fn key_at_line_includes_the_table() {
        let text = "top = 1\n[telemetry]\n# comment\nmetrics_listen = \"x\"\n[[a.b]]\nc=[\n1]\n";
        assert_eq!(key_at_line(text, 1).as_deref(), Some("top"));
        assert_eq!(key_at_line(text, 2), None);
        assert_eq!(key_at_line(text, 3), None);
        assert_eq!(
            key_at_line(text, 4).as_deref(),
            Some("telemetry.metrics_listen")
        );
        assert_eq!(key_at_line(text, 6).as_deref(), Some("a.b.c"));
        assert_eq!(key_at_line(text, 7), None);
        assert_eq!(key_at_line(text, 99), None);
    }

    #[test]
    fn bad_value_names_its_field_but_not_its_value() {
        let err =
            parse_toml::<TelemetryConfig>("metrics_listen = \"secret-ish\"\n", Path::new("t.toml"))
                .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("t.toml:1:18: field `metrics_listen`: "),
            "{text}"
        );
        assert!(!text.contains("secret-ish"), "{text}");
    }

    #[test]
    fn defaults_are_documented_values() {
        let telemetry = TelemetryConfig::default();
        assert_eq!(telemetry.log_format, LogFormat::Text);
        assert_eq!(telemetry.log_filter, "info");
        assert_eq!(telemetry.metrics_listen.to_string(), "127.0.0.1:9090");
        assert_eq!(
            ShutdownConfig::default().drain_timeout(),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn empty_section_is_all_defaults() {
        let telemetry: TelemetryConfig = parse_toml("", Path::new("t.toml")).unwrap();
        assert_eq!(telemetry, TelemetryConfig::default());
    }

    #[test]
    fn unknown_log_format_is_rejected_with_its_line() {
        let err = parse_toml::<TelemetryConfig>(
            "log_filter = \"debug\"\nlog_format = \"xml\"\n",
            Path::new("t.toml"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("t.toml:2:"), "{text}");
        assert!(text.contains("xml"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn invalid_names_field() {
        let err = ConfigError::invalid(
            Path::new("r.toml"),
            "shutdown.drain_timeout_secs",
            "must be at least 1",
        );
        assert_eq!(
            err.to_string(),
            "r.toml: field `shutdown.drain_timeout_secs`: must be at least 1"
        );
        assert_eq!(err.exit_code(), EXIT_CONFIG);
    }
}
