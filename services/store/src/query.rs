//! Reads: certificates, holders, successor links, revoked entries, municipalities.

use serde::{Deserialize, Serialize};
use shikko_core::{
    CertKind, CertRecord, CertStatus, HolderId, HolderRecord, Municipality, PartitionId,
    RevocationReason, RevokedEntry, Serial, UnixTime,
};

use crate::{Error, Result, Store, cf, keys};

#[derive(Serialize, Deserialize)]
pub(crate) struct RevokedValue {
    pub(crate) status: CertStatus,
    pub(crate) not_after: UnixTime,
}

/// Codec of revoked-index values from version 3 on: fixed binary, because a
/// CRL build decodes tens of millions of them (MessagePack of an internally
/// tagged enum went through serde's buffering and cost more than the DER).
/// `3, status, ..., not_after`, integers big-endian:
/// - on hold: `1, since: i64`
/// - revoked: `2, reason: u8, at: i64, has_invalidity: u8, [invalidity: i64]`
const REVOKED_V3: u8 = 3;

impl RevokedValue {
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(28);
        out.push(REVOKED_V3);
        match self.status {
            CertStatus::OnHold { since } => {
                out.push(1);
                out.extend_from_slice(&since.0.to_be_bytes());
            }
            CertStatus::Revoked {
                reason,
                at,
                invalidity_date,
            } => {
                out.push(2);
                out.push(reason.code());
                out.extend_from_slice(&at.0.to_be_bytes());
                match invalidity_date {
                    Some(t) => {
                        out.push(1);
                        out.extend_from_slice(&t.0.to_be_bytes());
                    }
                    None => out.push(0),
                }
            }
            CertStatus::Good => {
                return Err(Error::Corrupt {
                    cf: cf::REVOKED,
                    why: "a good certificate is not indexed as revoked".into(),
                });
            }
        }
        out.extend_from_slice(&self.not_after.0.to_be_bytes());
        Ok(out)
    }

    /// Decodes version 3, or the MessagePack versions before it.
    pub(crate) fn decode(bytes: &[u8]) -> Result<RevokedValue> {
        if bytes.first() != Some(&REVOKED_V3) {
            return keys::decode(bytes, cf::REVOKED);
        }
        let bad = || Error::Corrupt {
            cf: cf::REVOKED,
            why: format!("a revoked value of {} bytes does not decode", bytes.len()),
        };
        let i64_at = |at: usize| -> Result<i64> {
            bytes
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_be_bytes)
                .ok_or_else(bad)
        };
        let (status, end) = match bytes.get(1) {
            Some(1) => (
                CertStatus::OnHold {
                    since: UnixTime(i64_at(2)?),
                },
                10,
            ),
            Some(2) => {
                let reason = bytes
                    .get(2)
                    .and_then(|c| RevocationReason::from_code(*c).ok())
                    .ok_or_else(bad)?;
                let at = UnixTime(i64_at(3)?);
                match bytes.get(11) {
                    Some(0) => (
                        CertStatus::Revoked {
                            reason,
                            at,
                            invalidity_date: None,
                        },
                        12,
                    ),
                    Some(1) => (
                        CertStatus::Revoked {
                            reason,
                            at,
                            invalidity_date: Some(UnixTime(i64_at(12)?)),
                        },
                        20,
                    ),
                    _ => return Err(bad()),
                }
            }
            _ => return Err(bad()),
        };
        if bytes.len() != end + 8 {
            return Err(bad());
        }
        Ok(RevokedValue {
            status,
            not_after: UnixTime(i64_at(end)?),
        })
    }
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
                revoked_entry(kind, &k, &v)
            })
    }

    /// A page of [`Store::revoked`]: at most `limit` entries after the index
    /// key `after` (from the first when `None`), and the key to continue
    /// after (`None` when this page ends the scan). Each page is read on its
    /// own (nothing is held between pages): a scan in pages sees what was
    /// written between them.
    pub fn revoked_page(
        &self,
        kind: CertKind,
        partition: Option<PartitionId>,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<RevokedEntry>, Option<Vec<u8>>)> {
        let prefix = keys::revoked_prefix(kind, partition);
        let mut it = self.db.raw_iterator_cf(self.cf(cf::REVOKED));
        match after {
            Some(k) => {
                it.seek(k);
                if it.key() == Some(k) {
                    it.next();
                }
            }
            None => it.seek(&prefix),
        }
        let mut out = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&prefix) {
                break;
            }
            if out.len() >= limit.max(1) {
                return Ok((out, last));
            }
            out.push(revoked_entry(kind, k, v)?);
            last = Some(k.to_vec());
            it.next();
        }
        it.status()?;
        Ok((out, None))
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

/// The store as the rules and the person-keyed answers read it
/// ([`shikko_core::person::current_of`]).
impl shikko_core::rules::StateView for Store {
    type Error = Error;
    fn cert(&self, kind: CertKind, serial: &Serial) -> Result<Option<CertRecord>> {
        Store::cert(self, kind, serial)
    }
    fn holder(&self, id: &HolderId) -> Result<Option<HolderRecord>> {
        Store::holder(self, id)
    }
}

/// An entry of the revoked index, from its key and value.
pub(crate) fn revoked_entry(kind: CertKind, k: &[u8], v: &[u8]) -> Result<RevokedEntry> {
    if k.len() != 5 + shikko_core::SERIAL_MAX_OCTETS {
        return Err(Error::Corrupt {
            cf: cf::REVOKED,
            why: "bad key length".into(),
        });
    }
    let mut part = [0u8; 4];
    part.copy_from_slice(&k[1..5]);
    let value = RevokedValue::decode(v)?;
    Ok(RevokedEntry {
        kind,
        partition: PartitionId(u32::from_be_bytes(part)),
        serial: keys::serial_from(&k[5..], cf::REVOKED)?,
        status: value.status,
        not_after: value.not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_values_round_trip_and_old_values_still_decode() {
        let cases = [
            CertStatus::OnHold {
                since: UnixTime(1_700_000_000),
            },
            CertStatus::Revoked {
                reason: RevocationReason::KeyCompromise,
                at: UnixTime(1_700_000_001),
                invalidity_date: Some(UnixTime(-5)),
            },
            CertStatus::Revoked {
                reason: RevocationReason::Unspecified,
                at: UnixTime(0),
                invalidity_date: None,
            },
        ];
        for status in cases {
            let v = RevokedValue {
                status,
                not_after: UnixTime(2_000_000_000),
            };
            let bytes = v.encode().unwrap();
            let back = RevokedValue::decode(&bytes).unwrap();
            assert_eq!((back.status, back.not_after), (status, v.not_after));
            // Stores written before version 3 hold MessagePack values.
            let old = keys::encode(&v, cf::REVOKED).unwrap();
            let back = RevokedValue::decode(&old).unwrap();
            assert_eq!((back.status, back.not_after), (status, v.not_after));
            // Truncated or padded values are corrupt, not a panic.
            assert!(RevokedValue::decode(&bytes[..bytes.len() - 1]).is_err());
            let mut long = bytes.clone();
            long.push(0);
            assert!(RevokedValue::decode(&long).is_err());
        }
        let good = RevokedValue {
            status: CertStatus::Good,
            not_after: UnixTime(1),
        };
        assert!(good.encode().is_err());
        assert!(RevokedValue::decode(&[3, 9]).is_err());
    }
}
