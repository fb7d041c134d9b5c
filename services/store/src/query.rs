//! Reads: certificates, holders, successor links, revoked entries, municipalities.

use serde::{Deserialize, Serialize};
use shikko_core::{
    CertKind, CertRecord, CertStatus, HolderId, HolderRecord, Municipality, PartitionId, Serial,
    UnixTime,
};

use crate::{Error, Result, Store, cf, keys};

/// A certificate on hold or revoked: one entry of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Issuer.
    pub kind: CertKind,
    /// CRL partition.
    pub partition: PartitionId,
    /// Serial.
    pub serial: Serial,
    /// `OnHold` or `Revoked`.
    pub status: CertStatus,
    /// End of validity: the entry leaves the CRL after it.
    pub not_after: UnixTime,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct RevokedValue {
    pub(crate) status: CertStatus,
    pub(crate) not_after: UnixTime,
}

impl Store {
    /// A certificate's record.
    pub fn cert(&self, kind: CertKind, serial: &Serial) -> Result<Option<CertRecord>> {
        self.db
            .get_pinned_cf(self.cf(cf::CERTS), keys::cert_key(kind, serial))?
            .map(|v| keys::decode(&v, cf::CERTS))
            .transpose()
    }

    /// A certificate's DER, when the issuing event carried it.
    pub fn cert_der(&self, kind: CertKind, serial: &Serial) -> Result<Option<Vec<u8>>> {
        Ok(self
            .db
            .get_cf(self.cf(cf::CERT_DER), keys::cert_key(kind, serial))?)
    }

    /// A holder's record.
    pub fn holder(&self, id: &HolderId) -> Result<Option<HolderRecord>> {
        self.db
            .get_pinned_cf(self.cf(cf::HOLDERS), id.as_str())?
            .map(|v| keys::decode(&v, cf::HOLDERS))
            .transpose()
    }

    /// The serial that replaced `serial`, if any.
    pub fn successor(&self, kind: CertKind, serial: &Serial) -> Result<Option<Serial>> {
        self.db
            .get_pinned_cf(self.cf(cf::LINKS), keys::cert_key(kind, serial))?
            .map(|v| keys::serial_from(&v, cf::LINKS))
            .transpose()
    }

    /// Follows the successor links from `serial` to the newest serial; returns it
    /// and the number of links followed.
    pub fn newest(&self, kind: CertKind, serial: &Serial) -> Result<(Serial, usize)> {
        // Each link goes to a serial issued later, so chains are short; the bound only guards corruption.
        const MAX_HOPS: usize = 10_000;
        let mut cur = *serial;
        for hops in 0..MAX_HOPS {
            match self.successor(kind, &cur)? {
                Some(next) => cur = next,
                None => return Ok((cur, hops)),
            }
        }
        Err(Error::Corrupt {
            cf: cf::LINKS,
            why: format!("successor chain from {kind} {serial} does not end"),
        })
    }

    /// The revoked and held entries of an issuer, or of one of its partitions,
    /// in (partition, serial) order, streamed from disk.
    pub fn revoked(
        &self,
        kind: CertKind,
        partition: Option<PartitionId>,
    ) -> impl Iterator<Item = Result<RevokedEntry>> + '_ {
        let prefix = keys::revoked_prefix(kind, partition);
        self.db
            .prefix_iterator_cf(self.cf(cf::REVOKED), &prefix)
            .take_while(move |item| match item {
                Ok((k, _)) => k.starts_with(&prefix),
                Err(_) => true,
            })
            .map(move |item| {
                let (k, v) = item?;
                if k.len() != 5 + shikko_core::SERIAL_MAX_OCTETS {
                    return Err(Error::Corrupt {
                        cf: cf::REVOKED,
                        why: "bad key length".into(),
                    });
                }
                let mut part = [0u8; 4];
                part.copy_from_slice(&k[1..5]);
                let value: RevokedValue = keys::decode(&v, cf::REVOKED)?;
                Ok(RevokedEntry {
                    kind,
                    partition: PartitionId(u32::from_be_bytes(part)),
                    serial: keys::serial_from(&k[5..], cf::REVOKED)?,
                    status: value.status,
                    not_after: value.not_after,
                })
            })
    }

    /// Every municipality (CRL partition) seen in an issued signing certificate.
    pub fn municipalities(&self) -> Result<Vec<Municipality>> {
        self.db
            .iterator_cf(self.cf(cf::MUNICIPALITIES), rocksdb::IteratorMode::Start)
            .map(|item| {
                let (_, v) = item?;
                keys::decode(&v, cf::MUNICIPALITIES)
            })
            .collect()
    }
}
