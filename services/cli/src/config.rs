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
    pub(crate) registry: shikko_registry::process::RegistrySection,
    /// Logs and metrics.
    #[serde(default)]
    pub(crate) telemetry: TelemetryConfig,
    /// Draining on SIGTERM.
    #[serde(default)]
    pub(crate) shutdown: ShutdownConfig,
    /// The 4-information service, in the registry's process (it reads the
    /// registry's store and keeps consents and the audit log there).
    #[serde(default)]
    pub(crate) info: Option<InfoSection>,
    /// The registry's internal identity: mutual TLS on its gRPC port.
    #[serde(default)]
    pub(crate) tls: shikko_runtime::TlsConfig,
}

/// `[info]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InfoSection {
    /// gRPC over mutual TLS listen address. Default `127.0.0.1:50052`.
    /// (`listen`, its former name, is still read.)
    #[serde(default = "default_info", alias = "listen")]
    pub(crate) grpc_listen: SocketAddr,
    /// The server's certificate (PEM).
    pub(crate) tls_cert: PathBuf,
    /// The server's private key (PEM, PKCS#8).
    pub(crate) tls_key: PathBuf,
    /// The operator CA (PEM): client certificates must chain to it.
    pub(crate) client_ca: PathBuf,
    /// Card signing CA certificates (PEM, every generation) consents are checked against.
    pub(crate) signing_cas: Vec<PathBuf>,
    /// Smartphone signing CA certificates (PEM): consents signed on a phone. Default: none.
    #[serde(default)]
    pub(crate) phone_signing_cas: Vec<PathBuf>,
    /// The operators' port: connections, idle time, consent challenges.
    #[serde(default)]
    pub(crate) front_door: shikko_info::process::FrontDoor,
    /// The audit log's signed tree heads.
    #[serde(default)]
    pub(crate) audit: shikko_info::process::AuditHeads,
}

pub(crate) fn default_info() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50052))
}

impl shikko_runtime::RoleConfig for RegistryRoleConfig {
    fn validate(&self) -> Result<(), String> {
        if let Some(info) = &self.info {
            info.front_door.validate()?;
        }
        self.registry.validate()?;
        if let Some(primary) = &self.registry.pair.standby_of {
            self.tls.validate_client(primary)?;
        }
        self.tls.validate(&[self.registry.grpc_listen])
    }

    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shikko_registry::process::default_grpc;

    #[test]
    fn the_example_config_in_deploy_parses() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/registry.toml"
        ));
        let cfg: RegistryRoleConfig = shikko_runtime::load_toml(path).unwrap();
        assert_eq!(cfg.registry.grpc_listen, default_grpc());
        assert_eq!(cfg.registry.data_dir, PathBuf::from("/var/lib/shikko"));
        assert_eq!(cfg.shutdown.drain_timeout_secs, 10);
        assert!(cfg.info.is_none());
    }

    #[test]
    fn the_former_field_names_are_still_read() {
        let cfg: RegistryRoleConfig = shikko_runtime::config::parse_toml(
            "[registry]\ndata_dir = \"/d\"\nlisten = \"127.0.0.1:7\"\n\
             [telemetry]\nmetrics_addr = \"127.0.0.1:8\"\n",
            std::path::Path::new("old.toml"),
        )
        .unwrap();
        assert_eq!(cfg.registry.grpc_listen.port(), 7);
        assert_eq!(cfg.telemetry.metrics_listen.port(), 8);
        // Both names at once is a mistake, not a choice.
        assert!(
            shikko_runtime::config::parse_toml::<RegistryRoleConfig>(
                "[registry]\ndata_dir = \"/d\"\nlisten = \"127.0.0.1:7\"\ngrpc_listen = \"127.0.0.1:9\"\n",
                std::path::Path::new("both.toml"),
            )
            .is_err()
        );
    }

    #[test]
    fn the_roles_find_the_registry_where_it_listens_by_default() {
        assert_eq!(
            format!("http://{}", default_grpc()),
            shikko_follow::DEFAULT_REGISTRY_ENDPOINT
        );
    }
}
