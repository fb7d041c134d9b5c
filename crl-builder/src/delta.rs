//! A delta CRL's entries: the last status of every certificate of an issuer
//! that was listed (revoked or held) at some point since the base full CRL,
//! or released from a hold (as removeFromCRL), read from the change feed of
//! a snapshot. Newly issued certificates (good, never listed) are not
//! tracked: memory is bounded by the revocations and holds since the last
//! full CRL (a day: what a delta carries), not by issuance or the population.

use std::collections::BTreeMap;
use std::path::Path;

use shikko_core::{CertKind, CertStatus, RevocationReason, Serial, UnixTime};
use shikko_store::Snapshot;

use crate::der::{DayCache, EntryFields, push_entry};
use crate::error::Result;
use crate::scan::fields_of;
use crate::state::Base;
use crate::writer::{Body, BodyWriter};

/// Change records read per page of the feed.
const PAGE: usize = 10_000;

/// Encodes the changes of `kind`'s certificates from `base.seq` to the
/// snapshot into one body segment in `dir`, one entry per certificate (its
/// status at the snapshot).
pub(crate) fn encode(snap: &Snapshot<'_>, kind: CertKind, base: Base, dir: &Path) -> Result<Body> {
    let latest = latest_changes(snap, kind, base)?;
    let mut body = BodyWriter::create(dir)?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut days = DayCache::default();
    for (serial, (status, not_after, time)) in &latest {
        if *not_after < base.this_update {
            continue;
        }
        let fields = fields_of(serial, status).unwrap_or(EntryFields {
            serial,
            date: *time,
            reason: Some(RevocationReason::RemoveFromCrl),
            invalidity_date: None,
        });
        push_entry(&mut buf, &fields, &mut days)?;
        body.write(&buf, 1)?;
        buf.clear();
    }
    body.finish()
}

/// Each tracked certificate's status, end of validity and the time of its
/// last change, by serial.
fn latest_changes(
    snap: &Snapshot<'_>,
    kind: CertKind,
    base: Base,
) -> Result<BTreeMap<Serial, (CertStatus, UnixTime, UnixTime)>> {
    let mut latest = BTreeMap::new();
    let mut from = base.seq + 1;
    loop {
        let page = snap.changes(from, PAGE)?;
        // The feed must go on from the base without a hole: a delta built
        // over one would miss the changes in it.
        let next = page.first().map(|r| r.seq);
        if (next.is_some() && next != Some(from)) || (next.is_none() && snap.seq() >= from) {
            return Err(crate::Error::Input(
                "the mirror's feed does not reach back to the base CRL: build a full CRL",
            ));
        }
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        for rec in &page {
            // Only a resume event turns a listed certificate good again.
            let release = rec.event_type == "resume";
            for c in rec.changes.iter().filter(|c| c.kind == kind) {
                if c.status.is_listed() || release || latest.contains_key(&c.serial) {
                    latest.insert(c.serial, (c.status, c.not_after, rec.time));
                }
            }
        }
        if page.len() < PAGE {
            break;
        }
    }
    Ok(latest)
}
