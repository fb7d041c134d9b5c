//! # shikko-crl
//!
//! Shikko's CRL builder and publisher: X.509 v2 CRLs (RFC 5280) per issuer
//! (`full.crl`), per municipality partition (`NNNNNN.crl`) and as deltas
//! (`delta.crl`), built from the store's revoked index without ever holding a
//! CRL in memory, published by atomic rename, and served over HTTP (with
//! caching headers) and gRPC. [`mirror`] is the role's copy of the
//! registry (a `shikko-follow` status sink), [`process`] is `shikko serve crl`.
//!
//! Depends on core, pki, store, proto, follow and runtime; never on another
//! role crate.
//!
//! How a full CRL is built (see `writer` for the file layout):
//! 1. a consistent snapshot of the store is taken (its feed position becomes
//!    the base of later deltas);
//! 2. the issuer's revoked index is scanned in batches on one thread, while
//!    another encodes each batch with rayon and appends it to a body file;
//! 3. the CRL file is assembled around the body and hashed in one pass,
//!    signed by digest (`Signer::sign_sha256_digest`);
//! 4. the new file is re-read whole: every entry's structure, the hash, the
//!    signature against the issuer's key; its CRL number must exceed the
//!    published one's;
//! 5. it is renamed over the published file.
//!
//! Memory stays at a few batches whatever the number of entries.
//!
//! ```
//! use std::sync::Arc;
//! use shikko_core::{CertKind, Serial, UnixTime};
//! use shikko_crl::{Builder, CrlConfig, CrlIssuer, CrlName, NoProgress, verify_file};
//! use shikko_pki::{KeyAlgorithm, Signer, SoftwareSigner, ca_certificate};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Arc::new(shikko_store::Store::open(&dir.path().join("db"))?);
//! let key = Arc::new(SoftwareSigner::generate(KeyAlgorithm::EcdsaP256)?);
//! let ca = ca_certificate(
//!     CertKind::CardAuth,
//!     key.as_ref(),
//!     Serial::from_u128(1)?,
//!     UnixTime(1_600_000_000),
//!     UnixTime(2_200_000_000),
//! )?;
//! let issuer = CrlIssuer::new(CertKind::CardAuth, key.clone(), &ca)?;
//! let builder = Builder::new(store, vec![issuer], CrlConfig::new(dir.path().join("crl")));
//! let report = builder.build_full(&[CertKind::CardAuth], &NoProgress)?;
//! assert_eq!(report.crls[0].name, CrlName::Full);
//! let crl = verify_file(&dir.path().join("crl/auth/full.crl"), key.public_key_der())?;
//! assert_eq!((crl.number, crl.entries), (report.crls[0].number, Some(0)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod build;
mod catalog;
mod delta;
mod der;
pub mod error;
mod extensions;
mod filter;
pub mod grpc;
pub mod http;
pub mod http_role;
pub mod mirror;
pub mod process;
mod publish;
pub mod role;
mod scan;
mod state;
mod verify;
mod writer;

pub use build::{
    BuildReport, Builder, BuiltCrl, CrlConfig, CrlIssuer, CrlName, NoProgress, Progress,
};
pub use catalog::{Catalog, PublishedCrl};
pub use error::{Error, Result};
pub use extensions::ID_CE_ISSUING_DISTRIBUTION_POINT;
pub use mirror::MirrorSink;
pub use publish::FAILPOINT_ENV;
pub use role::{BuildKind, CrlRole, Schedule};
pub use state::{Base, IssuerState, read_issuer_state};
pub use verify::{CrlSummary, read_summary, summary_of_bytes, verify_bytes, verify_file};
