//! # shikko-testkit
//!
//! Test helpers every crate's tests share, so that each is written once:
//! the tools no one here wrote, which judge what Shikko emits (`openssl`,
//! and Python `cryptography` and DigiCert's `pkilint` from the venv that
//! `scripts/install-deps` makes), a gRPC reflection client, and the one
//! process harness of the tests that run `shikko` for real ([`process`]) with
//! the role configurations it starts them with ([`roles`]).
//!
//! A dev-dependency of the tests, and a dependency of the load tool
//! (shikko-load, which starts the roles with [`process`] and [`roles`]);
//! never of a crate that ships in the `shikko` binary. It depends on no
//! Shikko crate but `shikko-pki` (for the PEM of a data directory's TLS
//! material), so the tests of every crate above the PKI may use it.
//!
//! ```no_run
//! let text = shikko_testkit::openssl(["version"], std::path::Path::new("."));
//! assert!(text.starts_with("OpenSSL"));
//! let python = shikko_testkit::venv_bin("python");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
// Test helpers: a failure to run a tool is the test's failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod http;
pub mod identities;
pub mod process;
pub mod roles;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `openssl ARGS` in `dir`; returns its standard output and standard
/// error together (openssl reports some failures with exit status 0, so
/// callers read the messages).
pub fn openssl<I, S>(args: I, dir: &Path) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    openssl_status(args, dir).1
}

/// [`openssl`], with whether it exited with status 0.
pub fn openssl_status<I, S>(args: I, dir: &Path) -> (bool, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (scripts/install-deps installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Runs `openssl ocsp ARGS -url URL` in `samples` (where the demo writes
/// `sign-ca.pem`, `sign-good.pem`, ...); returns what it printed.
pub fn openssl_ocsp(samples: &Path, url: &str, args: &[&str]) -> String {
    openssl(
        std::iter::once("ocsp")
            .chain(args.iter().copied())
            .chain(["-url", url]),
        samples,
    )
}

/// Asks for the status of the certificate with serial `serial_hex` issued by
/// `ISSUER-ca.pem` in `samples` (`sign`, `auth`, ...), without a nonce.
pub fn openssl_ocsp_serial(samples: &Path, url: &str, issuer: &str, serial_hex: &str) -> String {
    let ca = format!("{issuer}-ca.pem");
    let serial = format!("0x{serial_hex}");
    openssl_ocsp(
        samples,
        url,
        &[
            "-no_nonce",
            "-issuer",
            &ca,
            "-CAfile",
            &ca,
            "-serial",
            &serial,
        ],
    )
}

/// Calls `done` every 100 ms until it returns true or `secs` pass; whether it did.
pub fn until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Calls `ask` until what it returns contains `want` or `secs` pass; the
/// last answer (for the assertion's message).
pub fn until_contains(secs: u64, want: &str, mut ask: impl FnMut() -> String) -> String {
    let mut last = String::new();
    until(secs, || {
        last = ask();
        last.contains(want)
    });
    last
}

/// The Python venv of the checkers: `$SHIKKO_VENV`, or
/// `~/.cache/shikko/venv` (where `scripts/install-deps` makes it).
pub fn venv() -> PathBuf {
    if let Some(p) = std::env::var_os("SHIKKO_VENV") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    Path::new(&home).join(".cache/shikko/venv")
}

/// A program of the venv (`python`, `lint_crl`, `lint_ocsp_response`,
/// `kubernetes-validate`); panics with what to run when it is missing.
pub fn venv_bin(name: &str) -> PathBuf {
    let p = venv().join("bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-deps (it makes the venv with cryptography, pkilint and kubernetes-validate)",
        p.display()
    );
    p
}

/// The services a gRPC endpoint advertises through server reflection (what
/// `grpcurl list` shows).
pub async fn reflected_services(endpoint: &str) -> Vec<String> {
    let channel = tonic::transport::Channel::from_shared(endpoint.to_string())
        .expect("an endpoint URL")
        .connect()
        .await
        .expect("the endpoint answers");
    reflected_services_over(channel)
        .await
        .expect("reflection answers")
}

/// [`reflected_services`] over a channel already made (mutual TLS, say);
/// the status when the server refuses.
pub async fn reflected_services_over(
    channel: tonic::transport::Channel,
) -> Result<Vec<String>, tonic::Status> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await?
        .into_inner();
    match answers
        .message()
        .await?
        .expect("one answer")
        .message_response
    {
        Some(MessageResponse::ListServicesResponse(list)) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        other => panic!("not a list of services: {other:?}"),
    }
}

/// The row of `serial` in the table `shikko info query` prints: (outcome, current serial, data).
pub fn info_row<'a>(table: &'a str, serial: &str) -> (&'a str, &'a str, &'a str) {
    let line = table
        .lines()
        .find(|l| l.starts_with(serial))
        .unwrap_or_else(|| panic!("no row for {serial} in {table}"));
    // Columns are fixed width: serial 24, outcome 20, current serial 24.
    let outcome = line[25..45].trim();
    let current = line[46..70].trim();
    let data = line[71..].trim();
    (outcome, current, data)
}
