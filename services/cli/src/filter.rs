//! `shikko filter check`: a certificate's status from the issuer's compact
//! revocation filters (a full filter and, optionally, the newest delta),
//! each verified (the issuer's signature, its key, freshness, the delta's
//! base). "not covered" (issued after the filters, or expired before the
//! full one) means: ask OCSP.
//!
//! The filters come from files (`--full`, `--delta`) or from a server
//! (`--url`): `BASE/filter/ISSUER/full.filter` and `delta.filter`, kept in
//! `--cache DIR` with their ETags and asked for again with If-None-Match.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use shikko_core::{CertKind, UnixTime};
use shikko_filter::{Answer, FilterSet};

/// `shikko filter check`.
#[derive(Args)]
pub(crate) struct CheckArgs {
    /// The issuing CA's certificate (PEM or DER).
    #[arg(long)]
    issuer: PathBuf,
    /// The certificate asked about (PEM or DER).
    #[arg(long)]
    cert: PathBuf,
    /// The full filter (`full.filter`).
    #[arg(long, required_unless_present = "url", conflicts_with = "url")]
    full: Option<PathBuf>,
    /// The newest delta against it (`delta.filter`).
    #[arg(long, requires = "full")]
    delta: Option<PathBuf>,
    /// Fetch the filters over HTTP instead: the server's root
    /// (`http://HOST:PORT`, the issuer found from its CA certificate) or
    /// the issuer's filter directory (`http://HOST:PORT/filter/ISSUER`).
    #[arg(long)]
    url: Option<String>,
    /// Keep fetched filters (and their ETags) here, and ask again with
    /// If-None-Match: an unchanged filter costs a 304.
    #[arg(long, requires = "url")]
    cache: Option<PathBuf>,
    /// A verifier's bearer token, for a server that serves registered
    /// verifiers only.
    #[arg(long, env = "SHIKKO_VERIFIER_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// The issuer whose CA certificate `ca` is (by its subject name).
fn kind_of_ca(ca: &[u8]) -> Result<CertKind> {
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(ca).context("the issuer's certificate")?;
    let subject = cert.tbs_certificate().subject().to_der()?;
    for kind in CertKind::ALL {
        if shikko_pki::ca_name(kind).to_der()? == subject {
            return Ok(kind);
        }
    }
    bail!("cannot tell which issuer this CA is: give --url ending in /filter/ISSUER")
}

/// The issuer's filter directory URL.
fn filter_dir(url: &str, ca: &[u8]) -> Result<String> {
    let url = url.trim_end_matches('/');
    if !url.starts_with("http://") {
        bail!("--url must be http://... (fetch over HTTPS with curl, then use --full and --delta)");
    }
    if url.contains("/filter/") {
        return Ok(url.to_string());
    }
    Ok(format!("{url}/filter/{}", kind_of_ca(ca)?.issuer_id()))
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

/// The largest filter fetched (a full filter of 200 million certificates
/// with 20 million listed is 13 MB).
const MAX_FILTER: usize = 256 << 20;

/// Fetches `url` (with the cached copy's ETag): the bytes, or `None` when
/// it is not published (404).
async fn fetch(
    client: &Client,
    url: &str,
    cache: Option<&Path>,
    token: Option<&str>,
) -> Result<Option<Vec<u8>>> {
    use http_body_util::BodyExt;
    let name = url.rsplit('/').next().unwrap_or("filter");
    let cached = cache.map(|d| (d.join(name), d.join(format!("{name}.etag"))));
    let etag = cached.as_ref().and_then(|(f, e)| {
        f.exists()
            .then(|| std::fs::read_to_string(e).ok())
            .flatten()
    });
    let mut req = hyper::Request::get(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(e) = &etag {
        req = req.header("if-none-match", e.trim());
    }
    let resp = client
        .request(req.body(http_body_util::Empty::new())?)
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let etag_now = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match status.as_u16() {
        200 => {}
        304 if cached.is_some() => {
            let (f, _) = cached.as_ref().expect("checked");
            return Ok(Some(
                std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
            ));
        }
        404 => return Ok(None),
        _ => bail!("GET {url}: {status}"),
    }
    let body = http_body_util::Limited::new(resp.into_body(), MAX_FILTER)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?
        .to_bytes()
        .to_vec();
    if let (Some((f, e)), Some(tag)) = (&cached, etag_now) {
        if let Some(dir) = f.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(f, &body).with_context(|| format!("writing {}", f.display()))?;
        std::fs::write(e, tag).with_context(|| format!("writing {}", e.display()))?;
    }
    Ok(Some(body))
}

/// The full filter and the newest delta (if any) of `dir`.
async fn fetch_filters(
    dir: &str,
    cache: Option<&Path>,
    token: Option<&str>,
) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let full = fetch(&client, &format!("{dir}/full.filter"), cache, token)
        .await?
        .with_context(|| format!("{dir}/full.filter is not published"))?;
    let delta = fetch(&client, &format!("{dir}/delta.filter"), cache, token).await?;
    Ok((full, delta))
}

fn read_cert(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    shikko_pki::certificate_der(&bytes).with_context(|| format!("{}", path.display()))
}

/// Runs `shikko filter check`: the exit code, 0 good, 3 revoked, 4 not
/// covered (an error is 1, as every command's).
pub(crate) async fn check(a: &CheckArgs) -> Result<i32> {
    let ca = read_cert(&a.issuer)?;
    let cert = read_cert(&a.cert)?;
    let now = UnixTime::now();
    let (full, delta, full_name, delta_name) = match (&a.url, &a.full) {
        (Some(url), _) => {
            let dir = filter_dir(url, &ca)?;
            let (full, delta) = fetch_filters(&dir, a.cache.as_deref(), a.token.as_deref()).await?;
            (
                full,
                delta,
                format!("{dir}/full.filter"),
                format!("{dir}/delta.filter"),
            )
        }
        (None, Some(path)) => {
            let full =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let delta = match &a.delta {
                Some(d) => {
                    Some(std::fs::read(d).with_context(|| format!("reading {}", d.display()))?)
                }
                None => None,
            };
            let delta_name = a.delta.as_ref().map(|d| d.display().to_string());
            (
                full,
                delta,
                path.display().to_string(),
                delta_name.unwrap_or_default(),
            )
        }
        (None, None) => bail!("give --full FILE or --url URL"),
    };
    let mut set = FilterSet::new(&full, &ca, now).context(full_name)?;
    if let Some(delta) = delta {
        match set.apply_delta(&delta, now) {
            Ok(()) => {}
            // Fetched between a full build and its first delta: the
            // delta of the previous full filter; the full one alone is newer.
            Err(shikko_filter::FilterError::WrongBase { .. }) if a.url.is_some() => {}
            Err(e) => return Err(anyhow::Error::new(e).context(delta_name)),
        }
    }
    let answer = set.check_certificate(&cert)?;
    let h = &set.full().header;
    let through = set.delta().map_or(h.number, |d| d.header.number);
    let (word, code) = match answer {
        Answer::Good => ("good", 0),
        Answer::Revoked => ("revoked (or on hold: the CRL or OCSP says which)", 3),
        Answer::NotCovered => ("not covered by these filters: ask OCSP", 4),
    };
    println!(
        "{}: {word} (filters {} to {through}, full filter made at {})",
        a.cert.display(),
        h.number,
        UnixTime(h.this_update)
    );
    Ok(code)
}
