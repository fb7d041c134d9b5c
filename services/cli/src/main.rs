//! `shikko`: one binary for every role of the platform and its client commands.
//!
//! Exit codes: 0 success, 1 failure, 64 bad arguments or configuration (with a one-line reason).
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod admin;
mod audit;
mod authority;
mod client;
mod config;
mod crl;
mod demo;
mod filter;
mod identity;
mod info;
mod info_role;
mod link;
mod load;
mod ocsp;
mod seed;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use shikko_core::{CertKind, Serial};
use shikko_pki::KeyAlgorithm;
use shikko_runtime::{EXIT_CONFIG, TelemetryConfig};

#[derive(Parser)]
#[command(
    name = "shikko",
    version,
    about = "Certificate status and 4-information distribution for a national ID PKI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Directory of the internal identity client commands present
    /// (NAME.pem, NAME-key.pem, internal-ca.pem); default: the demo's
    /// ./shikko-data/samples when it exists.
    #[arg(long, global = true, env = "SHIKKO_IDENTITY_DIR")]
    identity_dir: Option<PathBuf>,
    /// The identity to present (admin, authority, auditor); default: the
    /// one the command needs.
    #[arg(long, global = true, env = "SHIKKO_IDENTITY")]
    identity: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a demo data directory (CAs, a synthetic population, samples) and run every role on loopback.
    Demo {
        /// Data directory.
        #[arg(long, default_value = "./shikko-data")]
        data_dir: PathBuf,
        /// Number of synthetic holders.
        #[arg(long, default_value_t = 10_000)]
        holders: u64,
        /// Key algorithm of the CAs and holders: rsa2048 (JPKI profile) or p256.
        #[arg(long, default_value = "rsa2048")]
        key_algorithm: KeyAlgorithm,
        /// Seed of the synthetic population.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// gRPC listen address.
        #[arg(long, default_value = "127.0.0.1:50051")]
        grpc_addr: SocketAddr,
        /// HTTP listen address (OCSP and CRLs).
        #[arg(long, default_value = "127.0.0.1:8080")]
        http_addr: SocketAddr,
        /// Metrics listen address.
        #[arg(long, default_value = "127.0.0.1:9090")]
        metrics_addr: SocketAddr,
        /// The 4-information service's listen address (gRPC over mutual TLS).
        #[arg(long, default_value = "127.0.0.1:50052")]
        info_addr: SocketAddr,
        /// Set up the data directory and exit without serving.
        #[arg(long)]
        setup_only: bool,
    },
    /// Run one role, for deployment.
    Serve {
        /// The role.
        role: Role,
        /// TOML configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Check the configuration (every field known and valid) and exit.
        #[arg(long)]
        check: bool,
        /// Print the effective configuration (every field, defaults filled in) and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Load a large synthetic population (records; certificates for a sample) into a data directory.
    Seed {
        /// Number of holders.
        #[arg(long)]
        holders: u64,
        /// Data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// How many of the holders get real certificates (DER); the rest are records only.
        #[arg(long, default_value_t = 1_000)]
        certificates: u64,
        /// Key algorithm of the CAs and holders.
        #[arg(long, default_value = "p256")]
        key_algorithm: KeyAlgorithm,
        /// Seed of the synthetic population.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
    /// Event commands (talk to a running registry).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Certificate commands (talk to a running registry).
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// CRL commands.
    Crl {
        #[command(subcommand)]
        command: CrlCommand,
    },
    /// OCSP commands.
    Ocsp {
        #[command(subcommand)]
        command: OcspCommand,
    },
    /// Compact revocation filters (docs/FILTER.md).
    Filter {
        #[command(subcommand)]
        command: FilterCommand,
    },
    /// The latest-4-information service, as an operator (mutual TLS).
    Info {
        #[command(subcommand)]
        command: info::InfoCommand,
    },
    /// The user-authentication link, as a verifier's operator (mutual TLS):
    /// a serial's status and the holder's pseudonym for this verifier.
    Link {
        #[command(subcommand)]
        command: link::LinkCommand,
    },
    /// The 4-information audit log: export, verify (chain, signed heads,
    /// inclusion, consistency), head.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Usage of the CRL and OCSP endpoints per verifier, for invoices.
    Usage {
        #[command(subcommand)]
        command: audit::UsageCommand,
    },
    /// Witness the audit log: check each signed head against the last one
    /// seen (consistency proof), cosign it or raise an alarm.
    Witness(audit::WitnessArgs),
    /// Administration of the 4-information service: providers and operators.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Backups of the registry's store.
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Ask a running registry for a checkpoint of its store at
    /// DATA_DIR/backups/NAME (consistent, openable; hard links on the same
    /// file system): ship that directory elsewhere. Restore: stop the
    /// registry, put the directory in place of DATA_DIR/db, start it.
    Create {
        /// Registry endpoint.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        /// Checkpoint name (default: the UTC time).
        #[arg(long, default_value = "")]
        name: String,
        /// The endpoint is an info role's internal endpoint: checkpoint its
        /// store (operators, consents, billing, audit log) instead.
        #[arg(long)]
        info: bool,
    },
}

#[derive(Subcommand)]
enum FilterCommand {
    /// A certificate's status from its issuer's filters, verified: prints
    /// good (exit 0), revoked (3) or not covered (4: ask OCSP); 1 on an
    /// error (a filter refused, a certificate of another issuer).
    Check(filter::CheckArgs),
}

#[derive(Subcommand)]
enum OcspCommand {
    /// Ask an OCSP responder about one certificate (HTTP POST), verify the
    /// answer (signature by the issuer or its delegated responder, nonce) and
    /// print the status.
    Check {
        /// The issuing CA's certificate (PEM or DER).
        #[arg(long)]
        issuer: PathBuf,
        /// The certificate asked about (PEM or DER).
        #[arg(long)]
        cert: PathBuf,
        /// The responder's URL.
        #[arg(long, default_value = "http://127.0.0.1:8080/ocsp")]
        url: String,
        /// Send no nonce (the answer may then come from a cache).
        #[arg(long)]
        no_nonce: bool,
    },
    /// Issue the delegated OCSP responder certificates again, for days, where
    /// the issuing CA keys are (a data directory): `certs/ISSUER-ocsp.der`
    /// (and with --new-key a new `keys/ISSUER-ocsp.key`). Running responders
    /// reading these files rotate to them without a restart.
    RenewResponder {
        /// Data directory holding the issuing CAs' keys and the responder files.
        #[arg(long)]
        data_dir: PathBuf,
        /// Issuers (sign, auth, phone-sign, phone-auth); default all four.
        #[arg(long)]
        issuer: Vec<String>,
        /// Use a new responder key (else the current one).
        #[arg(long)]
        new_key: bool,
    },
}

#[derive(Subcommand)]
enum CrlCommand {
    /// Build and publish CRLs now: full CRLs (with every partition and a fresh
    /// delta), or with --delta a delta against the last full CRL. Either from
    /// a data directory (nothing else may have its store open) or by asking a
    /// running platform (--endpoint).
    #[command(group(clap::ArgGroup::new("source").required(true).args(["data_dir", "endpoint"])))]
    Build {
        /// Data directory (its CRLs are written to DATA_DIR/crl).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A running platform's gRPC endpoint (e.g. http://127.0.0.1:50051).
        #[arg(long)]
        endpoint: Option<String>,
        /// Only these issuers (repeatable): sign, auth, phone-sign, phone-auth.
        #[arg(long)]
        issuer: Vec<CertKind>,
        /// Build delta CRLs instead of full ones.
        #[arg(long)]
        delta: bool,
        /// Print every partition CRL, not one line per issuer.
        #[arg(long)]
        verbose: bool,
        /// With --data-dir: the public HTTP base of the CRLs, for the
        /// freshestCRL pointer of full CRLs (BASE/crl/ISSUER/delta.crl).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        public_url: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Role {
    /// The registry: the store, ingest, status, change feed.
    Registry,
    /// The CRL publisher: follows the registry, builds, signs and serves CRLs.
    Crl,
    /// The CRLs a crl role published, served over HTTP from its output directory; no keys, no registry.
    CrlHttp,
    /// The OCSP responder: follows the registry into its status index, answers over HTTP and gRPC.
    Ocsp,
    /// The 4-information service: follows the registry's writes into a replica store, answers operators over mutual TLS.
    Info,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Ingest events from a JSON Lines file (or a JSON array; `-` for stdin).
    Ingest {
        /// The file.
        file: PathBuf,
        /// Registry endpoint.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        /// Events per request.
        #[arg(long, default_value_t = 1_000)]
        batch_size: usize,
        /// Apply a batch only if every event in it is accepted.
        #[arg(long)]
        all_or_nothing: bool,
    },
}

#[derive(Subcommand)]
enum CertCommand {
    /// The status of one certificate: by --cert FILE, or by --issuer and SERIAL (hex).
    Status {
        /// Serial number in hexadecimal.
        serial: Option<Serial>,
        /// Issuer id: sign, auth, phone-sign, phone-auth.
        #[arg(long)]
        issuer: Option<CertKind>,
        /// A certificate file (PEM or DER); issuer and serial are read from it.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Registry endpoint.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("bad arguments");
            eprintln!("shikko: {}", first.trim_start_matches("error: "));
            eprintln!("(see shikko --help)");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shikko: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(msg)) => {
            eprintln!("shikko: {msg}");
            ExitCode::from(EXIT_CONFIG as u8)
        }
        Err(Failure::Other(e)) => {
            eprintln!("shikko: {e:#}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Config(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    identity::choose(identity::IdentityChoice {
        dir: cli.identity_dir,
        name: cli.identity,
    });
    match cli.command {
        Command::Demo {
            data_dir,
            holders,
            key_algorithm,
            seed,
            grpc_addr,
            http_addr,
            metrics_addr,
            info_addr,
            setup_only,
        } => {
            init_logs(&TelemetryConfig::default())?;
            demo::run(demo::DemoOptions {
                data_dir,
                holders,
                key_algorithm,
                seed,
                grpc: grpc_addr,
                http: http_addr,
                metrics: metrics_addr,
                info: info_addr,
                setup_only,
            })
            .await?;
        }
        Command::Serve {
            role,
            config,
            check,
            print_config,
        } => match role {
            Role::Registry => {
                let Some(cfg) =
                    role_config::<config::RegistryRoleConfig>(&config, check, print_config)?
                else {
                    return Ok(());
                };
                serve::serve_registry(cfg, signal_shutdown()).await?;
            }
            Role::Info => {
                let Some(cfg) = role_config::<shikko_info::process::InfoRoleConfig>(
                    &config,
                    check,
                    print_config,
                )?
                else {
                    return Ok(());
                };
                shikko_info::process::serve(cfg, signal_shutdown())
                    .await
                    .map_err(anyhow::Error::from)?;
            }
            Role::Crl => {
                let Some(cfg) = role_config::<shikko_crl::process::CrlRoleConfig>(
                    &config,
                    check,
                    print_config,
                )?
                else {
                    return Ok(());
                };
                shikko_crl::process::serve(cfg, signal_shutdown())
                    .await
                    .map_err(anyhow::Error::from)?;
            }
            Role::CrlHttp => {
                let Some(cfg) = role_config::<shikko_crl::http_role::CrlHttpRoleConfig>(
                    &config,
                    check,
                    print_config,
                )?
                else {
                    return Ok(());
                };
                shikko_crl::http_role::serve(cfg, signal_shutdown())
                    .await
                    .map_err(anyhow::Error::from)?;
            }
            Role::Ocsp => {
                let Some(cfg) = role_config::<shikko_ocsp::process::OcspRoleConfig>(
                    &config,
                    check,
                    print_config,
                )?
                else {
                    return Ok(());
                };
                shikko_ocsp::process::serve(cfg, signal_shutdown())
                    .await
                    .map_err(anyhow::Error::from)?;
            }
        },
        Command::Seed {
            holders,
            data_dir,
            certificates,
            key_algorithm,
            seed,
        } => {
            init_logs(&TelemetryConfig::default())?;
            seed::run(&data_dir, holders, certificates, key_algorithm, seed).await?;
        }
        Command::Events {
            command:
                EventsCommand::Ingest {
                    file,
                    endpoint,
                    batch_size,
                    all_or_nothing,
                },
        } => client::ingest(&endpoint, &file, batch_size, all_or_nothing).await?,
        Command::Cert {
            command:
                CertCommand::Status {
                    serial,
                    issuer,
                    cert,
                    endpoint,
                },
        } => client::status(&endpoint, issuer, serial, cert.as_deref()).await?,
        Command::Ocsp {
            command:
                OcspCommand::Check {
                    issuer,
                    cert,
                    url,
                    no_nonce,
                },
        } => tokio::task::block_in_place(|| ocsp::check(&issuer, &cert, &url, !no_nonce))?,
        Command::Ocsp {
            command:
                OcspCommand::RenewResponder {
                    data_dir,
                    issuer,
                    new_key,
                },
        } => ocsp::renew_responders(&data_dir, &issuer, new_key)?,
        Command::Filter {
            command: FilterCommand::Check(args),
        } => {
            let code = filter::check(&args).await?;
            if code != 0 {
                std::process::exit(code);
            }
        }
        Command::Info { command } => info::run(command).await?,
        Command::Link { command } => link::run(command).await?,
        Command::Audit { command } => audit::audit(command).await?,
        Command::Witness(args) => audit::witness(args).await?,
        Command::Usage { command } => audit::usage(command).await?,
        Command::Admin { command } => admin::admin(command).await?,
        Command::Backup {
            command:
                BackupCommand::Create {
                    endpoint,
                    name,
                    info,
                },
        } => client::checkpoint(&endpoint, name, info).await?,
        Command::Crl {
            command:
                CrlCommand::Build {
                    data_dir,
                    endpoint,
                    issuer,
                    delta,
                    verbose,
                    public_url,
                },
        } => match (data_dir, endpoint) {
            (Some(dir), None) => {
                init_logs(&TelemetryConfig {
                    log_filter: "warn".into(),
                    ..TelemetryConfig::default()
                })?;
                tokio::task::block_in_place(|| {
                    crl::build_local(&dir, &issuer, delta, verbose, &public_url)
                })?
            }
            (None, Some(ep)) => crl::build_remote(&ep, &issuer, delta, verbose).await?,
            _ => {
                return Err(Failure::Config(
                    "give either --data-dir or --endpoint".into(),
                ));
            }
        },
    }
    Ok(())
}

/// Reads and validates a role's configuration; with `--check` or
/// `--print-config` says so (or prints it) and returns `None`; otherwise
/// starts the logs and returns it, for the role to serve.
fn role_config<C: shikko_runtime::RoleConfig>(
    path: &std::path::Path,
    check: bool,
    print: bool,
) -> Result<Option<C>, Failure> {
    let cfg: C = shikko_runtime::load_toml(path).map_err(|e| Failure::Config(e.to_string()))?;
    cfg.validate().map_err(Failure::Config)?;
    if check || print {
        config_ok(path, print.then_some(&cfg))?;
        return Ok(None);
    }
    init_logs(cfg.telemetry())?;
    Ok(Some(cfg))
}

/// A shutdown triggered by SIGTERM or Ctrl-C.
fn signal_shutdown() -> shikko_runtime::Shutdown {
    let shutdown = shikko_runtime::Shutdown::new();
    shutdown.trigger_on_signal();
    shutdown
}

/// `--check` (and `--print-config`): the configuration parsed and validated.
fn config_ok(path: &std::path::Path, print: Option<&impl serde::Serialize>) -> Result<(), Failure> {
    match print {
        Some(cfg) => print!(
            "{}",
            toml::to_string_pretty(cfg).map_err(|e| Failure::Other(e.into()))?
        ),
        None => println!("{}: configuration OK", path.display()),
    }
    Ok(())
}

fn init_logs(cfg: &TelemetryConfig) -> Result<(), Failure> {
    shikko_runtime::telemetry::init_tracing(cfg).map_err(|e| Failure::Config(e.to_string()))?;
    Ok(())
}
