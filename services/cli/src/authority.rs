//! The key and certificate material of a data directory: the four issuing CAs,
//! their delegated OCSP responders, the operator CA with one operator client
//! and the servers' TLS certificate, the internal CA with one short-lived
//! certificate per internal identity (renewed when due), and a small pool of
//! holder keys.
//!
//! Created on first use and loaded afterwards, so a data directory keeps its
//! keys. Private keys are PKCS#8 files with mode 0600 under `DIR/keys/`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use shikko_core::{CertKind, Serial, UnixTime};
use shikko_pki::{
    DataDir, InternalRole, Issuer, KeyAlgorithm, RoleCertRequest, Signer, SoftwareSigner,
};

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
    /// The internal CA, separate from the issuing and operator CAs.
    pub(crate) internal_ca_der: Vec<u8>,
    /// One short-lived certificate per internal identity (`certs/role-NAME.der`).
    pub(crate) identities: Vec<(InternalRole, Vec<u8>)>,
}

/// How long an internal identity's certificate lives; it is renewed (same
/// key) when less than a third of that is left.
const IDENTITY_DAYS: i64 = 7;

/// How long a delegated OCSP responder certificate lives: days, so that a
/// stolen responder key is useless soon (issue 12, item 4); renewed (same
/// key) when less than a third is left, and rotated into running
/// responders from the files (`[ocsp] responder_reload_secs`).
pub(crate) const RESPONDER_DAYS: i64 = 7;

/// The delegated OCSP responder certificate of `ca` (`certs/ISSUER-ocsp.der`,
/// key `keys/ISSUER-ocsp.key`): issued for [`RESPONDER_DAYS`] when missing,
/// due for renewal, or with `force`; with `new_key`, for a new key (written
/// before the certificate: a responder reading the files in between sees a
/// pair that does not match, refuses it and keeps its own until the
/// certificate follows).
pub(crate) fn responder(
    dir: &Path,
    ca: &Ca,
    n: u128,
    alg: KeyAlgorithm,
    force: bool,
    new_key: bool,
) -> Result<Vec<u8>> {
    let id = ca.kind.issuer_id();
    let name = format!("{id}-ocsp");
    let data = DataDir::new(dir);
    let path = data.cert_path(&name);
    let now = UnixTime::now();
    if !force && !new_key && path.exists() {
        let der = std::fs::read(&path)?;
        let left = shikko_pki::not_after_of(&der)?.0 - now.0;
        if left > RESPONDER_DAYS * 86_400 / 3 {
            return Ok(der);
        }
    }
    let key = if new_key {
        let k = SoftwareSigner::generate(alg)?;
        k.save(&data.key_path(&name))?;
        Arc::new(k)
    } else {
        key(dir, &name, alg)?
    };
    // A renewal gets a new serial: the time in seconds, above the fixed ones.
    let serial = (0x2_0000_0000 + u128::try_from(now.0).unwrap_or(0)) << 8 | n;
    let der = shikko_pki::ocsp_responder_certificate(
        &ca.issuer()?,
        key.public_key_der(),
        Serial::from_u128(serial)?,
        now.plus_secs(-3_600),
        now.plus_secs(RESPONDER_DAYS * 86_400),
        &format!("Shikko OCSP Responder ({id})"),
    )?;
    shikko_pki::write_file_atomic(&path, &der, 0o644)?;
    Ok(der)
}

/// The certificate of `role` (`certs/role-NAME.der`, key `keys/role-NAME.key`),
/// issued again when missing or due for renewal.
fn identity(
    dir: &Path,
    issuer: &Issuer<'_>,
    role: InternalRole,
    alg: KeyAlgorithm,
    n: u128,
) -> Result<Vec<u8>> {
    let name = format!("role-{role}");
    let key = key(dir, &name, alg)?;
    let path = DataDir::new(dir).cert_path(&name);
    let now = UnixTime::now();
    if path.exists() {
        let der = std::fs::read(&path)?;
        let left = shikko_pki::not_after_of(&der)?.0 - now.0;
        if left > IDENTITY_DAYS * 86_400 / 3 {
            return Ok(der);
        }
    }
    let localhost = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let (dns, ips): (&[&str], &[IpAddr]) = if role.serves() {
        (&["localhost"], &localhost)
    } else {
        (&[], &[])
    };
    // A renewal gets a new serial: the time in seconds, below the fixed ones' range.
    let serial = (0x1_0000_0000 + u128::try_from(now.0).unwrap_or(0)) << 8 | n;
    let der = shikko_pki::role_certificate(
        issuer,
        &RoleCertRequest {
            role,
            dns_names: dns,
            ip_addresses: ips,
            subject_public_key: key.public_key_der(),
            serial: Serial::from_u128(serial)?,
            not_before: now.plus_secs(-3_600),
            not_after: now.plus_secs(IDENTITY_DAYS * 86_400),
        },
    )?;
    shikko_pki::write_file_atomic(&path, &der, 0o644)?;
    Ok(der)
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
            let resp_der = responder(dir, &ca, i as u128, alg, false, false)?;
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
        let internal_key = key(dir, "internal-ca", alg)?;
        let internal_ca_der = cert(dir, "internal-ca", || {
            Ok(shikko_pki::internal_ca_certificate(
                internal_key.as_ref(),
                serial(0x400)?,
                start,
                start.plus_secs(10 * YEAR),
            )?)
        })?;
        let internal = Issuer::from_certificate(internal_key.as_ref(), &internal_ca_der)?;
        let identities = InternalRole::ALL
            .into_iter()
            .enumerate()
            .map(|(i, role)| Ok((role, identity(dir, &internal, role, alg, i as u128)?)))
            .collect::<Result<Vec<_>>>()?;
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
            internal_ca_der,
            identities,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_identity_due_for_renewal_is_issued_again_with_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = Authority::open_or_create(dir.path(), KeyAlgorithm::EcdsaP256).unwrap();
        let (role, der) = first.identities[5].clone();
        assert_eq!(role, InternalRole::Admin);
        let now = UnixTime::now();
        let left = shikko_pki::not_after_of(&der).unwrap().0 - now.0;
        assert!((IDENTITY_DAYS * 86_400 - 120..=IDENTITY_DAYS * 86_400).contains(&left));

        // Reopened while fresh: the same certificate.
        let again = Authority::open_or_create(dir.path(), KeyAlgorithm::EcdsaP256).unwrap();
        assert_eq!(again.identities[5].1, der);

        // A certificate with a day left (less than a third of its life): renewed.
        let data = DataDir::new(dir.path());
        let ca_key = data.load_key("internal-ca").unwrap();
        let issuer = Issuer::from_certificate(&ca_key, &first.internal_ca_der).unwrap();
        let key = data.load_key("role-admin").unwrap();
        let short = shikko_pki::role_certificate(
            &issuer,
            &RoleCertRequest {
                role: InternalRole::Admin,
                dns_names: &[],
                ip_addresses: &[],
                subject_public_key: key.public_key_der(),
                serial: Serial::from_u128(7).unwrap(),
                not_before: now.plus_secs(-6 * 86_400),
                not_after: now.plus_secs(86_400),
            },
        )
        .unwrap();
        std::fs::write(data.cert_path("role-admin"), &short).unwrap();
        let renewed = Authority::open_or_create(dir.path(), KeyAlgorithm::EcdsaP256).unwrap();
        let new = &renewed.identities[5].1;
        assert_ne!(new, &short);
        assert!(shikko_pki::not_after_of(new).unwrap().0 - now.0 > 6 * 86_400);
        assert_eq!(std::fs::read(data.cert_path("role-admin")).unwrap(), *new);
        let spki = |der: &[u8]| {
            use shikko_pki::x509_cert::der::{Decode, Encode};
            shikko_pki::x509_cert::Certificate::from_der(der)
                .unwrap()
                .tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .unwrap()
        };
        assert_eq!(spki(new), spki(&der), "the key is kept");
        assert_eq!(
            shikko_pki::identity_of(new).unwrap(),
            Some(InternalRole::Admin)
        );
    }
}
