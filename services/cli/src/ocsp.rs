//! `shikko ocsp check --issuer PEM --cert PEM --url URL`: a small OCSP client.
//! It asks over HTTP POST (with a nonce unless told not to), checks the
//! answer's signature, that its signer is the issuer or a responder the
//! issuer delegated (id-kp-OCSPSigning), and the nonce, then prints the status.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use shikko_ocsp::request::{MAX_NONCE_OCTETS, ParsedRequest};
use shikko_ocsp::types::*;
use shikko_pki::x509_cert::Certificate;
use shikko_pki::x509_cert::ext::pkix::ExtendedKeyUsage;

const ID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
const ID_CE_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");

/// `shikko ocsp renew-responder`: issues the responder certificates of
/// `issuers` (all four when empty) again for
/// [`crate::authority::RESPONDER_DAYS`] days, with the issuing CA keys of
/// `data_dir`; prints each one's serial and notAfter.
pub(crate) fn renew_responders(data_dir: &Path, issuers: &[String], new_key: bool) -> Result<()> {
    for s in issuers {
        if s.parse::<shikko_core::CertKind>().is_err() {
            bail!("unknown issuer {s}: use sign, auth, phone-sign or phone-auth");
        }
    }
    let cas = crate::authority::load_cas(data_dir)?;
    for (i, kind) in shikko_core::CertKind::ALL.into_iter().enumerate() {
        if !issuers.is_empty() && !issuers.iter().any(|s| s == kind.issuer_id()) {
            continue;
        }
        let ca = cas
            .iter()
            .find(|c| c.kind == kind)
            .with_context(|| format!("no {kind} CA in {}", data_dir.display()))?;
        let der = crate::authority::responder(
            data_dir,
            ca,
            i as u128,
            shikko_pki::Signer::algorithm(ca.signer.as_ref()),
            true,
            new_key,
        )?;
        let cert = Certificate::from_der(&der)?;
        println!(
            "{}: responder certificate {} valid until {}{}",
            kind.issuer_id(),
            hex_upper(cert.tbs_certificate().serial_number().as_bytes()),
            cert.tbs_certificate().validity().not_after,
            if new_key { " (new key)" } else { "" }
        );
    }
    Ok(())
}

fn read_cert(path: &Path) -> Result<Certificate> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let der = shikko_pki::certificate_der(&bytes)
        .with_context(|| format!("{} is not a certificate", path.display()))?;
    Ok(Certificate::from_der(&der)?)
}

use shikko_pki::verify_signature as verify;

fn post(url: &str, body: &[u8]) -> Result<Vec<u8>> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        anyhow!("only http:// OCSP URLs are supported (RFC 6960 responders are plain HTTP)")
    })?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("{url}: not an HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        bail!("{url}: HTTP {}", head.lines().next().unwrap_or(""));
    }
    Ok(raw[split + 4..].to_vec())
}

/// Runs `shikko ocsp check`.
pub(crate) fn check(issuer: &Path, cert: &Path, url: &str, nonce: bool) -> Result<()> {
    let ca = read_cert(issuer)?;
    let leaf = read_cert(cert)?;
    let nonce_value = if nonce {
        let mut n = [0u8; 16];
        aws_lc_rs::rand::fill(&mut n).map_err(|_| anyhow!("no randomness for a nonce"))?;
        Some(n.to_vec())
    } else {
        None
    };
    let serial =
        shikko_core::Serial::from_be_bytes(leaf.tbs_certificate().serial_number().as_bytes())?;
    let der = shikko_ocsp::request::build_request(&ca.to_der()?, &serial, nonce_value.as_deref())?;
    // What the server will parse: a cheap self-check of the request.
    let parsed: ParsedRequest = shikko_ocsp::request::decode_request(&der)?;
    let cert_id = parsed
        .cert_ids
        .first()
        .cloned()
        .context("the request lists no certificate")?;
    debug_assert!(
        parsed
            .nonce
            .as_ref()
            .is_none_or(|n| n.len() <= MAX_NONCE_OCTETS)
    );

    let body = post(url, &der)?;
    let response = OcspResponse::from_der(&body).context("the answer is not a DER OCSPResponse")?;
    if response.response_status != OcspResponseStatus::Successful {
        bail!("the responder answered {:?}", response.response_status);
    }
    let bytes = response
        .response_bytes
        .ok_or_else(|| anyhow!("a successful answer without responseBytes"))?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        bail!("not a basic OCSP response");
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())?;
    let tbs = basic.tbs_response_data.to_der()?;
    let sig = basic
        .signature
        .as_bytes()
        .ok_or_else(|| anyhow!("the signature has unused bits"))?;
    // The signer: the CA itself, or a certificate it issued for OCSP signing.
    let ca_spki = ca.tbs_certificate().subject_public_key_info().clone();
    let signer_ok = if verify(&ca_spki, &basic.signature_algorithm.oid, &tbs, sig) {
        true
    } else {
        basic.certs.iter().flatten().any(|rc| {
            let delegated = rc
                .tbs_certificate()
                .extensions()
                .into_iter()
                .flatten()
                .filter(|e| e.extn_id == ID_CE_EXT_KEY_USAGE)
                .filter_map(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok())
                .any(|eku| eku.0.contains(&ID_KP_OCSP_SIGNING));
            let issued_by_ca = rc.tbs_certificate().to_der().is_ok_and(|t| {
                rc.signature()
                    .as_bytes()
                    .is_some_and(|s| verify(&ca_spki, &rc.signature_algorithm().oid, &t, s))
            });
            let validity = rc.tbs_certificate().validity();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let in_validity = validity.not_before.to_unix_duration() <= now
                && now <= validity.not_after.to_unix_duration();
            delegated
                && in_validity
                && issued_by_ca
                && verify(
                    rc.tbs_certificate().subject_public_key_info(),
                    &basic.signature_algorithm.oid,
                    &tbs,
                    sig,
                )
        })
    };
    if !signer_ok {
        bail!("the answer's signature does not verify with the issuer or a responder it delegated");
    }
    if let Some(n) = &nonce_value {
        let echoed = basic
            .tbs_response_data
            .response_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == ID_PKIX_OCSP_NONCE)
            .and_then(|e| OctetString::from_der(e.extn_value.as_bytes()).ok());
        if echoed.as_ref().map(OctetString::as_bytes) != Some(n.as_slice()) {
            bail!("the answer does not echo the request's nonce");
        }
    }
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| r.cert_id == cert_id)
        .ok_or_else(|| anyhow!("the answer does not mention the certificate asked about"))?;
    // RFC 6960 §3.2: thisUpdate not in the future (5 minutes of skew), nextUpdate not past.
    let now = shikko_core::UnixTime::now();
    if when(&single.this_update).0 > now.0 + 300 {
        bail!("the answer's thisUpdate is in the future");
    }
    if single
        .next_update
        .as_ref()
        .is_some_and(|n| when(n).0 <= now.0)
    {
        bail!("the answer is stale: its nextUpdate has passed");
    }
    println!("Response verify OK");
    let serial = hex_upper(leaf.tbs_certificate().serial_number().as_bytes());
    match &single.cert_status {
        CertStatus::Good(_) => println!("{serial}: good"),
        CertStatus::Unknown(_) => println!("{serial}: unknown"),
        CertStatus::Revoked(info) => println!(
            "{serial}: revoked at {}{}",
            when(&info.revocation_time),
            info.revocation_reason
                .map(|r| format!(", reason {r:?}"))
                .unwrap_or_default()
        ),
    }
    println!("  thisUpdate: {}", when(&single.this_update));
    if let Some(n) = &single.next_update {
        println!("  nextUpdate: {}", when(n));
    }
    Ok(())
}

fn when(t: &der::asn1::GeneralizedTime) -> shikko_core::UnixTime {
    shikko_core::UnixTime(t.to_unix_duration().as_secs() as i64)
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}
