//! Issue 13 through the binary, across role processes: the registry and the
//! info role over mutual TLS, events ingested with `shikko events ingest`,
//! a bank's operator and two hospitals' verifiers asking with
//! `shikko info` and `shikko link`. One person's life:
//!
//! 1. A card whose signing certificate expires; after expiry a new one is
//!    issued (a plain `issue`, accepted because expiry is time).
//! 2. A consent signed with the smartphone signing certificate.
//! 3. The card returned and a new card issued.
//! 4. A renewal with nothing changed: `renewed`, not billed.
//! 5. A move: `changed` with the new address, billed once.
//!
//! and, throughout, the card's user-authentication certificates: a
//! hospital's verifier resolves the first and the last one to one
//! pseudonym; a second verifier gets another, and cannot use the first's;
//! the link key rotates, both pseudonyms are answered until the
//! administrator retires the old key, then only the new one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use shikko_core::{
    CertKind, DateOfBirth, Event, EventBody, EventId, FourInfo, HolderId, NewCert, Serial, Sex,
    UnixTime,
};
use shikko_pki::{DataDir, HolderCertRequest, Issuer, KeyAlgorithm, Signer, SoftwareSigner};
use shikko_testkit::identities::Identities;
use shikko_testkit::process::{SecureRegistry, shikko, start_role, start_secure_registry};
use shikko_testkit::roles::InfoTls;
use shikko_testkit::{info_row, until_contains};

const YEAR: i64 = 365 * 86_400;

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `shikko ARGS` as an administrator (or the authority, to ingest).
fn admin(ids: &Identities, args: &[&str]) -> String {
    let out = shikko()
        .env("SHIKKO_IDENTITY_DIR", &ids.dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    text(&out)
}

/// An operator of the info role: its endpoint and client certificate.
struct Operator {
    endpoint: String,
    cert: PathBuf,
    key: PathBuf,
}

impl Operator {
    /// `shikko COMMAND ARGS` as this operator (COMMAND: info or link).
    fn run(&self, command: &str, args: &[&str]) -> String {
        let out = shikko()
            .arg(command)
            .args(args)
            .arg("--endpoint")
            .arg(&self.endpoint)
            .arg("--cert")
            .arg(&self.cert)
            .arg("--key")
            .arg(&self.key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{command} {args:?}: {}", text(&out));
        text(&out)
    }

    /// The bank's answer about `serial` (card signing), once it says `want`:
    /// (outcome, current serial, data).
    fn query_until(&self, serial: &Serial, want: &str) -> (String, String, String) {
        let hex = serial.to_hex();
        let table = until_contains(15, &format!(" {want} "), || {
            let table = self.run("info", &["query", &hex, "--provider", "demo-bank"]);
            let (o, _, _) = info_row(&table, &hex);
            format!(" {o} \n{table}")
        });
        let (o, c, d) = info_row(&table, &hex);
        assert_eq!(o, want, "{table}");
        (o.into(), c.into(), d.into())
    }

    /// Provisions billed to this operator for `provider` today.
    fn provisions(&self, provider: &str) -> u64 {
        let usage = self.run("info", &["usage"]);
        usage
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(provider))
            .map(|l| l.split_whitespace().nth(2).unwrap().parse::<u64>().unwrap())
            .sum()
    }

    /// `link resolve` for `verifier`: (status, pseudonym) per serial, in order.
    fn resolve(&self, verifier: &str, serials: &[Serial]) -> Vec<(String, String)> {
        let mut args = vec!["resolve".to_string(), "--provider".into(), verifier.into()];
        args.extend(serials.iter().map(Serial::to_hex));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let table = self.run("link", &args);
        serials
            .iter()
            .map(|s| {
                let line = table
                    .lines()
                    .find(|l| l.starts_with(&s.to_hex()))
                    .unwrap_or_else(|| panic!("no row for {s} in {table}"));
                let words: Vec<&str> = line.split_whitespace().collect();
                let pseudonym = words[words.len() - 1].to_string();
                (words[1..words.len() - 1].join(" "), pseudonym)
            })
            .collect()
    }
}

/// A new operator certificate from the data directory's operator CA, with
/// its key and the CA beside it (where `--ca` is looked for by default).
fn operator_identity(data: &Path, out: &Path, id: &str, serial: u128) -> (PathBuf, PathBuf) {
    let dir = DataDir::new(data);
    let ca_key = dir.load_key("operator-ca").unwrap();
    let ca_der = dir.read_cert("operator-ca").unwrap();
    let issuer = Issuer::from_certificate(&ca_key, &ca_der).unwrap();
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let now = UnixTime::now();
    let der = shikko_pki::operator_client_certificate(
        &issuer,
        id,
        None,
        key.public_key_der(),
        Serial::from_u128(serial).unwrap(),
        UnixTime(now.0 - 60),
        UnixTime(now.0 + YEAR),
    )
    .unwrap();
    std::fs::create_dir_all(out).unwrap();
    let pem = |label: &str, der: &[u8]| shikko_pki::to_pem(label, der).unwrap();
    std::fs::write(out.join("operator-ca.pem"), pem("CERTIFICATE", &ca_der)).unwrap();
    let (cert, key_path) = (
        out.join(format!("{id}.pem")),
        out.join(format!("{id}-key.pem")),
    );
    std::fs::write(&cert, pem("CERTIFICATE", &der)).unwrap();
    std::fs::write(&key_path, pem("PRIVATE KEY", &key.to_pkcs8_der().unwrap())).unwrap();
    (cert, key_path)
}

/// The person's certificates, issued by the data directory's CAs.
struct Person {
    data: PathBuf,
    holder: HolderId,
    key: SoftwareSigner,
    info: FourInfo,
    next_event: u32,
}

impl Person {
    fn cert(&self, kind: CertKind, serial: u128, not_after: UnixTime) -> NewCert {
        let now = UnixTime::now();
        let municipality = kind
            .is_signing()
            .then(|| shikko_population::synthetic::municipalities()[3].clone());
        let cert_der = kind.is_signing().then(|| {
            let dir = DataDir::new(&self.data);
            let name = format!("{}-ca", kind.issuer_id());
            let ca_key = dir.load_key(&name).unwrap();
            let ca_der = dir.read_cert(&name).unwrap();
            let issuer = Issuer::from_certificate(&ca_key, &ca_der).unwrap();
            shikko_pki::holder_certificate(
                &issuer,
                &HolderCertRequest {
                    kind,
                    holder: &self.holder,
                    municipality: municipality.as_ref(),
                    four_info: Some(&self.info),
                    subject_public_key: self.key.public_key_der(),
                    serial: Serial::from_u128(serial).unwrap(),
                    not_before: UnixTime(now.0 - 60),
                    not_after,
                    ocsp_url: None,
                },
            )
            .unwrap()
        });
        NewCert {
            kind,
            serial: Serial::from_u128(serial).unwrap(),
            not_before: UnixTime(now.0 - 60),
            not_after,
            municipality,
            cert_der,
        }
    }

    fn event(&mut self, body: EventBody) -> Event {
        self.next_event += 1;
        Event {
            id: EventId::new(format!("person-{}", self.next_event)).unwrap(),
            time: UnixTime::now(),
            body,
        }
    }
}

fn serial(v: u128) -> Serial {
    Serial::from_u128(v).unwrap()
}

#[test]
fn one_person_across_expiry_card_return_renewal_and_a_move() {
    let dir = tempfile::tempdir().unwrap();
    let SecureRegistry {
        data,
        ids,
        configs,
        registry: _registry,
        url: registry_url,
        ..
    } = start_secure_registry(dir.path(), |_| ());
    let samples = data.join("samples");
    let tls = InfoTls::from_data_dir(&data, &dir.path().join("tls")).unwrap();
    let cfg = configs
        .info(&dir.path().join("info-data"), &registry_url, &tls)
        .unwrap();
    let info = start_role("info", &cfg);
    let (info_url, info_admin) = (
        format!("https://{}", info.field("info")),
        format!("https://{}", info.field("grpc")),
    );
    let ingest = |events: &[Event]| {
        let path = dir.path().join("events.jsonl");
        let lines: Vec<String> = events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        admin(
            &ids,
            &[
                "events",
                "ingest",
                "--endpoint",
                &registry_url,
                path.to_str().unwrap(),
            ],
        );
    };

    // The bank with its operator; two hospitals' verifiers with theirs.
    let bank = Operator {
        endpoint: info_url.clone(),
        cert: samples.join("operator.pem"),
        key: samples.join("operator-key.pem"),
    };
    let ops = dir.path().join("operators");
    let clinic = |id: &str, serial: u128| {
        let (cert, key) = operator_identity(&data, &ops, id, serial);
        Operator {
            endpoint: info_url.clone(),
            cert,
            key,
        }
    };
    let (clinic_a, clinic_b) = (clinic("clinic-a-op", 0x7001), clinic("clinic-b-op", 0x7002));
    for (provider, name, verifier) in [
        ("demo-bank", "Demo Bank", false),
        ("clinic-a", "Clinic A", true),
        ("clinic-b", "Clinic B", true),
    ] {
        let mut args = vec![
            "admin",
            "provider-add",
            provider,
            "--name",
            name,
            "--endpoint",
            &info_admin,
        ];
        if verifier {
            args.push("--verifier");
        }
        admin(&ids, &args);
    }
    for (op, provider, cert) in [
        ("demo-operator", "demo-bank", &bank.cert),
        ("clinic-a-op", "clinic-a", &clinic_a.cert),
        ("clinic-b-op", "clinic-b", &clinic_b.cert),
    ] {
        admin(
            &ids,
            &[
                "admin",
                "operator-add",
                op,
                "--name",
                op,
                "--provider",
                provider,
                "--cert",
                cert.to_str().unwrap(),
                "--endpoint",
                &info_admin,
            ],
        );
    }

    let mut person = Person {
        data: data.clone(),
        holder: HolderId::new("E2E-PERSON-1").unwrap(),
        key: SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        info: FourInfo {
            name: "転居 花子".into(),
            address: "東京都千代田区千代田1-1".into(),
            date_of_birth: DateOfBirth::parse("319850615").unwrap(),
            sex: Sex::Female,
        },
        next_event: 0,
    };
    let long = UnixTime(UnixTime::now().0 + 4 * YEAR);

    // 1. A card whose signing certificate runs out in two seconds, its
    //    user-authentication certificate, and a smartphone signing one.
    let expires = UnixTime(UnixTime::now().0 + 2);
    let first = person.cert(CertKind::CardSigning, 0x5E_0001, expires);
    let auth_first = person.cert(CertKind::CardAuth, 0x5E_A001, long);
    let phone = person.cert(CertKind::PhoneSigning, 0x5E_9001, long);
    let phone_der = phone.cert_der.clone().unwrap();
    let events = [
        person.event(EventBody::Issue {
            holder: person.holder.clone(),
            cert: first,
            four_info: Some(person.info.clone()),
        }),
        person.event(EventBody::Issue {
            holder: person.holder.clone(),
            cert: auth_first,
            four_info: None,
        }),
        person.event(EventBody::Issue {
            holder: person.holder.clone(),
            cert: phone,
            four_info: None,
        }),
    ];
    ingest(&events);

    // 2. The consent, signed on the phone.
    let phone_pem = dir.path().join("phone.pem");
    let phone_key = dir.path().join("phone-key.pem");
    std::fs::write(
        &phone_pem,
        shikko_pki::to_pem("CERTIFICATE", &phone_der).unwrap(),
    )
    .unwrap();
    std::fs::write(
        &phone_key,
        shikko_pki::to_pem("PRIVATE KEY", &person.key.to_pkcs8_der().unwrap()).unwrap(),
    )
    .unwrap();
    let said = until_contains(15, "active", || {
        let out = shikko()
            .args(["info", "consent", "--holder-cert"])
            .arg(&phone_pem)
            .arg("--holder-key")
            .arg(&phone_key)
            .args(["--provider", "demo-bank", "--endpoint", &info_url, "--cert"])
            .arg(&bank.cert)
            .arg("--key")
            .arg(&bank.key)
            .output()
            .unwrap();
        text(&out)
    });
    assert!(
        said.contains(&format!("with {}", serial(0x5E_9001))),
        "{said}"
    );

    // The card signing certificate expires; a new one is issued (an issue,
    // not a renewal). The bank's stored serial leads to it: renewed.
    while UnixTime::now().0 <= expires.0 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let stored = serial(0x5E_0001);
    let after_expiry = person.cert(CertKind::CardSigning, 0x5E_0002, long);
    let e = person.event(EventBody::Issue {
        holder: person.holder.clone(),
        cert: after_expiry,
        four_info: None,
    });
    ingest(&[e]);
    let (_, current, data_) = bank.query_until(&stored, "renewed");
    assert_eq!((current.as_str(), data_.as_str()), ("5E0002", "-"));

    // 3. The card returned, a new card: its signing and user-authentication
    //    certificates.
    let e = person.event(EventBody::CardReturn {
        holder: person.holder.clone(),
    });
    ingest(&[e]);
    bank.query_until(&stored, "no new certificate");
    let events = [
        person.event(EventBody::Issue {
            holder: person.holder.clone(),
            cert: person.cert(CertKind::CardSigning, 0x5E_0003, long),
            four_info: None,
        }),
        person.event(EventBody::Issue {
            holder: person.holder.clone(),
            cert: person.cert(CertKind::CardAuth, 0x5E_A002, long),
            four_info: None,
        }),
    ];
    ingest(&events);
    let (_, current, _) = bank.query_until(&stored, "renewed");
    assert_eq!(current, "5E0003");

    // 4. A renewal, nothing changed: renewed, not billed.
    let e = person.event(EventBody::Renewal {
        holder: person.holder.clone(),
        new_signing: Some(person.cert(CertKind::CardSigning, 0x5E_0004, long)),
        new_auth: Some(person.cert(CertKind::CardAuth, 0x5E_A003, long)),
    });
    ingest(&[e]);
    let renewed = until_contains(15, "5E0004", || bank.query_until(&stored, "renewed").1);
    assert_eq!(renewed, "5E0004");
    assert_eq!(
        bank.provisions("demo-bank"),
        0,
        "renewed answers are not billed"
    );

    // 5. A move: a new address, a new signing certificate: changed, billed.
    let moved = "大阪府大阪市北区梅田3-3";
    person.info.address = moved.into();
    let e = person.event(EventBody::FourInfoChange {
        holder: person.holder.clone(),
        four_info: person.info.clone(),
        new_signing: Some(person.cert(CertKind::CardSigning, 0x5E_0005, long)),
    });
    ingest(&[e]);
    let (_, current, data_) = bank.query_until(&stored, "changed");
    assert_eq!(current, "5E0005");
    assert!(data_.contains(&format!("address={moved}")), "{data_}");
    assert_eq!(
        bank.provisions("demo-bank"),
        1,
        "one changed answer, billed once"
    );

    // The hospital's verifier: the first and the last card user-authentication
    // serials are one person to it.
    let (auth_first, auth_now) = (serial(0x5E_A001), serial(0x5E_A003));
    let a = clinic_a.resolve("clinic-a", &[auth_first, auth_now]);
    assert_eq!(a[0].0, "revoked", "{a:?}");
    assert_eq!(a[1].0, "good", "{a:?}");
    assert!(a[0].1.starts_with("L1-"), "{a:?}");
    assert_eq!(a[0].1, a[1].1, "one holder, one pseudonym: {a:?}");
    let current = clinic_a.run("link", &["current", "--provider", "clinic-a", &a[0].1]);
    assert!(current.contains(&auth_now.to_hex()), "{current}");

    // A second verifier: another pseudonym for the same person, and the
    // first verifier's pseudonym means nothing to it.
    let b = clinic_b.resolve("clinic-b", &[auth_now]);
    assert_eq!(b[0].0, "good", "{b:?}");
    assert!(b[0].1.starts_with("L1-") && b[0].1 != a[0].1, "{a:?} {b:?}");
    let foreign = clinic_b.run("link", &["current", "--provider", "clinic-b", &a[0].1]);
    assert!(foreign.contains("not given to this verifier"), "{foreign}");
    assert!(!foreign.contains(&auth_now.to_hex()), "{foreign}");

    // The link key rotates: every pseudonym changes; the previous ones are
    // answered beside the new ones until the changeover is retired.
    let said = admin(
        &ids,
        &["admin", "link-key-rotate", "--endpoint", &info_admin],
    );
    assert!(
        said.contains("version 2 current") && said.contains("version 1 still answered"),
        "{said}"
    );
    let table = clinic_a.run(
        "link",
        &["resolve", "--provider", "clinic-a", &auth_now.to_hex()],
    );
    let words: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with(&auth_now.to_hex()))
        .unwrap_or_else(|| panic!("{table}"))
        .split_whitespace()
        .collect();
    let renewed_pseudonym = words[2].to_string();
    assert!(renewed_pseudonym.starts_with("L2-"), "{table}");
    assert_eq!(words[3], a[0].1, "{table}");
    let rekey = clinic_a.run("link", &["current", "--provider", "clinic-a", &a[0].1]);
    assert!(rekey.contains(&renewed_pseudonym), "{rekey}");
    let said = admin(
        &ids,
        &["admin", "link-key-retire", "--endpoint", &info_admin],
    );
    assert!(
        said.contains("version 2 current") && !said.contains("still answered"),
        "{said}"
    );
    let retired = clinic_a.run("link", &["current", "--provider", "clinic-a", &a[0].1]);
    assert!(retired.contains("not given to this verifier"), "{retired}");

    // A verifier's operator acts for its own verifier only.
    let out = shikko()
        .args(["link", "resolve", "--provider", "clinic-a"])
        .arg(auth_now.to_hex())
        .args(["--endpoint", &info_url, "--cert"])
        .arg(&clinic_b.cert)
        .arg("--key")
        .arg(&clinic_b.key)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
}
