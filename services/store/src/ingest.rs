//! Ingest: events through the rules, into one synced `WriteBatch`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

use rocksdb::{WriteBatch, WriteOptions};
use shikko_core::{
    ApplyError, CertKind, CertRecord, Effect, Event, EventId, HolderId, HolderRecord, Municipality,
    RuleViolation, Serial, StateView, apply,
};

use crate::query::RevokedValue;
use crate::{Error, META_LAST_SEQ, Result, Store, cf, keys};
use shikko_core::{ChangeRecord, StatusChange};

/// How a batch treats rule-breaking events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IngestMode {
    /// Each event stands alone: good ones are applied, bad ones rejected.
    #[default]
    PerEvent,
    /// If any event is rejected, none is applied.
    AllOrNothing,
}

/// What became of one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied now, with this sequence number.
    Applied {
        /// Sequence number.
        seq: u64,
    },
    /// The same event (same id, same content) was applied before with this sequence number.
    Duplicate {
        /// Sequence number of the first delivery.
        seq: u64,
    },
    /// Rejected: the rule it breaks. Nothing of it was written.
    Rejected(RuleViolation),
    /// Valid, but not applied because another event of an all-or-nothing batch was rejected.
    Aborted,
}

/// The store's state plus the writes of the batch so far.
pub(crate) struct BatchView<'s> {
    store: &'s Store,
    certs: HashMap<(CertKind, Serial), CertRecord>,
    holders: HashMap<HolderId, HolderRecord>,
    /// Whether each certificate read from the store was on the revoked index
    /// (false when absent): a status change to good deletes an index entry
    /// only if there is one, so new issues leave no tombstones where CRL builds scan.
    listed_on_disk: RefCell<HashMap<(CertKind, Serial), bool>>,
    /// Municipalities written by this batch (not yet on disk).
    municipalities: std::collections::HashSet<u32>,
    /// The revoked index is known empty (a snapshot's load).
    empty_index: bool,
}

impl<'s> BatchView<'s> {
    /// A view of `store` with no writes yet.
    pub(crate) fn new(store: &'s Store) -> BatchView<'s> {
        BatchView {
            store,
            certs: HashMap::new(),
            holders: HashMap::new(),
            listed_on_disk: RefCell::new(HashMap::new()),
            municipalities: std::collections::HashSet::new(),
            empty_index: false,
        }
    }

    /// A view over a store whose revoked index was just emptied (a
    /// snapshot's load): no certificate is on it unless this view put it
    /// there, so no delete is written for one that is not.
    pub(crate) fn over_empty_index(store: &'s Store) -> BatchView<'s> {
        BatchView {
            empty_index: true,
            ..BatchView::new(store)
        }
    }

    /// Whether the certificate is on the revoked index now (in this batch or on disk).
    fn is_listed(&self, kind: CertKind, serial: &Serial) -> bool {
        match self.certs.get(&(kind, *serial)) {
            Some(c) => c.status.is_listed(),
            // Not read through this view: assume listed, so the delete is written.
            None => self
                .listed_on_disk
                .borrow()
                .get(&(kind, *serial))
                .copied()
                .unwrap_or(!self.empty_index),
        }
    }
}

impl StateView for BatchView<'_> {
    type Error = Error;
    fn cert(&self, kind: CertKind, serial: &Serial) -> Result<Option<CertRecord>> {
        match self.certs.get(&(kind, *serial)) {
            Some(c) => Ok(Some(c.clone())),
            None => {
                let c = self.store.cert(kind, serial)?;
                self.listed_on_disk.borrow_mut().insert(
                    (kind, *serial),
                    c.as_ref().is_some_and(|c| c.status.is_listed()),
                );
                Ok(c)
            }
        }
    }
    fn holder(&self, id: &HolderId) -> Result<Option<HolderRecord>> {
        match self.holders.get(id) {
            Some(h) => Ok(Some(h.clone())),
            None => self.store.holder(id),
        }
    }
}

pub(crate) fn fingerprint(encoded_event: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, encoded_event);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Store {
    /// [`crate::RegistryStore::ingest`].
    pub(crate) fn ingest_events(&self, events: &[Event], mode: IngestMode) -> Result<Vec<Outcome>> {
        let _writer = self
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut view = BatchView::new(self);
        let mut batch = WriteBatch::default();
        let mut seq = self.last_seq();
        let mut seen: HashMap<&EventId, (u64, [u8; 32])> = HashMap::new();
        let mut outcomes = Vec::with_capacity(events.len());
        let mut rejected = false;

        for event in events {
            let encoded = keys::encode(event, cf::EVENTS)?;
            let fp = fingerprint(&encoded);
            let earlier = match seen.get(&event.id) {
                Some(x) => Some(*x),
                None => self.event_id(&event.id)?,
            };
            if let Some((first_seq, first_fp)) = earlier {
                outcomes.push(if first_fp == fp {
                    Outcome::Duplicate { seq: first_seq }
                } else {
                    rejected = true;
                    Outcome::Rejected(RuleViolation::EventIdReused(event.id.clone()))
                });
                continue;
            }
            let effects = match apply(event, &view) {
                Ok(effects) => effects,
                Err(ApplyError::Rule(v)) => {
                    rejected = true;
                    outcomes.push(Outcome::Rejected(v));
                    continue;
                }
                Err(ApplyError::View(e)) => return Err(e),
            };
            seq += 1;
            batch.put_cf(
                self.cf(cf::WRITES),
                seq.to_be_bytes(),
                keys::encode(&effects, cf::WRITES)?,
            );
            let (changes, municipalities) = self.write_effects(&mut batch, &mut view, effects)?;
            let record = ChangeRecord {
                seq,
                event_id: event.id.clone(),
                event_type: event.body.type_name().to_owned(),
                time: event.time,
                changes,
                municipalities,
            };
            let seq_key = seq.to_be_bytes();
            batch.put_cf(self.cf(cf::EVENTS), seq_key, &encoded);
            batch.put_cf(self.cf(cf::FEED), seq_key, keys::encode(&record, cf::FEED)?);
            let mut id_value = seq_key.to_vec();
            id_value.extend_from_slice(&fp);
            batch.put_cf(self.cf(cf::EVENT_IDS), event.id.as_str(), id_value);
            seen.insert(&event.id, (seq, fp));
            outcomes.push(Outcome::Applied { seq });
        }

        if mode == IngestMode::AllOrNothing && rejected {
            let durable = self.last_seq();
            for o in &mut outcomes {
                // A duplicate of an event earlier in this aborted batch was never written either.
                let unwritten = match o {
                    Outcome::Applied { .. } => true,
                    Outcome::Duplicate { seq } => *seq > durable,
                    _ => false,
                };
                if unwritten {
                    *o = Outcome::Aborted;
                }
            }
            return Ok(outcomes);
        }
        if seq > self.last_seq() {
            batch.put_cf(self.cf(cf::META), META_LAST_SEQ, seq.to_be_bytes());
            let mut w = WriteOptions::default();
            w.set_sync(true);
            self.db.write_opt(batch, &w)?;
            self.last_seq.store(seq, Ordering::SeqCst);
        }
        Ok(outcomes)
    }

    /// The sequence number and fingerprint under which an event id was applied.
    fn event_id(&self, id: &EventId) -> Result<Option<(u64, [u8; 32])>> {
        let Some(v) = self.db.get_pinned_cf(self.cf(cf::EVENT_IDS), id.as_str())? else {
            return Ok(None);
        };
        let seq = keys::decode_u64(&v, cf::EVENT_IDS)?;
        let fp: [u8; 32] = v
            .get(8..40)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error::Corrupt {
                cf: cf::EVENT_IDS,
                why: "fingerprint is not 32 bytes".into(),
            })?;
        Ok(Some((seq, fp)))
    }

    pub(crate) fn write_effects(
        &self,
        batch: &mut WriteBatch,
        view: &mut BatchView<'_>,
        effects: Vec<Effect>,
    ) -> Result<(Vec<StatusChange>, Vec<Municipality>)> {
        let mut changes = Vec::new();
        let mut new_municipalities = Vec::new();
        for effect in effects {
            match effect {
                Effect::PutCert(c) => {
                    let key = keys::cert_key(c.kind, &c.serial);
                    batch.put_cf(self.cf(cf::CERTS), key, keys::encode(&c, cf::CERTS)?);
                    let rkey = keys::revoked_key(c.kind, c.partition, &c.serial);
                    if c.status.is_listed() {
                        let v = RevokedValue {
                            status: c.status,
                            not_after: c.not_after,
                        };
                        batch.put_cf(self.cf(cf::REVOKED), rkey, v.encode()?);
                    } else if view.is_listed(c.kind, &c.serial) {
                        batch.delete_cf(self.cf(cf::REVOKED), rkey);
                    }
                    changes.push(StatusChange {
                        kind: c.kind,
                        serial: c.serial,
                        partition: c.partition,
                        not_after: c.not_after,
                        status: c.status,
                        not_before: c.not_before,
                    });
                    view.certs.insert((c.kind, c.serial), c);
                }
                Effect::PutHolder(h) => {
                    batch.put_cf(
                        self.cf(cf::HOLDERS),
                        h.id.as_str(),
                        keys::encode(&h, cf::HOLDERS)?,
                    );
                    view.holders.insert(h.id.clone(), h);
                }
                Effect::Link { kind, old, new } => {
                    batch.put_cf(
                        self.cf(cf::LINKS),
                        keys::cert_key(kind, &old),
                        new.as_padded(),
                    );
                }
                Effect::PutCertDer { kind, serial, der } => {
                    batch.put_cf(self.cf(cf::CERT_DER), keys::cert_key(kind, &serial), der);
                }
                Effect::PutMunicipality(m) => {
                    // The feed names a municipality once, with the event
                    // that made it known, for the followers' partitions.
                    let known = view.municipalities.contains(&m.code.0)
                        || self
                            .db
                            .get_pinned_cf(self.cf(cf::MUNICIPALITIES), m.code.0.to_be_bytes())?
                            .is_some();
                    if !known {
                        view.municipalities.insert(m.code.0);
                        new_municipalities.push(m.clone());
                    }
                    batch.put_cf(
                        self.cf(cf::MUNICIPALITIES),
                        m.code.0.to_be_bytes(),
                        keys::encode(&m, cf::MUNICIPALITIES)?,
                    );
                }
            }
        }
        Ok((changes, new_municipalities))
    }
}
