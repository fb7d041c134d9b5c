//! Any bytes given to the CRL reader: an error or a summary, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = shikko_crl::summary_of_bytes(data);
    let _ = shikko_crl::verify_bytes(data, data);
});
