//! The filters answer exactly what the registry says, for every certificate
//! of a generated population (good, revoked, held, released, expired, not
//! yet issued), through a full filter and deltas; a tampered, stale,
//! wrong-issuer or wrong-base filter is refused; the signature checks with
//! the openssl command line as docs/FILTER.md says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use shikko_core::{CertKind, Serial, UnixTime};
use shikko_filter::{
    Answer, BuildInfo, Entry, FilterError, FilterSet, build_delta, build_full, format,
    issuer_key_hash, verify,
};
use shikko_pki::{KeyAlgorithm, Signer, SoftwareSigner};

const DAY: i64 = 86_400;

/// A deterministic generator (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Ca {
    key: SoftwareSigner,
    der: Vec<u8>,
    hash: [u8; 32],
}

fn ca(alg: KeyAlgorithm, n: u128) -> Ca {
    let key = SoftwareSigner::generate(alg).unwrap();
    let now = UnixTime::now();
    let der = shikko_pki::ca_certificate(
        CertKind::CardSigning,
        &key,
        Serial::from_u128(n).unwrap(),
        UnixTime(now.0 - 400 * DAY),
        UnixTime(now.0 + 3650 * DAY),
    )
    .unwrap();
    let hash = issuer_key_hash(&der).unwrap();
    Ca { key, der, hash }
}

/// The registry's view: serial -> (notBefore, notAfter, listed).
type Registry = BTreeMap<Serial, (i64, i64, bool)>;

fn entries(r: &Registry, known_at: i64) -> Vec<Entry> {
    r.iter()
        // What the registry knows at that time: issued by then.
        .filter(|(_, (nb, _, _))| *nb <= known_at)
        .map(|(s, (nb, na, l))| Entry {
            serial: *s,
            not_before: *nb,
            not_after: *na,
            listed: *l,
        })
        .collect()
}

fn info(ca: &Ca, number: u64, now: i64) -> BuildInfo {
    BuildInfo {
        issuer_key_hash: ca.hash,
        number,
        crl_number: vec![number as u8],
        now: UnixTime(now),
        next_update: UnixTime(now + 2 * DAY),
    }
}

/// What the filters must say of each certificate of `r` given the full
/// filter made at `full_at` and the newest delta made at `delta_at`.
fn expected(nb: i64, na: i64, listed: bool, full_at: i64, covered: i64) -> Answer {
    if na <= full_at || nb > covered {
        Answer::NotCovered
    } else if listed {
        Answer::Revoked
    } else {
        Answer::Good
    }
}

fn check_all(set: &FilterSet, r: &Registry, full_at: i64, covered: i64) -> usize {
    let mut checked = 0;
    for (s, (nb, na, l)) in r {
        let want = expected(*nb, *na, *l, full_at, covered);
        assert_eq!(
            set.check_serial(s, *nb, *na),
            want,
            "serial {s:?} nb {nb} na {na} listed {l}"
        );
        checked += 1;
    }
    checked
}

#[test]
fn full_and_deltas_answer_what_the_registry_says_for_every_certificate() {
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let ca = ca(alg, 0x100);
        let mut rng = Rng(7);
        let t0 = UnixTime::now().0 - 3 * 3600;
        let mut r: Registry = BTreeMap::new();
        // 5,000 certificates: one in ten revoked, one in twenty held, one
        // in fifteen expired before the full filter, some not yet issued.
        while r.len() < 5_000 {
            let s = Serial::from_u128(u128::from(rng.next()) << 8 | 1).unwrap();
            let nb = t0 - 300 * DAY + rng.below(300 * DAY as u64) as i64;
            let na = if rng.below(15) == 0 {
                t0 - rng.below(30 * DAY as u64) as i64
            } else {
                nb + 5 * 365 * DAY
            };
            let listed = rng.below(10) == 0 || rng.below(20) == 0;
            r.insert(s, (nb, na, listed));
        }
        let full = build_full(&info(&ca, 10, t0), || entries(&r, t0).into_iter(), &ca.key).unwrap();
        let mut set = FilterSet::new(&full, &ca.der, UnixTime::now()).unwrap();
        assert_eq!(check_all(&set, &r, t0, t0), 5_000);

        // An hour later: revocations, holds, released holds, new
        // certificates (issued after the full filter), one expiring.
        let t1 = t0 + 3600;
        let serials: Vec<Serial> = r.keys().copied().collect();
        for s in serials.iter().step_by(37) {
            let e = r.get_mut(s).unwrap();
            e.2 = !e.2; // good -> listed, listed (held) -> released
        }
        for i in 0..300u128 {
            let s = Serial::from_u128(0xabc0_0000 + i).unwrap();
            r.insert(s, (t0 + 60 + i as i64, t1 + 365 * DAY, i % 7 == 0));
        }
        // Not yet issued at the delta either.
        r.insert(
            Serial::from_u128(0xfeed).unwrap(),
            (t1 + 60, t1 + DAY, false),
        );
        let delta = build_delta(
            &info(&ca, 11, t1),
            &verify(&full, &ca.der, UnixTime::now()).unwrap(),
            || entries(&r, t1).into_iter(),
            &ca.key,
        )
        .unwrap();
        set.apply_delta(&delta, UnixTime::now()).unwrap();
        check_all(&set, &r, t0, t1);

        // Later still: a released hold held again, a new revocation; the
        // newer delta replaces the older, an older one is ignored.
        let t2 = t1 + 3600;
        for s in serials.iter().step_by(37).take(20) {
            let e = r.get_mut(s).unwrap();
            e.2 = !e.2;
        }
        for s in serials.iter().skip(5).step_by(101) {
            r.get_mut(s).unwrap().2 = true;
        }
        let delta2 = build_delta(
            &info(&ca, 12, t2),
            &verify(&full, &ca.der, UnixTime::now()).unwrap(),
            || entries(&r, t2).into_iter(),
            &ca.key,
        )
        .unwrap();
        set.apply_delta(&delta2, UnixTime::now()).unwrap();
        set.apply_delta(&delta, UnixTime::now()).unwrap();
        assert_eq!(set.delta().unwrap().header.number, 12);
        check_all(&set, &r, t0, t2);
    }
}

#[test]
fn tampered_stale_wrong_issuer_and_wrong_base_filters_are_refused() {
    let ca1 = ca(KeyAlgorithm::EcdsaP256, 0x100);
    let ca2 = ca(KeyAlgorithm::EcdsaP256, 0x101);
    let now = UnixTime::now().0;
    let population: Vec<Entry> = (1..=200u128)
        .map(|i| Entry {
            serial: Serial::from_u128(i).unwrap(),
            not_before: now - DAY,
            not_after: now + DAY,
            listed: i % 3 == 0,
        })
        .collect();
    let full = build_full(
        &info(&ca1, 1, now),
        || population.clone().into_iter(),
        &ca1.key,
    )
    .unwrap();
    assert!(FilterSet::new(&full, &ca1.der, UnixTime(now)).is_ok());
    // Every single flipped octet is refused, never answered, never a panic.
    for i in (0..full.len()).step_by(7) {
        let mut t = full.clone();
        t[i] ^= 0x01;
        assert!(
            FilterSet::new(&t, &ca1.der, UnixTime(now)).is_err(),
            "octet {i} flipped was accepted"
        );
    }
    // Cut anywhere: refused.
    for n in [0, 1, 10, full.len() / 2, full.len() - 1] {
        assert!(FilterSet::new(&full[..n], &ca1.der, UnixTime(now)).is_err());
    }
    // Another CA's.
    assert!(matches!(
        FilterSet::new(&full, &ca2.der, UnixTime(now)),
        Err(FilterError::WrongIssuer(_))
    ));
    // Past its nextUpdate.
    assert!(matches!(
        FilterSet::new(&full, &ca1.der, UnixTime(now + 3 * DAY)),
        Err(FilterError::Stale { .. })
    ));
    // Signed by another key though naming this issuer.
    let forged = build_full(
        &info(&ca1, 1, now),
        || population.clone().into_iter(),
        &ca2.key,
    )
    .unwrap();
    assert!(matches!(
        FilterSet::new(&forged, &ca1.der, UnixTime(now)),
        Err(FilterError::BadSignature)
    ));
    // A delta of another full filter.
    let full2 = build_full(
        &info(&ca1, 5, now),
        || population.clone().into_iter(),
        &ca1.key,
    )
    .unwrap();
    let delta = build_delta(
        &info(&ca1, 6, now),
        &verify(&full2, &ca1.der, UnixTime(now)).unwrap(),
        || population.clone().into_iter(),
        &ca1.key,
    )
    .unwrap();
    let mut set = FilterSet::new(&full, &ca1.der, UnixTime(now)).unwrap();
    assert!(matches!(
        set.apply_delta(&delta, UnixTime(now)),
        Err(FilterError::WrongBase { base: 5, full: 1 })
    ));
    // A full filter is not a delta, nor the other way round.
    assert!(set.apply_delta(&full, UnixTime(now)).is_err());
    assert!(FilterSet::new(&delta, &ca1.der, UnixTime(now)).is_err());
}

#[test]
fn certificates_are_answered_only_when_the_ca_issued_them() {
    let ca1 = ca(KeyAlgorithm::EcdsaP256, 0x100);
    let other = ca(KeyAlgorithm::EcdsaP256, 0x100);
    let now = UnixTime::now().0;
    // An issuer with nothing listed, and one with no certificate at all:
    // built, and every covered certificate good.
    assert!(build_full(&info(&ca1, 1, now), std::iter::empty, &ca1.key).is_ok());
    let good: Vec<Entry> = (1..=100u128)
        .map(|i| Entry {
            serial: Serial::from_u128(i).unwrap(),
            not_before: now - DAY,
            not_after: now + DAY,
            listed: false,
        })
        .collect();
    let full = build_full(&info(&ca1, 1, now), || good.clone().into_iter(), &ca1.key).unwrap();
    let set = FilterSet::new(&full, &ca1.der, UnixTime(now)).unwrap();
    for e in &good {
        assert_eq!(
            set.check_serial(&e.serial, e.not_before, e.not_after),
            Answer::Good
        );
    }
    // A certificate the CA's key signed (its own) is read and answered.
    assert!(set.check_certificate(&ca1.der).is_ok());
    // The other CA has the same name: its certificate is refused by signature.
    assert!(matches!(
        set.check_certificate(&other.der),
        Err(FilterError::Certificate(_))
    ));
    assert!(set.check_certificate(b"not a certificate").is_err());
}

#[test]
fn the_signature_verifies_with_the_openssl_command_line() {
    let ca = ca(KeyAlgorithm::EcdsaP256, 0x100);
    let now = UnixTime::now().0;
    let full = build_full(
        &info(&ca, 1, now),
        || {
            (1..=50u128).map(|i| Entry {
                serial: Serial::from_u128(i).unwrap(),
                not_before: now - DAY,
                not_after: now + DAY,
                listed: i % 2 == 0,
            })
        },
        &ca.key,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // docs/FILTER.md: the last two octets are the signature's length; the
    // signature is before them; everything before it is what is signed.
    let n = full.len();
    let sig_len = usize::from(u16::from_be_bytes([full[n - 2], full[n - 1]]));
    std::fs::write(d.join("body"), &full[..n - 2 - sig_len]).unwrap();
    std::fs::write(d.join("sig"), &full[n - 2 - sig_len..n - 2]).unwrap();
    std::fs::write(
        d.join("ca.pem"),
        shikko_pki::to_pem("PUBLIC KEY", ca.key.public_key_der()).unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "ca.pem",
            "-signature",
            "sig",
            "body",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Verified OK"),
        "{text}"
    );
    // And the header is where the document says.
    let f = format::decode(&full).unwrap();
    assert_eq!(&full[..4], b"SHKF");
    assert_eq!(f.header.issuer_key_hash, ca.hash);
    assert_eq!(&full[6..38], &ca.hash);
}
