//! `shikko demo`: keys, CAs and a synthetic population in a data directory,
//! sample files to query with, then every role on loopback until Ctrl-C.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use shikko_core::{
    CertKind, CertStatus, Event, EventBody, EventId, HolderId, RevocationReason, Serial, UnixTime,
};
use shikko_follow::{Binding, Follower, FollowerMetrics, Readiness};
use shikko_pki::{InternalRole, KeyAlgorithm, Signer, SoftwareSigner};
use shikko_population::synthetic::Population;
use shikko_registry::{LocalFeed, Registry};
use shikko_runtime::telemetry::Metrics;
use shikko_runtime::{GrpcRoutes, RoleServer, Shutdown};
use shikko_store::Store;

use crate::authority::Authority;
use crate::load::{LoadReport, load_population};
use crate::serve::{bind, open_store};
use shikko_crl::grpc::CrlService;
use shikko_crl::{BuildKind, CrlName, CrlRole, Schedule};
use shikko_population::history::CertMaker;

/// Options of `shikko demo`.
pub(crate) struct DemoOptions {
    pub(crate) data_dir: PathBuf,
    pub(crate) holders: u64,
    pub(crate) key_algorithm: KeyAlgorithm,
    pub(crate) seed: u64,
    pub(crate) grpc: SocketAddr,
    pub(crate) http: SocketAddr,
    pub(crate) metrics: SocketAddr,
    pub(crate) info: SocketAddr,
    pub(crate) setup_only: bool,
}

/// Runs the demo.
pub(crate) async fn run(mut opts: DemoOptions) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating {}", opts.data_dir.display()))?;
    // Bind first: a busy port should fail before minutes of setup.
    let (grpc, metrics_listener, http_listener, info_listener) = if opts.setup_only {
        (None, None, None, None)
    } else {
        (
            Some(bind(opts.grpc, "gRPC").await?),
            Some(bind(opts.metrics, "metrics").await?),
            Some(bind(opts.http, "HTTP").await?),
            Some(bind(opts.info, "the 4-information service").await?),
        )
    };
    // Report the addresses actually bound (a port of 0 picks a free one).
    if let (Some(g), Some(m), Some(h), Some(i)) =
        (&grpc, &metrics_listener, &http_listener, &info_listener)
    {
        opts.grpc = g.local_addr()?;
        opts.metrics = m.local_addr()?;
        opts.http = h.local_addr()?;
        opts.info = i.local_addr()?;
    }
    println!("Shikko demo: data directory {}", opts.data_dir.display());
    let authority = tokio::task::block_in_place(|| {
        Authority::open_or_create(&opts.data_dir, opts.key_algorithm)
    })?;
    let store = open_store(&opts.data_dir)?;
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"))?;
    let registry = Arc::new(Registry::new(store.clone(), metrics.registry())?);
    let info = crate::info_role::service(store.shared(), &authority.cas, metrics.registry())?;
    let info = crate::info_role::with_demo_audit_key(info, &opts.data_dir)?;

    let samples = opts.data_dir.join("samples");
    if store.last_seq() > 0 && samples.join("README.txt").exists() {
        println!(
            "  reusing the existing population ({} events); delete {} for a new one",
            store.last_seq(),
            opts.data_dir.display()
        );
    } else {
        let report = populate(&registry, &authority, &opts).await?;
        let t = Instant::now();
        let made = crate::info_role::demo_setup(
            &info,
            &registry,
            &authority,
            &Population::new(opts.seed),
            opts.holders,
            &format!("http://{}/ocsp", opts.http),
        )
        .await?;
        println!(
            "  4-information service: {} consents recorded, 3 consenting holders moved, in {:.1} s",
            made.consents,
            t.elapsed().as_secs_f64()
        );
        write_samples(&samples, &authority, &store, &report, &opts, &made.holders)?;
        let section = crate::info_role::write_samples(&samples, &made, opts.info)?;
        if let Some(i) = made.access_holder {
            crate::info_role::write_holder_sample(
                &samples,
                &store.shared(),
                &authority,
                &Population::new(opts.seed),
                i,
            )?;
        }
        let mut readme = std::fs::read_to_string(samples.join("README.txt"))?;
        readme.push_str(&section);
        shikko_pki::write_file_atomic(&samples.join("README.txt"), readme.as_bytes(), 0o644)?;
    }
    write_identities(&samples, &authority)?;
    let builder = crate::crl::builder(
        store.shared(),
        &authority.cas,
        &opts.data_dir,
        Some(format!("http://{}", opts.http)),
    )?;
    let crl_role = CrlRole::new(builder, metrics.registry(), Readiness::always_current())?;
    let t = Instant::now();
    println!("  building CRLs (full, per municipality, delta) and filters...");
    let report = crl_role.build(BuildKind::Full, &CertKind::ALL).await?;
    let listed: u64 = report
        .crls
        .iter()
        .filter(|c| c.name == CrlName::Full)
        .map(|c| c.entries)
        .sum();
    let filters = report.crls.iter().filter(|c| c.name.is_filter()).count();
    println!(
        "  {} CRLs and {filters} filters published under {} in {:.1} s ({listed} entries in the four full CRLs)",
        report.crls.len() - filters,
        crate::crl::out_dir(&opts.data_dir).display(),
        t.elapsed().as_secs_f64()
    );
    println!("  ready in {:.1} s", started.elapsed().as_secs_f64());
    print_tour(&opts);
    let (Some(grpc), Some(metrics_listener), Some(http_listener), Some(info_listener)) =
        (grpc, metrics_listener, http_listener, info_listener)
    else {
        return Ok(());
    };
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signal();
    tokio::spawn(shikko_info::heads::publish(
        info.clone(),
        shutdown.wait_owned(),
    ));
    let operators = GrpcRoutes::new(shikko_access::api())
        .service(shikko_info::grpc::InfoGrpc::new(info.clone()).into_server())
        .service(shikko_info::grpc::InfoGrpc::new(info.clone()).into_link_server())
        .service(shikko_info::grpc::InfoGrpc::new(info.clone()).into_holder_server());
    let info_admin = shikko_info::admin::InfoAdminGrpc::new(info.clone()).into_server();
    let app = shikko_crl::http::router_with(
        crl_role.catalog().clone(),
        metrics.registry(),
        shikko_crl::http::CacheLimits {
            full: Duration::from_secs(24 * 3600),
            delta: DEMO_DELTA_EVERY,
        },
    )?;
    tokio::spawn(crl_role.clone().run_schedule(
        Schedule {
            full_every: Duration::from_secs(24 * 3600),
            delta_every: DEMO_DELTA_EVERY,
            ..Schedule::default()
        },
        shutdown.wait_owned(),
    ));
    // The OCSP role follows the registry in this process exactly as `serve
    // ocsp` follows it over gRPC: same follower, same readiness.
    let readiness = Readiness::new();
    let ocsp_role = shikko_ocsp::process::role_from_dir(
        &opts.data_dir,
        OCSP_VALIDITY,
        metrics.registry(),
        readiness.clone(),
    )?;
    let follower = Follower::new(
        LocalFeed::new(registry.clone()),
        Binding::in_memory(),
        readiness,
        FollowerMetrics::new(metrics.registry(), "ocsp")?,
    );
    tokio::spawn(follower.run_status(ocsp_role.clone(), shutdown.wait_owned()));
    let ocsp_service = shikko_ocsp::grpc::OcspService::new(ocsp_role.clone()).into_service();
    // Public endpoints (the tour's curl and openssl lines need no token),
    // metered: a registered verifier's token is recognised and its use
    // counted, as a deployment's restricted endpoints do.
    let metering = crate::info_role::DemoMetering::new(info.clone());
    let app = shikko_access::verifiers::layer(
        app,
        Some(metering.gate(shikko_access::verifiers::Endpoint::Crl)),
    )
    .merge(shikko_ocsp::http::router_gated(
        ocsp_role,
        OCSP_MAX_SIGNING,
        Some(metering.gate(shikko_access::verifiers::Endpoint::Ocsp)),
    ));
    tokio::spawn(metering.clone().run(shutdown.wait_owned()));
    println!("\nServing. Press Ctrl-C to stop.");
    let crl_service = CrlService::new(crl_role).into_service();
    // The demo's one gRPC port carries every role's services, as the
    // contract says (127.0.0.1:50051); the 4-information service has its
    // own, over mutual TLS.
    let routes = GrpcRoutes::new(shikko_access::api())
        .service(registry.clone().into_service())
        .service(crl_service)
        .service(ocsp_service)
        .service(info_admin);
    let closer = registry.clone();
    // Every internal service of the demo answers over mutual TLS, as the
    // registry's identity; the table of shikko_proto::access decides who
    // may call what (the client commands present samples/admin.pem etc.).
    let data = shikko_pki::DataDir::new(&opts.data_dir);
    let files = shikko_runtime::TlsFiles {
        cert: data.cert_path("role-registry"),
        key: data.key_path("role-registry"),
        ca: data.cert_path("internal-ca"),
        crls: Vec::new(),
    };
    let security = shikko_runtime::Security::Mtls {
        tls: Arc::new(shikko_runtime::ServerTls::load(&files)?),
        policy: Arc::new(shikko_access::InternalAccess),
        reload_every: Duration::from_secs(30),
    };
    let served = RoleServer::new("demo", metrics, metrics_listener)
        .grpc(grpc, routes, security)
        .grpc_tls(
            info_listener,
            operators,
            crate::info_role::demo_tls(&authority)?,
            shikko_info::process::PUBLIC_TLS_RELOAD,
            shikko_info::process::FrontDoor::default().accept_limits(),
            Arc::new(shikko_access::OperatorPort),
        )
        .http(http_listener, app, shikko_runtime::HttpLimits::default())
        .on_shutdown(async move { closer.close_streams() })
        .serve(shutdown, Duration::from_secs(10))
        .await;
    metering.report().await;
    Ok(served?)
}

/// How often the demo publishes a delta CRL (a deployment would use minutes to hours).
const DEMO_DELTA_EVERY: Duration = Duration::from_secs(60);

/// How long an OCSP answer is valid (nextUpdate - thisUpdate); cached answers
/// are re-signed after half of it, and at once when the status changes.
const OCSP_VALIDITY: Duration = Duration::from_secs(3600);

/// Answers signed per request (nonce) at once before load shedding.
const OCSP_MAX_SIGNING: usize = 64;

async fn populate(
    registry: &Registry,
    authority: &Authority,
    opts: &DemoOptions,
) -> Result<LoadReport> {
    let issuers = authority
        .cas
        .iter()
        .map(|ca| ca.issuer())
        .collect::<shikko_pki::Result<Vec<_>>>()?;
    let maker = CertMaker {
        issuers,
        holder_keys: authority
            .holder_keys
            .iter()
            .map(|k| k.as_ref() as &dyn Signer)
            .collect(),
        ocsp_url: Some(format!("http://{}/ocsp", opts.http)),
    };
    let pop = Population::new(opts.seed);
    let t = Instant::now();
    println!(
        "  generating {} holders with {} certificates and their event history...",
        opts.holders, opts.key_algorithm
    );
    let report = load_population(
        registry,
        &pop,
        opts.holders,
        opts.holders,
        Some(&maker),
        UnixTime::now(),
        true,
    )
    .await?;
    println!(
        "  {} events applied in {:.1} s ({} certificates issued with DER)",
        report.applied,
        t.elapsed().as_secs_f64(),
        report.with_der.len()
    );
    let types: Vec<String> = report
        .by_type
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("    by type: {}", types.join(", "));
    if report.rejected() > 0 {
        println!(
            "  WARNING: {} events rejected: {:?}",
            report.rejected(),
            report.rejected_by_rule
        );
        for r in &report.first_rejections {
            println!("    {r}");
        }
    }
    Ok(report)
}

fn write_pem(path: &Path, label: &str, ders: &[&[u8]]) -> Result<()> {
    let mut text = String::new();
    for der in ders {
        text.push_str(&shikko_pki::to_pem(label, der)?);
    }
    shikko_pki::write_file_atomic(path, text.as_bytes(), 0o644)?;
    Ok(())
}

/// The first certificate with DER of each kind and status name.
fn pick_samples(
    store: &Store,
    report: &LoadReport,
    exclude: &[HolderId],
) -> Result<Vec<(CertKind, &'static str, Serial)>> {
    let mut picked: Vec<(CertKind, &'static str, Serial)> = Vec::new();
    for (kind, serial) in &report.with_der {
        let Some(c) = store.cert(*kind, serial)? else {
            continue;
        };
        // Not the holders of the 4-information samples, whose status the tour changes.
        if exclude.contains(&c.holder) {
            continue;
        }
        let name = match c.status {
            CertStatus::Good => "good",
            CertStatus::OnHold { .. } => "hold",
            CertStatus::Revoked { .. } => "revoked",
        };
        if !picked.iter().any(|(k, n, _)| k == kind && *n == name) {
            picked.push((*kind, name, *serial));
        }
        if picked.len() == 12 {
            break;
        }
    }
    Ok(picked)
}

/// The internal CA and the identities a person uses against the demo's
/// internal endpoints (the roles' own stay in the data directory), written on
/// every start so that renewed certificates reach the samples.
fn write_identities(dir: &Path, authority: &Authority) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    write_pem(
        &dir.join("internal-ca.pem"),
        "CERTIFICATE",
        &[&authority.internal_ca_der],
    )?;
    for (role, der) in &authority.identities {
        if matches!(
            role,
            InternalRole::Admin
                | InternalRole::Authority
                | InternalRole::Auditor
                | InternalRole::Witness
        ) {
            write_pem(&dir.join(format!("{role}.pem")), "CERTIFICATE", &[der])?;
            let key =
                SoftwareSigner::load(&authority.dir.join("keys").join(format!("role-{role}.key")))?;
            let key_pem = shikko_pki::to_pem("PRIVATE KEY", &key.to_pkcs8_der()?)?;
            shikko_pki::write_file_atomic(
                &dir.join(format!("{role}-key.pem")),
                key_pem.as_bytes(),
                0o600,
            )?;
        }
    }

    Ok(())
}

fn write_samples(
    dir: &Path,
    authority: &Authority,
    store: &Store,
    report: &LoadReport,
    opts: &DemoOptions,
    exclude: &[HolderId],
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for ca in &authority.cas {
        write_pem(
            &dir.join(format!("{}-ca.pem", ca.kind.issuer_id())),
            "CERTIFICATE",
            &[&ca.cert_der],
        )?;
    }
    let picked = pick_samples(store, report, exclude)?;
    let mut listing = String::new();
    for (kind, name, serial) in &picked {
        let der = store
            .cert_der(*kind, serial)?
            .with_context(|| format!("DER of {kind} {serial}"))?;
        write_pem(
            &dir.join(format!("{}-{name}.pem", kind.issuer_id())),
            "CERTIFICATE",
            &[&der],
        )?;
        // Signing certificates name their municipality's partition CRL.
        let partition = match store.cert(*kind, serial)? {
            Some(c) if kind.is_signing() => format!(
                "  (its partition CRL: http://{}/crl/{}/{}.crl)",
                opts.http,
                kind.issuer_id(),
                c.partition
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            listing,
            "  {}-{name}.pem  serial {serial}{partition}",
            kind.issuer_id()
        );
    }
    let responders: Vec<&[u8]> = authority
        .responder_certs
        .iter()
        .map(Vec::as_slice)
        .collect();
    write_pem(&dir.join("ocsp-responder.pem"), "CERTIFICATE", &responders)?;
    write_pem(
        &dir.join("operator-ca.pem"),
        "CERTIFICATE",
        &[&authority.operator_ca_der],
    )?;
    write_pem(
        &dir.join("operator.pem"),
        "CERTIFICATE",
        &[&authority.operator_der],
    )?;
    let op_key = SoftwareSigner::load(&authority.dir.join("keys").join("operator.key"))?;
    let key_pem = shikko_pki::to_pem("PRIVATE KEY", &op_key.to_pkcs8_der()?)?;
    shikko_pki::write_file_atomic(&dir.join("operator-key.pem"), key_pem.as_bytes(), 0o600)?;
    write_pem(
        &dir.join("server.pem"),
        "CERTIFICATE",
        &[&authority.server_der],
    )?;
    // An event file to try `shikko events ingest` with: a second good card
    // user-authentication certificate, revoked for key compromise.
    let example = report
        .with_der
        .iter()
        .filter(|(k, _)| *k == CertKind::CardAuth)
        .filter(|(_, s)| !picked.iter().any(|(_, _, p)| p == s))
        .find(|(k, s)| matches!(store.cert(*k, s), Ok(Some(c)) if c.status == CertStatus::Good));
    if let Some((kind, serial)) = example {
        let now = UnixTime::now();
        let event = Event {
            id: EventId::new(format!("example-revoke-{serial}"))?,
            time: now,
            body: EventBody::Revoke {
                kind: *kind,
                serial: *serial,
                reason: RevocationReason::KeyCompromise,
                invalidity_date: Some(now.plus_secs(-3_600)),
            },
        };
        let line = serde_json::to_string(&event)? + "\n";
        shikko_pki::write_file_atomic(&dir.join("example-events.jsonl"), line.as_bytes(), 0o644)?;
    }

    let http = opts.http;
    let mut readme = format!(
        "Shikko demo samples\n===================\n\n\
         Issuer ids: sign, auth, phone-sign, phone-auth.\n\n\
         Files:\n  ISSUER-ca.pem        the issuing CA (self-signed root)\n{listing}\
         \x20 ocsp-responder.pem   the delegated OCSP responder certificates, one per issuer\n\
         \x20 operator-ca.pem, operator.pem, operator-key.pem   mTLS material of the demo operator\n\
         \x20 server.pem           the servers' TLS certificate (issued by the operator CA)\n\
         \x20 internal-ca.pem      the internal CA (role and client identities, spiffe://shikko/role/NAME)\n\
         \x20 admin.pem, authority.pem, auditor.pem (+ -key.pem)   internal client identities (7 days, renewed by the next demo run)\n\
         \x20 example-events.jsonl one event to ingest: shikko events ingest example-events.jsonl\n\n\
         Registry (gRPC, mutual TLS with the identities above): https://{grpc}\nMetrics: http://{metrics}/metrics\n\n\
         OCSP endpoint: http://{http}/ocsp (POST) and http://{http}/ocsp/BASE64 (GET)\n\
         CRLs:\n",
        grpc = opts.grpc,
        metrics = opts.metrics,
    );
    for kind in CertKind::ALL {
        let id = kind.issuer_id();
        let _ = writeln!(
            readme,
            "  http://{http}/crl/{id}/full.crl\n  http://{http}/crl/{id}/delta.crl"
        );
    }
    let _ = write!(
        readme,
        "  http://{http}/crl/sign/PARTITION.crl and http://{http}/crl/phone-sign/PARTITION.crl\n\
         \x20   one per municipality (PARTITION = its 6-digit code, as in the certificates'\n\
         \x20   CRL distribution point); the files are under {crl}/ISSUER/\n\
         Full CRLs are rebuilt daily and deltas every minute; `shikko crl build\n\
         --endpoint https://{grpc}` (add --delta for a delta) publishes now\n\
         (mutual TLS: the command presents admin.pem from this directory).\n\n\
         Compact revocation filters, built with the CRLs (a few megabytes where\n\
         the CRL is a gigabyte; docs/FILTER.md):\n\
         \x20 http://{http}/filter/ISSUER/full.filter and delta.filter\n\
         \x20 shikko filter check --issuer sign-ca.pem --cert sign-revoked.pem --url http://{http}\n\n\
         OCSP answers come from a status index that follows the registry: a\n\
         revocation ingested is answered as revoked at once. Try:\n\
         openssl ocsp -issuer sign-ca.pem -cert sign-revoked.pem -CAfile sign-ca.pem -url http://{http}/ocsp\n",
        grpc = opts.grpc,
        crl = crate::crl::out_dir(&opts.data_dir).display(),
    );
    shikko_pki::write_file_atomic(&dir.join("README.txt"), readme.as_bytes(), 0o644)?;
    Ok(())
}

fn print_tour(opts: &DemoOptions) {
    let d = opts.data_dir.display();
    let ep = format!("https://{}", opts.grpc);
    let samples = opts.data_dir.join("samples");
    // A sample on hold: which issuers have one depends on the population.
    let hold = ["phone-auth", "sign", "phone-sign", "auth"]
        .iter()
        .map(|i| format!("{i}-hold.pem"))
        .find(|f| samples.join(f).exists());
    let hold = hold.map_or(String::new(), |f| {
        format!("\n  shikko cert status --endpoint {ep} --cert {d}/samples/{f}")
    });
    // The commands find the internal identities in ./shikko-data/samples
    // by themselves; from anywhere else, they are told where.
    let found = std::fs::canonicalize(crate::identity::DEMO_SAMPLES).ok();
    let identities = if found.is_some() && found == std::fs::canonicalize(&samples).ok() {
        String::new()
    } else {
        format!(
            "\n  export SHIKKO_IDENTITY_DIR={d}/samples   # the internal identities the commands present"
        )
    };
    println!(
        "\nEndpoints:\n  registry gRPC   {ep} (mutual TLS: the commands present {d}/samples/admin.pem, authority.pem)\n  CRLs (HTTP)     http://{h}/crl/ISSUER/full.crl, delta.crl, PARTITION.crl\n  filters (HTTP)  http://{h}/filter/ISSUER/full.filter, delta.filter (docs/FILTER.md)\n  OCSP (HTTP)     http://{h}/ocsp (POST), http://{h}/ocsp/BASE64 (GET)\n  metrics         http://{m}/metrics\n  4-information   https://{i} (gRPC, mutual TLS)\n\
         \nTry (in another terminal):{identities}\n\
         \x20 openssl verify -CAfile {d}/samples/sign-ca.pem {d}/samples/sign-good.pem\n\
         \x20 openssl x509 -in {d}/samples/sign-good.pem -noout -text\n\
         \x20 shikko cert status --endpoint {ep} --cert {d}/samples/sign-revoked.pem{hold}\n\
         \x20 shikko events ingest --endpoint {ep} {d}/samples/example-events.jsonl\n\
         \x20 curl -sO http://{h}/crl/sign/full.crl && openssl crl -inform DER -in full.crl -CAfile {d}/samples/sign-ca.pem -noout\n\
         \x20 curl -sI http://{h}/crl/auth/delta.crl\n\
         \x20 shikko crl build --endpoint {ep} --delta\n\
         \x20 openssl ocsp -issuer {d}/samples/sign-ca.pem -cert {d}/samples/sign-revoked.pem -CAfile {d}/samples/sign-ca.pem -url http://{h}/ocsp\n\
         \x20 shikko ocsp check --issuer {d}/samples/auth-ca.pem --cert {d}/samples/auth-good.pem --url http://{h}/ocsp\n\
         \x20 shikko filter check --issuer {d}/samples/sign-ca.pem --cert {d}/samples/sign-good.pem --url http://{h}\n\
         \x20 shikko filter check --issuer {d}/samples/sign-ca.pem --cert {d}/samples/sign-revoked.pem --url http://{h}\n\
         \x20 curl -s http://{m}/metrics | grep shikko_registry\n\
         \x20 cat {d}/samples/README.txt",
        m = opts.metrics,
        h = opts.http,
        i = opts.info,
    );
    let serials = crate::info_role::sample_serials(&opts.data_dir.join("samples"));
    if !serials.is_empty() {
        let names: Vec<&str> = serials.iter().map(|(n, _)| n.as_str()).collect();
        let list: Vec<&str> = serials.iter().map(|(_, s)| s.as_str()).collect();
        println!(
            "\n4-information service (gRPC, mutual TLS) https://{i}: the bank asks by the\n\
             serials it holds ({names}):\n\
             \x20 shikko info query --endpoint https://{i} --cert {d}/samples/operator.pem --key {d}/samples/operator-key.pem {list}\n\
             \x20 shikko events ingest --endpoint {ep} {d}/samples/{mv}   # the unchanged holder moves; ask again\n\
             \x20 shikko audit export --endpoint {ep} > audit.jsonl && shikko audit verify audit.jsonl --endpoint {ep}\n\
             \x20 shikko audit head --signed --endpoint {ep} --out head.json   # the audit key's signed tree head\n\
             \x20 shikko witness --once --endpoint {ep} --audit-key {d}/samples/{ak} --state witness   # cosigns, or raises an alarm\n\
             \x20 shikko audit verify --endpoint {ep} --audit-key {d}/samples/{ak} --record 1 --since head.json",
            ak = crate::info_role::AUDIT_KEY_FILE,
            i = opts.info,
            mv = crate::info_role::EXAMPLE_MOVE_FILE,
            names = names.join(", "),
            list = list.join(" "),
        );
    }
    let link = crate::info_role::named_serials(
        &opts.data_dir.join("samples"),
        crate::info_role::LINK_SAMPLE_FILE,
    );
    if !link.is_empty() {
        let list: Vec<&str> = link.iter().map(|(_, s)| s.as_str()).collect();
        println!(
            "\nUser-authentication link (verifier {v}): a renewed card's old and new\n\
             user-authentication serials, one pseudonym of the holder:\n\
             \x20 shikko link resolve --endpoint https://{i} --cert {d}/samples/operator.pem --key {d}/samples/operator-key.pem {list}",
            v = crate::info_role::DEMO_VERIFIER,
            i = opts.info,
            list = list.join(" "),
        );
    }
    let (y, mo, ..) = shikko_core::UnixTime::now().plus_secs(9 * 3600).to_civil();
    println!(
        "\nRegistered verifiers (the demo's CRL and OCSP endpoints are public, so the lines\n\
         above need no token; a deployment restricts them): register one, use its token,\n\
         read the month's usage (per verifier, Japanese day, endpoint, purpose, outcome):\n\
         \x20 shikko admin verifier-add my-bank --name \"My bank\" --endpoint {ep}\n\
         \x20 curl -s -H \"Authorization: Bearer TOKEN\" -H \"Shikko-Purpose: status\" -o full.crl http://{h}/crl/sign/full.crl\n\
         \x20 shikko usage export --month {y:04}-{mo:02} --endpoint {ep}",
        h = opts.http,
    );
    if opts
        .data_dir
        .join("samples")
        .join(crate::info_role::HOLDER_AUTH_FILE)
        .exists()
    {
        println!(
            "\nA holder's own access record (the `changed` holder, proving it with their\n\
             user-authentication key; every record checked against the signed audit log):\n\
             \x20 shikko info accesses --endpoint https://{i} --cert {d}/samples/{c} --key {d}/samples/{k}",
            i = opts.info,
            c = crate::info_role::HOLDER_AUTH_FILE,
            k = crate::info_role::HOLDER_AUTH_KEY_FILE,
        );
    }
}
