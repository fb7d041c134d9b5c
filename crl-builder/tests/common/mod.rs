//! A real store in a temp dir with a small history, the CAs that sign its
//! CRLs, an independent model of what each CRL must list, and the checks by
//! tools no one here wrote: openssl, Python `cryptography` and pkilint.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use shikko_core::*;
use shikko_crl::{Builder, CrlConfig, CrlIssuer, CrlName, read_summary};
use shikko_pki::{KeyAlgorithm, Signer, SoftwareSigner, ca_certificate, crl_dp_name_for, to_pem};
use shikko_store::{IngestMode, Outcome, RegistryStore};

pub const HOLDERS: u32 = 40;
/// Holder whose certificates expired long ago (their entries must not be listed).
pub const EXPIRED_HOLDER: u32 = 39;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: RegistryStore,
    pub alg: KeyAlgorithm,
    pub cas: BTreeMap<CertKind, (Arc<SoftwareSigner>, Vec<u8>)>,
    /// What each issuer's CRL must list: serial -> (reason, invalidity date, partition).
    pub model: BTreeMap<CertKind, BTreeMap<Serial, Expected>>,
    next_event: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub reason: Option<RevocationReason>,
    pub invalidity: Option<UnixTime>,
    pub partition: PartitionId,
}

pub fn municipality(code: u32) -> Municipality {
    Municipality {
        code: PartitionId(code),
        prefecture: "東京都".into(),
        city: format!("テスト市{code}"),
    }
}

pub fn serial(kind: CertKind, h: u32) -> Serial {
    Serial::from_u128(0x4A50_0000 + (u128::from(kind.code()) << 16) + u128::from(h)).unwrap()
}

fn holder_muni(h: u32) -> Municipality {
    municipality(131_001 + h % 3)
}

impl Fixture {
    pub fn new(alg: KeyAlgorithm) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = RegistryStore::open(&dir.path().join("db")).unwrap();
        let mut cas = BTreeMap::new();
        for (i, kind) in CertKind::ALL.into_iter().enumerate() {
            let key = Arc::new(SoftwareSigner::generate(alg).unwrap());
            let cert = ca_certificate(
                kind,
                key.as_ref(),
                Serial::from_u128(i as u128 + 1).unwrap(),
                UnixTime(1_600_000_000),
                UnixTime(2_200_000_000),
            )
            .unwrap();
            cas.insert(kind, (key, cert));
        }
        let mut f = Fixture {
            dir,
            store,
            alg,
            cas,
            model: CertKind::ALL
                .into_iter()
                .map(|k| (k, BTreeMap::new()))
                .collect(),
            next_event: 0,
        };
        f.populate();
        f
    }

    pub fn out_dir(&self) -> PathBuf {
        self.dir.path().join("crl")
    }

    pub fn config(&self) -> CrlConfig {
        let mut c = CrlConfig::new(self.out_dir());
        c.public_base_url = Some("http://127.0.0.1:8080".into());
        c.batch_size = 7; // several batches even for a small population
        c
    }

    pub fn builder(&self) -> Builder {
        let issuers = self
            .cas
            .iter()
            .map(|(k, (key, cert))| {
                CrlIssuer::new(*k, key.clone() as Arc<dyn Signer>, cert).unwrap()
            })
            .collect();
        Builder::new(self.store.shared(), issuers, self.config())
    }

    pub fn ingest(&mut self, body: EventBody, time: i64) {
        self.next_event += 1;
        let ev = Event {
            id: EventId::new(format!("e{}", self.next_event)).unwrap(),
            time: UnixTime(time),
            body,
        };
        let out = self.store.ingest(&[ev], IngestMode::PerEvent).unwrap();
        assert!(matches!(out[0], Outcome::Applied { .. }), "{out:?}");
    }

    fn populate(&mut self) {
        let now = UnixTime::now().0;
        for h in 0..HOLDERS {
            let not_after = if h == EXPIRED_HOLDER {
                UnixTime(1_650_000_000)
            } else {
                UnixTime(now + 5 * 365 * 86_400)
            };
            for kind in CertKind::ALL {
                let m = holder_muni(h);
                self.ingest(
                    EventBody::Issue {
                        holder: HolderId::new(format!("H{h:04}")).unwrap(),
                        cert: NewCert {
                            kind,
                            serial: serial(kind, h),
                            not_before: UnixTime(1_640_000_000),
                            not_after,
                            municipality: kind.is_signing().then_some(m),
                            cert_der: None,
                        },
                        four_info: kind.is_signing().then(|| FourInfo {
                            name: format!("氏名 {h}"),
                            address: "東京都千代田区1-1".into(),
                            date_of_birth: DateOfBirth::parse("319800101").unwrap(),
                            sex: Sex::Female,
                        }),
                    },
                    1_640_000_000,
                );
            }
        }
        for h in 0..HOLDERS {
            if h % 5 == 0 || h == EXPIRED_HOLDER {
                self.revoke(
                    CertKind::CardSigning,
                    h,
                    RevocationReason::KeyCompromise,
                    Some(1_690_000_000),
                );
            }
            if h % 5 == 1 {
                self.revoke(CertKind::CardAuth, h, RevocationReason::Unspecified, None);
            }
            if h % 7 == 2 {
                self.revoke(
                    CertKind::PhoneSigning,
                    h,
                    RevocationReason::Superseded,
                    None,
                );
            }
            if h % 6 == 3 {
                self.suspend(CertKind::PhoneAuth, h);
            }
        }
    }

    pub fn revoke(
        &mut self,
        kind: CertKind,
        h: u32,
        reason: RevocationReason,
        invalidity: Option<i64>,
    ) {
        self.ingest(
            EventBody::Revoke {
                kind,
                serial: serial(kind, h),
                reason,
                invalidity_date: invalidity.map(UnixTime),
            },
            1_700_000_000 + i64::from(h),
        );
        if h != EXPIRED_HOLDER {
            let partition = if kind.is_signing() {
                holder_muni(h).code
            } else {
                PartitionId::WHOLE
            };
            self.model.get_mut(&kind).unwrap().insert(
                serial(kind, h),
                Expected {
                    reason: Some(reason),
                    invalidity: invalidity.map(UnixTime),
                    partition,
                },
            );
        }
    }

    pub fn suspend(&mut self, kind: CertKind, h: u32) {
        self.ingest(
            EventBody::Suspend {
                kind,
                serial: serial(kind, h),
            },
            1_700_100_000,
        );
        if h == EXPIRED_HOLDER {
            return;
        }
        self.model.get_mut(&kind).unwrap().insert(
            serial(kind, h),
            Expected {
                reason: Some(RevocationReason::CertificateHold),
                invalidity: None,
                partition: PartitionId::WHOLE,
            },
        );
    }

    pub fn resume(&mut self, kind: CertKind, h: u32) {
        self.ingest(
            EventBody::Resume {
                kind,
                serial: serial(kind, h),
            },
            1_700_200_000,
        );
        self.model.get_mut(&kind).unwrap().remove(&serial(kind, h));
    }

    pub fn municipalities(&self) -> Vec<Municipality> {
        (0..3).map(holder_muni).collect()
    }

    pub fn ca_der(&self, kind: CertKind) -> &[u8] {
        &self.cas[&kind].1
    }

    /// Writes the CA as PEM and DER for the external tools; returns (pem, der) paths.
    pub fn ca_files(&self, kind: CertKind) -> (PathBuf, PathBuf) {
        let pem = self.dir.path().join(format!("{}-ca.pem", kind.issuer_id()));
        let der = self.dir.path().join(format!("{}-ca.der", kind.issuer_id()));
        std::fs::write(&pem, to_pem("CERTIFICATE", self.ca_der(kind)).unwrap()).unwrap();
        std::fs::write(&der, self.ca_der(kind)).unwrap();
        (pem, der)
    }

    pub fn crl_path(&self, kind: CertKind, name: CrlName) -> PathBuf {
        self.out_dir().join(kind.issuer_id()).join(name.file_name())
    }
}

fn reason_name(r: RevocationReason) -> Option<&'static str> {
    match r {
        RevocationReason::Unspecified => None,
        RevocationReason::KeyCompromise => Some("key_compromise"),
        RevocationReason::CaCompromise => Some("ca_compromise"),
        RevocationReason::AffiliationChanged => Some("affiliation_changed"),
        RevocationReason::Superseded => Some("superseded"),
        RevocationReason::CessationOfOperation => Some("cessation_of_operation"),
        RevocationReason::CertificateHold => Some("certificate_hold"),
        RevocationReason::RemoveFromCrl => Some("remove_from_crl"),
        RevocationReason::PrivilegeWithdrawn => Some("privilege_withdrawn"),
        RevocationReason::AaCompromise => Some("aa_compromise"),
    }
}

/// What a CRL file must be, for the external checks.
pub struct Expect<'a> {
    pub number: u64,
    pub delta_base: Option<u64>,
    pub entries: Vec<(Serial, Expected)>,
    pub idp: Option<&'a Municipality>,
    pub freshest: Option<String>,
}

pub fn venv_python() -> PathBuf {
    shikko_testkit::venv_bin("python")
}

/// Checks `crl` with `openssl crl -verify` (reading its message), Python
/// `cryptography` and pkilint (through check_crl.py) against `expect`.
pub fn check_externally(f: &Fixture, kind: CertKind, crl: &Path, expect: &Expect<'_>) {
    let (ca_pem, ca_der) = f.ca_files(kind);
    // openssl: exit status 0 even on failure; the message is what counts.
    let (ok, msg) = shikko_testkit::openssl_status(
        [
            "crl",
            "-inform",
            "DER",
            "-noout",
            "-in",
            crl.to_str().unwrap(),
            "-CAfile",
            ca_pem.to_str().unwrap(),
        ],
        Path::new("."),
    );
    assert!(
        msg.contains("verify OK") && !msg.contains("failure") && ok,
        "openssl crl -verify on {}: {msg}",
        crl.display()
    );

    let summary = read_summary(crl).unwrap();
    let entries: serde_json::Map<String, serde_json::Value> = expect
        .entries
        .iter()
        .map(|(s, e)| {
            (
                s.to_hex().to_lowercase(),
                serde_json::json!({
                    "reason": e.reason.and_then(reason_name),
                    "invalidity_date": e.invalidity.map(|t| t.0),
                }),
            )
        })
        .collect();
    let idp = expect
        .idp
        .map(|m| crl_dp_name_for(kind, m).unwrap().to_string());
    let json = serde_json::json!({
        "crl_number": expect.number,
        "delta_base": expect.delta_base,
        "entries": entries,
        "this_update": summary.this_update.0,
        "next_update": summary.next_update.unwrap().0,
        "idp_directory_name": idp,
        "freshest_crl_uri": expect.freshest,
    });
    let expect_path = crl.with_extension("expect.json");
    std::fs::write(&expect_path, serde_json::to_vec(&json).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_crl.py");
    let out = Command::new(venv_python())
        .arg(script)
        .arg("--ca")
        .arg(&ca_der)
        .arg("--crl")
        .arg(crl)
        .arg("--expect")
        .arg(&expect_path)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "check_crl.py on {}:\n{}{}",
        crl.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with(&format!("OK {} entries", expect.entries.len()))
    );
}
