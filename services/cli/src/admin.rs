//! `shikko admin`: register providers and operators of the
//! 4-information service, revoke operator certificates, set rate limits,
//! list operators (on the internal endpoint).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use shikko_core::UnixTime;
use shikko_proto::v1 as pb;

use crate::info::{admin_client, status_error};

#[derive(Subcommand)]
pub(crate) enum AdminCommand {
    /// Register a service provider (a bank).
    ProviderAdd {
        /// Its id.
        id: String,
        /// Its name.
        #[arg(long)]
        name: String,
        /// A user-authentication verifier (the link service) instead of a bank.
        #[arg(long)]
        verifier: bool,
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// Register an operator with its client certificate (CN = the id).
    OperatorAdd {
        /// Its id.
        id: String,
        /// Its name.
        #[arg(long)]
        name: String,
        /// Providers it acts for (repeatable).
        #[arg(long = "provider", required = true)]
        providers: Vec<String>,
        /// Its client certificate (PEM or DER).
        #[arg(long)]
        cert: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// Revoke an operator's client certificate (by file or SHA-256).
    OperatorRevokeCert {
        /// The certificate (PEM or DER) or its SHA-256 in hex.
        cert: String,
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// Register a verifier of CRLs and OCSP; prints its first bearer token (once).
    VerifierAdd {
        /// Its id (a-z, 0-9, '-', '_').
        id: String,
        /// Its name.
        #[arg(long)]
        name: String,
        /// OCSP requests per second (0: 1,000).
        #[arg(long, default_value_t = 0)]
        ocsp_per_second: u32,
        /// OCSP burst (0: 2,000).
        #[arg(long, default_value_t = 0)]
        ocsp_burst: u32,
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// Another bearer token for a verifier (rotation); printed once.
    VerifierTokenAdd {
        /// The verifier.
        id: String,
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// Revoke a verifier's token (refused by the CRL and OCSP endpoints
    /// from their next refresh, seconds later).
    VerifierTokenRevoke {
        /// The verifier.
        id: String,
        /// The token's id (as VerifierAdd printed it).
        token_id: String,
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// Register a verifier's TLS client certificate (PEM or DER) for the
    /// CRL and OCSP HTTPS endpoints; they know it from their next refresh.
    VerifierCertAdd {
        /// The verifier.
        id: String,
        /// The certificate (it must chain to the endpoints' verifier CA).
        #[arg(long)]
        cert: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// Revoke a verifier's client certificate (refused by the CRL and OCSP
    /// endpoints from their next refresh, seconds later).
    VerifierCertRevoke {
        /// The verifier.
        id: String,
        /// The certificate's id (as VerifierCertAdd printed it).
        cert_id: String,
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// List verifiers, their tokens (ids, never the tokens) and certificates.
    VerifierList {
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// Set an operator's rate limit.
    OperatorRateLimit {
        /// Its id.
        id: String,
        /// Serials per second.
        #[arg(long)]
        per_second: u32,
        /// Serials at once.
        #[arg(long)]
        burst: u32,
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// Replace the providers an operator acts for.
    OperatorProviders {
        /// Its id.
        id: String,
        /// Providers it acts for from now on (repeatable).
        #[arg(long = "provider", required = true)]
        providers: Vec<String>,
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// List operators.
    OperatorList {
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// The user-authentication link's key versions in force.
    LinkKeyStatus {
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// Make a new link key current: every verifier's pseudonyms change; the
    /// previous ones are still answered until `link-key-retire`.
    LinkKeyRotate {
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// End the changeover: forget the previous link key and the pseudonyms
    /// given under it.
    LinkKeyRetire {
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
    /// Make a standby registry the primary (failover: docs/OPERATOR.md).
    /// Stop the old primary first: promotion is refused while it still
    /// sends to the standby, unless forced.
    Promote {
        /// The standby's gRPC endpoint.
        #[arg(long)]
        endpoint: String,
        /// Acknowledge ingests on this registry's own disk until a new
        /// standby has caught up (otherwise, with require_standby, ingest
        /// waits for one).
        #[arg(long)]
        without_standby: bool,
        /// Promote although the old primary was heard from in the last 5 s
        /// (only when it is certain it can acknowledge nothing more).
        #[arg(long)]
        force: bool,
    },
    /// On a primary whose standby is lost: acknowledge ingests on its own
    /// disk until a new standby has caught up (then it waits for the
    /// standby again). Revocations go on being accepted meanwhile.
    AcknowledgeAlone {
        /// The primary's gRPC endpoint.
        #[arg(long)]
        endpoint: String,
    },
}

fn print_link_keys(s: &pb::LinkKeyState) {
    println!(
        "link key: version {} current (pseudonyms L{}-...){}{}",
        s.current,
        s.current,
        if s.rotated_at > 0 {
            format!(" since {}", UnixTime(s.rotated_at))
        } else {
            String::new()
        },
        if s.previous > 0 {
            format!(
                "; version {} still answered until link-key-retire",
                s.previous
            )
        } else {
            String::new()
        }
    );
}

fn print_operator(o: &pb::OperatorRecord) {
    println!(
        "operator {} ({}) for {}; {} serials/s, burst {}",
        o.id,
        o.name,
        o.providers.join(", "),
        o.serials_per_second,
        o.burst
    );
    for c in &o.certificates {
        println!(
            "  certificate sha256 {} until {}{}",
            c.sha256,
            UnixTime(c.not_after),
            if c.revoked_at > 0 {
                format!(", revoked {}", UnixTime(c.revoked_at))
            } else {
                String::new()
            }
        );
    }
}

/// Runs `shikko admin ...`.
pub(crate) async fn admin(cmd: AdminCommand) -> Result<()> {
    match cmd {
        AdminCommand::VerifierAdd {
            id,
            name,
            ocsp_per_second,
            ocsp_burst,
            endpoint,
        } => {
            let t = admin_client(&endpoint, "admin")
                .await?
                .register_verifier(pb::RegisterVerifierRequest {
                    id,
                    name,
                    ocsp_per_second,
                    ocsp_burst,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "verifier {} registered; token {} (shown once; send it as Authorization: Bearer TOKEN):\n{}",
                t.verifier, t.token_id, t.token
            );
        }
        AdminCommand::VerifierTokenAdd { id, endpoint } => {
            let t = admin_client(&endpoint, "admin")
                .await?
                .add_verifier_token(pb::AddVerifierTokenRequest { verifier: id })
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "verifier {}: token {} (shown once):\n{}",
                t.verifier, t.token_id, t.token
            );
        }
        AdminCommand::VerifierTokenRevoke {
            id,
            token_id,
            endpoint,
        } => {
            admin_client(&endpoint, "admin")
                .await?
                .revoke_verifier_token(pb::RevokeVerifierTokenRequest {
                    verifier: id.clone(),
                    token_id: token_id.clone(),
                })
                .await
                .map_err(status_error)?;
            println!("verifier {id}: token {token_id} revoked");
        }
        AdminCommand::VerifierCertAdd { id, cert, endpoint } => {
            let bytes =
                std::fs::read(&cert).with_context(|| format!("reading {}", cert.display()))?;
            let der = shikko_pki::certificate_der(&bytes)?;
            let c = admin_client(&endpoint, "admin")
                .await?
                .add_verifier_certificate(pb::AddVerifierCertificateRequest {
                    verifier: id,
                    certificate: der,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "verifier {}: certificate {} registered (SHA-256 {}, {}, until {})",
                c.verifier, c.id, c.sha256, c.subject, c.not_after
            );
        }
        AdminCommand::VerifierCertRevoke {
            id,
            cert_id,
            endpoint,
        } => {
            admin_client(&endpoint, "admin")
                .await?
                .revoke_verifier_certificate(pb::RevokeVerifierCertificateRequest {
                    verifier: id.clone(),
                    certificate_id: cert_id.clone(),
                })
                .await
                .map_err(status_error)?;
            println!("verifier {id}: certificate {cert_id} revoked");
        }
        AdminCommand::VerifierList { endpoint } => {
            let l = admin_client(&endpoint, "auditor")
                .await?
                .list_verifiers(pb::ListVerifiersRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "verifier\tname\tocsp/s\tburst\ttokens (id: in force or revoked at)\tcertificates (id: in force or revoked at)"
            );
            for v in l.verifiers {
                let tokens: Vec<String> = v
                    .tokens
                    .iter()
                    .map(|t| match t.revoked_at {
                        0 => format!("{}: in force", t.id),
                        r => format!("{}: revoked at {r}", t.id),
                    })
                    .collect();
                let certificates: Vec<String> = v
                    .certificates
                    .iter()
                    .map(|c| match c.revoked_at {
                        0 => format!("{}: in force", c.id),
                        r => format!("{}: revoked at {r}", c.id),
                    })
                    .collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    v.id,
                    v.name,
                    v.ocsp_per_second,
                    v.ocsp_burst,
                    tokens.join(", "),
                    certificates.join(", ")
                );
            }
        }
        AdminCommand::ProviderAdd {
            id,
            name,
            verifier,
            endpoint,
        } => {
            let kind = if verifier {
                pb::ProviderKind::UserAuthVerifier
            } else {
                pb::ProviderKind::Bank
            } as i32;
            let p = admin_client(&endpoint, "admin")
                .await?
                .register_provider(pb::RegisterProviderRequest { id, name, kind })
                .await
                .map_err(status_error)?
                .into_inner();
            println!("provider {} ({}) registered", p.id, p.name);
        }
        AdminCommand::OperatorAdd {
            id,
            name,
            providers,
            cert,
            endpoint,
        } => {
            let certificate =
                std::fs::read(&cert).with_context(|| format!("reading {}", cert.display()))?;
            let o = admin_client(&endpoint, "admin")
                .await?
                .register_operator(pb::RegisterOperatorRequest {
                    id,
                    name,
                    providers,
                    certificate,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            print_operator(&o);
        }
        AdminCommand::OperatorRevokeCert { cert, endpoint } => {
            let sha256 = if cert.len() == 64 && cert.bytes().all(|b| b.is_ascii_hexdigit()) {
                cert
            } else {
                let bytes = std::fs::read(&cert).with_context(|| format!("reading {cert}"))?;
                shikko_info::operators::fingerprint(&shikko_pki::certificate_der(&bytes)?)
            };
            let o = admin_client(&endpoint, "admin")
                .await?
                .revoke_operator_certificate(pb::RevokeOperatorCertificateRequest { sha256 })
                .await
                .map_err(status_error)?
                .into_inner();
            print_operator(&o);
        }
        AdminCommand::OperatorRateLimit {
            id,
            per_second,
            burst,
            endpoint,
        } => {
            let o = admin_client(&endpoint, "admin")
                .await?
                .set_rate_limit(pb::SetRateLimitRequest {
                    id,
                    serials_per_second: per_second,
                    burst,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            print_operator(&o);
        }
        AdminCommand::OperatorProviders {
            id,
            providers,
            endpoint,
        } => {
            let o = admin_client(&endpoint, "admin")
                .await?
                .set_operator_providers(pb::SetOperatorProvidersRequest { id, providers })
                .await
                .map_err(status_error)?
                .into_inner();
            print_operator(&o);
        }
        AdminCommand::LinkKeyStatus { endpoint } => {
            let state = admin_client(&endpoint, "admin")
                .await?
                .link_keys(pb::LinkKeysRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            print_link_keys(&state);
        }
        AdminCommand::LinkKeyRotate { endpoint } => {
            let state = admin_client(&endpoint, "admin")
                .await?
                .rotate_link_key(pb::RotateLinkKeyRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            print_link_keys(&state);
        }
        AdminCommand::LinkKeyRetire { endpoint } => {
            let state = admin_client(&endpoint, "admin")
                .await?
                .retire_link_key(pb::RetireLinkKeyRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            print_link_keys(&state);
        }
        AdminCommand::Promote {
            endpoint,
            without_standby,
            force,
        } => {
            let done = crate::client::connect(&endpoint, "admin")
                .await?
                .promote(pb::PromoteRequest {
                    without_standby,
                    force,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "{endpoint} is the primary of epoch {} (store {}, last sequence number {}){}",
                done.epoch,
                done.store_id,
                done.last_seq,
                if without_standby {
                    "; acknowledging on its own disk until a standby catches up"
                } else {
                    ""
                }
            );
        }
        AdminCommand::AcknowledgeAlone { endpoint } => {
            let done = crate::client::connect(&endpoint, "admin")
                .await?
                .acknowledge_alone(pb::AcknowledgeAloneRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "{endpoint} acknowledges on its own disk until a standby has caught up (epoch {}, last sequence number {})",
                done.epoch, done.last_seq
            );
        }
        AdminCommand::OperatorList { endpoint } => {
            let list = admin_client(&endpoint, "admin")
                .await?
                .list_operators(pb::ListOperatorsRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            for o in &list.operators {
                print_operator(o);
            }
        }
    }
    Ok(())
}
