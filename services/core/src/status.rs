//! Certificate status and the CRL reason codes this PKI uses.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::ids::{CertKind, HolderId, PartitionId, Serial};
use crate::time::UnixTime;

/// CRLReason (RFC 5280 §5.3.1).
///
/// ```text
/// CRLReason ::= ENUMERATED {
///      unspecified             (0),
///      keyCompromise           (1),
///      cACompromise            (2),
///      affiliationChanged      (3),
///      superseded              (4),
///      cessationOfOperation    (5),
///      certificateHold         (6),
///           -- value 7 is not used
///      removeFromCRL           (8),
///      privilegeWithdrawn      (9),
///      aACompromise           (10) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    /// 0: e.g. a card destroyed before delivery.
    Unspecified,
    /// 1
    KeyCompromise,
    /// 2: not used by this PKI's events.
    #[serde(rename = "cACompromise")]
    CaCompromise,
    /// 3: the 4 information changed.
    AffiliationChanged,
    /// 4: renewal, card reissue, phone change.
    Superseded,
    /// 5: death, emigration, holder's request.
    CessationOfOperation,
    /// 6: a hold (card loss, phone loss).
    CertificateHold,
    /// 8: a released hold, in delta CRLs only.
    #[serde(rename = "removeFromCRL")]
    RemoveFromCrl,
    /// 9: not used by this PKI's events.
    PrivilegeWithdrawn,
    /// 10: not used by this PKI's events.
    #[serde(rename = "aACompromise")]
    AaCompromise,
}

impl RevocationReason {
    /// The RFC 5280 code.
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::CaCompromise => 2,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::CertificateHold => 6,
            RevocationReason::RemoveFromCrl => 8,
            RevocationReason::PrivilegeWithdrawn => 9,
            RevocationReason::AaCompromise => 10,
        }
    }

    /// The reason for an RFC 5280 code.
    pub fn from_code(code: u8) -> Result<Self, ValidationError> {
        Ok(match code {
            0 => RevocationReason::Unspecified,
            1 => RevocationReason::KeyCompromise,
            2 => RevocationReason::CaCompromise,
            3 => RevocationReason::AffiliationChanged,
            4 => RevocationReason::Superseded,
            5 => RevocationReason::CessationOfOperation,
            6 => RevocationReason::CertificateHold,
            8 => RevocationReason::RemoveFromCrl,
            9 => RevocationReason::PrivilegeWithdrawn,
            10 => RevocationReason::AaCompromise,
            other => return Err(ValidationError::UnknownReason(other)),
        })
    }

    /// Whether a `revoke` event may state this reason. Holds go through
    /// suspend/resume, removeFromCRL exists only in delta CRLs, and the CA and
    /// attribute-authority reasons do not arise for holders.
    pub fn allowed_in_revoke_event(self) -> bool {
        matches!(
            self,
            RevocationReason::Unspecified
                | RevocationReason::KeyCompromise
                | RevocationReason::AffiliationChanged
                | RevocationReason::Superseded
                | RevocationReason::CessationOfOperation
        )
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::CaCompromise => "cACompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::CertificateHold => "certificateHold",
            RevocationReason::RemoveFromCrl => "removeFromCRL",
            RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
            RevocationReason::AaCompromise => "aACompromise",
        };
        f.write_str(s)
    }
}

/// The status of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CertStatus {
    /// Valid (as far as revocation goes).
    Good,
    /// Suspended (一時利用停止): CRL reason certificateHold.
    OnHold {
        /// When the hold began; the CRL entry's revocationDate.
        since: UnixTime,
    },
    /// Revoked for good.
    Revoked {
        /// The CRL reason.
        reason: RevocationReason,
        /// The revocation time.
        at: UnixTime,
        /// When the key is known or suspected to have become invalid (RFC 5280 §5.3.2).
        invalidity_date: Option<UnixTime>,
    },
}

impl CertStatus {
    /// Good or on hold: a certificate that can still change.
    pub fn is_live(&self) -> bool {
        !matches!(self, CertStatus::Revoked { .. })
    }

    /// Whether the certificate belongs on a CRL.
    pub fn is_listed(&self) -> bool {
        !matches!(self, CertStatus::Good)
    }

    /// A short stable name: `good`, `on_hold`, `revoked`.
    pub fn name(&self) -> &'static str {
        match self {
            CertStatus::Good => "good",
            CertStatus::OnHold { .. } => "on_hold",
            CertStatus::Revoked { .. } => "revoked",
        }
    }
}

/// What the registry knows of one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// Issuer.
    pub kind: CertKind,
    /// Serial number.
    pub serial: Serial,
    /// The holder.
    pub holder: HolderId,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity; the entry leaves the CRL after it.
    pub not_after: UnixTime,
    /// The CRL partition (municipality code for signing certificates).
    pub partition: PartitionId,
    /// Current status.
    pub status: CertStatus,
    /// For a signing certificate: [`crate::FourInfo::item_digests`] of the
    /// 4 information it carries. `None` for user-authentication
    /// certificates and records written before.
    #[serde(default)]
    pub info_digests: Option<[u64; 4]>,
}
