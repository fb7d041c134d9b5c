//! `shikko.v1.InfoAdmin`: registration of providers and operators, operator
//! certificate revocation, rate limits, and the audit log's head and export.
//! Served on the platform's internal endpoint only (with the registry).

use std::pin::Pin;
use std::sync::Arc;

use shikko_core::{OperatorId, ProviderId};
use shikko_proto::v1 as pb;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::error::InfoError;
use crate::operators::Operator;
use crate::service::InfoService;

/// Records per export chunk.
const CHUNK: usize = 1_000;

/// The admin gRPC service.
#[derive(Debug, Clone)]
pub struct InfoAdminGrpc {
    svc: Arc<InfoService>,
}

impl InfoAdminGrpc {
    /// Over a service.
    pub fn new(svc: Arc<InfoService>) -> InfoAdminGrpc {
        InfoAdminGrpc { svc }
    }

    /// As a tonic service.
    pub fn into_server(self) -> pb::info_admin_server::InfoAdminServer<InfoAdminGrpc> {
        pb::info_admin_server::InfoAdminServer::new(self)
    }
}

fn operator_to_pb(op: &Operator) -> pb::OperatorRecord {
    pb::OperatorRecord {
        id: op.id.to_string(),
        name: op.name.clone(),
        providers: op.providers.iter().map(ToString::to_string).collect(),
        certificates: op
            .certificates
            .iter()
            .map(|c| pb::OperatorCertificate {
                sha256: c.sha256.clone(),
                not_after: c.not_after.0,
                revoked_at: c.revoked_at.map_or(0, |t| t.0),
            })
            .collect(),
        serials_per_second: op.rate_per_sec,
        burst: op.burst,
    }
}

/// DER from PEM or DER.
fn cert_der(bytes: &[u8]) -> Result<Vec<u8>, Status> {
    shikko_pki::certificate_der(bytes)
        .map_err(|e| Status::invalid_argument(format!("certificate: {e}")))
}

fn operator_id(s: String) -> Result<OperatorId, Status> {
    OperatorId::new(s).map_err(|e| Status::invalid_argument(e.to_string()))
}

impl InfoAdminGrpc {
    fn current(&self, id: &OperatorId) -> Result<pb::OperatorRecord, Status> {
        let op = self
            .svc
            .operator(id)?
            .ok_or_else(|| InfoError::NotFound(format!("operator {id}")))?;
        Ok(operator_to_pb(&op))
    }
}

type AuditStream = Pin<Box<dyn Stream<Item = Result<pb::AuditChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::info_admin_server::InfoAdmin for InfoAdminGrpc {
    async fn register_provider(
        &self,
        req: Request<pb::RegisterProviderRequest>,
    ) -> Result<Response<pb::ProviderRecord>, Status> {
        let r = req.into_inner();
        let id = ProviderId::new(r.id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        use crate::operators::ProviderKind;
        let kind = match pb::ProviderKind::try_from(r.kind) {
            Ok(pb::ProviderKind::Unspecified | pb::ProviderKind::Bank) => ProviderKind::Bank,
            Ok(pb::ProviderKind::UserAuthVerifier) => ProviderKind::UserAuthVerifier,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "provider kind {}",
                    r.kind
                )));
            }
        };
        self.svc
            .register_provider_of(id.clone(), &r.name, kind)
            .await?;
        let p = self
            .svc
            .provider(&id)?
            .ok_or_else(|| Status::internal("provider not stored"))?;
        Ok(Response::new(pb::ProviderRecord {
            id: p.id.to_string(),
            name: p.name,
            registered_at: p.registered_at.0,
            kind: match p.kind {
                ProviderKind::Bank => pb::ProviderKind::Bank,
                ProviderKind::UserAuthVerifier => pb::ProviderKind::UserAuthVerifier,
            } as i32,
        }))
    }

    async fn register_operator(
        &self,
        req: Request<pb::RegisterOperatorRequest>,
    ) -> Result<Response<pb::OperatorRecord>, Status> {
        let r = req.into_inner();
        let providers = provider_ids(r.providers)?;
        let op = self
            .svc
            .register_operator(
                operator_id(r.id)?,
                &r.name,
                providers,
                &cert_der(&r.certificate)?,
            )
            .await?;
        Ok(Response::new(operator_to_pb(&op)))
    }

    async fn add_operator_certificate(
        &self,
        req: Request<pb::AddOperatorCertificateRequest>,
    ) -> Result<Response<pb::OperatorRecord>, Status> {
        let r = req.into_inner();
        let op = self
            .svc
            .add_operator_certificate(&operator_id(r.id)?, &cert_der(&r.certificate)?)
            .await?;
        Ok(Response::new(operator_to_pb(&op)))
    }

    async fn revoke_operator_certificate(
        &self,
        req: Request<pb::RevokeOperatorCertificateRequest>,
    ) -> Result<Response<pb::OperatorRecord>, Status> {
        let fp = req.into_inner().sha256.to_ascii_lowercase();
        self.svc.revoke_operator_certificate(&fp).await?;
        let op = self
            .svc
            .operators()?
            .into_iter()
            .find(|o| o.certificates.iter().any(|c| c.sha256 == fp))
            .ok_or_else(|| Status::internal("operator not stored"))?;
        Ok(Response::new(operator_to_pb(&op)))
    }

    async fn set_rate_limit(
        &self,
        req: Request<pb::SetRateLimitRequest>,
    ) -> Result<Response<pb::OperatorRecord>, Status> {
        let r = req.into_inner();
        let id = operator_id(r.id)?;
        self.svc
            .set_rate_limit(&id, r.serials_per_second, r.burst)
            .await?;
        Ok(Response::new(self.current(&id)?))
    }

    async fn set_operator_providers(
        &self,
        req: Request<pb::SetOperatorProvidersRequest>,
    ) -> Result<Response<pb::OperatorRecord>, Status> {
        let r = req.into_inner();
        let providers = provider_ids(r.providers)?;
        let op = self
            .svc
            .set_operator_providers(&operator_id(r.id)?, providers)
            .await?;
        Ok(Response::new(operator_to_pb(&op)))
    }

    async fn list_operators(
        &self,
        _req: Request<pb::ListOperatorsRequest>,
    ) -> Result<Response<pb::ListOperatorsResponse>, Status> {
        Ok(Response::new(pb::ListOperatorsResponse {
            operators: self.svc.operators()?.iter().map(operator_to_pb).collect(),
        }))
    }

    async fn audit_head(
        &self,
        _req: Request<pb::AuditHeadRequest>,
    ) -> Result<Response<pb::AuditHeadResponse>, Status> {
        let (seq, hash) = self.svc.audit_head()?;
        Ok(Response::new(pb::AuditHeadResponse { seq, hash }))
    }

    async fn audit_tree_head(
        &self,
        _req: Request<pb::AuditTreeHeadRequest>,
    ) -> Result<Response<pb::SignedTreeHead>, Status> {
        let svc = self.svc.clone();
        let sth = tokio::task::spawn_blocking(move || svc.signed_head())
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(pb::SignedTreeHead {
            size: sth.head.size,
            time: sth.head.time.0,
            root: sth.head.root.to_vec(),
            signature: sth.signature,
        }))
    }

    async fn audit_consistency(
        &self,
        req: Request<pb::AuditConsistencyRequest>,
    ) -> Result<Response<pb::AuditProof>, Status> {
        let r = req.into_inner();
        let svc = self.svc.clone();
        let proof =
            tokio::task::spawn_blocking(move || svc.audit_consistency(r.old_size, r.new_size))
                .await
                .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(pb::AuditProof {
            hashes: proof.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn audit_inclusion(
        &self,
        req: Request<pb::AuditInclusionRequest>,
    ) -> Result<Response<pb::AuditInclusionResponse>, Status> {
        let r = req.into_inner();
        let svc = self.svc.clone();
        let (record, proof) =
            tokio::task::spawn_blocking(move || svc.audit_inclusion(r.seq, r.size))
                .await
                .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(pb::AuditInclusionResponse {
            record,
            hashes: proof.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn register_verifier(
        &self,
        req: Request<pb::RegisterVerifierRequest>,
    ) -> Result<Response<pb::VerifierToken>, Status> {
        let r = req.into_inner();
        let t = self
            .svc
            .register_verifier(&r.id, &r.name, r.ocsp_per_second, r.ocsp_burst)
            .await?;
        Ok(Response::new(token_to_pb(t)))
    }

    async fn add_verifier_token(
        &self,
        req: Request<pb::AddVerifierTokenRequest>,
    ) -> Result<Response<pb::VerifierToken>, Status> {
        let t = self
            .svc
            .add_verifier_token(&req.into_inner().verifier)
            .await?;
        Ok(Response::new(token_to_pb(t)))
    }

    async fn revoke_verifier_token(
        &self,
        req: Request<pb::RevokeVerifierTokenRequest>,
    ) -> Result<Response<pb::VerifierRecord>, Status> {
        let r = req.into_inner();
        let v = self
            .svc
            .revoke_verifier_token(&r.verifier, &r.token_id)
            .await?;
        Ok(Response::new(verifier_to_pb(&v)))
    }

    async fn add_verifier_certificate(
        &self,
        req: Request<pb::AddVerifierCertificateRequest>,
    ) -> Result<Response<pb::VerifierCertificateInfo>, Status> {
        let r = req.into_inner();
        let c = self
            .svc
            .add_verifier_certificate(&r.verifier, &r.certificate)
            .await?;
        Ok(Response::new(cert_to_pb(&r.verifier, &c)))
    }

    async fn revoke_verifier_certificate(
        &self,
        req: Request<pb::RevokeVerifierCertificateRequest>,
    ) -> Result<Response<pb::VerifierRecord>, Status> {
        let r = req.into_inner();
        let v = self
            .svc
            .revoke_verifier_certificate(&r.verifier, &r.certificate_id)
            .await?;
        Ok(Response::new(verifier_to_pb(&v)))
    }

    async fn list_verifiers(
        &self,
        _req: Request<pb::ListVerifiersRequest>,
    ) -> Result<Response<pb::ListVerifiersResponse>, Status> {
        Ok(Response::new(pb::ListVerifiersResponse {
            verifiers: self.svc.verifiers()?.iter().map(verifier_to_pb).collect(),
        }))
    }

    async fn verifier_table(
        &self,
        _req: Request<pb::VerifierTableRequest>,
    ) -> Result<Response<pb::VerifierTableResponse>, Status> {
        Ok(Response::new(pb::VerifierTableResponse {
            entries: self
                .svc
                .verifier_table()?
                .into_iter()
                .map(|e| pb::VerifierTableEntry {
                    verifier: e.verifier,
                    token_sha256: e.sha256.to_vec(),
                    ocsp_per_second: e.ocsp_per_second,
                    ocsp_burst: e.ocsp_burst,
                    certificate: e.certificate,
                })
                .collect(),
        }))
    }

    async fn report_usage(
        &self,
        req: Request<pb::ReportUsageRequest>,
    ) -> Result<Response<pb::ReportUsageResponse>, Status> {
        let r = req.into_inner();
        let counts = r
            .counts
            .into_iter()
            .map(|c| {
                (
                    crate::verifiers::UsageKey {
                        day: c.day,
                        verifier: c.verifier,
                        endpoint: c.endpoint,
                        purpose: c.purpose,
                        outcome: c.outcome,
                    },
                    c.count,
                )
            })
            .collect();
        self.svc.report_usage(&r.reporter, r.seq, counts).await?;
        Ok(Response::new(pb::ReportUsageResponse {}))
    }

    async fn verifier_usage(
        &self,
        req: Request<pb::VerifierUsageRequest>,
    ) -> Result<Response<pb::VerifierUsageResponse>, Status> {
        let month = req.into_inner().month;
        Ok(Response::new(pb::VerifierUsageResponse {
            counts: self
                .svc
                .verifier_usage(&month)?
                .into_iter()
                .map(usage_to_pb)
                .collect(),
        }))
    }

    async fn prune_audit(
        &self,
        req: Request<pb::PruneAuditRequest>,
    ) -> Result<Response<pb::PruneAuditResponse>, Status> {
        let (pruned, first_seq) = self.svc.prune_audit(req.into_inner().below_seq).await?;
        Ok(Response::new(pb::PruneAuditResponse { pruned, first_seq }))
    }

    async fn link_keys(
        &self,
        _req: Request<pb::LinkKeysRequest>,
    ) -> Result<Response<pb::LinkKeyState>, Status> {
        Ok(Response::new(link_state_to_pb(self.svc.link_key_state())))
    }

    async fn rotate_link_key(
        &self,
        _req: Request<pb::RotateLinkKeyRequest>,
    ) -> Result<Response<pb::LinkKeyState>, Status> {
        Ok(Response::new(link_state_to_pb(
            self.svc.rotate_link_key().await?,
        )))
    }

    async fn retire_link_key(
        &self,
        _req: Request<pb::RetireLinkKeyRequest>,
    ) -> Result<Response<pb::LinkKeyState>, Status> {
        Ok(Response::new(link_state_to_pb(
            self.svc.retire_link_key().await?,
        )))
    }

    async fn checkpoint(
        &self,
        req: Request<pb::CheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let name = req.into_inner().name;
        let store = self.svc.store().clone();
        let (path, last_seq, store_id) = tokio::task::spawn_blocking(move || {
            let (path, seq) = store.checkpoint_named(&name).map_err(|e| match e {
                shikko_store::CheckpointError::BadName
                | shikko_store::CheckpointError::Exists(_) => {
                    Status::invalid_argument(e.to_string())
                }
                other => Status::internal(other.to_string()),
            })?;
            let id = store
                .store_id()
                .map_err(|e| Status::internal(e.to_string()))?;
            Ok::<_, Status>((path, seq, id))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(pb::CheckpointResponse {
            path: path.display().to_string(),
            last_seq,
            store_id,
        }))
    }

    type ExportAuditStream = AuditStream;

    async fn export_audit(
        &self,
        req: Request<pb::ExportAuditRequest>,
    ) -> Result<Response<Self::ExportAuditStream>, Status> {
        let mut next = req.into_inner().from_seq.max(1);
        let store = self.svc.store().clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let s = store.clone();
                let page = tokio::task::spawn_blocking(move || crate::audit::read(&s, next, CHUNK))
                    .await
                    .map_err(|e| InfoError::Internal(e.to_string()))
                    .and_then(|r| r);
                let page = match page {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(e))).await;
                        return;
                    }
                };
                let Some(last) = page.last() else { return };
                next = last.seq + 1;
                let lines = page
                    .iter()
                    .filter_map(|r| serde_json::to_string(r).ok())
                    .collect();
                if tx.send(Ok(pb::AuditChunk { lines })).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

fn verifier_to_pb(v: &crate::verifiers::Verifier) -> pb::VerifierRecord {
    pb::VerifierRecord {
        id: v.id.clone(),
        name: v.name.clone(),
        registered_at: v.registered_at.0,
        tokens: v
            .tokens
            .iter()
            .map(|t| pb::VerifierTokenInfo {
                id: t.id.clone(),
                created_at: t.created_at.0,
                revoked_at: t.revoked_at.map_or(0, |r| r.0),
            })
            .collect(),
        ocsp_per_second: v.ocsp_per_second,
        ocsp_burst: v.ocsp_burst,
        certificates: v
            .certificates
            .iter()
            .map(|c| cert_to_pb(&v.id, c))
            .collect(),
    }
}

fn cert_to_pb(verifier: &str, c: &crate::verifiers::CertRecord) -> pb::VerifierCertificateInfo {
    pb::VerifierCertificateInfo {
        id: c.id.clone(),
        sha256: c.sha256.clone(),
        subject: c.subject.clone(),
        not_after: c.not_after.0,
        created_at: c.created_at.0,
        revoked_at: c.revoked_at.map_or(0, |r| r.0),
        verifier: verifier.to_string(),
    }
}

fn token_to_pb(t: crate::verifiers::NewToken) -> pb::VerifierToken {
    pb::VerifierToken {
        verifier: t.verifier,
        token_id: t.id,
        token: t.token,
    }
}

/// A usage counter to its wire form.
pub fn usage_to_pb((k, n): (crate::verifiers::UsageKey, u64)) -> pb::UsageCount {
    pb::UsageCount {
        day: k.day,
        verifier: k.verifier,
        endpoint: k.endpoint,
        purpose: k.purpose,
        outcome: k.outcome,
        count: n,
    }
}

fn link_state_to_pb(s: crate::link::LinkKeyState) -> pb::LinkKeyState {
    pb::LinkKeyState {
        current: u32::from(s.current),
        previous: s.previous.map_or(0, u32::from),
        rotated_at: s.rotated_at,
    }
}

/// Provider ids as sent; one malformed is INVALID_ARGUMENT.
fn provider_ids(ids: Vec<String>) -> Result<Vec<ProviderId>, Status> {
    ids.into_iter()
        .map(ProviderId::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Status::invalid_argument(e.to_string()))
}
