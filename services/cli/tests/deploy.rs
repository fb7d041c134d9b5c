//! deploy/ stays true: the Kubernetes manifests validate against the
//! Kubernetes schemas (kubernetes-validate, from PyPI, strict), the roles'
//! configurations inside them are ones `shikko serve ROLE --check` accepts,
//! the alert rules and the dashboard use only metrics the code defines, and
//! the container image builds with the toolchain the repository pins.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shikko_testkit::process as common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

use shikko_testkit::venv_bin;

#[test]
fn the_kubernetes_manifests_validate_strictly() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let out = Command::new(venv_bin("kubernetes-validate"))
        .args(["--strict", "-k", "1.34.0"])
        .args(&files)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for kind in [
        "statefulset/shikko-registry",
        "deployment/shikko-crl",
        "deployment/shikko-ocsp",
        "horizontalpodautoscaler/shikko-ocsp",
        "statefulset/shikko-info",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{kind}: {text}"
        );
    }
}

#[test]
fn configs_alerts_and_dashboard_fit_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(venv_bin("python"))
        .arg(repo().join("services/cli/tests/deploy_check.py"))
        .arg(repo().join("deploy"))
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("roles: crl crl-http info ocsp registry"),
        "{text}"
    );

    // Every role's configuration in the manifests is one the binary accepts.
    for role in ["registry", "crl", "crl-http", "ocsp", "info"] {
        let cfg = dir.path().join(format!("{role}.toml"));
        let out = common::run(&["serve", role, "--config", cfg.to_str().unwrap(), "--check"]);
        assert!(
            out.status.success(),
            "{role}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // ... and so is every example configuration in deploy/.
    for role in ["registry", "crl", "crl-http", "ocsp", "info"] {
        let cfg = repo().join(format!("deploy/{role}.toml"));
        let out = common::run(&["serve", role, "--config", cfg.to_str().unwrap(), "--check"]);
        assert!(out.status.success(), "deploy/{role}.toml");
    }
    // A broken one is not.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[ocsp]\ndata_dir = \"/x\"\nlisten_http = \"oops\"\n").unwrap();
    let out = common::run(&[
        "serve",
        "ocsp",
        "--config",
        bad.to_str().unwrap(),
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(64));

    // The metrics the rules and the dashboard use are metrics the code defines.
    let used: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("metric "))
        .map(str::to_string)
        .collect();
    assert!(used.len() >= 15, "{used:?}");
    let mut defined = BTreeSet::new();
    for d in ["services", "crl-builder", "ocsp-responder"] {
        collect_metric_names(&repo().join(d), &mut defined);
    }
    let unknown: Vec<&String> = used.iter().filter(|m| !defined.contains(*m)).collect();
    assert!(unknown.is_empty(), "used but never defined: {unknown:?}");
}

/// String literals `"shikko_..."` in the Rust sources below `dir` (tests excluded).
fn collect_metric_names(dir: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            if !["tests", "target", "fuzz"].contains(&name.as_str()) {
                collect_metric_names(&p, out);
            }
        } else if name.ends_with(".rs") {
            let src = std::fs::read_to_string(&p).unwrap();
            for part in src.split("\"shikko_").skip(1) {
                let end = part.find('"').unwrap_or(0);
                let body = &part[..end];
                if !body.is_empty()
                    && body
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                {
                    out.insert(format!("shikko_{body}"));
                }
            }
        }
    }
}

#[test]
fn the_container_image_uses_the_pinned_toolchain() {
    let toolchain = std::fs::read_to_string(repo().join("rust-toolchain.toml")).unwrap();
    let version = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let minor: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let dockerfile = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(&format!("FROM rust:{minor}-")),
        "deploy/Dockerfile should build with rust {minor}"
    );
    assert!(
        dockerfile.contains("--locked"),
        "the image builds from Cargo.lock"
    );
}

#[test]
fn the_configuration_reference_is_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("CONFIG.md");
    let out = Command::new("bash")
        .arg(repo().join("scripts/gen-config-reference"))
        .arg(&fresh)
        .env("SHIKKO", env!("CARGO_BIN_EXE_shikko"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string(repo().join("docs/CONFIG.md")).unwrap();
    assert_eq!(
        std::fs::read_to_string(&fresh).unwrap(),
        committed,
        "docs/CONFIG.md is out of date: run scripts/gen-config-reference"
    );
    for field in [
        "max_stale_secs",
        "admin_listen",
        "delta_every_secs",
        "drain_timeout_secs",
    ] {
        assert!(committed.contains(field), "{field}");
    }
}
