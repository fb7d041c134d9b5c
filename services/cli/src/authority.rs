//! The key and certificate material of a data directory: the four issuing CAs,
//! their delegated OCSP responders, the operator CA with one operator client
//! and the servers' TLS certificate, and a small pool of holder keys.
//!
//! Created on first use and loaded afterwards, so a data directory keeps its
//! keys. Private keys are PKCS#8 files with mode 0600 under `DIR/keys/`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use shikko_core::{CertKind, Serial, UnixTime};
use shikko_pki::{DataDir, Issuer, KeyAlgorithm, Signer, SoftwareSigner};

/// How many distinct holder keys synthetic holders share (see the README: keys
/// are reused so that a population of millions needs no millions of RSA keygens).
pub(crate) const HOLDER_KEY_POOL: usize = 8;

const YEAR: i64 = 365 * 86_400;

/// One issuing CA (the data directory's layout is read by `shikko_pki::DataDir`).
pub(crate) type Ca = shikko_pki::IssuingCa;

/// Everything cryptographic a demo or seeded directory needs.
pub(crate) struct Authority {
    pub(crate) dir: PathBuf,
    pub(crate) cas: Vec<Ca>,
    pub(crate) holder_keys: Vec<Arc<SoftwareSigner>>,
    pub(crate) responder_certs: Vec<Vec<u8>>,
    pub(crate) operator_ca_der: Vec<u8>,
    pub(crate) operator_der: Vec<u8>,
    pub(crate) server_der: Vec<u8>,
}

fn key(dir: &Path, name: &str, alg: KeyAlgorithm) -> Result<Arc<SoftwareSigner>> {
    let path = DataDir::new(dir).key_path(name);
    if path.exists() {
        return Ok(Arc::new(
            SoftwareSigner::load(&path)
                .with_context(|| format!("loading key {}", path.display()))?,
        ));
    }
    let signer = SoftwareSigner::generate(alg)?;
    signer
        .save(&path)
        .with_context(|| format!("saving key {}", path.display()))?;
    Ok(Arc::new(signer))
}

fn cert(dir: &Path, name: &str, make: impl FnOnce() -> Result<Vec<u8>>) -> Result<Vec<u8>> {
    let path = DataDir::new(dir).cert_path(name);
    if path.exists() {
        return Ok(std::fs::read(&path)?);
    }
    let der = make()?;
    shikko_pki::write_file_atomic(&path, &der, 0o644)?;
    Ok(der)
}

fn serial(n: u128) -> Result<Serial> {
    Ok(Serial::from_u128(n)?)
}

/// The four issuing CAs of an existing data directory, loaded only: a missing
/// key or certificate is an error, never replaced by a new one (a CRL signed
/// by a fresh key would be refused by every relying party).
pub(crate) fn load_cas(dir: &Path) -> Result<Vec<Ca>> {
    DataDir::new(dir)
        .issuing_cas()
        .with_context(|| format!("loading the issuing CAs of {}", dir.display()))
}

impl Authority {
    /// Loads the material of `dir`, creating what is missing with `alg` keys.
    pub(crate) fn open_or_create(dir: &Path, alg: KeyAlgorithm) -> Result<Authority> {
        for sub in ["keys", "certs"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let now = UnixTime::now();
        let start = UnixTime(now.0 - now.0 % 86_400 - 86_400);
        let mut cas = Vec::new();
        let mut responder_certs = Vec::new();
        for (i, kind) in CertKind::ALL.into_iter().enumerate() {
            let id = kind.issuer_id();
            let signer = key(dir, &format!("{id}-ca"), alg)?;
            let cert_der = cert(dir, &format!("{id}-ca"), || {
                Ok(shikko_pki::ca_certificate(
                    kind,
                    signer.as_ref(),
                    serial(0x100 + i as u128)?,
                    start,
                    start.plus_secs(20 * YEAR),
                )?)
            })?;
            let ca = Ca {
                kind,
                signer,
                cert_der,
            };
            let responder = key(dir, &format!("{id}-ocsp"), alg)?;
            let resp_der = cert(dir, &format!("{id}-ocsp"), || {
                Ok(shikko_pki::ocsp_responder_certificate(
                    &ca.issuer()?,
                    responder.public_key_der(),
                    serial(0x200 + i as u128)?,
                    start,
                    start.plus_secs(YEAR),
                    &format!("Shikko OCSP Responder ({id})"),
                )?)
            })?;
            responder_certs.push(resp_der);
            cas.push(ca);
        }
        let op_ca_key = key(dir, "operator-ca", alg)?;
        let operator_ca_der = cert(dir, "operator-ca", || {
            Ok(shikko_pki::operator_ca_certificate(
                op_ca_key.as_ref(),
                serial(0x300)?,
                start,
                start.plus_secs(10 * YEAR),
            )?)
        })?;
        let op_issuer = Issuer::from_certificate(op_ca_key.as_ref(), &operator_ca_der)?;
        let op_key = key(dir, "operator", alg)?;
        let operator_der = cert(dir, "operator", || {
            Ok(shikko_pki::operator_client_certificate(
                &op_issuer,
                "demo-operator",
                None,
                op_key.public_key_der(),
                serial(0x301)?,
                start,
                start.plus_secs(2 * YEAR),
            )?)
        })?;
        let server_key = key(dir, "server", alg)?;
        let server_der = cert(dir, "server", || {
            Ok(shikko_pki::server_certificate(
                &op_issuer,
                &["localhost"],
                &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
                server_key.public_key_der(),
                serial(0x302)?,
                start,
                start.plus_secs(2 * YEAR),
            )?)
        })?;
        let holder_keys = (0..HOLDER_KEY_POOL)
            .map(|i| key(dir, &format!("holder-pool-{i}"), alg))
            .collect::<Result<Vec<_>>>()?;
        Ok(Authority {
            dir: dir.to_path_buf(),
            cas,
            holder_keys,
            responder_certs,
            operator_ca_der,
            operator_der,
            server_der,
        })
    }
}
