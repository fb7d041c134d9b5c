//! The info role (the 4-information service) as the demo and the registry's
//! process run it: the service over the registry's store, its mTLS server,
//! and the demo's operator, bank, consents and moves.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use shikko_core::consent::consent_statement;
use shikko_core::{
    CertKind, CertStatus, Event, EventBody, EventId, HolderState, InfoItems, NewCert, OperatorId,
    ProviderId, Serial, UnixTime,
};
use shikko_info::consent::ConsentRequest;
use shikko_info::{InfoMetrics, InfoService};
use shikko_pki::{HolderCertRequest, Signer};
use shikko_population::synthetic::Population;
use shikko_registry::Registry;
use shikko_store::{IngestMode, Store};

use crate::authority::{Authority, Ca};
use shikko_population::serial_for;

/// The demo's bank (service provider).
pub(crate) const DEMO_PROVIDER: &str = "demo-bank";
/// The demo's operator: the CN of samples/operator.pem.
pub(crate) const DEMO_OPERATOR: &str = "demo-operator";
/// The demo's user-authentication verifier (a clinic's eligibility system).
pub(crate) const DEMO_VERIFIER: &str = "demo-clinic";
/// Samples of the user-authentication link: a renewed card's old and new
/// user-authentication serials.
pub(crate) const LINK_SAMPLE_FILE: &str = "link-serials.txt";
/// Which holders of the demo consent: one in this many.
const CONSENT_ONE_IN: u64 = 10;
/// File (in samples/) naming serials to query with.
pub(crate) const SAMPLE_FILE: &str = "info-serials.txt";
/// File (in samples/) with an event that moves the `unchanged` holder.
pub(crate) const EXAMPLE_MOVE_FILE: &str = "example-move.jsonl";

/// The service over `store`, checking consents against the card and
/// smartphone signing CAs of `cas`.
pub(crate) fn service(
    store: Arc<Store>,
    cas: &[Ca],
    metrics: &prometheus::Registry,
) -> Result<Arc<InfoService>> {
    let of = |kind: CertKind| -> Vec<Vec<u8>> {
        cas.iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.cert_der.clone())
            .collect()
    };
    Ok(Arc::new(
        InfoService::new(
            store,
            &of(CertKind::CardSigning),
            InfoMetrics::new(metrics)?,
        )?
        .with_phone_signing_cas(&of(CertKind::PhoneSigning))?,
    ))
}

/// The demo's audit key (`DIR/keys/audit.key`, made at the first start;
/// a deployment keeps it outside the data directory, `[info.audit] key`),
/// its public key for verifiers (`DIR/samples/audit-key.pem`), and the
/// signed heads' directory (`DIR/audit-heads`).
pub(crate) fn with_demo_audit_key(
    svc: Arc<InfoService>,
    data_dir: &Path,
) -> Result<Arc<InfoService>> {
    let data = shikko_pki::DataDir::new(data_dir);
    let path = data.key_path("audit");
    if !path.exists() {
        shikko_pki::generate_signer(shikko_pki::KeyAlgorithm::EcdsaP256)?.save(&path)?;
    }
    shikko_pki::check_key_file(&path)?;
    let key = shikko_pki::load_signer(&path)?;
    let samples = data_dir.join("samples");
    std::fs::create_dir_all(&samples)?;
    shikko_pki::write_file_atomic(
        &samples.join(AUDIT_KEY_FILE),
        shikko_info::heads::public_key_pem(key.as_ref())?.as_bytes(),
        0o644,
    )?;
    let svc = Arc::into_inner(svc).context("the service is shared before it starts")?;
    Ok(Arc::new(svc.with_audit_key(
        key,
        Some(data_dir.join("audit-heads")),
        shikko_info::heads::DEFAULT_HEAD_SECS,
    )?))
}

/// The audit key's public key, in the demo's samples.
pub(crate) const AUDIT_KEY_FILE: &str = "audit-key.pem";

/// The demo's TLS configuration: the server certificate and key of the
/// authority, client certificates from the operator CA (the data
/// directory's files).
pub(crate) fn demo_tls(authority: &Authority) -> Result<Arc<shikko_runtime::ServerTls>> {
    let data = shikko_pki::DataDir::new(&authority.dir);
    Ok(shikko_info::process::tls_from_files(
        &data.cert_path("server"),
        &data.key_path("server"),
        &data.cert_path("operator-ca"),
    )?)
}

/// What the demo set up, to query with.
#[derive(Debug, Default)]
pub(crate) struct InfoSamples {
    /// Old serial of a consenting holder who moved (all items).
    pub(crate) changed: Option<Serial>,
    /// Old serial of a consenting holder who moved (address only).
    pub(crate) partial: Option<Serial>,
    /// A consenting holder's valid serial.
    pub(crate) unchanged: Option<Serial>,
    /// Old serial of a consenting holder who renewed (nothing changed).
    pub(crate) renewed: Option<Serial>,
    /// That holder's card user-authentication serials, before and after.
    pub(crate) auth_renewed: Option<(Serial, Serial)>,
    /// A holder who did not consent.
    pub(crate) no_consent: Option<Serial>,
    /// Consents recorded.
    pub(crate) consents: u64,
    /// An event to try: the `unchanged` holder moves (not ingested).
    pub(crate) example_move: Option<Event>,
    /// The holders of these samples (moved, or moved by the example).
    pub(crate) holders: Vec<shikko_core::HolderId>,
    /// The population index of the `changed` holder, whose access record
    /// the tour reads (with their user-authentication certificate).
    pub(crate) access_holder: Option<u64>,
}

/// The demo's 4-information setup: registers the bank and the operator,
/// records the consents of one holder in ten (signed with their keys; one
/// in four of them for the address only), then moves three consenting
/// holders now (new address, new signing certificate linked from the old).
pub(crate) async fn demo_setup(
    svc: &Arc<InfoService>,
    registry: &Registry,
    authority: &Authority,
    pop: &Population,
    holders: u64,
    ocsp_url: &str,
) -> Result<InfoSamples> {
    let provider = ProviderId::new(DEMO_PROVIDER)?;
    if svc.provider(&provider)?.is_none() {
        svc.register_provider(provider.clone(), "デモ銀行 (demo bank)")
            .await?;
    }
    let verifier = ProviderId::new(DEMO_VERIFIER)?;
    if svc.provider(&verifier)?.is_none() {
        svc.register_provider_of(
            verifier.clone(),
            "デモ診療所 (demo clinic's eligibility system)",
            shikko_info::operators::ProviderKind::UserAuthVerifier,
        )
        .await?;
    }
    let op_id = OperatorId::new(DEMO_OPERATOR)?;
    let op = match svc.operator(&op_id)? {
        // A data directory from before the link: the operator acts for the clinic too.
        Some(op) if !op.acts_for(&verifier) => {
            let mut providers = op.providers.clone();
            providers.push(verifier);
            svc.set_operator_providers(&op_id, providers).await?
        }
        Some(op) => op,
        None => {
            svc.register_operator(
                op_id.clone(),
                "Demo platform operator",
                vec![provider.clone(), verifier],
                &authority.operator_der,
            )
            .await?
        }
    };
    let store = registry.store().clone();
    let sign_ca = authority
        .cas
        .iter()
        .find(|c| c.kind == CertKind::CardSigning)
        .context("no card signing CA")?;
    let mut samples = InfoSamples::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut consenting = Vec::new();
    for i in 0..holders {
        let h = pop.holder(i);
        let Some(rec) = store.holder(&h.id)? else {
            continue;
        };
        let Some(serial) = rec.live(CertKind::CardSigning) else {
            continue;
        };
        let good = matches!(store.cert(CertKind::CardSigning, &serial)?, Some(c) if c.status == CertStatus::Good);
        let Some(der) = store.cert_der(CertKind::CardSigning, &serial)? else {
            continue;
        };
        if rec.state != HolderState::Active || !good {
            continue;
        }
        if i % CONSENT_ONE_IN != 0 {
            samples.no_consent.get_or_insert(serial);
            continue;
        }
        let items = if (i / CONSENT_ONE_IN) % 4 == 1 {
            InfoItems::ADDRESS
        } else {
            InfoItems::ALL
        };
        let key = authority.holder_keys[(i as usize) % authority.holder_keys.len()].clone();
        // As an operator would: a challenge for each consent.
        let challenge = svc.consent_challenge(&op, &provider).await?.value;
        let granted_at = UnixTime::now();
        let statement = consent_statement(&provider, items, &serial, granted_at, &challenge);
        let req = ConsentRequest {
            provider: provider.clone(),
            items,
            signing_certificate: der,
            granted_at,
            challenge,
            signature: key.sign(&statement)?,
        };
        consenting.push((i, serial, items));
        let (svc, op) = (svc.clone(), op.clone());
        tasks.spawn(async move { svc.record_consent(&op, req).await });
        // Bounded concurrency: the audit writer commits them in groups.
        while tasks.len() >= 64 {
            if let Some(r) = tasks.join_next().await {
                r??;
                samples.consents += 1;
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
        samples.consents += 1;
    }
    // Three of them move now: two who consented to everything, one to the address only.
    let mut movers: Vec<(u64, Serial, InfoItems)> = consenting
        .iter()
        .filter(|(_, _, items)| *items == InfoItems::ALL)
        .take(2)
        .copied()
        .collect();
    movers.extend(
        consenting
            .iter()
            .filter(|(_, _, items)| *items == InfoItems::ADDRESS)
            .take(1)
            .copied(),
    );
    samples.unchanged = consenting
        .iter()
        .find(|c| !movers.iter().any(|m| m.0 == c.0))
        .map(|c| c.1);
    // One more renews its card: nothing changed, a new serial.
    let renewer = consenting
        .iter()
        .find(|c| {
            c.2 == InfoItems::ALL
                && !movers.iter().any(|m| m.0 == c.0)
                && Some(c.1) != samples.unchanged
        })
        .copied();
    let issuer = sign_ca.issuer()?;
    let now = UnixTime::now();
    let mut events = Vec::new();
    let example = consenting
        .iter()
        .find(|c| Some(c.1) == samples.unchanged)
        .map(|c| (c.0, c.1, InfoItems::NONE));
    for (i, old, items) in movers.iter().chain(example.iter()) {
        let h = pop.holder(*i);
        samples.holders.push(h.id.clone());
        let moved = pop.moved(&h, 1_000);
        let mut info = store
            .holder(&h.id)?
            .and_then(|r| r.four_info)
            .context("a consenting holder without 4 information")?;
        info.address = moved.four_info.address.clone();
        let municipality = pop
            .municipality(moved.municipality)
            .cloned()
            .context("unknown municipality")?;
        let serial = serial_for(CertKind::CardSigning, *i, 0xFF00);
        let key = &authority.holder_keys[(*i as usize) % authority.holder_keys.len()];
        let not_after = store
            .cert(CertKind::CardSigning, old)?
            .map_or(now.plus_secs(5 * 365 * 86_400), |c| c.not_after);
        let card = CardRequest {
            holder: &h.id,
            info: &info,
            municipality,
            serial,
            key,
            validity: (now, not_after),
        };
        let new_signing = Some(card.issue(&issuer, ocsp_url)?);
        let event = Event {
            id: EventId::new(format!("demo-move-{}", h.id))?,
            time: now,
            body: EventBody::FourInfoChange {
                holder: h.id.clone(),
                four_info: info,
                new_signing,
            },
        };
        if *items == InfoItems::NONE {
            samples.example_move = Some(event);
            continue;
        }
        events.push(event);
        if *items == InfoItems::ALL {
            samples.changed.get_or_insert(*old);
            samples.access_holder.get_or_insert(*i);
        } else {
            samples.partial.get_or_insert(*old);
        }
    }
    if let Some((i, old, _)) = renewer {
        let h = pop.holder(i);
        samples.holders.push(h.id.clone());
        let rec = store
            .cert(CertKind::CardSigning, &old)?
            .context("a renewer's certificate")?;
        let info = store
            .holder(&h.id)?
            .and_then(|r| r.four_info)
            .context("a consenting holder without 4 information")?;
        let municipality = pop
            .municipality(rec.partition)
            .cloned()
            .context("unknown municipality")?;
        let serial = serial_for(CertKind::CardSigning, i, 0xFE00);
        let key = &authority.holder_keys[(i as usize) % authority.holder_keys.len()];
        let not_after = now.plus_secs(5 * 365 * 86_400);
        let card = CardRequest {
            holder: &h.id,
            info: &info,
            municipality,
            serial,
            key,
            validity: (now, not_after),
        };
        // The user-authentication certificate is renewed with it: the
        // link's sample (old and new serial, one pseudonym).
        let old_auth = store
            .holder(&h.id)?
            .and_then(|r| r.live(CertKind::CardAuth));
        let new_auth = old_auth.map(|_| NewCert {
            kind: CertKind::CardAuth,
            serial: serial_for(CertKind::CardAuth, i, 0xFE00),
            not_before: now,
            not_after,
            municipality: None,
            cert_der: None,
        });
        if let (Some(old), Some(new)) = (old_auth, &new_auth) {
            samples.auth_renewed = Some((old, new.serial));
        }
        events.push(Event {
            id: EventId::new(format!("demo-renewal-{}", h.id))?,
            time: now,
            body: EventBody::Renewal {
                holder: h.id.clone(),
                new_signing: Some(card.issue(&issuer, ocsp_url)?),
                new_auth,
            },
        });
        samples.renewed = Some(old);
    }
    let outcomes = registry.ingest(events, IngestMode::AllOrNothing).await?;
    for o in outcomes {
        if !matches!(
            o,
            shikko_store::Outcome::Applied { .. } | shikko_store::Outcome::Duplicate { .. }
        ) {
            anyhow::bail!("a demo move was not applied: {o:?}");
        }
    }
    Ok(samples)
}

/// A new card signing certificate of the demo's.
struct CardRequest<'a, K> {
    holder: &'a shikko_core::HolderId,
    info: &'a shikko_core::FourInfo,
    municipality: shikko_core::Municipality,
    serial: Serial,
    key: &'a K,
    validity: (UnixTime, UnixTime),
}

impl<K: shikko_pki::Signer> CardRequest<'_, K> {
    /// Signed by `issuer`, as an event's new certificate.
    fn issue(self, issuer: &shikko_pki::Issuer<'_>, ocsp_url: &str) -> Result<NewCert> {
        let (not_before, not_after) = self.validity;
        let der = shikko_pki::holder_certificate(
            issuer,
            &HolderCertRequest {
                kind: CertKind::CardSigning,
                holder: self.holder,
                municipality: Some(&self.municipality),
                four_info: Some(self.info),
                subject_public_key: self.key.public_key_der(),
                serial: self.serial,
                not_before,
                not_after,
                ocsp_url: Some(ocsp_url),
            },
        )?;
        Ok(NewCert {
            kind: CertKind::CardSigning,
            serial: self.serial,
            not_before,
            not_after,
            municipality: Some(self.municipality),
            cert_der: Some(der),
        })
    }
}

/// Writes samples/info-serials.txt (read by the tour) and returns the
/// README section about the info service.
pub(crate) fn write_samples(dir: &Path, s: &InfoSamples, info_addr: SocketAddr) -> Result<String> {
    let mut list = String::new();
    for (name, serial) in [
        ("changed", s.changed),
        ("partial", s.partial),
        ("unchanged", s.unchanged),
        ("renewed", s.renewed),
        ("no-consent", s.no_consent),
    ] {
        if let Some(serial) = serial {
            list.push_str(&format!("{name} {serial}\n"));
        }
    }
    shikko_pki::write_file_atomic(&dir.join(SAMPLE_FILE), list.as_bytes(), 0o644)?;
    if let Some((old, new)) = s.auth_renewed {
        let text = format!("renewed-old {old}\nrenewed-new {new}\n");
        shikko_pki::write_file_atomic(&dir.join(LINK_SAMPLE_FILE), text.as_bytes(), 0o644)?;
    }
    if let Some(e) = &s.example_move {
        let line = serde_json::to_string(e)? + "\n";
        shikko_pki::write_file_atomic(&dir.join(EXAMPLE_MOVE_FILE), line.as_bytes(), 0o644)?;
    }
    let d = dir.display();
    Ok(format!(
        "\n4-information service (mutual TLS): https://{info_addr}\n\
         The demo registered the bank `{DEMO_PROVIDER}` and the operator `{DEMO_OPERATOR}`\n\
         (operator.pem / operator-key.pem), recorded {} consents (one holder in ten;\n\
         one in four of them for the address only), then moved three consenting\n\
         holders and renewed one's card. {SAMPLE_FILE} lists serials to ask about:\n{}\
         Ask by the old serial (the bank's) for the new address and serial:\n\
         \x20 shikko info query --endpoint https://{info_addr} --cert {d}/operator.pem --key {d}/operator-key.pem SERIAL...\n\
         {EXAMPLE_MOVE_FILE} moves the `unchanged` holder (a new signing certificate):\n\
         \x20 shikko events ingest {d}/{EXAMPLE_MOVE_FILE}, then ask again: changed.\n\
         User-authentication link (verifier `{DEMO_VERIFIER}`): a renewed card's old and new\n\
         user-authentication serials ({LINK_SAMPLE_FILE}) resolve to one pseudonym:\n\
         \x20 shikko link resolve --endpoint https://{info_addr} --cert {d}/operator.pem --key {d}/operator-key.pem $(cut -d' ' -f2 {d}/{LINK_SAMPLE_FILE})\n\
         Audit log: shikko audit export > audit.jsonl && shikko audit verify audit.jsonl --endpoint http://127.0.0.1:50051\n",
        s.consents,
        list.lines().map(|l| format!("  {l}\n")).collect::<String>(),
    ))
}

/// The holder whose access record the tour reads: their card
/// user-authentication certificate and its key.
pub(crate) const HOLDER_AUTH_FILE: &str = "holder-auth.pem";
/// See [`HOLDER_AUTH_FILE`].
pub(crate) const HOLDER_AUTH_KEY_FILE: &str = "holder-auth-key.pem";

/// Writes [`HOLDER_AUTH_FILE`] and [`HOLDER_AUTH_KEY_FILE`] for the
/// population's holder `index` (if their card user-authentication
/// certificate is in the store).
pub(crate) fn write_holder_sample(
    dir: &Path,
    store: &Store,
    authority: &Authority,
    pop: &Population,
    index: u64,
) -> Result<()> {
    let h = pop.holder(index);
    let Some(rec) = store.holder(&h.id)? else {
        return Ok(());
    };
    let Some(serial) = rec.live(CertKind::CardAuth) else {
        return Ok(());
    };
    let Some(der) = store.cert_der(CertKind::CardAuth, &serial)? else {
        return Ok(());
    };
    let key = &authority.holder_keys[(index as usize) % authority.holder_keys.len()];
    shikko_pki::write_file_atomic(
        &dir.join(HOLDER_AUTH_FILE),
        shikko_pki::to_pem("CERTIFICATE", &der)?.as_bytes(),
        0o644,
    )?;
    shikko_pki::write_file_atomic(
        &dir.join(HOLDER_AUTH_KEY_FILE),
        shikko_pki::to_pem("PRIVATE KEY", &key.to_pkcs8_der()?)?.as_bytes(),
        0o600,
    )?;
    Ok(())
}

/// Serials from samples/info-serials.txt, by name.
pub(crate) fn sample_serials(dir: &Path) -> Vec<(String, String)> {
    named_serials(dir, SAMPLE_FILE)
}

/// The `NAME SERIAL` lines of samples/`file`.
pub(crate) fn named_serials(dir: &Path, file: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The demo's verifier gates, kept current from the 4-information service
/// in the same process (a deployment's roles ask the info role over gRPC:
/// `shikko_access::verifiers::sync`).
#[derive(Clone)]
pub(crate) struct DemoMetering {
    info: Arc<InfoService>,
    gates: Arc<std::sync::Mutex<Vec<Arc<shikko_access::verifiers::Gate>>>>,
    seq: Arc<std::sync::atomic::AtomicU64>,
}

impl DemoMetering {
    pub(crate) fn new(info: Arc<InfoService>) -> DemoMetering {
        DemoMetering {
            info,
            gates: Arc::default(),
            // A restart must not repeat a seq the store saw: start from the clock.
            seq: Arc::new(std::sync::atomic::AtomicU64::new(
                u64::try_from(UnixTime::now().0).unwrap_or(0) << 20,
            )),
        }
    }

    /// A public gate for `endpoint`, kept current and counted.
    pub(crate) fn gate(
        &self,
        endpoint: shikko_access::verifiers::Endpoint,
    ) -> Arc<shikko_access::verifiers::Gate> {
        let g =
            shikko_access::verifiers::Gate::new(shikko_access::verifiers::Mode::Public, endpoint);
        self.gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(g.clone());
        g
    }

    /// Refreshes the tokens and reports usage every second until `shutdown`.
    pub(crate) async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                () = &mut shutdown => return,
            }
            self.report().await;
        }
    }

    /// One refresh and report.
    pub(crate) async fn report(&self) {
        let gates = self
            .gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match self.info.verifier_table() {
            Ok(t) => {
                for g in &gates {
                    g.set_table(t.iter().map(|e| {
                        (
                            if e.certificate {
                                shikko_access::verifiers::Credential::Certificate(e.sha256)
                            } else {
                                shikko_access::verifiers::Credential::Token(e.sha256)
                            },
                            shikko_access::verifiers::Verifier::new(
                                &e.verifier,
                                e.ocsp_per_second,
                                e.ocsp_burst,
                            ),
                        )
                    }));
                }
            }
            Err(e) => tracing::warn!(error = %e, "the verifiers' tokens could not be read"),
        }
        for g in &gates {
            let counts = g.take_counts();
            if counts.is_empty() {
                continue;
            }
            let rows = counts
                .iter()
                .map(|(k, n)| {
                    (
                        shikko_info::verifiers::UsageKey {
                            day: k.day.to_string(),
                            verifier: k.verifier.to_string(),
                            endpoint: k.endpoint.into(),
                            purpose: k.purpose.into(),
                            outcome: k.outcome.into(),
                        },
                        *n,
                    )
                })
                .collect();
            let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if let Err(e) = self.info.report_usage("demo", seq, rows).await {
                tracing::warn!(error = %e, "usage not stored; kept for the next report");
                g.restore_counts(counts);
            }
        }
    }
}
