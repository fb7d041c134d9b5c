//! gRPC `shikko.v1.OcspResponder/Check`: one certificate's status from the
//! index, and on request the signed OCSP response (the cached one when fresh).

use std::sync::Arc;

use shikko_core::{Serial, UnixTime};
use shikko_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::index::IndexedStatus;
use crate::request::ParsedRequest;
use crate::role::OcspRole;

/// The `OcspResponder` gRPC service of an ocsp role.
#[derive(Debug, Clone)]
pub struct OcspService {
    role: Arc<OcspRole>,
}

impl OcspService {
    /// The service over `role`.
    pub fn new(role: Arc<OcspRole>) -> OcspService {
        OcspService { role }
    }

    /// As a tonic service.
    pub fn into_service(self) -> pb::ocsp_responder_server::OcspResponderServer<OcspService> {
        pb::ocsp_responder_server::OcspResponderServer::new(self)
    }
}

#[tonic::async_trait]
impl pb::ocsp_responder_server::OcspResponder for OcspService {
    async fn check(
        &self,
        req: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let req = req.into_inner();
        let kind = shikko_proto::convert::cert_kind_arg(req.issuer)?;
        let serial = Serial::from_be_bytes(&req.serial)
            .map_err(|e| Status::invalid_argument(format!("serial: {e}")))?;
        if !self.role.is_ready() {
            return Err(Status::unavailable(
                "the status index is still catching up with the registry",
            ));
        }
        if self.role.too_stale(UnixTime::now()) {
            return Err(Status::unavailable(
                "the registry has been out of reach longer than the stale-but-valid window",
            ));
        }
        let responder = self.role.responder();
        if !responder.serves(kind) {
            return Err(Status::permission_denied(format!(
                "this responder does not answer for {kind}"
            )));
        }
        let index = self.role.index();
        let (state, reason, time) = match index.get(kind, &serial) {
            Some(IndexedStatus::Good) => (pb::CertState::Good, 0, 0),
            Some(IndexedStatus::OnHold { since }) => (pb::CertState::OnHold, 6, since.0),
            Some(IndexedStatus::Revoked { reason, at }) => {
                (pb::CertState::Revoked, u32::from(reason.code()), at.0)
            }
            None => (pb::CertState::Unknown, 0, 0),
        };
        let ocsp_response = if req.include_response {
            let id = responder
                .cert_id(kind, &serial)
                .ok_or_else(|| Status::internal("no CertID for this issuer"))?;
            let parsed = ParsedRequest {
                cert_ids: vec![id],
                nonce: None,
            };
            let now = UnixTime::now();
            let answer = match responder.cached(&parsed, now) {
                Some(a) => a,
                None => {
                    // The same permits as HTTP: gRPC is no way around the bound.
                    let permit = self
                        .role
                        .signing_permits()
                        .try_acquire_owned()
                        .map_err(|_| {
                            Status::resource_exhausted("too many answers being signed; retry")
                        })?;
                    let role = self.role.clone();
                    tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        role.responder().sign_now(&parsed, now)
                    })
                    .await
                    .map_err(|_| Status::internal("signing task failed"))?
                }
            };
            answer.der.to_vec()
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::CheckResponse {
            state: state as i32,
            reason,
            revocation_time: time,
            ocsp_response,
            index_seq: index.seq(),
        }))
    }
}
