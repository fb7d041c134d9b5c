//! A world for the 4-information tests: CAs, operators, a server over real
//! mTLS on 127.0.0.1:0, holders with real card signing certificates in a
//! real RocksDB store.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use shikko_core::consent::consent_statement;
use shikko_core::{
    CertKind, DateOfBirth, Event, EventBody, EventId, FourInfo, HolderId, InfoItems, NewCert,
    OperatorId, ProviderId, Serial, Sex, UnixTime,
};
use shikko_info::grpc::{InfoGrpc, server_tls};
use shikko_info::{InfoMetrics, InfoService};
use shikko_pki::{
    HolderCertRequest, Issuer, KeyAlgorithm, Signer, SoftwareSigner, ca_certificate,
    holder_certificate, operator_ca_certificate, operator_client_certificate, server_certificate,
    to_pem,
};
use shikko_proto::v1 as pb;
use shikko_store::{IngestMode, Outcome, RegistryStore};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub const YEAR: i64 = 365 * 86_400;

pub struct Tls {
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct Holder {
    pub id: HolderId,
    pub key: SoftwareSigner,
    pub serial: Serial,
    pub cert_der: Vec<u8>,
    pub info: FourInfo,
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub store: RegistryStore,
    pub svc: Arc<InfoService>,
    pub sign_ca_key: Arc<SoftwareSigner>,
    pub sign_ca_der: Vec<u8>,
    pub phone_ca_key: Arc<SoftwareSigner>,
    pub phone_ca_der: Vec<u8>,
    pub op_ca_key: SoftwareSigner,
    pub op_ca_pem: String,
    pub addr: SocketAddr,
    pub event_n: u64,
    pub registry: prometheus::Registry,
    /// The audit key's public key (its heads sign the log).
    pub audit_spki: Vec<u8>,
}

pub fn four_info(address: &str) -> FourInfo {
    FourInfo {
        name: "試験 花子".into(),
        address: address.into(),
        date_of_birth: DateOfBirth::parse("319850615").unwrap(),
        sex: Sex::Female,
    }
}

fn serial(v: u128) -> Serial {
    Serial::from_u128(v).unwrap()
}

impl World {
    pub async fn new(alg: KeyAlgorithm) -> World {
        World::build(alg, true).await
    }

    /// Without a gRPC server: the service alone (so that dropping it releases the store).
    pub async fn without_server(alg: KeyAlgorithm) -> World {
        World::build(alg, false).await
    }

    async fn build(alg: KeyAlgorithm, serve: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        let now = UnixTime::now();
        let start = UnixTime(now.0 - YEAR);
        let sign_ca_key = Arc::new(SoftwareSigner::generate(alg).unwrap());
        let sign_ca_der = ca_certificate(
            CertKind::CardSigning,
            sign_ca_key.as_ref(),
            serial(1),
            start,
            UnixTime(now.0 + 20 * YEAR),
        )
        .unwrap();
        let phone_ca_key = Arc::new(SoftwareSigner::generate(alg).unwrap());
        let phone_ca_der = ca_certificate(
            CertKind::PhoneSigning,
            phone_ca_key.as_ref(),
            serial(4),
            start,
            UnixTime(now.0 + 20 * YEAR),
        )
        .unwrap();
        let op_ca_key = SoftwareSigner::generate(alg).unwrap();
        let op_ca_der =
            operator_ca_certificate(&op_ca_key, serial(2), start, UnixTime(now.0 + 10 * YEAR))
                .unwrap();
        let op_ca_pem = to_pem("CERTIFICATE", &op_ca_der).unwrap();
        let server_key = SoftwareSigner::generate(alg).unwrap();
        let server_der = server_certificate(
            &Issuer::from_certificate(&op_ca_key, &op_ca_der).unwrap(),
            &["localhost"],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            server_key.public_key_der(),
            serial(3),
            start,
            UnixTime(now.0 + 2 * YEAR),
        )
        .unwrap();
        let store = RegistryStore::open(&dir.path().join("db")).unwrap();
        let registry = prometheus::Registry::new();
        let audit_key: Arc<dyn shikko_pki::Signer> =
            Arc::new(SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap());
        let svc = Arc::new(
            InfoService::new(
                store.shared(),
                std::slice::from_ref(&sign_ca_der),
                InfoMetrics::new(&registry).unwrap(),
            )
            .unwrap()
            .with_phone_signing_cas(std::slice::from_ref(&phone_ca_der))
            .unwrap()
            .with_audit_key(audit_key.clone(), None, 60)
            .unwrap(),
        );
        let audit_spki = audit_key.public_key_der().to_vec();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = server_tls(
            to_pem("CERTIFICATE", &server_der).unwrap().as_bytes(),
            to_pem("PRIVATE KEY", &server_key.to_pkcs8_der().unwrap())
                .unwrap()
                .as_bytes(),
            op_ca_pem.as_bytes(),
        );
        let grpc = InfoGrpc::new(svc.clone()).into_server();
        let link = InfoGrpc::new(svc.clone()).into_link_server();
        let holder = InfoGrpc::new(svc.clone()).into_holder_server();
        if serve {
            tokio::spawn(async move {
                tonic::transport::Server::builder()
                    .tls_config(tls)
                    .unwrap()
                    .add_service(grpc)
                    .add_service(link)
                    .add_service(holder)
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                    .await
                    .unwrap();
            });
        }
        World {
            dir,
            store,
            svc,
            sign_ca_key,
            sign_ca_der,
            phone_ca_key,
            phone_ca_der,
            op_ca_key,
            op_ca_pem,
            addr,
            event_n: 0,
            registry,
            audit_spki,
        }
    }

    /// A client certificate for `id` from the operator CA (or from `other_ca`).
    pub fn operator_tls(&self, id: &str, n: u128) -> (Tls, Vec<u8>) {
        let op_ca_der = shikko_pki::certificate_der(self.op_ca_pem.as_bytes()).unwrap();
        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let now = UnixTime::now();
        let der = operator_client_certificate(
            &Issuer::from_certificate(&self.op_ca_key, &op_ca_der).unwrap(),
            id,
            None,
            key.public_key_der(),
            serial(0x300 + n),
            UnixTime(now.0 - 86_400),
            UnixTime(now.0 + YEAR),
        )
        .unwrap();
        (
            Tls {
                cert_pem: to_pem("CERTIFICATE", &der).unwrap(),
                key_pem: to_pem("PRIVATE KEY", &key.to_pkcs8_der().unwrap()).unwrap(),
            },
            der,
        )
    }

    /// Registers providers `bank-1` and `bank-2` and operator `op` acting for `bank-1`.
    pub async fn register(&self, op: &str, n: u128) -> Tls {
        for p in ["bank-1", "bank-2"] {
            let id = ProviderId::new(p).unwrap();
            if self.svc.provider(&id).unwrap().is_none() {
                self.svc.register_provider(id, "テスト銀行").await.unwrap();
            }
        }
        let (tls, der) = self.operator_tls(op, n);
        self.svc
            .register_operator(
                OperatorId::new(op).unwrap(),
                "Test Operator",
                vec![ProviderId::new("bank-1").unwrap()],
                &der,
            )
            .await
            .unwrap();
        tls
    }

    /// A client of the Link service, on the same port.
    pub async fn link_client(&self, tls: Option<&Tls>) -> pb::link_client::LinkClient<Channel> {
        pb::link_client::LinkClient::new(self.channel(tls).await)
    }

    async fn channel(&self, tls: Option<&Tls>) -> Channel {
        let mut cfg = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.op_ca_pem))
            .domain_name("localhost");
        if let Some(t) = tls {
            cfg = cfg.identity(Identity::from_pem(&t.cert_pem, &t.key_pem));
        }
        Endpoint::from_shared(format!("https://{}", self.addr))
            .unwrap()
            .tls_config(cfg)
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn client(&self, tls: Option<&Tls>) -> pb::info_client::InfoClient<Channel> {
        let mut cfg = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.op_ca_pem))
            .domain_name("localhost");
        if let Some(t) = tls {
            cfg = cfg.identity(Identity::from_pem(&t.cert_pem, &t.key_pem));
        }
        let ch = Endpoint::from_shared(format!("https://{}", self.addr))
            .unwrap()
            .tls_config(cfg)
            .unwrap()
            .connect()
            .await
            .unwrap();
        pb::info_client::InfoClient::new(ch)
    }

    /// Ingests an event dated an hour ago (setup).
    pub fn ingest(&mut self, body: EventBody) {
        self.ingest_at(body, UnixTime(UnixTime::now().0 - 3600));
    }

    /// Ingests an event dated `time`.
    pub fn ingest_at(&mut self, body: EventBody, time: UnixTime) {
        self.event_n += 1;
        let e = Event {
            id: EventId::new(format!("ev-{}", self.event_n)).unwrap(),
            time,
            body,
        };
        let out = self.store.ingest(&[e], IngestMode::PerEvent).unwrap();
        assert!(
            matches!(out[0], Outcome::Applied { .. }),
            "event {} not applied: {:?}",
            self.event_n,
            out[0]
        );
    }

    /// A card signing certificate for `holder`, issued by the sign CA.
    pub fn signing_cert(
        &self,
        holder: &HolderId,
        key: &SoftwareSigner,
        s: u128,
        info: &FourInfo,
    ) -> NewCert {
        self.signing_cert_of(CertKind::CardSigning, holder, key, s, info)
    }

    /// A signing certificate of `kind` (card or smartphone) for `holder`.
    pub fn signing_cert_of(
        &self,
        kind: CertKind,
        holder: &HolderId,
        key: &SoftwareSigner,
        s: u128,
        info: &FourInfo,
    ) -> NewCert {
        let na = UnixTime(UnixTime::now().0 + 3 * YEAR);
        self.signing_cert_until(kind, holder, key, s, info, na)
    }

    /// [`World::signing_cert_of`], valid until `na`.
    pub fn signing_cert_until(
        &self,
        kind: CertKind,
        holder: &HolderId,
        key: &SoftwareSigner,
        s: u128,
        info: &FourInfo,
        na: UnixTime,
    ) -> NewCert {
        let now = UnixTime::now();
        let m = shikko_population::synthetic::municipalities()[0].clone();
        let issuer = match kind {
            CertKind::PhoneSigning => {
                Issuer::from_certificate(self.phone_ca_key.as_ref(), &self.phone_ca_der).unwrap()
            }
            _ => Issuer::from_certificate(self.sign_ca_key.as_ref(), &self.sign_ca_der).unwrap(),
        };
        let nb = UnixTime(now.0 - 2 * 86_400);
        let der = holder_certificate(
            &issuer,
            &HolderCertRequest {
                kind,
                holder,
                municipality: Some(&m),
                four_info: Some(info),
                subject_public_key: key.public_key_der(),
                serial: serial(s),
                not_before: nb,
                not_after: na,
                ocsp_url: None,
            },
        )
        .unwrap();
        NewCert {
            kind,
            serial: serial(s),
            not_before: nb,
            not_after: na,
            municipality: Some(m),
            cert_der: Some(der),
        }
    }

    /// A holder with a card signing certificate of serial `s`.
    pub fn holder(&mut self, id: &str, s: u128, alg: KeyAlgorithm) -> Holder {
        let id = HolderId::new(id).unwrap();
        let key = SoftwareSigner::generate(alg).unwrap();
        let info = four_info("東京都千代田区千代田1-1");
        let cert = self.signing_cert(&id, &key, s, &info);
        let cert_der = cert.cert_der.clone().unwrap();
        self.ingest(EventBody::Issue {
            holder: id.clone(),
            cert,
            four_info: Some(info.clone()),
        });
        Holder {
            id,
            key,
            serial: serial(s),
            cert_der,
            info,
        }
    }
}

/// A consent request signed by the holder, with a challenge `c` asked for
/// (as an operator does). When the service refuses the challenge (an
/// operator that does not act for `provider`, a service catching up), the
/// request carries none, and the service refuses it for that same reason.
pub async fn consent(
    c: &mut pb::info_client::InfoClient<Channel>,
    h: &Holder,
    provider: &str,
    items: InfoItems,
    granted_at: UnixTime,
) -> pb::RecordConsentRequest {
    let challenge = c
        .consent_challenge(pb::ConsentChallengeRequest {
            provider: provider.into(),
        })
        .await
        .map(|r| r.into_inner().challenge)
        .unwrap_or_default();
    signed_consent(h, provider, items, granted_at, &challenge)
}

/// A consent request signed by the holder over `challenge`.
pub fn signed_consent(
    h: &Holder,
    provider: &str,
    items: InfoItems,
    granted_at: UnixTime,
    challenge: &str,
) -> pb::RecordConsentRequest {
    let statement = consent_statement(
        &ProviderId::new(provider).unwrap(),
        items,
        &h.serial,
        granted_at,
        challenge,
    );
    pb::RecordConsentRequest {
        provider: provider.into(),
        items: shikko_info::grpc::items_to_pb(items),
        signing_certificate: h.cert_der.clone(),
        granted_at: granted_at.0,
        challenge: challenge.into(),
        signature: h.key.sign(&statement).unwrap(),
    }
}

pub fn query(provider: &str, s: &Serial) -> pb::InfoQueryRequest {
    pb::InfoQueryRequest {
        provider: provider.into(),
        serial: s.magnitude().to_vec(),
        issuer: 0,
    }
}

/// The metered use of the info role's answers equals its audit log: for
/// every (day, operator, endpoint, provider, outcome), the stored counter
/// is the number of audited answers; returns the endpoints seen.
pub fn assert_usage_matches_audit(w: &World) -> Vec<String> {
    use std::collections::BTreeMap;
    let mut out = Vec::new();
    shikko_info::audit::export(&w.store, 1, &mut out).unwrap();
    let mut audited: BTreeMap<(String, String, String, String, String), u64> = BTreeMap::new();
    let mut months = std::collections::BTreeSet::new();
    for line in String::from_utf8(out).unwrap().lines() {
        let r: shikko_info::audit::AuditRecord = serde_json::from_str(line).unwrap();
        let endpoint = match r.action.as_str() {
            "query" => "info_query",
            "query_batch" => "info_batch",
            "link.resolve" => "link_resolve",
            "link.current" => "link_current",
            _ => continue,
        };
        let day = shikko_info::billing_day(UnixTime(r.time));
        months.insert(day[..7].to_string());
        *audited
            .entry((
                day,
                r.actor,
                endpoint.into(),
                if r.provider.is_empty() {
                    "-".into()
                } else {
                    r.provider
                },
                r.outcome.replace(':', "_"),
            ))
            .or_default() += 1;
    }
    let mut metered = BTreeMap::new();
    for m in &months {
        for (k, n) in w.svc.verifier_usage(m).unwrap() {
            metered.insert((k.day, k.verifier, k.endpoint, k.purpose, k.outcome), n);
        }
    }
    assert_eq!(metered, audited, "metered use differs from the audit log");
    let mut endpoints: Vec<String> = audited.keys().map(|k| k.2.clone()).collect();
    endpoints.dedup();
    endpoints.sort();
    endpoints.dedup();
    endpoints
}
