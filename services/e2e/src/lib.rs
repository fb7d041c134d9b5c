//! # shikko-e2e
//!
//! The whole platform's tests, in `tests/`: the roles run as real
//! processes of the `shikko` binary (found by `shikko_testkit::process`
//! beside the tests, built with the workspace: `cargo test --workspace
//! --profile dev`), on loopback ports the OS picks, with real RocksDB stores
//! in temp dirs. `registry_process.rs`: a registry killed during ingest
//! loses nothing it acknowledged, client commands, backups;
//! `four_roles.rs`: registry, crl, ocsp and info as four processes through
//! the daily flow; `faults.rs`: the fault tests of docs/FAULTS.md.
//!
//! This crate has no code of its own.
#![forbid(unsafe_code)]
