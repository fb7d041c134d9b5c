//! `shikko.v1.Info` over mutually authenticated TLS. The operator is the
//! owner of the TLS client certificate: the server asks every client for one
//! (chain-checked against the operator CA by TLS) but lets the handshake
//! finish without, so that a call without one is refused here, and audited.

use std::sync::Arc;

use shikko_core::{ConsentState, InfoItems, InfoOutcome, ProviderId, Serial, UnixTime};
use shikko_proto::v1 as pb;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Response, Status};

use crate::consent::ConsentRequest;
use crate::error::InfoError;
use crate::operators::Operator;
use crate::service::{InfoService, billing_day};

/// The TLS configuration of the info role: the server's certificate and key
/// (PEM), and the operator CA (PEM) client certificates must chain to.
pub fn server_tls(cert_pem: &[u8], key_pem: &[u8], operator_ca_pem: &[u8]) -> ServerTlsConfig {
    ServerTlsConfig::new()
        .identity(Identity::from_pem(cert_pem, key_pem))
        .client_ca_root(Certificate::from_pem(operator_ca_pem))
        .client_auth_optional(true)
}

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct InfoGrpc {
    svc: Arc<InfoService>,
}

impl InfoGrpc {
    /// Over a service.
    pub fn new(svc: Arc<InfoService>) -> InfoGrpc {
        InfoGrpc { svc }
    }

    /// As a tonic service.
    pub fn into_server(self) -> pb::info_server::InfoServer<InfoGrpc> {
        pb::info_server::InfoServer::new(self)
    }

    async fn operator<T>(
        &self,
        req: &Request<T>,
        action: &'static str,
    ) -> Result<Arc<Operator>, Status> {
        let cert = req
            .peer_certs()
            .and_then(|c| c.first().map(|d| d.as_ref().to_vec()));
        Ok(self.svc.authenticate(cert.as_deref(), action).await?)
    }

    /// A malformed argument from an authenticated operator: refused and audited.
    async fn invalid(&self, op: &Operator, action: &'static str, why: String) -> Status {
        self.svc
            .refuse(op.id.as_str(), action, "", "", InfoError::Invalid(why))
            .await
            .into()
    }

    /// Serials of a batch; the first malformed one is INVALID_ARGUMENT (audited).
    async fn serials(
        &self,
        op: &Operator,
        action: &'static str,
        raw: &[Vec<u8>],
    ) -> Result<Vec<Serial>, Status> {
        let mut serials = Vec::with_capacity(raw.len());
        for (i, s) in raw.iter().enumerate() {
            match Serial::from_be_bytes(s) {
                Ok(s) => serials.push(s),
                Err(e) => return Err(self.invalid(op, action, format!("serial #{i}: {e}")).await),
            }
        }
        Ok(serials)
    }

    async fn serial(
        &self,
        op: &Operator,
        action: &'static str,
        s: &[u8],
    ) -> Result<Serial, Status> {
        match Serial::from_be_bytes(s) {
            Ok(s) => Ok(s),
            Err(e) => Err(self.invalid(op, action, format!("serial: {e}")).await),
        }
    }

    /// The signing issuer a query names: card (also when unspecified) or
    /// smartphone; anything else is INVALID_ARGUMENT (audited).
    async fn signing_kind(
        &self,
        op: &Operator,
        action: &'static str,
        issuer: i32,
    ) -> Result<shikko_core::CertKind, Status> {
        use shikko_core::CertKind;
        match pb::Issuer::try_from(issuer) {
            Ok(pb::Issuer::Unspecified | pb::Issuer::Sign) => Ok(CertKind::CardSigning),
            Ok(pb::Issuer::PhoneSign) => Ok(CertKind::PhoneSigning),
            _ => Err(self
                .invalid(
                    op,
                    action,
                    format!("issuer {issuer}: the 4-information service answers for signing serials (sign, phone-sign)"),
                )
                .await),
        }
    }

    async fn provider(
        &self,
        op: &Operator,
        action: &'static str,
        p: String,
    ) -> Result<ProviderId, Status> {
        match ProviderId::new(p) {
            Ok(p) => Ok(p),
            Err(e) => Err(self.invalid(op, action, format!("provider: {e}")).await),
        }
    }
}

/// The protobuf items of a set.
pub fn items_to_pb(items: InfoItems) -> Vec<i32> {
    let mut v = Vec::new();
    for (bit, pb_item) in [
        (InfoItems::NAME, pb::InfoItem::Name),
        (InfoItems::ADDRESS, pb::InfoItem::Address),
        (InfoItems::DATE_OF_BIRTH, pb::InfoItem::DateOfBirth),
        (InfoItems::SEX, pb::InfoItem::Sex),
    ] {
        if items.contains(bit) {
            v.push(pb_item as i32);
        }
    }
    v
}

fn items_from_pb(items: &[i32]) -> Result<InfoItems, String> {
    let mut bits = 0;
    for i in items {
        bits |= match pb::InfoItem::try_from(*i) {
            Ok(pb::InfoItem::Name) => InfoItems::NAME.bits(),
            Ok(pb::InfoItem::Address) => InfoItems::ADDRESS.bits(),
            Ok(pb::InfoItem::DateOfBirth) => InfoItems::DATE_OF_BIRTH.bits(),
            Ok(pb::InfoItem::Sex) => InfoItems::SEX.bits(),
            _ => return Err(format!("unknown item {i}")),
        };
    }
    if bits == 0 {
        return Err("a consent covers at least one item".into());
    }
    InfoItems::from_bits(bits).map_err(|e| e.to_string())
}

/// The protobuf form of an answer.
pub fn answer_to_pb(serial: &Serial, outcome: &InfoOutcome) -> pb::InfoAnswer {
    let mut a = pb::InfoAnswer {
        serial: serial.magnitude().to_vec(),
        ..Default::default()
    };
    let o = match outcome {
        InfoOutcome::Unchanged => pb::InfoOutcome::Unchanged,
        InfoOutcome::Changed {
            info,
            current_serial,
        } => {
            a.current_serial = current_serial.magnitude().to_vec();
            a.name = info.name.clone();
            a.address = info.address.clone();
            a.date_of_birth = info.date_of_birth.clone();
            a.sex = info.sex.clone();
            pb::InfoOutcome::Changed
        }
        InfoOutcome::Renewed { current_serial } => {
            a.current_serial = current_serial.magnitude().to_vec();
            pb::InfoOutcome::Renewed
        }
        InfoOutcome::NoNewCertificate => pb::InfoOutcome::NoNewCertificate,
        InfoOutcome::Deceased => pb::InfoOutcome::Deceased,
        InfoOutcome::Emigrated => pb::InfoOutcome::Emigrated,
        InfoOutcome::NoConsent => pb::InfoOutcome::NoConsent,
        InfoOutcome::UnknownSerial => pb::InfoOutcome::UnknownSerial,
    };
    a.outcome = o as i32;
    a
}

fn consent_to_pb(c: &shikko_core::Consent) -> pb::ConsentRecord {
    let (state, ended) = match c.state {
        ConsentState::Active => (pb::ConsentState::Active, 0),
        ConsentState::Withdrawn { at } => (pb::ConsentState::Withdrawn, at.0),
        ConsentState::Replaced { at } => (pb::ConsentState::Replaced, at.0),
    };
    pb::ConsentRecord {
        id: c.id.clone(),
        provider: c.provider.to_string(),
        items: items_to_pb(c.items),
        signing_serial: c.signing_serial.magnitude().to_vec(),
        granted_at: c.granted_at.0,
        expires_at: c.expires_at.0,
        state: state as i32,
        ended_at: ended,
    }
}

#[tonic::async_trait]
impl pb::info_server::Info for InfoGrpc {
    async fn query(
        &self,
        req: Request<pb::InfoQueryRequest>,
    ) -> Result<Response<pb::InfoAnswer>, Status> {
        const ACTION: &str = "query";
        let op = self.operator(&req, ACTION).await?;
        let r = req.into_inner();
        let provider = self.provider(&op, ACTION, r.provider).await?;
        let kind = self.signing_kind(&op, ACTION, r.issuer).await?;
        let serial = self.serial(&op, ACTION, &r.serial).await?;
        let outcome = self.svc.query(&op, &provider, kind, serial).await?;
        Ok(Response::new(answer_to_pb(&serial, &outcome)))
    }

    async fn query_batch(
        &self,
        req: Request<pb::InfoBatchRequest>,
    ) -> Result<Response<pb::InfoBatchResponse>, Status> {
        const ACTION: &str = "query_batch";
        let op = self.operator(&req, ACTION).await?;
        let r = req.into_inner();
        let provider = self.provider(&op, ACTION, r.provider).await?;
        let kind = self.signing_kind(&op, ACTION, r.issuer).await?;
        let serials = self.serials(&op, ACTION, &r.serials).await?;
        let outcomes = self
            .svc
            .query_batch(&op, &provider, kind, serials.clone())
            .await?;
        Ok(Response::new(pb::InfoBatchResponse {
            answers: serials
                .iter()
                .zip(&outcomes)
                .map(|(s, o)| answer_to_pb(s, o))
                .collect(),
        }))
    }

    async fn consent_challenge(
        &self,
        req: Request<pb::ConsentChallengeRequest>,
    ) -> Result<Response<pb::ConsentChallengeResponse>, Status> {
        const ACTION: &str = "consent.challenge";
        let op = self.operator(&req, ACTION).await?;
        let provider = self
            .provider(&op, ACTION, req.into_inner().provider)
            .await?;
        let c = self.svc.consent_challenge(&op, &provider).await?;
        Ok(Response::new(pb::ConsentChallengeResponse {
            challenge: c.value,
            expires_at: c.expires_at.0,
        }))
    }

    async fn record_consent(
        &self,
        req: Request<pb::RecordConsentRequest>,
    ) -> Result<Response<pb::ConsentRecord>, Status> {
        const ACTION: &str = "consent.record";
        let op = self.operator(&req, ACTION).await?;
        let r = req.into_inner();
        let provider = self.provider(&op, ACTION, r.provider).await?;
        let items = match items_from_pb(&r.items) {
            Ok(i) => i,
            Err(e) => return Err(self.invalid(&op, ACTION, format!("items: {e}")).await),
        };
        let consent = self
            .svc
            .record_consent(
                &op,
                ConsentRequest {
                    provider,
                    items,
                    signing_certificate: r.signing_certificate,
                    granted_at: UnixTime(r.granted_at),
                    challenge: r.challenge,
                    signature: r.signature,
                },
            )
            .await?;
        Ok(Response::new(consent_to_pb(&consent)))
    }

    async fn withdraw_consent(
        &self,
        req: Request<pb::WithdrawConsentRequest>,
    ) -> Result<Response<pb::ConsentRecord>, Status> {
        const ACTION: &str = "consent.withdraw";
        let op = self.operator(&req, ACTION).await?;
        let r = req.into_inner();
        let provider = self.provider(&op, ACTION, r.provider).await?;
        let kind = self.signing_kind(&op, ACTION, r.issuer).await?;
        let serial = self.serial(&op, ACTION, &r.serial).await?;
        let consent = self
            .svc
            .withdraw_consent(&op, &provider, kind, &serial)
            .await?;
        Ok(Response::new(consent_to_pb(&consent)))
    }

    async fn expiring(
        &self,
        req: Request<pb::ExpiringRequest>,
    ) -> Result<Response<pb::ExpiringResponse>, Status> {
        const ACTION: &str = "expiring";
        let op = self.operator(&req, ACTION).await?;
        let r = req.into_inner();
        let provider = self.provider(&op, ACTION, r.provider).await?;
        let page = match r.page_size {
            0 => 1_000,
            n => n as usize,
        };
        let (found, next) = self
            .svc
            .expiring(&op, &provider, r.within_days, page, &r.page_token)
            .await?;
        Ok(Response::new(pb::ExpiringResponse {
            certificates: found
                .iter()
                .map(|e| pb::ExpiringCertificate {
                    issuer: shikko_proto::convert::issuer(e.kind),
                    serial: e.serial.magnitude().to_vec(),
                    not_after: e.not_after.0,
                })
                .collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn usage(
        &self,
        req: Request<pb::UsageRequest>,
    ) -> Result<Response<pb::UsageResponse>, Status> {
        let op = self.operator(&req, "usage").await?;
        let mut days = req.into_inner().days;
        if days.is_empty() {
            days.push(billing_day(UnixTime::now()));
        }
        let rows = self.svc.usage(&op.id, &days)?;
        Ok(Response::new(pb::UsageResponse {
            operator: op.id.to_string(),
            days: rows
                .into_iter()
                .map(|(day, provider, provisions)| pb::UsageDay {
                    day,
                    provider,
                    provisions,
                })
                .collect(),
        }))
    }
}

impl InfoGrpc {
    /// `shikko.v1.Link`: the user-authentication link ([`crate::link`]), on
    /// the same port and operator authentication as `Info`.
    pub fn into_link_server(self) -> pb::link_server::LinkServer<InfoGrpc> {
        pb::link_server::LinkServer::new(self)
    }
}

#[tonic::async_trait]
impl pb::link_server::Link for InfoGrpc {
    async fn resolve(
        &self,
        req: Request<pb::LinkResolveRequest>,
    ) -> Result<Response<pb::LinkResolveResponse>, Status> {
        const ACTION: &str = "link.resolve";
        let op = self.operator(&req, ACTION).await?;
        let r = req.into_inner();
        let verifier = self.provider(&op, ACTION, r.provider).await?;
        let kind = match pb::Issuer::try_from(r.issuer) {
            Ok(pb::Issuer::Auth) => shikko_core::CertKind::CardAuth,
            Ok(pb::Issuer::PhoneAuth) => shikko_core::CertKind::PhoneAuth,
            _ => {
                return Err(self
                    .invalid(&op, ACTION, "issuer: auth or phone-auth".into())
                    .await);
            }
        };
        let serials = self.serials(&op, ACTION, &r.serials).await?;
        let answers = self
            .svc
            .link_resolve(&op, &verifier, kind, serials.clone())
            .await?;
        use crate::link::LinkStatus;
        Ok(Response::new(pb::LinkResolveResponse {
            answers: serials
                .iter()
                .zip(answers)
                .map(|(s, a)| pb::LinkAnswer {
                    serial: s.magnitude().to_vec(),
                    status: match a.status {
                        LinkStatus::Good => pb::LinkStatus::Good,
                        LinkStatus::Revoked => pb::LinkStatus::Revoked,
                        LinkStatus::OnHold => pb::LinkStatus::OnHold,
                        LinkStatus::Expired => pb::LinkStatus::Expired,
                        LinkStatus::Unknown => pb::LinkStatus::Unknown,
                    } as i32,
                    pseudonym: a.pseudonym.unwrap_or_default(),
                    previous_pseudonym: a.previous_pseudonym.unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn current(
        &self,
        req: Request<pb::LinkCurrentRequest>,
    ) -> Result<Response<pb::LinkCurrentResponse>, Status> {
        const ACTION: &str = "link.current";
        let op = self.operator(&req, ACTION).await?;
        let r = req.into_inner();
        let verifier = self.provider(&op, ACTION, r.provider).await?;
        let answers = self
            .svc
            .link_current(&op, &verifier, r.pseudonyms.clone())
            .await?;
        Ok(Response::new(pb::LinkCurrentResponse {
            answers: r
                .pseudonyms
                .into_iter()
                .zip(answers)
                .map(|(p, a)| pb::LinkCurrentAnswer {
                    pseudonym: p,
                    known: a.known,
                    card_serial: a.card.map(|s| s.magnitude().to_vec()).unwrap_or_default(),
                    phone_serial: a.phone.map(|s| s.magnitude().to_vec()).unwrap_or_default(),
                    pseudonym_now: a.pseudonym_now.unwrap_or_default(),
                })
                .collect(),
        }))
    }
}

impl InfoGrpc {
    /// The `HolderAccess` service (a holder's own access record).
    pub fn into_holder_server(self) -> pb::holder_access_server::HolderAccessServer<InfoGrpc> {
        pb::holder_access_server::HolderAccessServer::new(self)
    }
}

#[tonic::async_trait]
impl pb::holder_access_server::HolderAccess for InfoGrpc {
    async fn challenge(
        &self,
        _req: Request<pb::HolderChallengeRequest>,
    ) -> Result<Response<pb::HolderChallengeResponse>, Status> {
        let c = self.svc.holder_challenge()?;
        Ok(Response::new(pb::HolderChallengeResponse {
            challenge: c.value,
            expires_at: c.expires_at.0,
        }))
    }

    async fn accesses(
        &self,
        req: Request<pb::HolderAccessesRequest>,
    ) -> Result<Response<pb::HolderAccessesResponse>, Status> {
        let r = req.into_inner();
        let rec = self
            .svc
            .holder_accesses(
                &r.certificate,
                &r.challenge,
                &r.signature,
                r.after_seq,
                r.until_seq,
                r.limit as usize,
            )
            .await?;
        Ok(Response::new(pb::HolderAccessesResponse {
            head: Some(pb::SignedTreeHead {
                size: rec.head.head.size,
                time: rec.head.head.time.0,
                root: rec.head.head.root.to_vec(),
                signature: rec.head.signature,
            }),
            pseudonym: rec.pseudonym,
            accesses: rec
                .accesses
                .into_iter()
                .map(|a| pb::AccessEntry {
                    record: a.record,
                    proof: a.proof.iter().map(|h| h.to_vec()).collect(),
                })
                .collect(),
            more: rec.more,
            until_seq: rec.until_seq,
        }))
    }
}
