//! The internal identity the client commands present (issue 12): the
//! files `NAME.pem`, `NAME-key.pem` and `internal-ca.pem` in an identity
//! directory: `--identity-dir` or `SHIKKO_IDENTITY_DIR`, else the demo's
//! `./shikko-data/samples` when it is there. The identity is the one the
//! command needs (`authority` to ingest, `auditor` to read the audit log,
//! `admin` for the rest) unless `--identity` / `SHIKKO_IDENTITY` names
//! another. Without identity files, only a plaintext `http://` endpoint can
//! be reached (a platform run with `insecure_loopback_only`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use shikko_pki::InternalRole;
use shikko_runtime::{TlsConfig, TlsFiles};
use tonic::transport::Channel;

/// Where the demo writes its samples, relative to where it was started.
pub(crate) const DEMO_SAMPLES: &str = "./shikko-data/samples";

/// What the command line said.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdentityChoice {
    /// `--identity-dir`.
    pub(crate) dir: Option<PathBuf>,
    /// `--identity`.
    pub(crate) name: Option<String>,
}

static CHOICE: OnceLock<IdentityChoice> = OnceLock::new();

/// Records the command line's choice (once, from `main`).
pub(crate) fn choose(choice: IdentityChoice) {
    let _ = CHOICE.set(choice);
}

/// The identity files of `name` in `dir`, if the certificate is there:
/// `NAME.pem`, `NAME-key.pem`, `internal-ca.pem` (the demo's samples), or
/// else `tls.crt`, `tls.key`, `ca.crt` (a Kubernetes secret as cert-manager
/// writes it: one identity per directory); with the internal CA's CRL,
/// `internal-ca.crl`, when the directory has one (a revoked server is then
/// refused).
fn files_in(dir: &Path, name: &str) -> Option<TlsFiles> {
    let crl = dir.join("internal-ca.crl");
    let crls = if crl.exists() { vec![crl] } else { Vec::new() };
    let cert = dir.join(format!("{name}.pem"));
    if cert.exists() {
        return Some(TlsFiles {
            cert,
            key: dir.join(format!("{name}-key.pem")),
            ca: dir.join("internal-ca.pem"),
            crls,
        });
    }
    let cert = dir.join("tls.crt");
    cert.exists().then(|| TlsFiles {
        cert,
        key: dir.join("tls.key"),
        ca: dir.join("ca.crt"),
        crls,
    })
}

/// The registry (its service, checkpoints, and whatever the demo's one
/// process serves beside it).
pub(crate) const REGISTRY: &[InternalRole] = &[InternalRole::Registry, InternalRole::Standby];
/// InfoAdmin: the info role, or a registry with the info service inside.
pub(crate) const INFO_ADMIN: &[InternalRole] = &[InternalRole::Info, InternalRole::Registry];
/// CrlPublisher: the crl role, or the demo's one process (the registry's identity).
pub(crate) const CRL_PUBLISHER: &[InternalRole] = &[InternalRole::Crl, InternalRole::Registry];

/// A channel to the internal endpoint `endpoint`, presenting the chosen
/// identity, or `default` (`admin`, `authority`, `auditor`) when none was,
/// to a server whose identity is one of `serving`.
pub(crate) async fn channel(
    endpoint: &str,
    default: &str,
    serving: &'static [InternalRole],
) -> Result<Channel> {
    let choice = CHOICE.get().cloned().unwrap_or_default();
    let name = choice.name.as_deref().unwrap_or(default);
    let files = match &choice.dir {
        Some(dir) => match files_in(dir, name) {
            Some(f) => Some(f),
            None => bail!(
                "no identity `{name}` in {}: {name}.pem, {name}-key.pem and internal-ca.pem are needed",
                dir.display()
            ),
        },
        None => files_in(Path::new(DEMO_SAMPLES), name),
    };
    let tls = match files {
        Some(files) => Some(
            shikko_access::client_tls(
                &TlsConfig::with_files(&files),
                shikko_access::expect_server_one_of(serving),
            )
            .with_context(|| format!("the identity `{name}` ({})", files.cert.display()))?
            .context("an identity")?,
        ),
        None if endpoint.starts_with("https://") => bail!(
            "{endpoint} needs an internal identity: none found (run from the demo's directory, \
             or pass --identity-dir DIR with {name}.pem, {name}-key.pem and internal-ca.pem)"
        ),
        None => None,
    };
    shikko_access::connect(endpoint, tls.as_ref(), |ep| {
        ep.connect_timeout(std::time::Duration::from_secs(10))
    })
    .await
    .with_context(|| format!("cannot connect to {endpoint} as `{name}`"))
}
