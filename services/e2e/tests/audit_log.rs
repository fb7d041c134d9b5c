//! The audit log as a transparency log, over real processes (issue 15): a
//! registry with the 4-information service signs tree heads with an audit
//! key kept outside its data directory; `shikko audit verify` checks an
//! export against signed heads, a record's inclusion and a head's
//! consistency with an earlier one; and `shikko witness` catches each way
//! a custodian of the disk can rewrite the log: a record edited, a record
//! deleted, records cut off the end (each with every hash recomputed, so
//! the chain alone still verifies), and an older copy restored and grown
//! past the head the witness saw.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use shikko_info::audit::AuditRecord;
use shikko_store::Store;
use shikko_testkit::process::{RegistryProcess, run, setup_demo_dir, start_registry};
use shikko_testkit::roles::{InfoTls, Loopback};

/// The registry over `data` with the 4-information service beside it,
/// signing heads with `key` into `heads`, one file per case in `dir`.
fn config(dir: &Path, name: &str, data: &Path, tls: &InfoTls, key: &Path, heads: &Path) -> PathBuf {
    let cfg_dir = dir.join(format!("cfg-{name}"));
    std::fs::create_dir_all(&cfg_dir).unwrap();
    Loopback::new(&cfg_dir)
        .with_sections(&format!(
            "[info]\ngrpc_listen = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\nclient_ca = {:?}\nsigning_cas = [{:?}]\n\n\
             [info.audit]\nkey = {key:?}\nheads_dir = {heads:?}\nhead_secs = 1\n",
            tls.cert, tls.key, tls.client_ca, tls.signing_ca
        ))
        .registry(data)
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Audited admin acts: `n` providers registered.
fn add_providers(endpoint: &str, prefix: &str, n: usize) {
    for i in 0..n {
        ok(&run(&[
            "admin",
            "provider-add",
            &format!("{prefix}-{i}"),
            "--name",
            "a bank",
            "--endpoint",
            endpoint,
        ]));
    }
}

/// `shikko witness --once`: its exit code and what it said.
fn witness(endpoint: &str, public: &Path, state: &Path) -> (i32, String) {
    let out = run(&[
        "witness",
        "--once",
        "--endpoint",
        endpoint,
        "--audit-key",
        public.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn signed_size(endpoint: &str, out: &Path) -> u64 {
    let line = ok(&run(&[
        "audit",
        "head",
        "--signed",
        "--endpoint",
        endpoint,
        "--out",
        out.to_str().unwrap(),
    ]));
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    v["size"].as_u64().unwrap()
}

/// Rewrites the audit log of the (stopped) registry's store in `data` as a
/// custodian of the disk would: `change` edits the records, then every
/// sequence number, link and hash is recomputed and the Merkle tree's
/// nodes are dropped (the service rebuilds them from the records).
fn rewrite(data: &Path, change: impl FnOnce(&mut Vec<AuditRecord>)) {
    let store = Store::open_data_dir(data).unwrap();
    let mut records = shikko_info::audit::read(&store, 1, usize::MAX).unwrap();
    change(&mut records);
    let mut prev = shikko_info::audit::GENESIS.to_string();
    let mut puts = Vec::new();
    for (i, r) in records.iter_mut().enumerate() {
        r.seq = i as u64 + 1;
        r.prev = prev;
        r.hash = r.compute_hash();
        prev = r.hash.clone();
        let mut key = b"a/".to_vec();
        key.extend_from_slice(&r.seq.to_be_bytes());
        puts.push((key, serde_json::to_vec(r).unwrap()));
    }
    store.info_delete_range(b"a/", b"a0").unwrap();
    store.info_delete_range(b"m/", b"m0").unwrap();
    store.info_write(&puts).unwrap();
}

fn stop(mut p: RegistryProcess) {
    let _ = p.child.kill();
    let _ = p.child.wait();
}

#[test]
fn signed_heads_proofs_and_a_witness_that_catches_every_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    setup_demo_dir(&data);
    let tls = InfoTls::from_data_dir(&data, &d.join("tls")).unwrap();
    let public = data.join("samples/audit-key.pem");

    // The audit key inside the data directory is refused.
    let inside = config(
        d,
        "inside",
        &data,
        &tls,
        &data.join("keys/audit.key"),
        &d.join("h0"),
    );
    let out = std::process::Command::new(shikko_testkit::process::shikko_bin())
        .args(["serve", "registry", "--config"])
        .arg(&inside)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("inside the data directory"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Kept apart, as a deployment keeps it (a Secret), it signs.
    let key = d.join("audit.key");
    std::fs::copy(data.join("keys/audit.key"), &key).unwrap();
    let heads = d.join("heads");
    let cfg = config(d, "main", &data, &tls, &key, &heads);
    let registry = start_registry(&cfg);
    let ep = registry.endpoint.clone();
    let n1 = signed_size(&ep, &d.join("h1.json"));
    assert!(n1 > 10, "the demo's consents are audited: {n1}");
    let state = d.join("witness");
    let (code, said) = witness(&ep, &public, &state);
    assert_eq!(code, 0, "{said}");

    // The log grows; a copy of the store from now is "the older checkpoint".
    stop(registry);
    copy_dir(&data, &d.join("older"));
    let registry = start_registry(&cfg);
    let ep = registry.endpoint.clone();
    add_providers(&ep, "p", 3);
    let n2 = signed_size(&ep, &d.join("h2.json"));
    assert_eq!(n2, n1 + 3);
    let (code, said) = witness(&ep, &public, &state);
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains(&format!("cosigned the head of {n2} records")),
        "{said}"
    );

    // What an auditor checks: the export against the signed heads, a
    // record's inclusion, the current head against one kept before.
    let export = d.join("audit.jsonl");
    ok(&run(&[
        "audit",
        "export",
        "--endpoint",
        &ep,
        "--out",
        export.to_str().unwrap(),
    ]));
    let said = ok(&run(&[
        "audit",
        "verify",
        export.to_str().unwrap(),
        "--audit-key",
        public.to_str().unwrap(),
        "--signed-head",
        d.join("h1.json").to_str().unwrap(),
        "--signed-head",
        d.join("h2.json").to_str().unwrap(),
    ]));
    assert!(
        said.contains(&format!("first {n2} records are those")),
        "{said}"
    );
    let said = ok(&run(&[
        "audit",
        "verify",
        "--endpoint",
        &ep,
        "--audit-key",
        public.to_str().unwrap(),
        "--record",
        "2",
        "--since",
        d.join("h1.json").to_str().unwrap(),
    ]));
    assert!(said.contains("record 2 is in the log"), "{said}");
    assert!(said.contains(&format!("extends the one of {n1}")), "{said}");
    // An edited export does not match the heads, though its chain is recomputed.
    let text = std::fs::read_to_string(&export).unwrap();
    let mut recs: Vec<AuditRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    recs[1].outcome = "refused:permission_denied".into();
    let mut prev = shikko_info::audit::GENESIS.to_string();
    for r in &mut recs {
        r.prev = prev;
        r.hash = r.compute_hash();
        prev = r.hash.clone();
    }
    let forged = d.join("forged.jsonl");
    std::fs::write(
        &forged,
        recs.iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    ok(&run(&["audit", "verify", forged.to_str().unwrap()]));
    let out = run(&[
        "audit",
        "verify",
        forged.to_str().unwrap(),
        "--audit-key",
        public.to_str().unwrap(),
        "--signed-head",
        d.join("h2.json").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT intact"));
    stop(registry);
    copy_dir(&data, &d.join("pristine"));

    // Each rewrite, on a copy of the store, with the service's own heads
    // directory gone too (the custodian removed it): the service signs the
    // rewritten log, and the witness, which remembers n2, refuses it.
    type Change = Box<dyn FnOnce(&mut Vec<AuditRecord>)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "edited",
            Box::new(|r: &mut Vec<AuditRecord>| r[4].outcome = "refused:no_consent".into()),
            "fork",
        ),
        (
            "deleted",
            Box::new(|r: &mut Vec<AuditRecord>| {
                r.remove(4);
            }),
            "shrank",
        ),
        (
            "deleted-and-grown",
            Box::new(|r: &mut Vec<AuditRecord>| {
                let x = r.remove(4);
                let mut y = r.last().unwrap().clone();
                y.subject = "a record to hide the gap".into();
                r.push(y);
                r.push(x);
            }),
            "not_extension",
        ),
        (
            "cut",
            Box::new(|r: &mut Vec<AuditRecord>| r.truncate(r.len() - 2)),
            "shrank",
        ),
    ];
    for (name, change, kind) in cases {
        let case = d.join(format!("case-{name}"));
        copy_dir(&d.join("pristine"), &case);
        rewrite(&case, change);
        let registry = start_registry(&config(
            d,
            name,
            &case,
            &tls,
            &key,
            &d.join(format!("heads-{name}")),
        ));
        let ep = registry.endpoint.clone();
        // The chain of the rewritten log verifies: it is no evidence.
        let export = d.join(format!("{name}.jsonl"));
        ok(&run(&[
            "audit",
            "export",
            "--endpoint",
            &ep,
            "--out",
            export.to_str().unwrap(),
        ]));
        ok(&run(&[
            "audit",
            "verify",
            export.to_str().unwrap(),
            "--endpoint",
            &ep,
        ]));
        let witnessed = d.join(format!("witness-{name}"));
        copy_dir(&state, &witnessed);
        let (code, said) = witness(&ep, &public, &witnessed);
        assert_eq!(code, 2, "{name}: {said}");
        assert!(said.contains(&format!("ALARM: {kind}")), "{name}: {said}");
        // The alarm stands until an operator removes it.
        let (code, said) = witness(&ep, &public, &witnessed);
        assert_eq!(code, 2, "{name}: {said}");
        assert!(said.contains("standing alarm"), "{name}: {said}");
        // And an auditor holding h2 sees it too.
        let out = run(&[
            "audit",
            "verify",
            "--endpoint",
            &ep,
            "--audit-key",
            public.to_str().unwrap(),
            "--since",
            d.join("h2.json").to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{name}");
        stop(registry);
    }

    // An older copy restored and grown past the head the witness saw.
    let older = d.join("older");
    let registry = start_registry(&config(
        d,
        "restored",
        &older,
        &tls,
        &key,
        &d.join("heads-restored"),
    ));
    let ep = registry.endpoint.clone();
    add_providers(&ep, "q", 5);
    let witnessed = d.join("witness-restored");
    copy_dir(&state, &witnessed);
    let (code, said) = witness(&ep, &public, &witnessed);
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("ALARM: not_extension"), "{said}");
    stop(registry);

    // With its own heads directory kept, the service itself refuses to sign
    // a log that contradicts the last head it signed.
    let case = d.join("case-own-heads");
    copy_dir(&d.join("pristine"), &case);
    rewrite(&case, |r| r[2].actor = "someone else".into());
    let registry = start_registry(&config(d, "own-heads", &case, &tls, &key, &heads));
    let out = run(&[
        "audit",
        "head",
        "--signed",
        "--endpoint",
        &registry.endpoint,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rewritten"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop(registry);

    // The untouched store goes on, and the witness with it.
    let registry = start_registry(&config(d, "again", &d.join("pristine"), &tls, &key, &heads));
    let ep = registry.endpoint.clone();
    add_providers(&ep, "r", 1);
    let (code, said) = witness(&ep, &public, &state);
    assert_eq!(code, 0, "{said}");

    // Retention: the records below 10 archived (with the head that vouches
    // for them) and pruned. The tree stays: the witness goes on, a record
    // after proves its inclusion, one pruned is gone, the rest chains from
    // where it starts, and the archive followed by the rest is exactly the
    // log of the signed heads.
    let n3 = signed_size(&ep, &d.join("h3.json"));
    let archive = d.join("archive.jsonl");
    let said = ok(&run(&[
        "audit",
        "archive",
        "--endpoint",
        &ep,
        "--below",
        "10",
        "--out",
        archive.to_str().unwrap(),
    ]));
    assert!(said.contains("9 records (seq 1 to 9) archived"), "{said}");
    assert!(d.join("archive.jsonl.head.json").exists());
    let (code, said) = witness(&ep, &public, &state);
    assert_eq!(code, 0, "{said}");
    ok(&run(&[
        "audit",
        "verify",
        "--endpoint",
        &ep,
        "--audit-key",
        public.to_str().unwrap(),
        "--record",
        "12",
        "--since",
        d.join("h2.json").to_str().unwrap(),
    ]));
    let out = run(&[
        "audit",
        "verify",
        "--endpoint",
        &ep,
        "--audit-key",
        public.to_str().unwrap(),
        "--record",
        "3",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("archived and pruned"));
    let rest = d.join("rest.jsonl");
    ok(&run(&[
        "audit",
        "export",
        "--endpoint",
        &ep,
        "--out",
        rest.to_str().unwrap(),
    ]));
    let rest_text = std::fs::read_to_string(&rest).unwrap();
    assert!(rest_text.starts_with("{\"seq\":10,"), "{rest_text}");
    ok(&run(&[
        "audit",
        "verify",
        rest.to_str().unwrap(),
        "--partial",
    ]));
    let whole = d.join("whole.jsonl");
    std::fs::write(
        &whole,
        std::fs::read_to_string(&archive).unwrap() + &rest_text,
    )
    .unwrap();
    let said = ok(&run(&[
        "audit",
        "verify",
        whole.to_str().unwrap(),
        "--audit-key",
        public.to_str().unwrap(),
        "--signed-head",
        d.join("h2.json").to_str().unwrap(),
        "--signed-head",
        d.join("h3.json").to_str().unwrap(),
    ]));
    assert!(
        said.contains(&format!("first {n3} records are those")),
        "{said}"
    );
    // Nothing is pruned that no signed head covers.
    let out = run(&[
        "audit",
        "archive",
        "--endpoint",
        &ep,
        "--below",
        "100000",
        "--out",
        d.join("too-far.jsonl").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    stop(registry);
}
