//! The platform under load: a population seeded with `shikko seed`, then the
//! four roles as separate processes on loopback (`shikko serve registry`,
//! `ocsp`, `crl`, `info`), configured here, stopped on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use shikko_core::{CertKind, HolderState, Serial};
use shikko_pki::{SoftwareSigner, to_pem};
use shikko_population::synthetic::Population;
use shikko_store::Store;

/// The seed `shikko seed` uses by default.
const SEED: u64 = 2026;

/// What the scenarios need to know of the population (read from the store
/// before the registry opens it).
pub(crate) struct Seeded {
    /// Live, good card user-authentication serials.
    pub(crate) auth_good: Vec<Serial>,
    /// Holders with a live good card signing certificate and its DER:
    /// (index, serial, DER).
    pub(crate) signers: Vec<(u64, Serial, Vec<u8>)>,
}

/// The running platform.
pub(crate) struct Platform {
    pub(crate) dir: PathBuf,
    children: Vec<Child>,
    pub(crate) registry: String,
    pub(crate) ocsp_http: String,
    pub(crate) crl_http: String,
    pub(crate) info_mtls: String,
    pub(crate) info_admin: String,
    pub(crate) keep: bool,
}

impl Drop for Platform {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn run(shikko: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(shikko)
        .args(args)
        .output()
        .with_context(|| format!("running {}", shikko.display()))?;
    if !out.status.success() {
        bail!(
            "shikko {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts `shikko serve ROLE --config CFG` and reads its "listening" line.
fn spawn(shikko: &Path, role: &str, cfg: &Path) -> Result<(Child, String)> {
    let mut child = Command::new(shikko)
        .args(["serve", role, "--config"])
        .arg(cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting the {role} role"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    if line.is_empty() {
        bail!("the {role} role exited before listening");
    }
    Ok((child, line))
}

/// `name=VALUE` of a listening line.
fn field(line: &str, name: &str) -> Result<String> {
    let prefix = format!("{name}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .map(str::to_string)
        .with_context(|| format!("no {name}= in {line:?}"))
}

/// Seeds `holders` holders (the first `certificates` with real certificates)
/// and reads what the scenarios need.
pub(crate) fn seed(shikko: &Path, dir: &Path, holders: u64, certificates: u64) -> Result<Seeded> {
    let d = dir.to_str().context("a UTF-8 directory")?;
    run(
        shikko,
        &[
            "seed",
            "--holders",
            &holders.to_string(),
            "--certificates",
            &certificates.to_string(),
            "--key-algorithm",
            "p256",
            "--data-dir",
            d,
        ],
    )?;
    let store = Store::open(&dir.join("db"))?;
    let pop = Population::new(SEED);
    let mut auth_good = Vec::new();
    let mut signers = Vec::new();
    for i in 0..holders {
        let Some(h) = store.holder(&pop.holder(i).id)? else {
            continue;
        };
        if h.state != HolderState::Active {
            continue;
        }
        let good = |kind: CertKind, s: &Serial| -> Result<bool> {
            Ok(matches!(store.cert(kind, s)?, Some(c) if c.status == shikko_core::CertStatus::Good))
        };
        if let Some(s) = h.live(CertKind::CardAuth)
            && good(CertKind::CardAuth, &s)?
        {
            auth_good.push(s);
        }
        // Signers able to consent now: good, within validity, with their DER.
        let now = shikko_core::UnixTime::now().0 - 3_600;
        if let Some(s) = h.live(CertKind::CardSigning)
            && let Some(c) = store.cert(CertKind::CardSigning, &s)?
            && c.status == shikko_core::CertStatus::Good
            && c.not_before.0 <= now
            && now < c.not_after.0
            && let Some(der) = store.cert_der(CertKind::CardSigning, &s)?
        {
            signers.push((i, s, der));
        }
    }
    Ok(Seeded { auth_good, signers })
}

fn pem_file(dir: &Path, name: &str, label: &str, der: &[u8]) -> Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, to_pem(label, der)?)?;
    Ok(p)
}

impl Platform {
    /// Starts the four roles over the seeded directory `dir`.
    pub(crate) fn start(shikko: &Path, dir: &Path, keep: bool) -> Result<Platform> {
        let mut p = Platform {
            dir: dir.to_path_buf(),
            children: Vec::new(),
            registry: String::new(),
            ocsp_http: String::new(),
            crl_http: String::new(),
            info_mtls: String::new(),
            info_admin: String::new(),
            keep,
        };
        let tel = "[telemetry]\nmetrics_listen = \"127.0.0.1:0\"\nlog_filter = \"error\"\n";
        let cfg = dir.join("registry.toml");
        std::fs::write(
            &cfg,
            format!("[registry]\ndata_dir = {dir:?}\ngrpc_listen = \"127.0.0.1:0\"\n{tel}"),
        )?;
        let (c, line) = spawn(shikko, "registry", &cfg)?;
        p.children.push(c);
        p.registry = format!("http://{}", field(&line, "grpc")?);

        let cfg = dir.join("ocsp.toml");
        std::fs::write(
            &cfg,
            format!(
                "[ocsp]\ndata_dir = {dir:?}\nregistry = {:?}\nhttp_listen = \"127.0.0.1:0\"\ngrpc_listen = \"127.0.0.1:0\"\n{tel}",
                p.registry
            ),
        )?;
        let (c, line) = spawn(shikko, "ocsp", &cfg)?;
        p.children.push(c);
        p.ocsp_http = field(&line, "http")?;

        let cfg = dir.join("crl.toml");
        std::fs::write(
            &cfg,
            format!(
                "[crl]\ndata_dir = {dir:?}\nregistry = {:?}\nhttp_listen = \"127.0.0.1:0\"\ngrpc_listen = \"127.0.0.1:0\"\n\
                 full_every_secs = 86400\ndelta_every_secs = 60\n{tel}",
                p.registry
            ),
        )?;
        let (c, line) = spawn(shikko, "crl", &cfg)?;
        p.children.push(c);
        p.crl_http = field(&line, "http")?;

        // The info role: TLS material in PEM from the seeded authority.
        let tls = dir.join("tls");
        std::fs::create_dir_all(&tls)?;
        let cert = |n: &str| std::fs::read(dir.join("certs").join(format!("{n}.der")));
        let server_key = SoftwareSigner::load(&dir.join("keys/server.key"))?;
        let op_key = SoftwareSigner::load(&dir.join("keys/operator.key"))?;
        let server = pem_file(&tls, "server.pem", "CERTIFICATE", &cert("server")?)?;
        let server_key = pem_file(
            &tls,
            "server-key.pem",
            "PRIVATE KEY",
            &server_key.to_pkcs8_der()?,
        )?;
        let op_ca = pem_file(
            &tls,
            "operator-ca.pem",
            "CERTIFICATE",
            &cert("operator-ca")?,
        )?;
        pem_file(&tls, "operator.pem", "CERTIFICATE", &cert("operator")?)?;
        pem_file(
            &tls,
            "operator-key.pem",
            "PRIVATE KEY",
            &op_key.to_pkcs8_der()?,
        )?;
        let sign_ca = pem_file(&tls, "sign-ca.pem", "CERTIFICATE", &cert("sign-ca")?)?;
        let cfg = dir.join("info.toml");
        std::fs::write(
            &cfg,
            format!(
                "[info]\ndata_dir = {:?}\nregistry = {:?}\ngrpc_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
                 tls_cert = {server:?}\ntls_key = {server_key:?}\nclient_ca = {op_ca:?}\nsigning_cas = [{sign_ca:?}]\n{tel}",
                dir.join("info"),
                p.registry
            ),
        )?;
        let (c, line) = spawn(shikko, "info", &cfg)?;
        p.children.push(c);
        p.info_mtls = format!("https://{}", field(&line, "info")?);
        p.info_admin = format!("http://{}", field(&line, "grpc")?);
        Ok(p)
    }

    /// The PEM file of the TLS material written for the info role.
    pub(crate) fn tls(&self, name: &str) -> Result<Vec<u8>> {
        Ok(std::fs::read(self.dir.join("tls").join(name))?)
    }
}
