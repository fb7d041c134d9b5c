//! An in-memory state: the reference model the store is tested against, and a
//! way to run the rules without a database.

use std::collections::HashMap;
use std::convert::Infallible;

use crate::RuleViolation;
use crate::event::Event;
use crate::holder::HolderRecord;
use crate::ids::{CertKind, HolderId, Serial};
use crate::rules::{ApplyError, Effect, StateView, apply};
use crate::status::CertRecord;

/// Certificates, holders and links in hash maps.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryState {
    /// Certificates by issuer and serial.
    pub certs: HashMap<(CertKind, Serial), CertRecord>,
    /// Holders by id.
    pub holders: HashMap<HolderId, HolderRecord>,
    /// Old serial to new serial, per issuer.
    pub links: HashMap<(CertKind, Serial), Serial>,
}

impl StateView for MemoryState {
    type Error = Infallible;
    fn cert(&self, kind: CertKind, serial: &Serial) -> Result<Option<CertRecord>, Infallible> {
        Ok(self.certs.get(&(kind, *serial)).cloned())
    }
    fn holder(&self, id: &HolderId) -> Result<Option<HolderRecord>, Infallible> {
        Ok(self.holders.get(id).cloned())
    }
}

impl MemoryState {
    /// Applies an event; on a rule violation nothing changes.
    pub fn ingest(&mut self, event: &Event) -> Result<Vec<Effect>, RuleViolation> {
        let effects = match apply(event, self) {
            Ok(e) => e,
            Err(ApplyError::Rule(v)) => return Err(v),
            Err(ApplyError::View(never)) => match never {},
        };
        for e in &effects {
            self.write(e);
        }
        Ok(effects)
    }

    /// Writes one effect.
    pub fn write(&mut self, effect: &Effect) {
        match effect {
            Effect::PutCert(c) => {
                self.certs.insert((c.kind, c.serial), c.clone());
            }
            Effect::PutHolder(h) => {
                self.holders.insert(h.id.clone(), h.clone());
            }
            Effect::Link { kind, old, new } => {
                self.links.insert((*kind, *old), *new);
            }
            Effect::PutCertDer { .. } | Effect::PutMunicipality(_) => {}
        }
    }

    /// Follows the link chain from a serial to the newest one.
    pub fn newest(&self, kind: CertKind, serial: Serial) -> Serial {
        let mut cur = serial;
        // A chain cannot be longer than the number of links; this bounds a cycle, which the rules never make.
        for _ in 0..=self.links.len() {
            match self.links.get(&(kind, cur)) {
                Some(next) => cur = *next,
                None => break,
            }
        }
        cur
    }
}
