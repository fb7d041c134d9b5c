//! # shikko-core
//!
//! The domain of Shikko, without I/O: holders and their 4 information,
//! certificate kinds and serials, certificate status with RFC 5280 reason
//! codes, the events of the issuing authority's feed, and the rules that turn
//! an event into status changes ([`rules::apply`]), and the change feed's
//! records ([`feed`]).
//!
//! It depends on no other Shikko crate and does no I/O: no tokio, no
//! RocksDB, no network; every other crate may depend on it.
//!
//! ```
//! use shikko_core::{CertKind, Serial};
//! let kind: CertKind = "phone-auth".parse().unwrap();
//! assert_eq!(kind, CertKind::PhoneAuth);
//! assert_eq!(Serial::from_u128(0x1234).unwrap().to_hex(), "1234");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod consent;
pub mod error;
pub mod event;
pub mod feed;
pub mod holder;
pub mod ids;
pub mod memory;
pub mod merkle;
pub mod person;
pub mod rules;
pub mod status;
pub mod time;

pub use consent::{Consent, ConsentState, ConsentedInfo, InfoItems, InfoOutcome};
pub use error::{RuleViolation, ValidationError};
pub use event::{Event, EventBody, NewCert};
pub use feed::{ChangeRecord, RevokedEntry, StatusChange};
pub use holder::{DateOfBirth, FourInfo, HolderRecord, HolderState, Sex};
pub use ids::{
    CertKind, EventId, HolderId, Municipality, OperatorId, PartitionId, ProviderId,
    SERIAL_MAX_OCTETS, Serial,
};
pub use memory::MemoryState;
pub use rules::{ApplyError, Effect, RevocationCause, StateView, apply, reason_for};
pub use status::{CertRecord, CertStatus, RevocationReason};
pub use time::UnixTime;
