//! Signed tree heads of the audit log, as the service publishes them
//! (issue 15): the head of the durable log signed with the audit key
//! ([`shikko_pki::tree_head`]), served by `InfoAdmin.AuditTreeHead` and
//! written to files (`[info] audit_heads_dir`): `latest.json`, replaced
//! atomically, and `heads.jsonl`, one line per head signed, appended.
//!
//! The audit key is a file outside the data directory (refused inside it:
//! whoever holds a copy of the store must not hold the key that vouches for
//! it). The key only vouches for what the service saw; what makes a
//! rewritten log visible is a witness that remembers an earlier head
//! (`shikko witness`): a rewritten, cut or restored log has no consistency
//! proof to it.
//!
//! The signer also refuses to contradict itself: at start it reads the
//! newest head in its heads directory, and if the log is shorter than that
//! head or holds other records under it, it signs nothing
//! (`shikko_info_audit_head_conflict` is 1, every `AuditTreeHead` fails)
//! until an operator has looked into it and moved the file away.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use shikko_core::UnixTime;
use shikko_pki::Signer;
use shikko_pki::tree_head::{self, SignedTreeHead, TreeHead};
use shikko_store::Store;

use crate::error::InfoError;

/// A signed tree head as JSON (files, the CLI, the witness's state):
/// `{"size":N,"time":T,"root":"HEX","signature":"HEX"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadFile {
    /// Records in the log.
    pub size: u64,
    /// When it was signed (Unix seconds).
    pub time: i64,
    /// The Merkle tree head (hex, 64 digits).
    pub root: String,
    /// The audit key's signature over the head's 74 signed octets (hex of the DER or PKCS#1 signature).
    pub signature: String,
}

impl HeadFile {
    /// The file form of a signed head.
    pub fn of(sth: &SignedTreeHead) -> HeadFile {
        HeadFile {
            size: sth.head.size,
            time: sth.head.time.0,
            root: hex::encode(sth.head.root),
            signature: hex::encode(&sth.signature),
        }
    }

    /// The signed head it describes (not verified).
    pub fn signed_head(&self) -> Result<SignedTreeHead, String> {
        let root: [u8; 32] = hex::decode(&self.root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or("root: not 64 hex digits")?;
        let signature = hex::decode(&self.signature).map_err(|_| "signature: not hex")?;
        Ok(SignedTreeHead {
            head: TreeHead {
                size: self.size,
                root,
                time: UnixTime(self.time),
            },
            signature,
        })
    }

    /// Reads and parses a head file.
    pub fn read(path: &Path) -> Result<SignedTreeHead, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let f: HeadFile = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not a signed tree head: {e}", path.display()))?;
        f.signed_head()
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// One line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The SubjectPublicKeyInfo (DER) in a PEM `PUBLIC KEY` file, or in the
/// certificate of a PEM `CERTIFICATE` file.
pub fn read_public_key(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    if let Ok(der) = shikko_pki::pem::decode_pem(&bytes, "PUBLIC KEY") {
        return Ok(der);
    }
    let cert = shikko_pki::parse_certificate(&bytes).map_err(|_| {
        format!(
            "{}: neither a PEM PUBLIC KEY nor a certificate",
            path.display()
        )
    })?;
    der::Encode::to_der(cert.tbs_certificate().subject_public_key_info())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The PEM `PUBLIC KEY` of a signer (what verifiers of its heads need).
pub fn public_key_pem(key: &dyn Signer) -> Result<String, InfoError> {
    shikko_pki::to_pem("PUBLIC KEY", key.public_key_der())
        .map_err(|e| InfoError::Internal(e.to_string()))
}

/// Signs the heads of one log.
pub(crate) struct HeadSigner {
    key: Arc<dyn Signer>,
    dir: Option<PathBuf>,
    state: Mutex<SignerState>,
}

struct SignerState {
    latest: Option<SignedTreeHead>,
    /// Why nothing is signed (a conflict with an earlier head), if so.
    conflict: Option<String>,
}

impl HeadSigner {
    /// A signer with `key`, writing heads to `dir` if given; checks the
    /// log in `store` against the newest head in `dir`.
    pub(crate) fn new(
        store: &Store,
        key: Arc<dyn Signer>,
        dir: Option<PathBuf>,
    ) -> Result<HeadSigner, InfoError> {
        let mut state = SignerState {
            latest: None,
            conflict: None,
        };
        if let Some(d) = &dir {
            std::fs::create_dir_all(d).map_err(|e| {
                InfoError::Internal(format!("creating the heads directory {}: {e}", d.display()))
            })?;
            let latest = d.join("latest.json");
            if latest.exists() {
                let sth = HeadFile::read(&latest).map_err(InfoError::Internal)?;
                if !tree_head::verify(&sth, key.public_key_der()) {
                    state.conflict = Some(format!(
                        "{} is not signed by this audit key",
                        latest.display()
                    ));
                } else {
                    state.conflict = check_against(store, &sth)?;
                    if state.conflict.is_none() {
                        state.latest = Some(sth);
                    }
                }
            }
        }
        if let Some(c) = &state.conflict {
            tracing::error!(
                conflict = %c,
                "the audit log contradicts a head signed before: no head will be signed until this is looked into"
            );
        }
        Ok(HeadSigner {
            key,
            dir,
            state: Mutex::new(state),
        })
    }

    /// Whether signing stopped over a conflict with an earlier head.
    pub(crate) fn conflict(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.conflict.clone())
    }

    /// The audit key's public key (SubjectPublicKeyInfo, DER).
    pub(crate) fn public_key_der(&self) -> &[u8] {
        self.key.public_key_der()
    }

    /// The newest signed head of the log of `size` durable records: the
    /// last one signed if the log has not grown and it is younger than
    /// `max_age_secs`, else a new one.
    pub(crate) fn current(
        &self,
        store: &Store,
        size: u64,
        max_age_secs: i64,
    ) -> Result<SignedTreeHead, InfoError> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| InfoError::Internal("the head signer's lock is poisoned".into()))?;
        if let Some(c) = &st.conflict {
            return Err(InfoError::FailedPrecondition(format!(
                "no audit tree head is signed: {c}"
            )));
        }
        let now = UnixTime::now();
        if let Some(l) = &st.latest {
            if l.head.size == size && now.0 - l.head.time.0 < max_age_secs {
                return Ok(l.clone());
            }
            if l.head.size > size {
                return Err(InfoError::Internal(
                    "the durable log is shorter than the last signed head".into(),
                ));
            }
        }
        let head = TreeHead {
            size,
            root: crate::tree::head(store, size)?,
            // Never earlier than a head signed before (a clock stepped back).
            time: UnixTime(now.0.max(st.latest.as_ref().map_or(0, |l| l.head.time.0))),
        };
        let sth = tree_head::sign(head, self.key.as_ref())
            .map_err(|e| InfoError::Internal(format!("signing a tree head: {e}")))?;
        if let Some(d) = &self.dir {
            write_files(d, &sth).map_err(|e| {
                InfoError::Internal(format!("writing a head to {}: {e}", d.display()))
            })?;
        }
        st.latest = Some(sth.clone());
        Ok(sth)
    }
}

/// Whether the log in `store` agrees with `sth`: `None` if it does, else why not.
fn check_against(store: &Store, sth: &SignedTreeHead) -> Result<Option<String>, InfoError> {
    let size = crate::audit::last_seq(store)?;
    if size < sth.head.size {
        return Ok(Some(format!(
            "the log holds {size} records, fewer than the {} of the head signed at {} (cut, or restored from an older copy)",
            sth.head.size, sth.head.time.0
        )));
    }
    if sth.head.size > 0 && crate::tree::head(store, sth.head.size)? != sth.head.root {
        return Ok(Some(format!(
            "the first {} records are not those of the head signed at {} (rewritten)",
            sth.head.size, sth.head.time.0
        )));
    }
    Ok(None)
}

/// Writes `sth` to `dir`: a line appended to `heads.jsonl` (synced), then
/// `latest.json` replaced atomically.
fn write_files(dir: &Path, sth: &SignedTreeHead) -> std::io::Result<()> {
    let line = HeadFile::of(sth).to_json();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("heads.jsonl"))?;
    writeln!(f, "{line}")?;
    f.sync_data()?;
    shikko_pki::write_file_atomic(&dir.join("latest.json"), line.as_bytes(), 0o644)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// How often a head is signed when the log does not grow, by default (seconds).
pub const DEFAULT_HEAD_SECS: i64 = 60;

/// Signs a head every `svc.head_every_secs()` until `shutdown` (so files and
/// metrics show a fresh head even when no one asks).
pub async fn publish(
    svc: Arc<crate::InfoService>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    let every = std::time::Duration::from_secs(svc.head_every_secs().max(1) as u64);
    loop {
        let s = svc.clone();
        match tokio::task::spawn_blocking(move || s.signed_head()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "signing the audit log's tree head failed"),
            Err(e) => tracing::error!(error = %e, "the tree head task failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = &mut shutdown => return,
        }
    }
}

/// Checks an export (JSON lines from seq 1, as `shikko audit export` writes
/// them) against signed heads: for each head, the tree head of the export's
/// first `size` lines must be its root (each line is a leaf, byte for byte).
/// Returns how many lines were read.
pub fn check_export(input: impl std::io::BufRead, heads: &[SignedTreeHead]) -> Result<u64, String> {
    use shikko_core::merkle::StreamingRoot;
    use shikko_pki::merkle::Sha256;
    let mut heads: Vec<&SignedTreeHead> = heads.iter().collect();
    heads.sort_by_key(|h| h.head.size);
    let mut next = heads.iter().peekable();
    let mut tree = StreamingRoot::default();
    let mut check = |tree: &StreamingRoot| -> Result<(), String> {
        while let Some(h) = next.next_if(|h| h.head.size == tree.size()) {
            if tree.root::<Sha256>() != h.head.root {
                return Err(format!(
                    "the first {} records of the export are not those of the head signed at {} (edited, removed, inserted or reordered)",
                    h.head.size, h.head.time.0
                ));
            }
        }
        Ok(())
    };
    check(&tree)?;
    for line in input.lines() {
        let line = line.map_err(|e| format!("reading the export: {e}"))?;
        if line.is_empty() {
            continue;
        }
        tree.push::<Sha256>(crate::tree::leaf(line.as_bytes()));
        check(&tree)?;
    }
    if let Some(h) = heads.iter().find(|h| h.head.size > tree.size()) {
        return Err(format!(
            "the export holds {} records, fewer than the {} of the head signed at {} (cut)",
            tree.size(),
            h.head.size,
            h.head.time.0
        ));
    }
    Ok(tree.size())
}

/// Checks that `record` (its stored JSON) is record `seq` of the log under
/// `sth`, with its inclusion proof.
pub fn check_inclusion(
    sth: &SignedTreeHead,
    seq: u64,
    record: &str,
    proof: &[shikko_core::merkle::Hash],
) -> Result<(), String> {
    use shikko_pki::merkle::Sha256;
    let r: crate::audit::AuditRecord = serde_json::from_str(record)
        .map_err(|_| "the record is not an audit record".to_string())?;
    if r.seq != seq {
        return Err(format!("asked for record {seq}, got record {}", r.seq));
    }
    if r.compute_hash() != r.hash {
        return Err(format!("record {seq}: its hash does not match its content"));
    }
    if seq == 0 {
        return Err("no record 0".into());
    }
    shikko_core::merkle::verify_inclusion::<Sha256>(
        seq - 1,
        sth.head.size,
        &crate::tree::leaf(record.as_bytes()),
        proof,
        &sth.head.root,
    )
    .map_err(|e| format!("record {seq} is not in the log of the signed head ({e})"))
}
