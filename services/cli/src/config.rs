//! Configuration of `shikko serve ROLE --config FILE` (TOML, unknown fields refused).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use shikko_runtime::{ShutdownConfig, TelemetryConfig};

/// `shikko serve registry --config FILE`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistryRoleConfig {
    /// The registry itself.
    pub(crate) registry: RegistrySection,
    /// Logs and metrics.
    #[serde(default)]
    pub(crate) telemetry: TelemetryConfig,
    /// Draining on SIGTERM.
    #[serde(default)]
    pub(crate) shutdown: ShutdownConfig,
}

/// `[registry]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistrySection {
    /// Data directory; the RocksDB store lives in `DATA_DIR/db`. Required.
    pub(crate) data_dir: PathBuf,
    /// gRPC listen address. Default `127.0.0.1:50051`.
    #[serde(default = "default_grpc")]
    pub(crate) listen: SocketAddr,
}

pub(crate) fn default_grpc() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}

/// Where the crl and ocsp roles find the registry by default.
pub(crate) fn default_registry_endpoint() -> String {
    format!("http://{}", default_grpc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_in_deploy_parses() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/registry.toml"
        ));
        let cfg: RegistryRoleConfig = shikko_runtime::load_toml(path).unwrap();
        assert_eq!(cfg.registry.listen, default_grpc());
        assert_eq!(cfg.registry.data_dir, PathBuf::from("/var/lib/shikko"));
        assert_eq!(cfg.shutdown.drain_timeout_secs, 10);
    }
}
