//! `shikko link ...`: the user-authentication link, as a verifier's operator
//! (mutual TLS on the info role's operators' port).

use anyhow::Result;
use clap::Subcommand;
use shikko_core::{CertKind, Serial};
use shikko_proto::v1 as pb;
use shikko_proto::v1::link_client::LinkClient;

use crate::info::{OperatorConn, operator_channel, status_error};

#[derive(Subcommand)]
pub(crate) enum LinkCommand {
    /// Status and holder pseudonym (for this verifier) of user-authentication serials (hex).
    Resolve {
        /// Serials, hexadecimal.
        #[arg(required = true)]
        serials: Vec<Serial>,
        /// Their issuer: auth (card) or phone-auth (smartphone).
        #[arg(long, default_value = "auth")]
        issuer: CertKind,
        /// The verifier (a provider registered as a user-authentication verifier).
        #[arg(long, default_value = "demo-clinic")]
        provider: String,
        #[command(flatten)]
        conn: OperatorConn,
    },
    /// The current user-authentication serials of holders, by the pseudonyms this verifier was given.
    Current {
        /// Pseudonyms (L1-..., or of the previous key during a changeover).
        #[arg(required = true)]
        pseudonyms: Vec<String>,
        /// The verifier.
        #[arg(long, default_value = "demo-clinic")]
        provider: String,
        #[command(flatten)]
        conn: OperatorConn,
    },
}

fn hex_or_dash(b: &[u8]) -> String {
    if b.is_empty() {
        "-".into()
    } else {
        Serial::from_be_bytes(b).map_or_else(|_| "?".into(), |s| s.to_string())
    }
}

/// Runs `shikko link ...`.
pub(crate) async fn run(cmd: LinkCommand) -> Result<()> {
    match cmd {
        LinkCommand::Resolve {
            serials,
            issuer,
            provider,
            conn,
        } => {
            let mut c = LinkClient::new(operator_channel(&conn).await?);
            let r = c
                .resolve(pb::LinkResolveRequest {
                    provider,
                    issuer: shikko_proto::convert::issuer(issuer),
                    serials: serials.iter().map(|s| s.magnitude().to_vec()).collect(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            let changeover = r.answers.iter().any(|a| !a.previous_pseudonym.is_empty());
            if changeover {
                println!(
                    "{:<24} {:<10} {:<35} previous pseudonym",
                    "serial", "status", "pseudonym"
                );
            } else {
                println!("{:<24} {:<10} pseudonym", "serial", "status");
            }
            for a in r.answers {
                let status = match pb::LinkStatus::try_from(a.status) {
                    Ok(pb::LinkStatus::Good) => "good",
                    Ok(pb::LinkStatus::Revoked) => "revoked",
                    Ok(pb::LinkStatus::OnHold) => "on hold",
                    Ok(pb::LinkStatus::Expired) => "expired",
                    Ok(pb::LinkStatus::Unknown) => "unknown",
                    _ => "?",
                };
                let p = if a.pseudonym.is_empty() {
                    "-".into()
                } else {
                    a.pseudonym
                };
                if changeover {
                    let previous = if a.previous_pseudonym.is_empty() {
                        "-".into()
                    } else {
                        a.previous_pseudonym
                    };
                    println!(
                        "{:<24} {status:<10} {p:<35} {previous}",
                        hex_or_dash(&a.serial)
                    );
                } else {
                    println!("{:<24} {status:<10} {p}", hex_or_dash(&a.serial));
                }
            }
        }
        LinkCommand::Current {
            pseudonyms,
            provider,
            conn,
        } => {
            let mut c = LinkClient::new(operator_channel(&conn).await?);
            let r = c
                .current(pb::LinkCurrentRequest {
                    provider,
                    pseudonyms,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "{:<35} {:<24} {:<24} pseudonym now",
                "pseudonym", "card auth", "phone auth"
            );
            for a in r.answers {
                if a.known {
                    println!(
                        "{:<35} {:<24} {:<24} {}",
                        a.pseudonym,
                        hex_or_dash(&a.card_serial),
                        hex_or_dash(&a.phone_serial),
                        if a.pseudonym_now == a.pseudonym {
                            "(same)"
                        } else {
                            a.pseudonym_now.as_str()
                        }
                    );
                } else {
                    println!("{:<35} not given to this verifier", a.pseudonym);
                }
            }
        }
    }
    Ok(())
}
