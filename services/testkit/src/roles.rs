//! The configuration files of `shikko serve ROLE` on loopback, written once
//! for every caller that starts roles as processes (the end-to-end tests and
//! shikko-load): ports the OS picks unless one is given, metrics on loopback,
//! a log filter, and the info role's TLS material in PEM taken from a data
//! directory made by `shikko demo --setup-only` or `shikko seed`.
//!
//! Everything returns `io::Result`, so that a tool can report a failure and a
//! test can unwrap it.

use std::io;
use std::path::{Path, PathBuf};

/// Writes role configurations into one directory.
#[derive(Clone, Debug)]
pub struct Loopback {
    dir: PathBuf,
    log_filter: String,
    trailer: String,
    identities: Option<crate::identities::Identities>,
}

/// The info role's TLS material (PEM files) and the files an operator's
/// client presents.
#[derive(Clone, Debug)]
pub struct InfoTls {
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server's private key (PKCS#8).
    pub key: PathBuf,
    /// The operator CA: the clients the server accepts.
    pub client_ca: PathBuf,
    /// The card signing CA, whose certificates prove consents.
    pub signing_ca: PathBuf,
    /// The smartphone signing CA: consents signed on a phone.
    pub phone_signing_ca: PathBuf,
    /// The demo operator's certificate.
    pub operator_cert: PathBuf,
    /// The demo operator's private key (PKCS#8).
    pub operator_key: PathBuf,
}

fn pem_err(e: shikko_pki::Error) -> io::Error {
    io::Error::other(e.to_string())
}

impl InfoTls {
    /// Writes the TLS material of the data directory `data_dir`
    /// (`certs/*.der`, `keys/*.key`) as PEM files into `out`.
    pub fn from_data_dir(data_dir: &Path, out: &Path) -> io::Result<InfoTls> {
        let data = shikko_pki::DataDir::new(data_dir);
        std::fs::create_dir_all(out)?;
        let cert = |name: &str| -> io::Result<PathBuf> {
            let der = data.read_cert(name).map_err(pem_err)?;
            let path = out.join(format!("{name}.pem"));
            std::fs::write(
                &path,
                shikko_pki::to_pem("CERTIFICATE", &der).map_err(pem_err)?,
            )?;
            Ok(path)
        };
        let key = |name: &str| -> io::Result<PathBuf> {
            let der = data
                .load_key(name)
                .and_then(|k| k.to_pkcs8_der())
                .map_err(pem_err)?;
            let path = out.join(format!("{name}-key.pem"));
            shikko_pki::write_file_atomic(
                &path,
                shikko_pki::to_pem("PRIVATE KEY", &der)
                    .map_err(pem_err)?
                    .as_bytes(),
                0o600,
            )
            .map_err(pem_err)?;
            Ok(path)
        };
        Ok(InfoTls {
            cert: cert("server")?,
            key: key("server")?,
            client_ca: cert("operator-ca")?,
            signing_ca: cert("sign-ca")?,
            phone_signing_ca: cert("phone-sign-ca")?,
            operator_cert: cert("operator")?,
            operator_key: key("operator")?,
        })
    }
}

impl Loopback {
    /// Configurations in `dir`, logging at `warn`.
    pub fn new(dir: &Path) -> Loopback {
        Loopback {
            dir: dir.to_path_buf(),
            log_filter: "warn".into(),
            trailer: String::new(),
            identities: None,
        }
    }

    /// Every role serves and calls over mutual TLS with its identity from
    /// `ids` (without, plaintext: `[tls] insecure_loopback_only = true`).
    pub fn with_identities(mut self, ids: &crate::identities::Identities) -> Loopback {
        self.identities = Some(ids.clone());
        self
    }

    /// Logs at `filter` instead.
    pub fn log_filter(mut self, filter: &str) -> Loopback {
        self.log_filter = filter.into();
        self
    }

    /// Appends `sections` (whole TOML sections) to every file written.
    pub fn with_sections(mut self, sections: &str) -> Loopback {
        self.trailer = sections.into();
        self
    }

    fn write(&self, role: &str, body: &str) -> io::Result<PathBuf> {
        self.write_as(role, role, role, body)
    }

    /// `FILE.toml` with the `[role]` section `body`, presenting `identity`.
    fn write_as(&self, file: &str, role: &str, identity: &str, body: &str) -> io::Result<PathBuf> {
        let path = self.dir.join(format!("{file}.toml"));
        let tls = match &self.identities {
            Some(ids) => ids.tls_section(identity),
            None => "[tls]\ninsecure_loopback_only = true\n".into(),
        };
        std::fs::write(
            &path,
            format!(
                "[{role}]\n{body}\n[telemetry]\nmetrics_listen = \"127.0.0.1:0\"\nlog_filter = {:?}\n\n[shutdown]\ndrain_timeout_secs = 5\n\n{tls}\n{}",
                self.log_filter, self.trailer
            ),
        )?;
        Ok(path)
    }

    /// The registry over `data_dir`, its gRPC on a port the OS picks.
    pub fn registry(&self, data_dir: &Path) -> io::Result<PathBuf> {
        self.registry_on(data_dir, 0)
    }

    /// The registry over `data_dir`, its gRPC on `port` (to restart it where
    /// its followers look for it).
    pub fn registry_on(&self, data_dir: &Path, port: u16) -> io::Result<PathBuf> {
        self.write(
            "registry",
            &format!("data_dir = {data_dir:?}\ngrpc_listen = \"127.0.0.1:{port}\"\n"),
        )
    }

    /// One registry of a pair over `data_dir`, its gRPC on a port the OS
    /// picks, in `FILE.toml`, presenting `identity` (`registry`, or
    /// `standby` for one that links to a primary); `pair` is the body of
    /// its `[registry.pair]` section.
    pub fn registry_in_pair(
        &self,
        file: &str,
        identity: &str,
        data_dir: &Path,
        pair: &str,
    ) -> io::Result<PathBuf> {
        self.write_as(
            file,
            "registry",
            identity,
            &format!(
                "data_dir = {data_dir:?}\ngrpc_listen = \"127.0.0.1:0\"\n\n[registry.pair]\n{pair}\n"
            ),
        )
    }

    /// The OCSP role over `data_dir`'s keys, following `registry`; `more`
    /// adds lines to its section (e.g. `max_stale_secs = 5\n`).
    pub fn ocsp(&self, data_dir: &Path, registry: &str, more: &str) -> io::Result<PathBuf> {
        self.write(
            "ocsp",
            &format!(
                "data_dir = {data_dir:?}\nregistry = {registry:?}\nhttp_listen = \"127.0.0.1:0\"\ngrpc_listen = \"127.0.0.1:0\"\n{more}"
            ),
        )
    }

    /// The CRL role over `data_dir`'s issuing CAs, following `registry`: a
    /// full CRL a day, a delta every `delta_every_secs`; `more` adds lines
    /// to its section (e.g. `public_url = "http://crl.test"\n`).
    pub fn crl(
        &self,
        data_dir: &Path,
        registry: &str,
        delta_every_secs: u64,
        more: &str,
    ) -> io::Result<PathBuf> {
        self.write(
            "crl",
            &format!(
                "data_dir = {data_dir:?}\nregistry = {registry:?}\nhttp_listen = \"127.0.0.1:0\"\ngrpc_listen = \"127.0.0.1:0\"\n\
                 full_every_secs = 86400\ndelta_every_secs = {delta_every_secs}\n{more}"
            ),
        )
    }

    /// The crl-http role serving `crl_dir` (a crl role's `DATA_DIR/crl`),
    /// looking for new CRLs every second. It has no identity: its `[tls]`
    /// section is not written.
    pub fn crl_http(&self, crl_dir: &Path) -> io::Result<PathBuf> {
        let path = self.dir.join("crl-http.toml");
        std::fs::write(
            &path,
            format!(
                "[crl_http]\ncrl_dir = {crl_dir:?}\nhttp_listen = \"127.0.0.1:0\"\nrescan_secs = 1\n\n\
                 [telemetry]\nmetrics_listen = \"127.0.0.1:0\"\nlog_filter = {:?}\n\n[shutdown]\ndrain_timeout_secs = 5\n",
                self.log_filter
            ),
        )?;
        Ok(path)
    }

    /// The info role with its own data directory `info_data_dir` (a replica
    /// of `registry`'s store), serving with `tls`.
    pub fn info(&self, info_data_dir: &Path, registry: &str, tls: &InfoTls) -> io::Result<PathBuf> {
        self.write(
            "info",
            &format!(
                "data_dir = {info_data_dir:?}\nregistry = {registry:?}\ngrpc_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
                 tls_cert = {:?}\ntls_key = {:?}\nclient_ca = {:?}\nsigning_cas = [{:?}]\nphone_signing_cas = [{:?}]\n",
                tls.cert, tls.key, tls.client_ca, tls.signing_ca, tls.phone_signing_ca
            ),
        )
    }
}
