//! Short-lived delegated responder certificates, rotated into a running
//! responder without a restart (issue 12, item 4). The responder's key and
//! certificate are files (`keys/ISSUER-ocsp.key`, `certs/ISSUER-ocsp.der`)
//! that whoever holds the CA key renews (`shikko ocsp renew-responder`, or
//! the demo at start) and the deployment puts in place (a Secret update);
//! the ocsp role reads them again every `[ocsp] reload_secs` and, when they
//! changed, checks them (the key file private, the certificate issued by the
//! issuer's CA for that key and valid now) and swaps them in with
//! [`Responder::rotate`]. A pair that fails a check is logged and counted,
//! and the responder keeps signing with the pair it has.
//!
//! Metrics: `shikko_ocsp_responder_not_after_seconds{issuer}` (the current
//! certificate's notAfter, for an alert days before it) and
//! `shikko_ocsp_responder_reloads_total{issuer, outcome}`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use der::Decode;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use shikko_core::{CertKind, UnixTime};
use shikko_pki::{DataDir, SoftwareSigner};
use x509_cert::Certificate;

use crate::responder::{Responder, ResponderKey};

/// One issuer's responder files and what they held when last used.
struct Watched {
    kind: CertKind,
    ca: Certificate,
    key: PathBuf,
    cert: PathBuf,
    /// The pair in use.
    seen: Option<(Vec<u8>, Vec<u8>)>,
    /// The last pair refused: tried again every time (a clock a little
    /// behind, a key mode fixed), reported only when the files change.
    refused: Option<(Vec<u8>, Vec<u8>)>,
}

/// Reads the responder files of a data directory's issuers and rotates
/// changed ones into a [`Responder`].
pub struct Rotation {
    responder: Arc<Responder>,
    watched: Vec<Watched>,
    not_after: IntGaugeVec,
    reloads: IntCounterVec,
}

impl std::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotation")
            .field("issuers", &self.watched.len())
            .finish()
    }
}

/// A responder key and certificate checked for `ca`: the key file private,
/// the certificate issued by `ca`, for that key, valid at `now`. Returns the
/// key and the certificate's notAfter.
pub fn checked_responder_key(
    ca: &Certificate,
    key_path: &std::path::Path,
    key_bytes: &[u8],
    cert_der: &[u8],
    now: UnixTime,
) -> Result<(ResponderKey, UnixTime), String> {
    shikko_pki::check_key_file(key_path).map_err(|e| e.to_string())?;
    let signer = SoftwareSigner::from_pkcs8_bytes(key_bytes)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    let cert = Certificate::from_der(cert_der).map_err(|e| format!("the certificate: {e}"))?;
    if !shikko_pki::issued_by(&cert, ca) {
        return Err("the certificate is not issued by the issuer's CA".into());
    }
    // id-kp-OCSPSigning (RFC 6960 §4.2.2.2): without it relying parties
    // refuse every answer.
    const ID_CE_EXT_KEY_USAGE: der::asn1::ObjectIdentifier =
        der::asn1::ObjectIdentifier::new_unwrap("2.5.29.37");
    const ID_KP_OCSP_SIGNING: der::asn1::ObjectIdentifier =
        der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
    let ocsp_signing = cert
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .filter(|e| e.extn_id == ID_CE_EXT_KEY_USAGE)
        .filter_map(|e| {
            x509_cert::ext::pkix::ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok()
        })
        .any(|eku| eku.0.contains(&ID_KP_OCSP_SIGNING));
    if !ocsp_signing {
        return Err("the certificate lacks id-kp-OCSPSigning".into());
    }
    let validity = cert.tbs_certificate().validity();
    let secs = |t: &x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    let (not_before, not_after) = (secs(&validity.not_before), secs(&validity.not_after));
    if now.0 < not_before || now.0 > not_after {
        return Err(format!(
            "the certificate is not valid now (notBefore {not_before}, notAfter {not_after})"
        ));
    }
    let key = ResponderKey::new(Arc::new(signer), cert_der).map_err(|e| e.to_string())?;
    Ok((key, UnixTime(not_after)))
}

impl Rotation {
    /// Watches the responder files of `data_dir` for the issuers `cas`
    /// (kind, CA certificate DER), whose current pair `responder` signs
    /// with; metrics go to `registry`.
    pub fn new(
        responder: Arc<Responder>,
        data_dir: &std::path::Path,
        cas: &[(CertKind, Vec<u8>)],
        registry: &Registry,
    ) -> Result<Rotation, String> {
        let dir = DataDir::new(data_dir);
        let mut watched = Vec::new();
        for (kind, ca_der) in cas {
            let name = format!("{}-ocsp", kind.issuer_id());
            watched.push(Watched {
                kind: *kind,
                ca: Certificate::from_der(ca_der).map_err(|e| format!("the {kind} CA: {e}"))?,
                key: dir.key_path(&name),
                cert: dir.cert_path(&name),
                seen: None,
                refused: None,
            });
        }
        let not_after = IntGaugeVec::new(
            Opts::new(
                "shikko_ocsp_responder_not_after_seconds",
                "notAfter of the delegated responder certificate in use, by issuer (Unix seconds)",
            ),
            &["issuer"],
        )
        .map_err(|e| e.to_string())?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "shikko_ocsp_responder_reloads_total",
                "Responder key and certificate files read again after a change, by issuer and outcome (rotated, refused)",
            ),
            &["issuer", "outcome"],
        )
        .map_err(|e| e.to_string())?;
        registry
            .register(Box::new(not_after.clone()))
            .map_err(|e| e.to_string())?;
        registry
            .register(Box::new(reloads.clone()))
            .map_err(|e| e.to_string())?;
        let mut r = Rotation {
            responder,
            watched,
            not_after,
            reloads,
        };
        // The files as they are now, through the same checks, replace what
        // the responder was built from (a renewal that landed in between is
        // not missed; an expired or foreign pair is reported now).
        r.check(false);
        Ok(r)
    }

    /// Reads every issuer's files once; rotates those that changed and pass
    /// the checks. Returns how many were rotated.
    pub fn check_once(&mut self) -> usize {
        self.check(true)
    }

    fn check(&mut self, count: bool) -> usize {
        let now = UnixTime::now();
        let mut rotated = 0;
        for w in &mut self.watched {
            let id = w.kind.issuer_id();
            let (Ok(key), Ok(cert)) = (std::fs::read(&w.key), std::fs::read(&w.cert)) else {
                // Caught between two renames, or removed: try again later.
                continue;
            };
            let pair = (key, cert);
            if w.seen.as_ref() == Some(&pair) {
                continue;
            }
            let new_files = w.refused.as_ref() != Some(&pair);
            match checked_responder_key(&w.ca, &w.key, &pair.0, &pair.1, now).and_then(|(k, na)| {
                self.responder
                    .rotate(w.kind, k)
                    .map(|()| na)
                    .map_err(|e| e.to_string())
            }) {
                Ok(not_after) => {
                    if count {
                        tracing::info!(
                            issuer = id,
                            not_after = not_after.0,
                            "OCSP responder certificate rotated"
                        );
                        self.reloads.with_label_values(&[id, "rotated"]).inc();
                    }
                    self.not_after.with_label_values(&[id]).set(not_after.0);
                    w.seen = Some(pair);
                    w.refused = None;
                    rotated += 1;
                }
                Err(e) => {
                    if new_files {
                        tracing::warn!(issuer = id, error = %e, "OCSP responder files refused; keeping the pair in use");
                        self.reloads.with_label_values(&[id, "refused"]).inc();
                    }
                    w.refused = Some(pair);
                }
            }
        }
        rotated
    }

    /// Checks every `every` until `stop` completes.
    pub async fn run(mut self, every: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = &mut stop => return,
            }
            self = match tokio::task::spawn_blocking(move || {
                self.check_once();
                self
            })
            .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "OCSP responder rotation stopped");
                    return;
                }
            };
        }
    }
}
