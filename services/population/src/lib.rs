//! # shikko-population
//!
//! Synthetic holders for the demo, `shikko seed`, tests and load tests:
//! [`synthetic`] makes a deterministic population (real prefectures,
//! synthetic municipalities with real-shaped codes, names, addresses,
//! dates of birth), [`history`] a realistic, rule-valid history of events for
//! each holder (issuance, moves, phone changes, holds, losses, renewals,
//! deaths, emigrations), with real certificates for the holders that get one.
//!
//! It owns no state and does no I/O. It must not be a dependency of a
//! role's production path: it exists to make data, never to read it.
//!
//! ```
//! use shikko_population::synthetic::Population;
//! let pop = Population::new(2026);
//! assert_eq!(pop.holder(7).id, Population::new(2026).holder(7).id);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod history;
pub mod synthetic;

pub use synthetic::{Population, serial_for};
