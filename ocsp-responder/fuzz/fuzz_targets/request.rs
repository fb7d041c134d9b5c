//! Any bytes as a POST body or a GET path: a parsed request or a RequestError, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = shikko_ocsp::request::decode_request(data);
    let _ = shikko_ocsp::request::decode_get_path(&String::from_utf8_lossy(data));
});
