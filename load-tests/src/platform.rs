//! The platform under load: a population seeded with `shikko seed`, then the
//! four roles as separate processes on loopback (`shikko serve registry`,
//! `ocsp`, `crl`, `info`), configured here, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use shikko_core::{CertKind, HolderState, Serial};
use shikko_population::synthetic::Population;
use shikko_store::Store;
use shikko_testkit::identities::Identities;
use shikko_testkit::process::RoleProcess;
use shikko_testkit::roles::{InfoTls, Loopback};

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
    children: Vec<RoleProcess>,
    pub(crate) registry: String,
    pub(crate) ocsp_http: String,
    pub(crate) crl_http: String,
    pub(crate) info_mtls: String,
    pub(crate) info_admin: String,
    pub(crate) keep: bool,
    /// The internal identities, when every internal call is mutual TLS.
    ids: Option<Identities>,
    /// The roles' configurations, for roles started later.
    configs: Loopback,
    shikko: PathBuf,
}

impl Drop for Platform {
    fn drop(&mut self) {
        // Each role process is killed when dropped.
        self.children.clear();
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

impl Platform {
    /// Starts the four roles over the seeded directory `dir`; with `mtls`,
    /// every internal endpoint and call is mutual TLS, each role and client
    /// with its own identity from a test internal CA (else plaintext,
    /// `insecure_loopback_only`), so that the two can be compared; with
    /// `standby`, the registry is a synchronous pair (the standby, seeded
    /// from it, holds every record before it is acknowledged).
    pub(crate) fn start(
        shikko: &Path,
        dir: &Path,
        keep: bool,
        mtls: bool,
        standby: bool,
    ) -> Result<Platform> {
        let ids = if mtls {
            Some(Identities::create(&dir.join("identities"))?)
        } else {
            None
        };
        let mut p = Platform {
            dir: dir.to_path_buf(),
            children: Vec::new(),
            registry: String::new(),
            ocsp_http: String::new(),
            crl_http: String::new(),
            info_mtls: String::new(),
            info_admin: String::new(),
            keep,
            ids: ids.clone(),
            configs: Loopback::new(dir),
            shikko: shikko.to_path_buf(),
        };
        let mut configs = Loopback::new(dir).log_filter("error");
        if let Some(ids) = &ids {
            configs = configs.with_identities(ids);
        }
        p.configs = configs.clone();
        let scheme = if mtls { "https" } else { "http" };
        let start = |role: &str, cfg: PathBuf| -> Result<RoleProcess> {
            RoleProcess::spawn(shikko, role, &cfg, Stdio::inherit())
                .with_context(|| format!("starting the {role} role"))
        };
        let field = |r: &RoleProcess, name: &str| {
            r.try_field(name)
                .with_context(|| format!("no {name}= in {:?}", r.line))
        };

        if standby {
            let r = start(
                "registry",
                configs.registry_in_pair(
                    "registry",
                    "registry",
                    dir,
                    "require_standby = true\n",
                )?,
            )?;
            p.registry = format!("{scheme}://{}", field(&r, "grpc")?);
            let metrics = field(&r, "metrics")?;
            p.children.push(r);
            let cfg = configs.registry_in_pair(
                "standby",
                "standby",
                &dir.join("standby"),
                &format!("standby_of = {:?}\n", p.registry),
            )?;
            let t = std::time::Instant::now();
            p.children.push(start("registry", cfg)?);
            // Seeded and caught up before anything is measured.
            let deadline = t + std::time::Duration::from_secs(3_600);
            loop {
                let (_, body) = shikko_testkit::process::http_get(&metrics, "/metrics");
                let text = String::from_utf8_lossy(&body);
                if text.contains("shikko_registry_standby_connected 1")
                    && text.contains("shikko_registry_standby_lag_records 0")
                    && !text.contains("shikko_registry_standby_durable_seq 0\n")
                {
                    break;
                }
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "the standby did not catch up"
                );
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            eprintln!(
                "standby seeded and linked in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        } else {
            let r = start("registry", configs.registry(dir)?)?;
            p.registry = format!("{scheme}://{}", field(&r, "grpc")?);
            p.children.push(r);
        }

        let r = start("ocsp", configs.ocsp(dir, &p.registry, "")?)?;
        p.ocsp_http = field(&r, "http")?;
        p.children.push(r);

        let r = start("crl", configs.crl(dir, &p.registry, 60, "")?)?;
        p.crl_http = field(&r, "http")?;
        p.children.push(r);

        // The info role: TLS material in PEM from the seeded authority.
        let tls = InfoTls::from_data_dir(dir, &dir.join("tls"))?;
        let r = start("info", configs.info(&dir.join("info"), &p.registry, &tls)?)?;
        p.info_mtls = format!("https://{}", field(&r, "info")?);
        p.info_admin = format!("{scheme}://{}", field(&r, "grpc")?);
        p.children.push(r);
        Ok(p)
    }

    /// Starts another OCSP role process, following the same registry (as a
    /// new pod would).
    pub(crate) fn spawn_ocsp(&self) -> Result<RoleProcess> {
        let cfg = self.configs.ocsp(&self.dir, &self.registry, "")?;
        RoleProcess::spawn(&self.shikko, "ocsp", &cfg, Stdio::inherit())
            .context("starting another ocsp role")
    }

    /// A channel to the internal endpoint `url` as `identity` (plaintext
    /// when the platform runs without mutual TLS).
    pub(crate) async fn channel(
        &self,
        url: &str,
        identity: &str,
    ) -> Result<tonic::transport::Channel> {
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
        let mut ep = Endpoint::from_shared(url.to_string())?;
        if let Some(ids) = &self.ids {
            ep = ep.tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(std::fs::read(ids.ca())?))
                    .identity(Identity::from_pem(
                        std::fs::read(ids.cert(identity))?,
                        std::fs::read(ids.key(identity))?,
                    ))
                    .domain_name("localhost"),
            )?;
        }
        Ok(ep.connect().await?)
    }

    /// Whether every internal call is mutual TLS.
    pub(crate) fn mtls(&self) -> bool {
        self.ids.is_some()
    }

    /// The PEM file of the TLS material written for the info role.
    pub(crate) fn tls(&self, name: &str) -> Result<Vec<u8>> {
        Ok(std::fs::read(self.dir.join("tls").join(name))?)
    }
}
