//! Key encodings and the value codec. Keys are fixed-width big-endian so that
//! RocksDB's byte order is the order scans need.

use serde::Serialize;
use serde::de::DeserializeOwned;
use shikko_core::{CertKind, PartitionId, SERIAL_MAX_OCTETS, Serial};

use crate::{Error, Result};

/// `kind ++ serial`.
pub(crate) fn cert_key(kind: CertKind, serial: &Serial) -> [u8; 1 + SERIAL_MAX_OCTETS] {
    let mut k = [0u8; 1 + SERIAL_MAX_OCTETS];
    k[0] = kind.code();
    k[1..].copy_from_slice(serial.as_padded());
    k
}

/// `kind ++ partition ++ serial`.
pub(crate) fn revoked_key(
    kind: CertKind,
    partition: PartitionId,
    serial: &Serial,
) -> [u8; 5 + SERIAL_MAX_OCTETS] {
    let mut k = [0u8; 5 + SERIAL_MAX_OCTETS];
    k[0] = kind.code();
    k[1..5].copy_from_slice(&partition.0.to_be_bytes());
    k[5..].copy_from_slice(serial.as_padded());
    k
}

pub(crate) fn revoked_prefix(kind: CertKind, partition: Option<PartitionId>) -> Vec<u8> {
    let mut p = vec![kind.code()];
    if let Some(part) = partition {
        p.extend_from_slice(&part.0.to_be_bytes());
    }
    p
}

pub(crate) fn serial_from(bytes: &[u8], cf: &'static str) -> Result<Serial> {
    let arr: [u8; SERIAL_MAX_OCTETS] = bytes.try_into().map_err(|_| Error::Corrupt {
        cf,
        why: format!("serial of {} bytes", bytes.len()),
    })?;
    Serial::from_padded(arr).map_err(|e| Error::Corrupt {
        cf,
        why: e.to_string(),
    })
}

pub(crate) fn decode_u64(bytes: &[u8], cf: &'static str) -> Result<u64> {
    let arr: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or(Error::Corrupt {
            cf,
            why: "expected a u64".into(),
        })?;
    Ok(u64::from_be_bytes(arr))
}

/// Values carry a one-byte codec version ahead of a compact (positional)
/// MessagePack body. A new layout gets a new version byte; decoding keeps
/// accepting the old ones.
/// Version 1: MessagePack with field names. Version 2: positional MessagePack.
const CODEC_V1: u8 = 1;
const CODEC_V2: u8 = 2;

pub(crate) fn encode<T: Serialize>(v: &T, cf: &'static str) -> Result<Vec<u8>> {
    let mut out = vec![CODEC_V2];
    rmp_serde::encode::write(&mut out, v).map_err(|e| Error::Corrupt {
        cf,
        why: format!("cannot encode: {e}"),
    })?;
    Ok(out)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], cf: &'static str) -> Result<T> {
    match bytes.split_first() {
        // The decoder's own message can quote stored values (4 information in
        // holder and event records), so it is not passed on.
        Some((&(CODEC_V1 | CODEC_V2), body)) => {
            rmp_serde::from_slice(body).map_err(|_| Error::Corrupt {
                cf,
                why: format!("a value of {} bytes does not decode", bytes.len()),
            })
        }
        _ => Err(Error::Corrupt {
            cf,
            why: "unknown value codec".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shikko_core::{ChangeRecord, EventId, UnixTime};

    /// A feed record as stores wrote it before records named municipalities.
    #[derive(Serialize)]
    struct RecordBeforeMunicipalities {
        seq: u64,
        event_id: EventId,
        event_type: String,
        time: UnixTime,
        changes: Vec<shikko_core::StatusChange>,
    }

    #[test]
    fn feed_records_of_older_stores_still_decode() {
        let old = RecordBeforeMunicipalities {
            seq: 7,
            event_id: EventId::new("e7").unwrap(),
            event_type: "revoke".into(),
            time: UnixTime(1_700_000_000),
            changes: Vec::new(),
        };
        let bytes = encode(&old, "feed").unwrap();
        let record: ChangeRecord = decode(&bytes, "feed").unwrap();
        assert_eq!(record.seq, 7);
        assert!(record.municipalities.is_empty());
        // And the new form round-trips.
        let again: ChangeRecord = decode(&encode(&record, "feed").unwrap(), "feed").unwrap();
        assert_eq!(again, record);
    }
}
