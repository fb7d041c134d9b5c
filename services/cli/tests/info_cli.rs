//! The 4-information service through the real binary: the demo serves it
//! over mutual TLS; `shikko info query` asks as the demo operator; a move
//! ingested with `shikko events ingest` (A) puts the old serial on the next
//! delta CRL (B) and the bank's query by the old serial returns the new
//! address and serial (C); withdrawal; the audit log exported and verified,
//! and a tampered copy refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shikko_testkit::process as common;

use std::path::Path;

use common::{http_get, run, shikko, start_demo};
use shikko_testkit::info_row as row;

/// `shikko info ARGS --endpoint ... --cert ... --key ...`: (success, stdout + stderr).
fn info(endpoint: &str, samples: &Path, args: &[&str]) -> (bool, String) {
    let out = shikko()
        .arg("info")
        .args(args)
        .args(["--endpoint", endpoint, "--cert"])
        .arg(samples.join("operator.pem"))
        .arg("--key")
        .arg(samples.join("operator-key.pem"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_demo_answers_the_seeds_flow_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let demo = start_demo(&data, "400");
    let samples = data.join("samples");
    let serials: Vec<(String, String)> = std::fs::read_to_string(samples.join("info-serials.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let (a, b) = l.split_once(' ').unwrap();
            (a.to_string(), b.to_string())
        })
        .collect();
    let get = |name: &str| {
        serials
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("no {name} sample"))
    };
    let (changed, partial, unchanged, no_consent) = (
        get("changed"),
        get("partial"),
        get("unchanged"),
        get("no-consent"),
    );

    // The demo's own moves: a batch of the four samples.
    let (ok, table) = info(
        &demo.info,
        &samples,
        &["query", &changed, &partial, &unchanged, &no_consent],
    );
    assert!(ok, "{table}");
    let (o, current, data_) = row(&table, &changed);
    assert_eq!(o, "changed");
    assert!(!current.is_empty() && current != "-" && current != changed);
    for item in ["name=", "address=", "date_of_birth=", "sex="] {
        assert!(data_.contains(item), "{data_}");
    }
    let (o, _, data_) = row(&table, &partial);
    assert_eq!(o, "changed");
    assert!(
        data_.starts_with("address=") && !data_.contains("name="),
        "{data_}"
    );
    assert_eq!(row(&table, &unchanged), ("unchanged", "-", "-"));
    assert_eq!(row(&table, &no_consent).0, "no consent");
    // The holder who renewed: the new serial, no data (and not billed).
    let renewed = get("renewed");
    let (ok, table) = info(&demo.info, &samples, &["query", &renewed]);
    assert!(ok, "{table}");
    let (o, current, data_) = row(&table, &renewed);
    assert_eq!((o, data_), ("renewed", "-"));
    assert!(current != "-" && current != renewed, "{table}");
    // One serial without consent: refused.
    let (ok, text) = info(&demo.info, &samples, &["query", &no_consent]);
    assert!(!ok && text.contains("PermissionDenied"), "{text}");

    // (A) The `unchanged` holder moves: the example event, through the registry.
    let out = demo.run(&[
        "events",
        "ingest",
        "--endpoint",
        &demo.grpc,
        samples.join("example-move.jsonl").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (B) The old serial is on the next delta CRL of the signing CA.
    let out = demo.run(&[
        "crl",
        "build",
        "--endpoint",
        &demo.grpc,
        "--delta",
        "--issuer",
        "sign",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = http_get(&demo.http, "/crl/sign/delta.crl");
    assert_eq!(status, 200);
    let crl = dir.path().join("delta.crl");
    std::fs::write(&crl, body).unwrap();
    let text = shikko_testkit::openssl(
        [
            "crl",
            "-inform",
            "DER",
            "-noout",
            "-text",
            "-in",
            crl.to_str().unwrap(),
        ],
        dir.path(),
    )
    .to_uppercase();
    assert!(
        text.contains(&format!("SERIAL NUMBER: {unchanged}")),
        "{unchanged} not on the delta CRL:\n{text}"
    );
    assert!(text.contains("AFFILIATION CHANGED"), "{text}");
    // (C) The bank asks by the old serial: the new address and serial.
    let (ok, table) = info(&demo.info, &samples, &["query", &unchanged]);
    assert!(ok, "{table}");
    let (o, current, data_) = row(&table, &unchanged);
    assert_eq!(o, "changed", "{table}");
    assert!(current != "-" && current != unchanged);
    assert!(data_.contains("address="), "{data_}");
    // The new serial is unchanged.
    let (ok, table) = info(&demo.info, &samples, &["query", current]);
    assert!(ok);
    assert_eq!(row(&table, current).0, "unchanged");

    // Withdrawal: nothing more.
    let (ok, text) = info(&demo.info, &samples, &["withdraw", &unchanged]);
    assert!(ok && text.contains("withdrawn"), "{text}");
    let (ok, text) = info(&demo.info, &samples, &["query", &unchanged]);
    assert!(!ok && text.contains("PermissionDenied"), "{text}");
    // A challenge for a statement signed elsewhere, and that statement.
    let (ok, text) = info(&demo.info, &samples, &["challenge"]);
    assert!(ok, "{text}");
    let challenge = text
        .lines()
        .find_map(|l| l.strip_prefix("challenge  "))
        .unwrap_or_else(|| panic!("no challenge in {text}"))
        .to_string();
    assert!(challenge.len() >= 32 && challenge.bytes().all(|b| b.is_ascii_hexdigit()));
    let out = shikko()
        .args([
            "info",
            "statement",
            "--provider",
            "demo-bank",
            "--items",
            "address",
        ])
        .args([
            "--serial",
            current,
            "--granted-at",
            "1800000000",
            "--challenge",
            &challenge,
        ])
        .output()
        .unwrap();
    let statement = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{statement}");
    assert!(
        statement.starts_with("shikko consent v2\n")
            && statement.ends_with(&format!("challenge: {challenge}\n")),
        "{statement}"
    );
    let out = shikko()
        .args([
            "info",
            "statement",
            "--provider",
            "demo-bank",
            "--items",
            "address",
        ])
        .args(["--serial", current, "--granted-at", "1800000000"])
        .args(["--challenge", "x\nitems: all"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The user-authentication link: the renewed card's old and new
    // user-authentication serials, one pseudonym (for the demo clinic).
    let link: Vec<String> = std::fs::read_to_string(samples.join("link-serials.txt"))
        .unwrap()
        .lines()
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect();
    let out = shikko()
        .args([
            "link",
            "resolve",
            &link[0],
            &link[1],
            "--endpoint",
            &demo.info,
            "--cert",
        ])
        .arg(samples.join("operator.pem"))
        .arg("--key")
        .arg(samples.join("operator-key.pem"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert_eq!((rows[0][1], rows[1][1]), ("revoked", "good"), "{table}");
    assert!(
        rows[0][2].starts_with("L1-") && rows[0][2] == rows[1][2],
        "{table}"
    );
    // The demo bank is not a verifier: refused.
    let out = shikko()
        .args([
            "link",
            "resolve",
            &link[1],
            "--provider",
            "demo-bank",
            "--endpoint",
            &demo.info,
            "--cert",
        ])
        .arg(samples.join("operator.pem"))
        .arg("--key")
        .arg(samples.join("operator-key.pem"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PermissionDenied"));

    // Usage: the changed answers of this test and of none before.
    let (ok, text) = info(&demo.info, &samples, &["usage"]);
    assert!(ok && text.contains("demo-bank"), "{text}");

    // The `changed` holder reads their own access record with their
    // user-authentication key: the bank's answer about them above is in
    // it, every record checked against the signed head.
    let holder = |cert: &str| {
        let out = shikko()
            .args(["info", "accesses", "--endpoint", &demo.info, "--cert"])
            .arg(samples.join(cert))
            .arg("--key")
            .arg(samples.join("holder-auth-key.pem"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = holder("holder-auth.pem");
    assert!(ok, "{text}");
    assert!(text.contains("(signature checked)"), "{text}");
    let answers: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\tdemo-operator\t"))
        .collect();
    assert!(
        answers
            .iter()
            .any(|l| l.contains(&format!("\tquery_batch\tdemo-bank\t{changed}\tchanged"))),
        "{text}"
    );
    assert!(
        answers.iter().any(|l| l.contains("\tconsent.record\t")),
        "{text}"
    );
    // Nobody else's: the other samples asked about are not in it.
    for other in [&partial, &unchanged, &no_consent] {
        assert!(!text.contains(&format!("\t{other}\t")), "{other}: {text}");
    }
    assert!(text.contains("inclusion proofs checked"), "{text}");
    // Another certificate with this key (an operator's: no login) is refused.
    let (ok, text) = holder("operator.pem");
    assert!(!ok && text.contains("Unauthenticated"), "{text}");

    // The audit log: exported, intact, up to the service's head.
    let audit = dir.path().join("audit.jsonl");
    let out = demo.run(&[
        "audit",
        "export",
        "--endpoint",
        &demo.grpc,
        "--out",
        audit.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = demo.run(&[
        "audit",
        "verify",
        audit.to_str().unwrap(),
        "--endpoint",
        &demo.grpc,
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("intact"), "{said}");
    // A record removed: refused, and the exit code says so.
    let lines: Vec<String> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let cut: Vec<&String> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != lines.len() / 2)
        .map(|(_, l)| l)
        .collect();
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(
        &tampered,
        cut.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let out = demo.run(&["audit", "verify", tampered.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NOT intact"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_registry_with_an_info_section_runs_the_info_service_and_admin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::setup_demo_dir(&data);
    let samples = data.join("samples");
    let tls =
        shikko_testkit::roles::InfoTls::from_data_dir(&data, &dir.path().join("tls")).unwrap();
    let registry_only = common::write_config(dir.path(), &data);
    let config = dir.path().join("info.toml");
    std::fs::write(
        &config,
        std::fs::read_to_string(&registry_only).unwrap()
            + &format!(
                "\n[info]\ngrpc_listen = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\nclient_ca = {:?}\nsigning_cas = [{:?}]\n",
                tls.cert, tls.key, tls.client_ca, tls.signing_ca,
            ),
    )
    .unwrap();
    // `serve info` (its own process) with a registry's configuration: refused, exit 64.
    let out = run(&["serve", "info", "--config", config.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let role = common::start_role("registry", &config);
    let grpc = format!("http://{}", role.field("grpc"));
    let endpoint = format!("https://{}", role.field("info"));
    let changed = std::fs::read_to_string(samples.join("info-serials.txt"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("changed ").map(str::to_string))
        .unwrap();
    let (ok, table) = info(&endpoint, &samples, &["query", &changed]);
    assert!(ok, "{table}");
    assert_eq!(row(&table, &changed).0, "changed");

    let out = run(&["admin", "operator-list", "--endpoint", &grpc]);
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && listed.contains("demo-operator"),
        "{listed}"
    );
    // The administrator revokes the operator's certificate: its calls are refused.
    let out = run(&[
        "admin",
        "operator-revoke-cert",
        samples.join("operator.pem").to_str().unwrap(),
        "--endpoint",
        &grpc,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
    let (ok, text) = info(&endpoint, &samples, &["query", &changed]);
    assert!(!ok && text.contains("Unauthenticated"), "{text}");
    let out = run(&["audit", "head", "--endpoint", &grpc]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("seq "));
}
