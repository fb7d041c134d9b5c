//! The audit log: every query, consent change, administrative change and
//! refusal, appended in order; each record commits to the previous record's
//! hash, so an altered, removed or reordered record breaks the chain; and
//! each record is a leaf of a Merkle tree ([`crate::tree`]) whose heads and
//! proofs let others check the log without trusting the store.
//!
//! Records carry ids, serials, outcomes and reasons, never 4 information.
//! Appends go through one writer thread that commits whatever is waiting in
//! one synced RocksDB batch (group commit), together with the state change
//! the record describes (a consent, a billing counter): a caller's answer is
//! released only after its audit record is durable.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::mpsc;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use shikko_core::UnixTime;
use shikko_store::Store;
use tokio::sync::oneshot;

use crate::error::InfoError;
use crate::keys;

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Most records committed in one batch.
const MAX_GROUP: usize = 50_000;

/// One audit record, as stored and exported (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When it was appended (Unix seconds).
    pub time: i64,
    /// Who acted: an operator id, `admin`, or `-` for an unauthenticated caller.
    pub actor: String,
    /// What: `query`, `consent.record`, `consent.withdraw`, `refused`, `operator.register`, ...
    pub action: String,
    /// The service provider concerned, or empty.
    pub provider: String,
    /// What it concerned: a certificate serial (hex), a consent id, an operator id.
    pub subject: String,
    /// The result: an answer's outcome, a refusal's reason code.
    pub outcome: String,
    /// Hex SHA-256 of the previous record ([`GENESIS`] for the first).
    pub prev: String,
    /// Hex SHA-256 of this record's other fields, `prev` included.
    pub hash: String,
    /// The pseudonym of the holder the act concerned (hex HMAC-SHA256 of
    /// the holder id under a key the store keeps), or empty: what a
    /// holder's access record is found by. Not in records written before.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub holder: String,
}

/// What a caller asks to append (the writer adds seq, time, prev and hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// See [`AuditRecord::actor`].
    pub actor: String,
    /// See [`AuditRecord::action`].
    pub action: &'static str,
    /// See [`AuditRecord::provider`].
    pub provider: String,
    /// See [`AuditRecord::subject`].
    pub subject: String,
    /// See [`AuditRecord::outcome`].
    pub outcome: String,
    /// The holder whose data the act concerned, if one is known (the
    /// record carries their pseudonym, [`AuditRecord::holder`]).
    pub holder: Option<shikko_core::HolderId>,
}

impl AuditRecord {
    /// The hash this record should carry: SHA-256 over its fields in a fixed
    /// order (a JSON array, so no field can bleed into the next).
    pub fn compute_hash(&self) -> String {
        let mut body = serde_json::json!([
            self.seq,
            self.time,
            self.actor,
            self.action,
            self.provider,
            self.subject,
            self.outcome,
            self.prev
        ]);
        // A record without a holder hashes as records always did.
        if !self.holder.is_empty()
            && let Some(a) = body.as_array_mut()
        {
            a.push(serde_json::Value::String(self.holder.clone()));
        }
        hex::encode(digest::digest(&digest::SHA256, body.to_string().as_bytes()))
    }
}

/// A billing counter increment: provisions of `operator` for `provider` on `day`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Billing {
    pub(crate) day: String,
    pub(crate) operator: String,
    pub(crate) provider: String,
}

/// A unit of work for the writer: audit entries, billing increments and
/// other puts (a consent), committed together or not at all.
pub(crate) struct Job {
    pub(crate) entries: Vec<AuditEntry>,
    pub(crate) billing: Vec<(Billing, u64)>,
    pub(crate) puts: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) done: oneshot::Sender<Result<u64, String>>,
    /// Held until the job is written (or failed), whether or not its caller
    /// still waits: the locks and reservations its writes rely on.
    pub(crate) hold: Vec<Box<dyn std::any::Any + Send>>,
}

/// The writer's handle. Dropping it lets the writer finish what was sent
/// and waits for it (so the store is released when the service is dropped).
pub(crate) struct AuditLog {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl AuditLog {
    /// Starts the writer thread over `store`, continuing its chain.
    pub(crate) fn start(store: std::sync::Arc<Store>) -> Result<AuditLog, InfoError> {
        let (seq, prev) = match last(&store)? {
            Some(r) => (r.seq, r.hash),
            None => (0, GENESIS.to_string()),
        };
        let edge = crate::tree::Edge::load(&store, seq)?;
        let holders = HolderPseudonyms::open(&store)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("shikko-audit".into())
            .spawn(move || writer(store, rx, seq, prev, edge, holders))
            .map_err(|e| InfoError::Internal(format!("audit writer thread: {e}")))?;
        Ok(AuditLog {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Commits a job; returns the sequence number of its last audit record
    /// once everything is durable.
    pub(crate) async fn commit(
        &self,
        entries: Vec<AuditEntry>,
        billing: Vec<(Billing, u64)>,
        puts: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<u64, InfoError> {
        self.commit_holding(entries, billing, puts, Vec::new())
            .await
    }

    /// [`AuditLog::commit`], holding `hold` (guards of locks and
    /// reservations) until the job is written: a caller that goes away
    /// (a cancelled call) does not release them early, while its job may
    /// still be written.
    pub(crate) async fn commit_holding(
        &self,
        entries: Vec<AuditEntry>,
        billing: Vec<(Billing, u64)>,
        puts: Vec<(Vec<u8>, Vec<u8>)>,
        hold: Vec<Box<dyn std::any::Any + Send>>,
    ) -> Result<u64, InfoError> {
        let (done, wait) = oneshot::channel();
        let stopped = || InfoError::Internal("the audit writer has stopped".into());
        self.tx
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job {
                entries,
                billing,
                puts,
                done,
                hold,
            })
            .map_err(|_| stopped())?;
        wait.await
            .map_err(|_| stopped())?
            .map_err(InfoError::Internal)
    }
}

fn writer(
    store: std::sync::Arc<Store>,
    rx: mpsc::Receiver<Job>,
    mut seq: u64,
    mut prev: String,
    mut edge: crate::tree::Edge,
    holders: HolderPseudonyms,
) {
    // Counters this writer alone writes (billing, and the metered use of
    // the info role's own answers), as last written: the day's working set.
    let mut counters: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut counters_day = String::new();
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut n = jobs[0].entries.len();
        while n < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => {
                    n += j.entries.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let now = UnixTime::now().0;
        let today = crate::service::billing_day(UnixTime(now));
        if today != counters_day {
            // Yesterday's counters are read again if a late job names them.
            counters.clear();
            counters_day = today.clone();
        }
        let (mut s, mut p) = (seq, prev.clone());
        // The tree grows with the records, in the same batch, or not at all.
        let mut grown = edge.clone();
        let mut puts = Vec::with_capacity(n + jobs.len());
        let mut increments: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut last_of_job = Vec::with_capacity(jobs.len());
        let mut failed = None;
        for job in &mut jobs {
            for e in job.entries.drain(..) {
                s += 1;
                if let Some(k) = crate::verifiers::metered(&today, &e) {
                    increments.push((k, 1));
                }
                let holder = e.holder.as_ref().map(|h| holders.of(h));
                if let Some(p) = &holder {
                    puts.push((keys::holder_access(p, s), Vec::new()));
                }
                let mut r = AuditRecord {
                    seq: s,
                    time: now,
                    actor: e.actor,
                    action: e.action.to_string(),
                    provider: e.provider,
                    subject: e.subject,
                    outcome: e.outcome,
                    prev: p,
                    hash: String::new(),
                    holder: holder.unwrap_or_default(),
                };
                r.hash = r.compute_hash();
                p = r.hash.clone();
                match serde_json::to_vec(&r) {
                    Ok(v) => {
                        grown.append(crate::tree::leaf(&v), &mut puts);
                        puts.push((keys::audit(s), v));
                    }
                    Err(e) => failed = Some(format!("encoding an audit record: {e}")),
                }
            }
            last_of_job.push(s);
            for (b, add) in job.billing.drain(..) {
                increments.push((keys::billing(&b.day, &b.operator, &b.provider), add));
            }
            puts.append(&mut job.puts);
        }
        let mut next_counters: HashMap<Vec<u8>, u64> = HashMap::new();
        for (key, add) in increments {
            let current = match next_counters.get(&key).or_else(|| counters.get(&key)) {
                Some(c) => *c,
                None => match store.info_get(&key) {
                    Ok(v) => v.map(|v| keys::decode_count(&v)).unwrap_or(0),
                    Err(e) => {
                        failed = Some(format!("reading a counter: {e}"));
                        0
                    }
                },
            };
            next_counters.insert(key, current + add);
        }
        for (k, c) in &next_counters {
            puts.push((k.clone(), c.to_be_bytes().to_vec()));
        }
        let result = match failed {
            Some(e) => Err(e),
            None => store.info_write(&puts).map_err(|e| e.to_string()),
        };
        match result {
            Ok(()) => {
                seq = s;
                prev = p;
                edge = grown;
                counters.extend(next_counters);
                for (job, last) in jobs.into_iter().zip(last_of_job) {
                    let _ = job.done.send(Ok(last));
                    // Written: what the job held may go.
                    drop(job.hold);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit batch not written; its callers get an error");
                for job in jobs {
                    let _ = job.done.send(Err(e.clone()));
                    drop(job.hold);
                }
            }
        }
    }
}

/// The pseudonyms of holders in audit records: HMAC-SHA256 of the holder
/// id under a key made once and kept in the store (`k/holder-audit`), hex.
/// Anyone reading the log sees which records concern one person, never who
/// (a holder id is the registry's key for a person).
pub(crate) struct HolderPseudonyms {
    key: aws_lc_rs::hmac::Key,
}

impl HolderPseudonyms {
    /// The store's key (made on first use).
    pub(crate) fn open(store: &Store) -> Result<HolderPseudonyms, InfoError> {
        let secret = keys::secret(store, keys::HOLDER_AUDIT_KEY, "the holder pseudonym key")?;
        Ok(HolderPseudonyms {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
        })
    }

    /// The pseudonym of `holder`.
    pub(crate) fn of(&self, holder: &shikko_core::HolderId) -> String {
        let mut m = b"shikko audit holder v1\0".to_vec();
        m.extend_from_slice(holder.as_str().as_bytes());
        hex::encode(aws_lc_rs::hmac::sign(&self.key, &m))
    }
}

/// The sequence number of the last durable record (0: none), the size of the log.
pub fn last_seq(store: &Store) -> Result<u64, InfoError> {
    Ok(last(store)?.map_or(0, |r| r.seq))
}

/// The last durable record.
pub(crate) fn last(store: &Store) -> Result<Option<AuditRecord>, InfoError> {
    match store.info_last(keys::AUDIT_PREFIX)? {
        Some((_, v)) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|_| InfoError::Corrupt("the last audit record does not decode")),
        None => Ok(None),
    }
}

/// Audit records from `from_seq` on, at most `limit`.
pub fn read(store: &Store, from_seq: u64, limit: usize) -> Result<Vec<AuditRecord>, InfoError> {
    store
        .info_scan(keys::AUDIT_PREFIX, &keys::audit(from_seq.max(1)), limit)?
        .into_iter()
        .map(|(_, v)| {
            serde_json::from_slice(&v)
                .map_err(|_| InfoError::Corrupt("an audit record does not decode"))
        })
        .collect()
}

/// Writes the log from `from_seq` on as JSON lines; returns how many records.
pub fn export(
    store: &Store,
    from_seq: u64,
    out: &mut dyn std::io::Write,
) -> Result<u64, InfoError> {
    let mut next = from_seq.max(1);
    let mut n = 0;
    loop {
        let page = read(store, next, 10_000)?;
        let Some(last) = page.last() else { break };
        next = last.seq + 1;
        for r in &page {
            let line = serde_json::to_string(r).map_err(|e| InfoError::Internal(e.to_string()))?;
            writeln!(out, "{line}").map_err(|e| InfoError::Internal(e.to_string()))?;
            n += 1;
        }
    }
    Ok(n)
}

/// What [`verify`] found in an intact export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    /// Records checked.
    pub records: u64,
    /// Sequence number of the first.
    pub first_seq: u64,
    /// Sequence number of the last (the head).
    pub last_seq: u64,
    /// Hash of the last record: compare it with the head the service reports
    /// to detect records cut off the end.
    pub head: String,
}

/// Why an export is not an intact chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A line that is not an audit record.
    #[error("line {line}: not an audit record")]
    Malformed {
        /// 1-based line number.
        line: u64,
    },
    /// A record whose content does not match its hash (altered).
    #[error("line {line} (seq {seq}): record altered: its hash does not match its content")]
    Altered {
        /// 1-based line number.
        line: u64,
        /// Its sequence number.
        seq: u64,
    },
    /// A record that does not follow the previous one (removed, inserted or reordered).
    #[error(
        "line {line} (seq {seq}): chain broken after seq {after}: a record was removed, inserted or reordered"
    )]
    Broken {
        /// 1-based line number.
        line: u64,
        /// Its sequence number.
        seq: u64,
        /// The previous record's sequence number.
        after: u64,
    },
    /// A log said to start at the beginning does not.
    #[error("the log does not start at seq 1 with the genesis hash (first seq {0})")]
    NotFromGenesis(u64),
    /// The head differs from the expected one (records cut off the end, or another log).
    #[error("head is seq {seq} {found}, expected {expected}")]
    HeadMismatch {
        /// Last sequence number read.
        seq: u64,
        /// Its hash.
        found: String,
        /// The expected head hash.
        expected: String,
    },
    /// No records.
    #[error("no audit records")]
    Empty,
    /// Reading failed.
    #[error("reading: {0}")]
    Io(String),
}

/// Checks an exported log: every record's hash, every link, consecutive
/// sequence numbers; from the genesis record unless `partial` (an export from
/// a later seq, whose first link cannot be checked); against `expected_head`
/// when given.
pub fn verify(
    input: impl BufRead,
    partial: bool,
    expected_head: Option<&str>,
) -> Result<ChainSummary, ChainError> {
    let mut prev: Option<AuditRecord> = None;
    let mut first_seq = 0;
    let mut records = 0;
    for (i, line) in input.lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(|e| ChainError::Io(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: AuditRecord =
            serde_json::from_str(&line).map_err(|_| ChainError::Malformed { line: line_no })?;
        if r.compute_hash() != r.hash {
            return Err(ChainError::Altered {
                line: line_no,
                seq: r.seq,
            });
        }
        match &prev {
            None => {
                first_seq = r.seq;
                if !partial && (r.seq != 1 || r.prev != GENESIS) {
                    return Err(ChainError::NotFromGenesis(r.seq));
                }
            }
            Some(p) => {
                if r.seq != p.seq + 1 || r.prev != p.hash {
                    return Err(ChainError::Broken {
                        line: line_no,
                        seq: r.seq,
                        after: p.seq,
                    });
                }
            }
        }
        records += 1;
        prev = Some(r);
    }
    let last = prev.ok_or(ChainError::Empty)?;
    if let Some(expected) = expected_head
        && expected != last.hash
    {
        return Err(ChainError::HeadMismatch {
            seq: last.seq,
            found: last.hash,
            expected: expected.to_string(),
        });
    }
    Ok(ChainSummary {
        records,
        first_seq,
        last_seq: last.seq,
        head: last.hash,
    })
}
