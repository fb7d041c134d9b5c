//! The scenarios: each bounded in time (or in work), each one row of the table.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use shikko_core::consent::consent_statement;
use shikko_core::{CertKind, InfoItems, ProviderId, Serial, UnixTime};
use shikko_pki::Signer;
use shikko_population::synthetic::SplitMix64;
use shikko_proto::v1 as pb;
use tokio::sync::{Mutex, Semaphore};

use crate::platform::{Platform, Seeded};
use crate::report::Row;

type Http = Client<HttpConnector, Full<Bytes>>;

fn http_client(max_idle: usize) -> Http {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle)
        .build_http()
}

/// Options of the OCSP scenario.
pub(crate) struct OcspLoad {
    pub(crate) rate: u64,
    pub(crate) connections: usize,
    pub(crate) duration: Duration,
    /// Share of requests (per mille) that carry a nonce.
    pub(crate) nonce_per_mille: u64,
}

/// OCSP: an open-loop GET/POST mix at a fixed rate, 90 % of requests on a
/// hot 1 % of the certificates (the cacheable path), 10 % on the rest, a
/// few with a nonce (signed per request). Latency is measured from when each
/// request was due, so a server that falls behind is charged for it.
pub(crate) async fn ocsp(p: &Platform, pop: &Seeded, o: &OcspLoad) -> Result<Row> {
    let issuer = std::fs::read(p.dir.join("certs/auth-ca.der"))?;
    let serials = &pop.auth_good;
    anyhow::ensure!(
        serials.len() >= 100,
        "too few good certificates to load OCSP"
    );
    let hot = (serials.len() / 100).max(10);
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        serials
            .iter()
            .map(|s| shikko_ocsp::request::build_request(&issuer, s, None))
            .collect::<Result<_, _>>()?,
    );
    let client = http_client(o.connections);
    let permits = Arc::new(Semaphore::new(o.connections * 4));
    let row = Arc::new(Mutex::new(Row::new(format!(
        "ocsp GET/POST, {} req/s offered",
        o.rate
    ))));
    let (errors, shed, nonces) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let url = format!("http://{}/ocsp", p.ocsp_http);
    let start = Instant::now();
    let total = o.rate * o.duration.as_secs();
    let mut rng = SplitMix64::new(11);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        let due = start + Duration::from_secs_f64(n as f64 / o.rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // More in flight than the client allows: counted, not sent.
            shed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let i = if rng.chance(900) {
            rng.below(hot as u64) as usize
        } else {
            hot + rng.below((serials.len() - hot) as u64) as usize
        };
        let body = if rng.chance(o.nonce_per_mille) {
            nonces.fetch_add(1, Ordering::Relaxed);
            let nonce = rng.next_u64().to_be_bytes();
            shikko_ocsp::request::build_request(&issuer, &serials[i], Some(&nonce))?
        } else {
            requests[i].clone()
        };
        let get = rng.chance(500);
        let req = if get {
            let b64 = base64_url(&body);
            Request::get(format!("{url}/{b64}")).body(Full::new(Bytes::new()))?
        } else {
            Request::post(url.as_str())
                .header("content-type", "application/ocsp-request")
                .body(Full::new(Bytes::from(body)))?
        };
        let (client, row, errors) = (client.clone(), row.clone(), errors.clone());
        tasks.spawn(async move {
            let ok = match client.request(req).await {
                Ok(resp) if resp.status() == StatusCode::OK => {
                    let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                    body.is_ok_and(|b| successful(&b))
                }
                _ => false,
            };
            let took = due.elapsed();
            let mut r = row.lock().await;
            if ok {
                r.record(took);
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
        while let Some(done) = tasks.try_join_next() {
            done?;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done?;
    }
    let mut r = Arc::try_unwrap(row)
        .map_err(|_| anyhow::anyhow!("requests still running"))?
        .into_inner();
    r.elapsed = start.elapsed();
    r.errors = errors.load(Ordering::Relaxed);
    r.note = format!(
        "{} certs ({hot} hot: 90 %), {} with nonce, {} not sent (client at capacity)",
        serials.len(),
        nonces.load(Ordering::Relaxed),
        shed.load(Ordering::Relaxed)
    );
    Ok(r)
}

/// RFC 6960 appendix A GET form: base64, percent-encoded.
fn base64_url(der: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(der.len() * 2);
    for c in der.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                let ch = T[((n >> (18 - 6 * k)) & 63) as usize];
                match ch {
                    b'+' => s.push_str("%2B"),
                    b'/' => s.push_str("%2F"),
                    _ => s.push(ch as char),
                }
            } else {
                s.push_str("%3D");
            }
        }
    }
    s
}

/// CRLs: `operators` operators each polling the signing CA's full CRL and
/// delta every 100 ms with If-None-Match (as a CDN or an operator's fetcher
/// would): most answers are 304.
pub(crate) async fn crl(p: &Platform, operators: usize, duration: Duration) -> Result<Row> {
    let client = http_client(operators * 2);
    // The crl role publishes the full CRL, then the delta, once its mirror
    // is current: the operators start when both are there (a busy machine
    // would otherwise count the first seconds' 404s of the delta as errors).
    let published = Instant::now() + Duration::from_secs(120);
    for name in ["full.crl", "delta.crl"] {
        loop {
            let url = format!("http://{}/crl/sign/{name}", p.crl_http);
            let status = client
                .request(Request::get(url).body(Full::new(Bytes::new()))?)
                .await
                .map(|r| r.status());
            if matches!(status, Ok(StatusCode::OK)) {
                break;
            }
            if Instant::now() > published {
                anyhow::bail!("the crl role did not publish {name} within 120 s: {status:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..operators {
        let (client, base) = (client.clone(), format!("http://{}/crl/sign", p.crl_http));
        tasks.spawn(async move {
            let mut row = Row::new("");
            let (mut ok200, mut ok304, mut bytes, mut errors) = (0u64, 0u64, 0u64, 0u64);
            let mut etags: [Option<String>; 2] = [None, None];
            while Instant::now() < deadline {
                for (k, name) in ["full.crl", "delta.crl"].iter().enumerate() {
                    let mut req = Request::get(format!("{base}/{name}"));
                    if let Some(e) = &etags[k] {
                        req = req.header("if-none-match", e.as_str());
                    }
                    let t = Instant::now();
                    let resp = client.request(req.body(Full::new(Bytes::new()))?).await;
                    match resp {
                        Ok(r) if r.status() == StatusCode::OK => {
                            etags[k] = r
                                .headers()
                                .get("etag")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string);
                            let body = r.into_body().collect().await?.to_bytes();
                            bytes += body.len() as u64;
                            ok200 += 1;
                            row.record(t.elapsed());
                        }
                        Ok(r) if r.status() == StatusCode::NOT_MODIFIED => {
                            ok304 += 1;
                            row.record(t.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok::<_, anyhow::Error>((row, ok200, ok304, bytes, errors))
        });
    }
    let mut total = Row::new(format!("crl full+delta, {operators} operators"));
    let (mut ok200, mut ok304, mut bytes) = (0u64, 0u64, 0u64);
    while let Some(done) = tasks.join_next().await {
        let (row, a, b, c, e) = done??;
        total.latency.add(&row.latency)?;
        ok200 += a;
        ok304 += b;
        bytes += c;
        total.errors += e;
    }
    total.elapsed = start.elapsed();
    total.note = format!(
        "{ok200} × 200 ({:.1} MB), {ok304} × 304 ({:.1} % conditional hits)",
        bytes as f64 / 1e6,
        100.0 * ok304 as f64 / (ok200 + ok304).max(1) as f64
    );
    Ok(total)
}

/// Ingest: `count` revocations of good card user-authentication
/// certificates (a March-peak day is 75,000) in batches of 1,000, as fast as
/// the registry acknowledges them; then how long until the OCSP responder
/// answers the last one as revoked.
pub(crate) async fn ingest(p: &Platform, pop: &Seeded, count: usize) -> Result<Row> {
    let serials: Vec<Serial> = pop.auth_good.iter().rev().take(count).copied().collect();
    anyhow::ensure!(
        serials.len() == count,
        "{count} revocations asked, {} good certificates seeded (seed more holders)",
        serials.len()
    );
    let mut client =
        pb::registry_client::RegistryClient::new(p.channel(&p.registry, "authority").await?);
    let mut row = Row::new(format!("ingest {count} revocations, batches of 1,000"));
    let now = UnixTime::now().0;
    let start = Instant::now();
    revoke_in_batches(&mut client, &serials, now, "load-revoke", &mut row).await?;
    row.elapsed = start.elapsed();
    let events_per_s = count as f64 / row.elapsed.as_secs_f64();
    // Visible in OCSP: the last revocation answered as revoked.
    let issuer = std::fs::read(p.dir.join("certs/auth-ca.der"))?;
    let last = serials.last().context("no revocation")?;
    let body = shikko_ocsp::request::build_request(&issuer, last, Some(b"load-nonce"))?;
    let http = http_client(1);
    let acked = Instant::now();
    let mut visible = None;
    while acked.elapsed() < Duration::from_secs(60) {
        let req = Request::post(format!("http://{}/ocsp", p.ocsp_http))
            .header("content-type", "application/ocsp-request")
            .body(Full::new(Bytes::from(body.clone())))?;
        let b = http
            .request(req)
            .await?
            .into_body()
            .collect()
            .await?
            .to_bytes();
        if is_revoked(&b) {
            visible = Some(acked.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    row.note = format!(
        "{events_per_s:.0} events/s; latency per batch; last revocation answered revoked by OCSP {} after its ack",
        match visible {
            Some(d) => format!("{:.0} ms", d.as_secs_f64() * 1e3),
            None => "NOT within 60 s".into(),
        }
    );
    Ok(row)
}

/// 4-information: consents recorded for the seeded signers, then batch
/// queries of `batch` serials (half consented, half not) for `duration`.
pub(crate) async fn info(
    p: &Platform,
    pop: &Seeded,
    batch: usize,
    duration: Duration,
) -> Result<Row> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    // Register the bank and the operator (the seeded operator certificate).
    let mut admin =
        pb::info_admin_client::InfoAdminClient::new(p.channel(&p.info_admin, "admin").await?);
    admin
        .register_provider(pb::RegisterProviderRequest {
            kind: pb::ProviderKind::Bank as i32,
            id: "load-bank".into(),
            name: "load bank".into(),
        })
        .await?;
    admin
        .register_operator(pb::RegisterOperatorRequest {
            id: "demo-operator".into(),
            name: "load operator".into(),
            providers: vec!["load-bank".into()],
            certificate: p.tls("operator.pem")?,
        })
        .await?;
    admin
        .set_rate_limit(pb::SetRateLimitRequest {
            id: "demo-operator".into(),
            serials_per_second: 10_000_000,
            burst: 10_000_000,
        })
        .await?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(p.tls("operator-ca.pem")?))
        .identity(Identity::from_pem(
            p.tls("operator.pem")?,
            p.tls("operator-key.pem")?,
        ))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(p.info_mtls.clone())?
        .tls_config(tls)?
        .connect()
        .await?;
    let mut client = pb::info_client::InfoClient::new(channel).max_decoding_message_size(64 << 20);
    // Consents, signed with the holders' keys (the seeded pool of 8).
    let keys: Vec<shikko_pki::SoftwareSigner> = (0..8)
        .map(|k| shikko_pki::SoftwareSigner::load(&p.dir.join(format!("keys/holder-pool-{k}.key"))))
        .collect::<Result<_, _>>()?;
    let bank = ProviderId::new("load-bank")?;
    // The replica may still be catching up: retry UNAVAILABLE for a while.
    let deadline = Instant::now() + Duration::from_secs(60);
    let retry =
        |e: &tonic::Status| e.code() == tonic::Code::Unavailable && Instant::now() < deadline;
    let mut consented = Vec::new();
    for (i, serial, der) in &pop.signers {
        // As an operator does: a challenge for each consent, then the
        // holder's signature over the statement carrying it.
        let challenge = loop {
            match client
                .consent_challenge(pb::ConsentChallengeRequest {
                    provider: "load-bank".into(),
                })
                .await
            {
                Ok(c) => break c.into_inner().challenge,
                Err(e) if retry(&e) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => anyhow::bail!(
                    "asking for a consent challenge: {:?}: {}",
                    e.code(),
                    e.message()
                ),
            }
        };
        let granted = UnixTime::now();
        let statement = consent_statement(&bank, InfoItems::ALL, serial, granted, &challenge);
        let req = pb::RecordConsentRequest {
            provider: "load-bank".into(),
            items: all_items(),
            signing_certificate: der.clone(),
            granted_at: granted.0,
            challenge,
            signature: keys[(*i as usize) % keys.len()].sign(&statement)?,
        };
        loop {
            match client.record_consent(req.clone()).await {
                Ok(_) => break,
                Err(e) if retry(&e) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => anyhow::bail!("recording a consent: {:?}: {}", e.code(), e.message()),
            }
        }
        consented.push(*serial);
    }
    let others: Vec<Serial> = pop.auth_good.iter().take(batch).copied().collect();
    let mut rng = SplitMix64::new(5);
    let mut row = Row::new(format!("info QueryBatch of {batch} (mTLS)"));
    let start = Instant::now();
    let mut serials_done = 0u64;
    while start.elapsed() < duration {
        let serials: Vec<Vec<u8>> = (0..batch)
            .map(|k| {
                let s = if k % 2 == 0 {
                    consented[rng.below(consented.len() as u64) as usize]
                } else {
                    others[rng.below(others.len() as u64) as usize]
                };
                s.magnitude().to_vec()
            })
            .collect();
        let t = Instant::now();
        match client
            .query_batch(pb::InfoBatchRequest {
                provider: "load-bank".into(),
                serials,
                issuer: shikko_proto::convert::issuer(CertKind::CardSigning),
            })
            .await
        {
            Ok(r) if r.get_ref().answers.len() == batch => {
                row.record(t.elapsed());
                serials_done += batch as u64;
            }
            _ => row.errors += 1,
        }
    }
    row.elapsed = start.elapsed();
    row.note = format!(
        "{} consents; {:.0} serials/s answered and audited",
        consented.len(),
        serials_done as f64 / row.elapsed.as_secs_f64()
    );
    Ok(row)
}

/// Whether an OCSP response is `successful` (a signed answer).
fn successful(der: &[u8]) -> bool {
    use der::Decode;
    shikko_ocsp::types::OcspResponse::from_der(der)
        .is_ok_and(|r| r.response_status == shikko_ocsp::types::OcspResponseStatus::Successful)
}

/// Whether an OCSP response answers its (first) certificate as revoked.
fn is_revoked(der: &[u8]) -> bool {
    use der::Decode;
    use shikko_ocsp::types::{BasicOcspResponse, CertStatus, OcspResponse};
    let Ok(r) = OcspResponse::from_der(der) else {
        return false;
    };
    let Some(bytes) = r.response_bytes else {
        return false;
    };
    BasicOcspResponse::from_der(bytes.response.as_bytes()).is_ok_and(|b| {
        b.tbs_response_data
            .responses
            .first()
            .is_some_and(|s| matches!(s.cert_status, CertStatus::Revoked(_)))
    })
}

fn all_items() -> Vec<i32> {
    vec![
        pb::InfoItem::Name as i32,
        pb::InfoItem::Address as i32,
        pb::InfoItem::DateOfBirth as i32,
        pb::InfoItem::Sex as i32,
    ]
}

/// Feed follow: the registry's whole feed streamed from sequence 1 to its
/// head, as a new follower replays it: status only (as the ocsp role), or
/// with the writes of each event (as the info role). One latency per batch
/// of 1,000 records; the rate is records per second.
pub(crate) async fn follow(p: &Platform, with_writes: bool) -> Result<Row> {
    let who = if with_writes { "info" } else { "ocsp" };
    let mut client = pb::registry_client::RegistryClient::new(p.channel(&p.registry, who).await?)
        .max_decoding_message_size(64 << 20);
    let what = if with_writes {
        "with writes"
    } else {
        "status only"
    };
    let mut row = Row::new(format!("follow the feed, {what}"));
    let start = Instant::now();
    let mut stream = client
        .follow(pb::FollowRequest {
            from_seq: 1,
            max_batch: 1_000,
            with_writes,
        })
        .await?
        .into_inner();
    let (mut records, mut bytes) = (0u64, 0usize);
    let mut t = Instant::now();
    while let Some(batch) = stream.message().await? {
        row.record(t.elapsed());
        records += batch.records.len() as u64;
        bytes += prost::Message::encoded_len(&batch);
        let last = batch.records.last().map_or(0, |r| r.seq);
        if last >= batch.head_seq {
            break;
        }
        t = Instant::now();
    }
    row.elapsed = start.elapsed();
    row.note = format!(
        "{records} records, {:.0} records/s, {:.1} MB",
        records as f64 / row.elapsed.as_secs_f64(),
        bytes as f64 / 1e6
    );
    Ok(row)
}

/// A snapshot of the registry's state, as a new follower loads it instead
/// of the feed: every status (an OCSP index), or the replica's writes.
pub(crate) async fn snapshot(p: &Platform, content: pb::SnapshotContent) -> Result<Row> {
    let replica = content == pb::SnapshotContent::Replica;
    let who = if replica { "info" } else { "ocsp" };
    let mut client = pb::registry_client::RegistryClient::new(p.channel(&p.registry, who).await?)
        .max_decoding_message_size(64 << 20);
    let what = match content {
        pb::SnapshotContent::Replica => "replica's writes",
        pb::SnapshotContent::StatusImage => "the status index image",
        _ => "every status",
    };
    let mut row = Row::new(format!("load a snapshot, {what}"));
    let start = Instant::now();
    let mut stream = client
        .snapshot(pb::SnapshotRequest {
            content: content as i32,
        })
        .await?
        .into_inner();
    let (mut entries, mut bytes, mut seq) = (0u64, 0usize, 0u64);
    let mut image = Vec::new();
    let mut t = Instant::now();
    while let Some(chunk) = stream.message().await? {
        row.record(t.elapsed());
        entries += chunk.changes.len() as u64;
        image.extend_from_slice(&chunk.image);
        if !chunk.writes.is_empty() {
            entries += rmp_serde::from_slice::<Vec<shikko_core::Effect>>(&chunk.writes)
                .map(|w| w.len() as u64)
                .unwrap_or(0);
        }
        bytes += prost::Message::encoded_len(&chunk);
        seq = chunk.seq;
        if chunk.last {
            break;
        }
        t = Instant::now();
    }
    if !image.is_empty() {
        // As a responder does: the index, read back from the image.
        let index = shikko_ocsp::index::StatusIndex::new();
        index.read_image(&image)?;
        entries = shikko_core::CertKind::ALL
            .iter()
            .map(|k| index.len(*k) as u64)
            .sum();
    }
    row.elapsed = start.elapsed();
    row.note = format!(
        "{entries} entries at seq {seq}, {:.0} entries/s, {:.1} MB",
        entries as f64 / row.elapsed.as_secs_f64(),
        bytes as f64 / 1e6
    );
    Ok(row)
}

/// New OCSP responders, as an autoscaler starts them: the time from the
/// process's start until it is current (it has loaded the registry's status
/// index image and followed the feed to the head), and its resident memory
/// then. Three in a row; each is stopped before the next.
pub(crate) async fn ocsp_start(p: &Platform) -> Result<Row> {
    let mut row = Row::new("a new OCSP responder: start to current");
    let started = Instant::now();
    let mut rss = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let r = p.spawn_ocsp()?;
        let metrics = r
            .try_field("metrics")
            .context("the new responder's metrics address")?;
        let pid = r.child.id();
        let ready = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            while Instant::now() < deadline {
                let (_, body) = shikko_testkit::process::http_get(&metrics, "/metrics");
                let text = String::from_utf8_lossy(&body);
                let lag0 = text
                    .lines()
                    .any(|l| l == "shikko_feed_lag_events{role=\"ocsp\"} 0");
                let up = text
                    .lines()
                    .any(|l| l == "shikko_feed_connected{role=\"ocsp\"} 1");
                if lag0 && up {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        })
        .await?;
        if !ready {
            row.errors += 1;
            continue;
        }
        row.record(t.elapsed());
        if let Some(kb) = resident_kib(pid) {
            rss.push(kb);
        }
        drop(r);
    }
    row.elapsed = started.elapsed();
    rss.sort_unstable();
    row.note = format!(
        "resident when current {} MiB (median of {})",
        rss.get(rss.len() / 2).map_or(0, |kb| kb / 1024),
        rss.len()
    );
    Ok(row)
}

/// Revokes card user-authentication `serials` through `client` in batches
/// of 1,000 (event ids `ID-BATCH-I`), each batch's time in `row`, events
/// not applied counted as its errors.
pub(crate) async fn revoke_in_batches(
    client: &mut pb::registry_client::RegistryClient<tonic::transport::Channel>,
    serials: &[Serial],
    now: i64,
    id: &str,
    row: &mut Row,
) -> Result<()> {
    for (b, chunk) in serials.chunks(1_000).enumerate() {
        let events = chunk
            .iter()
            .enumerate()
            .map(|(i, s)| pb::Event {
                id: format!("{id}-{b}-{i}"),
                time: now,
                body: Some(pb::event::Body::Revoke(pb::Revoke {
                    issuer: pb::Issuer::Auth as i32,
                    serial: s.magnitude().to_vec(),
                    reason: if i % 4 == 0 { 1 } else { 5 },
                    invalidity_date: None,
                })),
            })
            .collect();
        let t = Instant::now();
        let resp = client
            .ingest(pb::IngestRequest {
                events,
                all_or_nothing: false,
            })
            .await?
            .into_inner();
        row.record(t.elapsed());
        row.errors += resp
            .outcomes
            .iter()
            .filter(|o| o.kind != pb::OutcomeKind::Applied as i32)
            .count() as u64;
    }
    Ok(())
}

/// The resident memory of process `pid` in KiB (`VmRSS`), if it can be read.
pub(crate) fn resident_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
}
