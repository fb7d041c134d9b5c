//! Software keys backed by aws-lc-rs: generation, PKCS#8 files (mode 0600,
//! written atomically), and loading a key of either algorithm.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};

use crate::error::{Error, Result};
use crate::pem;
use crate::signer::{KeyAlgorithm, PublicKeyHashes, Signer};

enum KeyPairInner {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
}

/// A private key held in process memory.
pub struct SoftwareSigner {
    key: KeyPairInner,
    spki_der: Vec<u8>,
    hashes: PublicKeyHashes,
    rng: SystemRandom,
}

impl std::fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareSigner")
            .field("algorithm", &self.algorithm())
            .field("key_id", &self.hashes)
            .finish_non_exhaustive()
    }
}

impl SoftwareSigner {
    /// Generates a new key: RSA-2048 (e = 65537) or ECDSA P-256.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<SoftwareSigner> {
        let key = match algorithm {
            KeyAlgorithm::Rsa2048 => KeyPairInner::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| Error::Crypto("RSA-2048 key generation"))?,
            ),
            KeyAlgorithm::EcdsaP256 => KeyPairInner::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
                    .map_err(|_| Error::Crypto("P-256 key generation"))?,
            ),
        };
        SoftwareSigner::new(key)
    }

    /// Parses an unencrypted PKCS#8 (RFC 5208) DER private key, RSA-2048 or P-256.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SoftwareSigner> {
        if let Ok(rsa) = RsaKeyPair::from_pkcs8(der) {
            if rsa.public_modulus_len() != 256 {
                return Err(Error::KeyRejected(format!(
                    "RSA modulus of {} bits; only 2048 is supported",
                    rsa.public_modulus_len() * 8
                )));
            }
            return SoftwareSigner::new(KeyPairInner::Rsa(rsa));
        }
        match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der) {
            Ok(ec) => SoftwareSigner::new(KeyPairInner::Ecdsa(ec)),
            Err(e) => Err(Error::KeyRejected(format!(
                "not an RSA-2048 or P-256 PKCS#8 private key ({e})"
            ))),
        }
    }

    /// Parses a PKCS#8 private key given as DER or as PEM (`PRIVATE KEY`).
    pub fn from_pkcs8_bytes(bytes: &[u8]) -> Result<SoftwareSigner> {
        if pem::looks_like_pem(bytes) {
            let der = pem::decode_pem(bytes, "PRIVATE KEY")?;
            SoftwareSigner::from_pkcs8_der(&der)
        } else {
            SoftwareSigner::from_pkcs8_der(bytes)
        }
    }

    /// The private key as PKCS#8 v1 DER. Handle with care: this is the secret.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>> {
        match &self.key {
            KeyPairInner::Rsa(k) => k
                .as_der()
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| Error::Crypto("RSA PKCS#8 encoding")),
            KeyPairInner::Ecdsa(k) => k
                .to_pkcs8v1()
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| Error::Crypto("P-256 PKCS#8 encoding")),
        }
    }

    /// Writes the private key as PKCS#8 DER, or PEM if the path ends in `.pem`,
    /// with mode 0600, atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let der = self.to_pkcs8_der()?;
        let is_pem = path.extension().is_some_and(|e| e == "pem");
        if is_pem {
            write_file_atomic(path, pem::to_pem("PRIVATE KEY", &der)?.as_bytes(), 0o600)
        } else {
            write_file_atomic(path, &der, 0o600)
        }
    }

    /// Reads a private key written by [`SoftwareSigner::save`] (DER or PEM PKCS#8).
    pub fn load(path: &Path) -> Result<SoftwareSigner> {
        let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
        SoftwareSigner::from_pkcs8_bytes(&bytes)
    }

    fn new(key: KeyPairInner) -> Result<SoftwareSigner> {
        let spki = match &key {
            KeyPairInner::Rsa(k) => k.public_key().as_der(),
            KeyPairInner::Ecdsa(k) => k.public_key().as_der(),
        }
        .map_err(|_| Error::Crypto("public key encoding"))?;
        let spki_der = spki.as_ref().to_vec();
        let hashes = PublicKeyHashes::from_spki_der(&spki_der)?;
        Ok(SoftwareSigner {
            key,
            spki_der,
            hashes,
            rng: SystemRandom::new(),
        })
    }
}

impl Signer for SoftwareSigner {
    fn algorithm(&self) -> KeyAlgorithm {
        match self.key {
            KeyPairInner::Rsa(_) => KeyAlgorithm::Rsa2048,
            KeyPairInner::Ecdsa(_) => KeyAlgorithm::EcdsaP256,
        }
    }

    fn public_key_der(&self) -> &[u8] {
        &self.spki_der
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        match &self.key {
            KeyPairInner::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
                    .map_err(|_| Error::Crypto("RSA signing"))?;
                Ok(sig)
            }
            KeyPairInner::Ecdsa(k) => k
                .sign(&self.rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Crypto("ECDSA signing")),
        }
    }

    fn sign_sha256_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>> {
        let digest =
            aws_lc_rs::digest::Digest::import_less_safe(digest, &aws_lc_rs::digest::SHA256)
                .map_err(|_| Error::Crypto("SHA-256 digest import"))?;
        match &self.key {
            KeyPairInner::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign_digest(&RSA_PKCS1_SHA256, &digest, &mut sig)
                    .map_err(|_| Error::Crypto("RSA signing"))?;
                Ok(sig)
            }
            KeyPairInner::Ecdsa(k) => k
                .sign_digest(&digest)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Crypto("ECDSA signing")),
        }
    }

    fn public_key_hashes(&self) -> Result<PublicKeyHashes> {
        Ok(self.hashes)
    }
}

/// Generates a software key of the given algorithm.
pub fn generate_signer(algorithm: KeyAlgorithm) -> Result<SoftwareSigner> {
    SoftwareSigner::generate(algorithm)
}

/// Loads a PKCS#8 private key file (DER or PEM), detecting RSA or P-256.
pub fn load_signer(path: &Path) -> Result<Arc<dyn Signer>> {
    Ok(Arc::new(SoftwareSigner::load(path)?))
}

/// Refuses a private key file that anyone but its user could read or
/// change. Accepted: owned by the process's user and not readable or
/// writable by group or others (0600, 0400); or, as Kubernetes mounts a
/// Secret for a pod with an `fsGroup`, owned by root, of a group the
/// process is in, and readable by that group only (0440, 0400). Refused:
/// any access for others, group write, group read of the process's own
/// file, a root-owned file of a group the process is not in, and any other
/// owner. Symbolic links are followed (Secret volumes are links). The
/// process's user and groups come from `/proc/self/status` (Linux); where
/// there is no `/proc`, only the mode is checked.
pub fn check_key_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mode = meta.mode() & 0o777;
    let exposed = |reason: String| Error::KeyFileExposed {
        path: path.to_path_buf(),
        reason,
    };
    if mode & 0o007 != 0 {
        return Err(exposed(format!(
            "mode {mode:04o} lets other users at a private key: chmod 600 (or 400)"
        )));
    }
    if mode & 0o020 != 0 {
        return Err(exposed(format!(
            "mode {mode:04o} lets its group change a private key: chmod 600 (or 400)"
        )));
    }
    let Some(me) = process_ids()? else {
        return Ok(());
    };
    let (owner, group) = (meta.uid(), meta.gid());
    if owner == me.uid {
        if mode & 0o040 != 0 {
            return Err(exposed(format!(
                "mode {mode:04o} lets its group read a private key: chmod 600 (or 400)"
            )));
        }
    } else if owner == 0 {
        // A Secret volume: root's file, read through the pod's fsGroup.
        if mode & 0o040 != 0 && !me.groups.contains(&group) {
            return Err(exposed(format!(
                "root's file of group {group}, which this process is not in: its members could read a private key"
            )));
        }
    } else {
        return Err(exposed(format!(
            "owned by user {owner}, not by this process's user {}: chown it, or mount it as a root-owned Secret read through the pod's fsGroup",
            me.uid
        )));
    }
    Ok(())
}

/// The process's effective user and its groups (effective and
/// supplementary).
struct ProcessIds {
    uid: u32,
    groups: Vec<u32>,
}

/// From `/proc/self/status`; `None` where there is no `/proc` (not Linux).
/// Unreadable or unparsable on Linux is an error: fail closed.
fn process_ids() -> Result<Option<ProcessIds>> {
    let status = Path::new("/proc/self/status");
    if !Path::new("/proc/self").exists() {
        return Ok(None);
    }
    let text = fs::read_to_string(status).map_err(|e| Error::io(status, e))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|v| v.parse::<u32>().ok())
                    .collect::<Vec<u32>>()
            })
            .unwrap_or_default()
    };
    // "Uid:" and "Gid:" list real, effective, saved and filesystem ids.
    let (uid, gid, groups) = (field("Uid:"), field("Gid:"), field("Groups:"));
    let (Some(&uid), Some(&gid)) = (uid.get(1), gid.get(1)) else {
        return Err(Error::InvalidInput(
            "/proc/self/status names no effective user or group",
        ));
    };
    let mut all = groups;
    all.push(gid);
    Ok(Some(ProcessIds { uid, groups: all }))
}

/// Writes `contents` to `path` atomically with the given permission bits: a
/// temporary file in the same directory, created with `mode` (so a secret is
/// never readable by others, even briefly), synced, then renamed over `path`.
pub fn write_file_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .ok_or(Error::InvalidInput("output path has no file name"))?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}
