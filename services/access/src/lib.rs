//! # shikko-access
//!
//! Shikko's internal identities at work (issue 12). The mechanism is
//! `shikko_runtime`'s (mutual TLS that reloads its files, one authorization
//! layer on every internal gRPC endpoint); the identities are
//! `shikko_pki::internal`'s (`spiffe://shikko/role/NAME` in a certificate
//! from the internal CA); the table of who may call what is
//! `shikko_proto::access`. This crate puts them together:
//!
//! - [`InternalAccess`]: the policy every internal endpoint enforces;
//! - [`server_security`]: a role's `[tls]` section as the security of its
//!   internal endpoints;
//! - [`client_tls`] and [`connect`]: a client of an internal endpoint (the
//!   followers, the `shikko` client commands), which presents its identity
//!   and checks the server's;
//! - [`caller_may`]: the rules that look at the request as well as the
//!   method (a `Follow` asking for personal data);
//! - [`api`]: Shikko's services for a gRPC endpoint, with the limits of
//!   each method (`shikko_proto::access::LIMITS`).
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod verifiers;
use std::sync::Arc;

use shikko_pki::InternalRole;
use shikko_proto::access;
use shikko_runtime::authz::CertificateDer;
use shikko_runtime::tls::{PeerCheck, endpoint_for_tls};
use shikko_runtime::{Authorize, Caller, ClientTls, Denial, Security, TlsConfig, TlsError};

/// Shikko's gRPC API for an endpoint (`GrpcRoutes::new(shikko_access::api())`):
/// its descriptors (reflection) and the limits of each method, enforced on
/// every call by `shikko_runtime::limits`.
pub fn api() -> shikko_runtime::Api {
    static LIMITS: std::sync::LazyLock<Vec<(&'static str, shikko_runtime::MethodLimits)>> =
        std::sync::LazyLock::new(|| {
            access::LIMITS
                .iter()
                .map(|(m, l)| (*m, runtime_limits(*l)))
                .collect()
        });
    shikko_runtime::Api {
        descriptors: shikko_proto::FILE_DESCRIPTOR_SET,
        limits: LIMITS.as_slice(),
        default_limits: runtime_limits(access::DEFAULT_LIMITS),
    }
}

fn runtime_limits(l: access::Limits) -> shikko_runtime::MethodLimits {
    shikko_runtime::MethodLimits {
        max_message_bytes: l.max_message_bytes,
        concurrency: l.concurrency,
        timeout_secs: l.timeout_secs,
    }
}

/// The policy of every internal endpoint: the caller is the internal
/// identity of its certificate (the TLS handshake verified the chain to
/// the internal CA and the CRLs), and `shikko_proto::access` says what it
/// may call. A method without a rule admits no one.
#[derive(Debug, Clone, Copy, Default)]
pub struct InternalAccess;

impl Authorize for InternalAccess {
    fn authorize(
        &self,
        method: &str,
        peer: Option<&[CertificateDer<'static>]>,
    ) -> Result<Caller, Denial> {
        let Some(leaf) = peer.and_then(<[_]>::first) else {
            return Err(Denial::Unauthenticated(
                "an internal identity is required: no client certificate",
            ));
        };
        let role = match shikko_pki::identity_of(leaf.as_ref()) {
            Ok(Some(role)) => role,
            Ok(None) => {
                return Err(Denial::Unauthenticated(
                    "an internal identity is required: the client certificate names none",
                ));
            }
            Err(shikko_pki::Error::InvalidInput(why)) => {
                // Two identities in one certificate, or an unknown role.
                return Err(Denial::Unauthenticated(why));
            }
            Err(_) => {
                return Err(Denial::Unauthenticated(
                    "an internal identity is required: the client certificate's does not decode",
                ));
            }
        };
        let caller = Caller(Arc::from(role.as_str()));
        if access::admits(method, role.as_str()) {
            Ok(caller)
        } else {
            Err(Denial::PermissionDenied(caller))
        }
    }

    fn label(&self, method: &str) -> &'static str {
        access::rule(method).map_or("unknown", |r| r.method)
    }
}

/// The policy of the 4-information service's public port, ahead of the
/// service's own checks (registered, not revoked, rate-limited, audited)
/// and of the per-method limits: a call without a client certificate
/// (which that port lets a client withhold, to say why in gRPC terms) is
/// refused here, so an anonymous caller takes no place among a method's
/// calls in progress. A certificate (of the operator CA: the handshake
/// checked it) may call the `Info` and `Link` services and health. The
/// `HolderAccess` service admits anyone ([`access::HOLDER`]): the holder
/// proves who they are in the request, with their user-authentication key.
#[derive(Debug, Clone, Copy, Default)]
pub struct OperatorPort;

impl Authorize for OperatorPort {
    fn authorize(
        &self,
        method: &str,
        peer: Option<&[CertificateDer<'static>]>,
    ) -> Result<Caller, Denial> {
        if access::admits(method, access::HOLDER) {
            return Ok(Caller(Arc::from(access::HOLDER)));
        }
        if peer.and_then(<[_]>::first).is_none() {
            return Err(Denial::Unauthenticated(
                "no client certificate: present the operator certificate the platform issued you",
            ));
        }
        let caller = Caller(Arc::from(access::OPERATOR));
        if access::admits(method, access::OPERATOR) || method.starts_with("/grpc.health.v1.Health/")
        {
            Ok(caller)
        } else {
            Err(Denial::PermissionDenied(caller))
        }
    }

    fn label(&self, method: &str) -> &'static str {
        access::rule(method).map_or("unknown", |r| r.method)
    }
}

/// Whether the caller of an admitted call is one of `allowed` (for the
/// rules that look at the request: `access::FOLLOW_WITH_PERSONAL_DATA`,
/// `access::STATUS_WITH_NEWEST_SERIAL`). A call without a [`Caller`] came
/// through an endpoint without authorization (`insecure_loopback_only`, or
/// a service called in-process), which admits everything.
pub fn caller_may(caller: Option<&Caller>, allowed: &[&str]) -> bool {
    caller.is_none_or(|c| allowed.contains(&c.name()))
}

/// Why an identity's files could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The `[tls]` section is incomplete or contradicts the addresses.
    #[error("{0}")]
    Config(String),
    /// The files could not be read or used.
    #[error("internal TLS: {0}")]
    Tls(#[from] TlsError),
    /// A channel could not be opened.
    #[error("{endpoint}: {}", chain(source))]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
}

/// An error and its sources on one line (tonic's transport errors say
/// only "transport error" themselves).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

/// The security of a role's internal endpoints from its `[tls]` section:
/// mutual TLS with [`InternalAccess`], or plaintext when
/// `insecure_loopback_only` is set (the server refuses it on any address
/// but loopback).
pub fn server_security(cfg: &TlsConfig) -> Result<Security, AccessError> {
    match cfg.files().map_err(AccessError::Config)? {
        None => Ok(Security::InsecureLoopback),
        Some(files) => Ok(Security::Mtls {
            tls: Arc::new(shikko_runtime::ServerTls::load(&files)?),
            policy: Arc::new(InternalAccess),
            reload_every: cfg.reload_every(),
        }),
    }
}

/// A check that the server a client reached carries `role`'s identity.
pub fn expect_server(role: InternalRole) -> PeerCheck {
    Arc::new(move |leaf: &[u8]| match shikko_pki::identity_of(leaf) {
        Ok(Some(r)) if r == role => Ok(()),
        Ok(Some(r)) => Err(format!("the server is {r}, not {role}")),
        Ok(None) => Err("the server's certificate names no internal identity".into()),
        Err(e) => Err(format!("the server's certificate: {e}")),
    })
}

/// A check that the server a client reached is one of `roles` (a client
/// command whose service more than one role serves: InfoAdmin on the info
/// role or on a registry with the info service inside).
pub fn expect_server_one_of(roles: &'static [InternalRole]) -> PeerCheck {
    Arc::new(move |leaf: &[u8]| match shikko_pki::identity_of(leaf) {
        Ok(Some(r)) if roles.contains(&r) => Ok(()),
        Ok(Some(r)) => Err(format!(
            "the server is {r}, not the role this command talks to"
        )),
        Ok(None) => Err("the server's certificate names no internal identity".into()),
        Err(e) => Err(format!("the server's certificate: {e}")),
    })
}

/// A check that the server a client reached is one of Shikko's serving
/// roles (for the administrators' commands, which talk to any of them).
pub fn expect_serving_role() -> PeerCheck {
    Arc::new(|leaf: &[u8]| match shikko_pki::identity_of(leaf) {
        Ok(Some(r)) if r.serves() => Ok(()),
        Ok(Some(r)) => Err(format!("{r} is not a serving role")),
        Ok(None) => Err("the server's certificate names no internal identity".into()),
        Err(e) => Err(format!("the server's certificate: {e}")),
    })
}

/// The client side of an identity's `[tls]` section, checking servers with
/// `check`; `None` when `insecure_loopback_only` is set.
pub fn client_tls(
    cfg: &TlsConfig,
    check: PeerCheck,
) -> Result<Option<Arc<ClientTls>>, AccessError> {
    match cfg.files().map_err(AccessError::Config)? {
        None => Ok(None),
        Some(files) => Ok(Some(Arc::new(
            ClientTls::load(&files)?.with_peer_check(check),
        ))),
    }
}

/// The client side of a follower's `[tls]` (it calls the registry, and
/// only a server with the registry's identity will do, or a standby's: a
/// promoted standby is the registry), its files re-read
/// like the server's until `shutdown`; `None` when `insecure_loopback_only`.
pub fn registry_client(
    cfg: &TlsConfig,
    shutdown: &shikko_runtime::Shutdown,
) -> Result<Option<Arc<ClientTls>>, AccessError> {
    let tls = client_tls(
        cfg,
        expect_server_one_of(&[InternalRole::Registry, InternalRole::Standby]),
    )?;
    if let Some(t) = &tls {
        shikko_runtime::tls::spawn_reloader(
            t.clone() as Arc<dyn shikko_runtime::tls::Reload>,
            cfg.reload_every(),
            shutdown.wait_owned(),
        );
    }
    Ok(tls)
}

/// A gRPC channel to an internal endpoint: over mutual TLS with `tls`
/// (`https://` or `http://` alike), or plaintext without. `tune` sets
/// timeouts and keepalive on the endpoint.
pub async fn connect(
    endpoint: &str,
    tls: Option<&Arc<ClientTls>>,
    tune: impl FnOnce(tonic::transport::Endpoint) -> tonic::transport::Endpoint,
) -> Result<tonic::transport::Channel, AccessError> {
    let failed = |source| AccessError::Connect {
        endpoint: endpoint.to_string(),
        source,
    };
    match tls {
        Some(tls) => {
            let ep = endpoint_for_tls(endpoint).map_err(AccessError::Config)?;
            tls.connect(tune(ep)).await.map_err(failed)
        }
        None => {
            if endpoint.starts_with("https://") {
                return Err(AccessError::Config(format!(
                    "{endpoint}: https needs an identity ([tls] cert, key and ca)"
                )));
            }
            let ep = tonic::transport::Endpoint::from_shared(endpoint.to_string())
                .map_err(|e| AccessError::Config(format!("{endpoint}: {e}")))?;
            tune(ep).connect().await.map_err(failed)
        }
    }
}
