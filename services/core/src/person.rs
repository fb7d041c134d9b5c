//! Answers keyed by the person, not by a chain of serials (issue 13).
//!
//! Whoever stored a serial (a bank its customer's signing serial) asks about
//! the serial's holder: [`current_of`] finds the holder of any serial they
//! ever had and that holder's current certificate of the same kind, however
//! it was replaced (a move, a renewal, a card returned and a new one, loss
//! and re-issue, key compromise, emigration and return, expiry and a new
//! issue, a new phone). [`info_outcome`] turns that into the 4-information
//! answer. Both are pure: the registry's store, a replica and the in-memory
//! model all answer alike.

use crate::consent::{InfoItems, InfoOutcome};
use crate::holder::{HolderRecord, HolderState};
use crate::ids::{CertKind, Serial};
use crate::rules::StateView;
use crate::status::{CertRecord, CertStatus};
use crate::time::UnixTime;

/// A serial's holder and where they stand now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// The certificate asked about.
    pub asked: CertRecord,
    /// Its holder.
    pub holder: HolderRecord,
    /// The holder's current certificate of the same kind: good (not
    /// revoked, not on hold) and within its validity at the time asked.
    pub current: Option<CertRecord>,
}

/// Whether `c` is good at `now`: not revoked, not on hold, within validity.
pub fn good_at(c: &CertRecord, now: UnixTime) -> bool {
    c.status == CertStatus::Good && c.not_before <= now && now < c.not_after
}

/// The holder of `kind` serial `serial` and their current certificate of
/// that kind at `now`; `None` when the registry does not know the serial.
pub fn current_of<V: StateView>(
    view: &V,
    kind: CertKind,
    serial: &Serial,
    now: UnixTime,
) -> Result<Option<Current>, CurrentError<V::Error>> {
    let Some(asked) = view.cert(kind, serial).map_err(CurrentError::View)? else {
        return Ok(None);
    };
    let holder = view
        .holder(&asked.holder)
        .map_err(CurrentError::View)?
        .ok_or(CurrentError::MissingHolder)?;
    let current = match holder.live(kind) {
        Some(live) if live == asked.serial => Some(asked.clone()),
        Some(live) => view.cert(kind, &live).map_err(CurrentError::View)?,
        None => None,
    }
    .filter(|c| good_at(c, now));
    Ok(Some(Current {
        asked,
        holder,
        current,
    }))
}

/// Why [`current_of`] failed.
#[derive(Debug)]
pub enum CurrentError<E> {
    /// The state could not be read.
    View(E),
    /// A certificate names a holder the state does not have.
    MissingHolder,
}

/// The 4-information answer for a holder whose consent covers `items` (the
/// caller checked that it is in force):
/// - deceased or emigrated: that fact, no data;
/// - no current signing certificate: `NoNewCertificate`;
/// - the current one is the one asked about: `Unchanged`;
/// - a newer one, and at least one consented item differs from what the
///   one asked about carries: `Changed` with those items and its serial
///   (billable; a holder who moved away and back carries the same address
///   again, which is not a change);
/// - a newer one and none of the consented items changed (a renewal, a new
///   card, a new phone, a move the consent does not cover): `Renewed` with
///   its serial only (not billable: there is no newer information).
pub fn info_outcome(cur: &Current, items: InfoItems) -> InfoOutcome {
    match cur.holder.state {
        HolderState::Deceased { .. } => return InfoOutcome::Deceased,
        HolderState::Emigrated { .. } => return InfoOutcome::Emigrated,
        HolderState::Active => {}
    }
    let Some(current) = &cur.current else {
        return InfoOutcome::NoNewCertificate;
    };
    if current.serial == cur.asked.serial {
        return InfoOutcome::Unchanged;
    }
    let Some(info) = &cur.holder.four_info else {
        return InfoOutcome::NoNewCertificate;
    };
    let changed = match (cur.asked.info_digests, current.info_digests) {
        (Some(then), Some(now)) => InfoItems::ORDER
            .iter()
            .enumerate()
            .any(|(i, item)| items.contains(*item) && then[i] != now[i]),
        // Recorded before versions were kept: as before, a newer
        // certificate is taken to carry newer information.
        _ => true,
    };
    if changed {
        InfoOutcome::Changed {
            info: items.select(info),
            current_serial: current.serial,
        }
    } else {
        InfoOutcome::Renewed {
            current_serial: current.serial,
        }
    }
}
