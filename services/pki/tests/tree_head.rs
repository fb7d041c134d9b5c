//! Signed tree heads of the audit log: a head verifies under the audit
//! key and under openssl's command line from the documented bytes, and any
//! change of size, time, root, signature or key is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shikko_core::UnixTime;
use shikko_pki::tree_head::{SignedTreeHead, TreeHead, sign, verify};
use shikko_pki::{KeyAlgorithm, Signer, SoftwareSigner, to_pem};

fn head() -> TreeHead {
    TreeHead {
        size: 1_234_567,
        root: [0x5a; 32],
        time: UnixTime(1_800_000_000),
    }
}

#[test]
fn a_signed_head_verifies_and_every_change_is_refused() {
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let key = SoftwareSigner::generate(alg).unwrap();
        let other = SoftwareSigner::generate(alg).unwrap();
        let sth = sign(head(), &key).unwrap();
        assert!(verify(&sth, key.public_key_der()), "{alg:?}");
        assert!(!verify(&sth, other.public_key_der()), "another key");
        assert!(!verify(&sth, b"not a key"));
        let changed = |f: &dyn Fn(&mut SignedTreeHead)| {
            let mut s = sth.clone();
            f(&mut s);
            verify(&s, key.public_key_der())
        };
        assert!(!changed(&|s| s.head.size -= 1), "a truncated log's size");
        assert!(!changed(&|s| s.head.time = UnixTime(s.head.time.0 + 1)));
        assert!(!changed(&|s| s.head.root[31] ^= 1));
        assert!(!changed(&|s| {
            let last = s.signature.len() - 1;
            s.signature[last] ^= 1;
        }));
    }
}

#[test]
fn openssl_checks_a_head_from_the_documented_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let sth = sign(head(), &key).unwrap();
    let bytes = sth.head.signed_bytes();
    assert_eq!(bytes.len(), 74);
    assert!(bytes.starts_with(b"shikko audit tree head v1\n"));
    std::fs::write(dir.path().join("head.bin"), &bytes).unwrap();
    std::fs::write(dir.path().join("head.sig"), &sth.signature).unwrap();
    std::fs::write(
        dir.path().join("audit.pem"),
        to_pem("PUBLIC KEY", key.public_key_der()).unwrap(),
    )
    .unwrap();
    let check = |file: &str| {
        let out = std::process::Command::new("openssl")
            .args([
                "dgst",
                "-sha256",
                "-verify",
                "audit.pem",
                "-signature",
                "head.sig",
                file,
            ])
            .current_dir(dir.path())
            .output()
            .expect("openssl runs");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    assert!(
        check("head.bin").contains("Verified OK"),
        "{}",
        check("head.bin")
    );
    let mut other = bytes.clone();
    other[30] ^= 1;
    std::fs::write(dir.path().join("other.bin"), &other).unwrap();
    assert!(
        check("other.bin").contains("Verification failure"),
        "{}",
        check("other.bin")
    );
}
