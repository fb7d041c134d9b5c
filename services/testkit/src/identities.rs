//! Internal identities for tests (issue 12): an internal CA and one
//! certificate per identity, as PEM files in one directory (`NAME.pem`,
//! `NAME-key.pem`, `internal-ca.pem`), the layout the demo writes into
//! `samples/` and the `shikko` client commands read. Serving identities
//! name `localhost` and 127.0.0.1. P-256 keys, so making them is quick.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use shikko_core::{Serial, UnixTime};
use shikko_pki::{InternalRole, Issuer, KeyAlgorithm, RoleCertRequest, Signer, SoftwareSigner};

/// The identities of a test, in `dir`.
#[derive(Clone, Debug)]
pub struct Identities {
    /// Where the files are.
    pub dir: PathBuf,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

static SERIAL: AtomicU64 = AtomicU64::new(1);

impl Identities {
    /// A new internal CA and a certificate for every internal identity,
    /// valid from an hour ago for a day.
    pub fn create(dir: &Path) -> io::Result<Identities> {
        std::fs::create_dir_all(dir)?;
        let ca = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).map_err(io_err)?;
        let now = UnixTime::now();
        let der = shikko_pki::internal_ca_certificate(
            &ca,
            Serial::from_u128(1).map_err(io_err)?,
            now.plus_secs(-3_600),
            now.plus_secs(30 * 86_400),
        )
        .map_err(io_err)?;
        write_pem(&dir.join("internal-ca.pem"), "CERTIFICATE", &der, 0o644)?;
        ca.save(&dir.join("internal-ca-key.pem")).map_err(io_err)?;
        let ids = Identities {
            dir: dir.to_path_buf(),
        };
        for role in InternalRole::ALL {
            ids.issue(
                role,
                role.as_str(),
                now.plus_secs(-3_600),
                now.plus_secs(86_400),
            )?;
        }
        Ok(ids)
    }

    /// `NAME.pem`.
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }

    /// `NAME-key.pem`.
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-key.pem"))
    }

    /// `internal-ca.pem`.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("internal-ca.pem")
    }

    /// Issues `role`'s certificate valid from `not_before` to `not_after`
    /// as `NAME.pem` with a new key `NAME-key.pem` (written whole, each by
    /// a rename: a process reloading its files sees the old or the new).
    pub fn issue(
        &self,
        role: InternalRole,
        name: &str,
        not_before: UnixTime,
        not_after: UnixTime,
    ) -> io::Result<()> {
        let ca = SoftwareSigner::load(&self.dir.join("internal-ca-key.pem")).map_err(io_err)?;
        let issuer = Issuer::new(&ca, shikko_pki::internal_ca_name()).map_err(io_err)?;
        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).map_err(io_err)?;
        let localhost = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
        let (dns, ips): (&[&str], &[IpAddr]) = if role.serves() {
            (&["localhost"], &localhost)
        } else {
            (&[], &[])
        };
        let serial = 0x100 + u128::from(SERIAL.fetch_add(1, Ordering::Relaxed));
        let der = shikko_pki::role_certificate(
            &issuer,
            &RoleCertRequest {
                role,
                dns_names: dns,
                ip_addresses: ips,
                subject_public_key: key.public_key_der(),
                serial: Serial::from_u128(serial).map_err(io_err)?,
                not_before,
                not_after,
            },
        )
        .map_err(io_err)?;
        key.save(&self.key(name)).map_err(io_err)?;
        write_pem(&self.cert(name), "CERTIFICATE", &der, 0o644)
    }

    /// `internal-ca.crl`: where [`Identities::revoke`] writes the CRL.
    pub fn crl(&self) -> PathBuf {
        self.dir.join("internal-ca.crl")
    }

    /// Writes the internal CA's CRL number `number` listing the current
    /// certificates of `names` as revoked a minute ago (none: an empty
    /// CRL), valid for a day, to [`Identities::crl`] (PEM, by a rename).
    pub fn revoke(&self, names: &[&str], number: u64) -> io::Result<PathBuf> {
        let ca = SoftwareSigner::load(&self.dir.join("internal-ca-key.pem")).map_err(io_err)?;
        let issuer = Issuer::new(&ca, shikko_pki::internal_ca_name()).map_err(io_err)?;
        let now = UnixTime::now();
        let mut revoked = Vec::new();
        for name in names {
            let der =
                shikko_pki::certificate_der(&std::fs::read(self.cert(name))?).map_err(io_err)?;
            let cert = <shikko_pki::x509_cert::Certificate as shikko_pki::x509_cert::der::Decode>::from_der(&der)
                .map_err(io_err)?;
            let serial = Serial::from_be_bytes(cert.tbs_certificate().serial_number().as_bytes())
                .map_err(io_err)?;
            revoked.push((serial, now.plus_secs(-60)));
        }
        let crl = shikko_pki::internal_crl(
            &issuer,
            number,
            now.plus_secs(-120),
            now.plus_secs(86_400),
            &revoked,
        )
        .map_err(io_err)?;
        write_pem(&self.crl(), "X509 CRL", &crl, 0o644)?;
        Ok(self.crl())
    }

    /// A channel to `addr` over TLS, presenting `identity`'s certificate, or
    /// none at all.
    pub async fn channel(
        &self,
        addr: &str,
        identity: Option<&str>,
    ) -> Result<tonic::transport::Channel, tonic::transport::Error> {
        use std::time::Duration;
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
        let read =
            |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(self.ca())))
            .domain_name("localhost");
        if let Some(name) = identity {
            tls = tls.identity(Identity::from_pem(
                read(self.cert(name)),
                read(self.key(name)),
            ));
        }
        Endpoint::from_shared(format!("https://{addr}"))
            .expect("an https URL")
            .tls_config(tls)
            .expect("a TLS configuration")
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .connect()
            .await
    }

    /// The `[tls]` section of a role using identity `name`, files read
    /// again every second; with the internal CA's CRL when
    /// [`Identities::revoke`] has written one.
    pub fn tls_section(&self, name: &str) -> String {
        let crls = if self.crl().exists() {
            format!("crls = [{:?}]\n", self.crl())
        } else {
            String::new()
        };
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\n{crls}reload_secs = 1\n",
            self.cert(name),
            self.key(name),
            self.ca()
        )
    }
}

fn write_pem(path: &Path, label: &str, der: &[u8], mode: u32) -> io::Result<()> {
    let pem = shikko_pki::to_pem(label, der).map_err(io_err)?;
    shikko_pki::write_file_atomic(path, pem.as_bytes(), mode).map_err(io_err)
}
