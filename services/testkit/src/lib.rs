//! # shikko-testkit
//!
//! Test helpers every crate's tests share, so that each is written once:
//! the tools no one here wrote, which judge what Shikko emits (`openssl`,
//! and Python `cryptography` and DigiCert's `pkilint` from the venv that
//! `scripts/install-deps` makes), a gRPC reflection client, and the one
//! process harness of the tests that run `shikko` for real ([`process`]).
//!
//! A dev-dependency only: never a dependency of production code. It depends
//! on no Shikko crate, so any crate's tests may use it.
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

pub mod process;

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
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (scripts/install-deps installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
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
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let channel = tonic::transport::Channel::from_shared(endpoint.to_string())
        .expect("an endpoint URL")
        .connect()
        .await
        .expect("the endpoint answers");
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection answers")
        .into_inner();
    match answers
        .message()
        .await
        .expect("a reflection message")
        .expect("one answer")
        .message_response
    {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("not a list of services: {other:?}"),
    }
}
