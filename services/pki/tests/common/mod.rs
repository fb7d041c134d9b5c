//! Helpers shared by the integration tests: fixtures and the system openssl.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use shikko_core::{DateOfBirth, FourInfo, Municipality, PartitionId, Serial, Sex, UnixTime};

pub(crate) const OPENSSL: &str = "/usr/bin/openssl";

pub(crate) fn serial(n: u128) -> Serial {
    Serial::from_u128(n).unwrap()
}

pub(crate) fn not_before() -> UnixTime {
    UnixTime::now().plus_secs(-3600)
}

pub(crate) fn not_after() -> UnixTime {
    UnixTime::now().plus_secs(5 * 365 * 86_400)
}

pub(crate) fn chiyoda() -> Municipality {
    Municipality {
        code: PartitionId(131_016),
        prefecture: "東京都".into(),
        city: "千代田区".into(),
    }
}

pub(crate) fn four_info() -> FourInfo {
    FourInfo {
        name: "山田\u{3000}花子".into(),
        address: "東京都千代田区千代田1番1号".into(),
        date_of_birth: DateOfBirth::parse("319850412").unwrap(),
        sex: Sex::Female,
    }
}

/// Writes DER as PEM to `dir/name`.
pub(crate) fn write_pem(dir: &Path, name: &str, der: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, shikko_pki::to_pem("CERTIFICATE", der).unwrap()).unwrap();
    path
}

/// Runs openssl, returning stdout+stderr; panics if it cannot be started.
pub(crate) fn openssl(args: &[&str]) -> String {
    let out = Command::new(OPENSSL)
        .args(args)
        .output()
        .expect("run openssl");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

/// `openssl verify -CAfile ca leaf` (plus extra arguments) must print `leaf: OK`.
pub(crate) fn assert_verifies(ca: &Path, leaf: &Path, extra: &[&str]) {
    let mut args = vec!["verify", "-x509_strict", "-CAfile", ca.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(leaf.to_str().unwrap());
    let out = openssl(&args);
    let expected = format!("{}: OK", leaf.display());
    assert!(
        out.contains(&expected),
        "openssl verify {leaf:?} {extra:?} failed:\n{out}"
    );
}

/// `openssl x509 -noout -text`.
pub(crate) fn x509_text(cert: &Path) -> String {
    openssl(&[
        "x509",
        "-noout",
        "-text",
        "-nameopt",
        "utf8,sep_comma_plus_space",
        "-in",
        cert.to_str().unwrap(),
    ])
}
