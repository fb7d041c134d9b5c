//! The one process harness of the tests that run `shikko` for real (the
//! CLI's tests and the end-to-end tests): run the binary, start
//! `shikko serve ROLE` or `shikko demo` as child processes on ports the OS
//! picks, and read the addresses they print. Children are killed on drop.
#![allow(missing_docs)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The `shikko` binary of this build: `$SHIKKO_BIN`, or `shikko` in the
/// target directory the running test was built into (cargo builds it with
/// the workspace: `cargo test --workspace --profile dev`).
pub fn shikko_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SHIKKO_BIN") {
        return PathBuf::from(p);
    }
    // target/PROFILE/deps/TEST-HASH -> target/PROFILE/shikko
    let exe = std::env::current_exe().expect("the test's own path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test runs from target/PROFILE/deps")
        .join(format!("shikko{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it with the workspace (cargo test --workspace --profile dev)",
        bin.display()
    );
    bin
}

/// `shikko` as a command to run.
pub fn shikko() -> Command {
    Command::new(shikko_bin())
}

pub fn run(args: &[&str]) -> Output {
    shikko().args(args).output().expect("shikko runs")
}

/// A `shikko serve registry` child process on loopback ports chosen by the OS.
pub struct RegistryProcess {
    pub child: Child,
    pub endpoint: String,
    pub metrics: String,
}

/// The registry's configuration over `data_dir`, written into `dir`.
pub fn write_config(dir: &Path, data_dir: &Path) -> PathBuf {
    crate::roles::Loopback::new(dir)
        .registry(data_dir)
        .expect("writing the registry's configuration")
}

/// Starts `BIN serve ROLE --config CONFIG` and reads the line it prints
/// once it listens ("ROLE listening grpc=... http=... metrics=...").
fn spawn_listening(
    bin: &Path,
    role: &str,
    config: &Path,
    stderr: Stdio,
) -> io::Result<(Child, String)> {
    let mut child = Command::new(bin)
        .args(["serve", role, "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    if line.is_empty() {
        let _ = child.kill();
        let status = child.wait()?;
        return Err(io::Error::other(format!(
            "the {role} role exited before listening ({status})"
        )));
    }
    Ok((child, line))
}

/// The value of `name=` in a listening line.
fn listening_field(line: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .map(str::to_owned)
}

pub fn start_registry(config: &Path) -> RegistryProcess {
    let (child, line) = spawn_listening(&shikko_bin(), "registry", config, Stdio::inherit())
        .expect("the registry starts");
    let field = |name: &str| {
        listening_field(&line, name).unwrap_or_else(|| panic!("no {name}= in {line:?}"))
    };
    RegistryProcess {
        endpoint: format!("http://{}", field("grpc")),
        metrics: field("metrics"),
        child,
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A platform over mutual TLS in the making: a demo data directory
/// (`DIR/data`), a test internal CA with every identity
/// (`DIR/identities`), the role configurations presenting them, and the
/// registry serving over them.
pub struct SecureRegistry {
    /// The data directory (`shikko demo --setup-only`, P-256).
    pub data: PathBuf,
    /// The identities.
    pub ids: crate::identities::Identities,
    /// Configurations of further roles, with their identities.
    pub configs: crate::roles::Loopback,
    /// The registry process.
    pub registry: RegistryProcess,
    /// `https://ADDR` of the registry.
    pub url: String,
    /// `ADDR` of the registry.
    pub addr: String,
}

/// Sets up a [`SecureRegistry`] in `dir`; `prepare` runs on the identities
/// before any configuration is written (to revoke some, say).
pub fn start_secure_registry(
    dir: &Path,
    prepare: impl FnOnce(&crate::identities::Identities),
) -> SecureRegistry {
    let data = dir.join("data");
    setup_demo_dir(&data);
    let ids =
        crate::identities::Identities::create(&dir.join("identities")).expect("test identities");
    prepare(&ids);
    let configs = crate::roles::Loopback::new(dir).with_identities(&ids);
    let registry = start_registry(
        &configs
            .registry(&data)
            .expect("the registry's configuration"),
    );
    let addr = registry.endpoint.trim_start_matches("http://").to_string();
    SecureRegistry {
        data,
        url: format!("https://{addr}"),
        addr,
        ids,
        configs,
        registry,
    }
}

/// A plain HTTP/1.1 GET: (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&raw[9..12]).parse().unwrap();
    (status, raw[split + 4..].to_vec())
}

/// `shikko demo --setup-only` with a small P-256 population in `data`.
/// `shikko crl build --endpoint ENDPOINT ARGS...`, retried while the crl
/// role's mirror catches up with the registry (30 s at most); its stdout.
pub fn crl_build_when_ready(endpoint: &str, args: &[&str]) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut all = vec!["crl", "build", "--endpoint", endpoint];
        all.extend_from_slice(args);
        let out = run(&all);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains("catching up"), "{err}");
        assert!(
            std::time::Instant::now() < deadline,
            "the mirror never caught up: {err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

pub fn setup_demo_dir(data: &Path) {
    let out = run(&[
        "demo",
        "--setup-only",
        "--holders",
        "300",
        "--key-algorithm",
        "p256",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `shikko serve ROLE` child process (crl, ocsp) and the line it prints
/// with its bound addresses ("ROLE listening http=... grpc=... metrics=...").
pub struct RoleProcess {
    pub child: Child,
    pub line: String,
}

impl RoleProcess {
    /// Starts `BIN serve ROLE --config CONFIG` (its standard error to
    /// `stderr`) and waits for its listening line; an error if it exits first.
    pub fn spawn(bin: &Path, role: &str, config: &Path, stderr: Stdio) -> io::Result<RoleProcess> {
        let (child, line) = spawn_listening(bin, role, config, stderr)?;
        Ok(RoleProcess { child, line })
    }

    /// The value of `name=` in the listening line, if it has one.
    pub fn try_field(&self, name: &str) -> Option<String> {
        listening_field(&self.line, name)
    }

    /// The value of `name=` in the listening line.
    pub fn field(&self, name: &str) -> String {
        self.try_field(name)
            .unwrap_or_else(|| panic!("no {name}= in {:?}", self.line))
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `shikko serve ROLE --config CONFIG` of this build.
pub fn start_role(role: &str, config: &Path) -> RoleProcess {
    RoleProcess::spawn(&shikko_bin(), role, config, Stdio::inherit())
        .unwrap_or_else(|e| panic!("the {role} role starts: {e}"))
}

/// The serial (hex, as written) of the revocation in `samples/example-events.jsonl`.
pub fn example_event_serial(samples: &Path) -> String {
    let event = std::fs::read_to_string(samples.join("example-events.jsonl")).unwrap();
    event
        .split("\"serial\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the example event names a serial")
        .to_string()
}

/// A `shikko demo` child process on loopback ports chosen by the OS, and its endpoints.
pub struct Demo {
    pub child: std::process::Child,
    /// `https://ADDR` of the registry's gRPC (mutual TLS).
    pub grpc: String,
    /// `ADDR` of HTTP (CRLs, OCSP).
    pub http: String,
    /// `https://ADDR` of the 4-information service.
    pub info: String,
    /// Its `samples/` directory (the internal identities among them).
    pub samples: PathBuf,
}

impl Demo {
    /// `shikko ARGS` presenting the demo's identities (`SHIKKO_IDENTITY_DIR`
    /// is its `samples/`), as a user does from the demo's directory.
    pub fn run(&self, args: &[&str]) -> Output {
        shikko()
            .env("SHIKKO_IDENTITY_DIR", &self.samples)
            .args(args)
            .output()
            .expect("shikko runs")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `shikko demo` (P-256, `holders` holders) in `data` and waits until it serves.
pub fn start_demo(data: &Path, holders: &str) -> Demo {
    let mut child = shikko()
        .args([
            "demo",
            "--holders",
            holders,
            "--key-algorithm",
            "p256",
            "--data-dir",
        ])
        .arg(data)
        .args([
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--info-addr",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut grpc, mut http, mut info) = (None, None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("registry gRPC") {
            grpc = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(rest) = t.strip_prefix("CRLs (HTTP)") {
            let url = rest.trim().strip_prefix("http://").unwrap();
            http = Some(url.split('/').next().unwrap().to_string());
        }
        if let Some(rest) = t.strip_prefix("4-information ") {
            let url = rest.split_whitespace().next().unwrap();
            if url.starts_with("https://") {
                info.get_or_insert_with(|| url.to_string());
            }
        }
        if line.starts_with("Serving.") {
            break;
        }
    }
    Demo {
        child,
        grpc: grpc.expect("gRPC endpoint printed"),
        http: http.expect("HTTP printed"),
        info: info.expect("4-information endpoint printed"),
        samples: data.join("samples"),
    }
}

/// The registry's change records from the first up to sequence number
/// `last`, read through `Follow`, as event id -> sequence number: what a
/// test compares with what was acknowledged.
pub async fn event_seqs(
    client: &mut shikko_proto::v1::registry_client::RegistryClient<tonic::transport::Channel>,
    last: u64,
) -> std::collections::HashMap<String, u64> {
    let mut feed = client
        .follow(shikko_proto::v1::FollowRequest {
            from_seq: 1,
            max_batch: 10_000,
            ..Default::default()
        })
        .await
        .expect("Follow")
        .into_inner();
    let mut stored = std::collections::HashMap::new();
    let mut seen = 0;
    while seen < last {
        let batch = feed
            .message()
            .await
            .expect("a feed batch")
            .expect("the feed goes on");
        for r in batch.records {
            seen = r.seq;
            stored.insert(r.event_id, r.seq);
        }
    }
    stored
}
