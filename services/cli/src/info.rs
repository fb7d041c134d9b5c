//! `shikko info`: an operator's client of the 4-information service, over
//! mutual TLS. (`shikko audit` is in audit.rs, `shikko admin` in admin.rs;
//! they share the internal endpoint's client from here.)

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use shikko_core::consent::{challenge_is_well_formed, consent_statement};
use shikko_core::{CertKind, InfoItems, ProviderId, Serial, UnixTime};
use shikko_pki::Signer;
use shikko_proto::v1 as pb;
use shikko_proto::v1::info_admin_client::InfoAdminClient;
use shikko_proto::v1::info_client::InfoClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The info role's default mTLS endpoint.
pub(crate) const DEFAULT_INFO_ENDPOINT: &str = "https://127.0.0.1:50052";

/// How an operator reaches the info service.
#[derive(Args)]
pub(crate) struct OperatorConn {
    /// The info service's endpoint (mutual TLS).
    #[arg(long, default_value = DEFAULT_INFO_ENDPOINT)]
    endpoint: String,
    /// The operator's client certificate (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// The operator's private key (PEM, PKCS#8).
    #[arg(long)]
    key: PathBuf,
    /// The CA of the server's certificate (PEM); default: operator-ca.pem beside --cert.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The name the server's certificate is checked against.
    #[arg(long, default_value = "localhost")]
    server_name: String,
}

#[derive(Subcommand)]
pub(crate) enum InfoCommand {
    /// The latest 4 information of holders, by the card signing serials (hex)
    /// the bank holds: one serial asks Query, several ask QueryBatch.
    Query {
        /// Serials, hexadecimal.
        #[arg(required = true)]
        serials: Vec<Serial>,
        /// The service provider (bank) asked for.
        #[arg(long, default_value = "demo-bank")]
        provider: String,
        /// The serials' issuer: sign (card) or phone-sign (smartphone).
        #[arg(long, default_value = "sign")]
        issuer: CertKind,
        #[command(flatten)]
        conn: OperatorConn,
    },
    /// Record a holder's consent: asks the service for a challenge, signs
    /// the consent statement carrying it with the holder's signing key and
    /// sends it with their signing certificate.
    Consent {
        /// The holder's signing certificate, card or smartphone (PEM or DER).
        #[arg(long)]
        holder_cert: PathBuf,
        /// The holder's private key (PKCS#8 PEM).
        #[arg(long)]
        holder_key: PathBuf,
        /// Items consented to (comma separated): name, address, date_of_birth, sex, or all.
        #[arg(long, default_value = "all", value_delimiter = ',')]
        items: Vec<String>,
        /// The service provider (bank).
        #[arg(long, default_value = "demo-bank")]
        provider: String,
        #[command(flatten)]
        conn: OperatorConn,
    },
    /// Withdraw the consent of the holder of a signing serial (hex, card or smartphone) to a provider.
    Withdraw {
        /// Any signing serial of the holder, hexadecimal.
        serial: Serial,
        /// The service provider (bank).
        #[arg(long, default_value = "demo-bank")]
        provider: String,
        /// The serial's issuer: sign (card) or phone-sign (smartphone).
        #[arg(long, default_value = "sign")]
        issuer: CertKind,
        #[command(flatten)]
        conn: OperatorConn,
    },
    /// Provisions (billable answers) of the calling operator per day and provider.
    Usage {
        /// Days, YYYY-MM-DD (Japan time); default today.
        days: Vec<String>,
        #[command(flatten)]
        conn: OperatorConn,
    },
    /// The consenting holders' signing certificates (card and phone) that
    /// expire within N days: serial, issuer and date, for asking customers
    /// to renew in time.
    Expiring {
        /// The window, in days (1 to 120).
        #[arg(long, default_value_t = 90)]
        within_days: u32,
        /// The service provider (bank).
        #[arg(long, default_value = "demo-bank")]
        provider: String,
        #[command(flatten)]
        conn: OperatorConn,
    },
    /// Ask the service for a consent challenge (single use, valid minutes),
    /// for a statement signed elsewhere (`info statement --challenge`).
    Challenge {
        /// The service provider (bank) the consent will be given to.
        #[arg(long, default_value = "demo-bank")]
        provider: String,
        #[command(flatten)]
        conn: OperatorConn,
    },
    /// As a holder: every access to your 4 information, consents and link
    /// answers (who, for which provider, when, what outcome), each checked
    /// against a signed tree head of the audit log. Proves who you are with
    /// your user-authentication certificate's key; needs no operator certificate.
    Accesses {
        /// The info service's endpoint (TLS).
        #[arg(long, default_value = DEFAULT_INFO_ENDPOINT)]
        endpoint: String,
        /// Your user-authentication certificate, card or smartphone (PEM or DER).
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// The audit key's public key (PEM); default: audit-key.pem beside --cert.
        #[arg(long)]
        audit_key: Option<PathBuf>,
        /// The CA of the server's certificate (PEM); default: operator-ca.pem beside --cert.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// The name the server's certificate is checked against.
        #[arg(long, default_value = "localhost")]
        server_name: String,
    },
    /// Print the consent statement a holder signs (UTF-8, as signed).
    Statement {
        /// The service provider.
        #[arg(long)]
        provider: String,
        /// Items (comma separated).
        #[arg(long, value_delimiter = ',')]
        items: Vec<String>,
        /// The holder's card signing serial, hexadecimal.
        #[arg(long)]
        serial: Serial,
        /// When the holder signs (Unix seconds).
        #[arg(long)]
        granted_at: i64,
        /// The challenge from `shikko info challenge` (or ConsentChallenge).
        #[arg(long)]
        challenge: String,
    },
}

async fn operator_client(c: &OperatorConn) -> Result<InfoClient<Channel>> {
    Ok(InfoClient::new(operator_channel(c).await?)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// A mutual-TLS channel to the info role's operators' port, as an operator.
pub(crate) async fn operator_channel(c: &OperatorConn) -> Result<Channel> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let ca_path = match &c.ca {
        Some(p) => p.clone(),
        None => c
            .cert
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("operator-ca.pem"),
    };
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            read(&ca_path).context("the server's CA certificate (give --ca)")?,
        ))
        .identity(Identity::from_pem(read(&c.cert)?, read(&c.key)?))
        .domain_name(c.server_name.clone());
    let channel = Endpoint::from_shared(c.endpoint.clone())
        .with_context(|| format!("bad endpoint {}", c.endpoint))?
        .tls_config(tls)?
        .connect()
        .await
        .with_context(|| format!("cannot connect to the info service at {}", c.endpoint))?;
    Ok(channel)
}

/// InfoAdmin at `endpoint`, as `identity` (unless another was chosen).
pub(crate) async fn admin_client(
    endpoint: &str,
    identity: &str,
) -> Result<InfoAdminClient<Channel>> {
    Ok(InfoAdminClient::new(
        crate::identity::channel(endpoint, identity, crate::identity::INFO_ADMIN).await?,
    )
    .max_decoding_message_size(64 << 20))
}

pub(crate) fn status_error(e: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", e.code(), e.message())
}

fn outcome_name(o: i32) -> &'static str {
    match pb::InfoOutcome::try_from(o) {
        Ok(pb::InfoOutcome::Unchanged) => "unchanged",
        Ok(pb::InfoOutcome::Changed) => "changed",
        Ok(pb::InfoOutcome::Renewed) => "renewed",
        Ok(pb::InfoOutcome::NoNewCertificate) => "no new certificate",
        Ok(pb::InfoOutcome::Deceased) => "deceased",
        Ok(pb::InfoOutcome::Emigrated) => "emigrated",
        Ok(pb::InfoOutcome::NoConsent) => "no consent",
        Ok(pb::InfoOutcome::UnknownSerial) => "unknown serial",
        _ => "?",
    }
}

fn hex_of(b: &[u8]) -> String {
    if b.is_empty() {
        "-".into()
    } else {
        Serial::from_be_bytes(b).map_or_else(|_| hex::encode_upper(b), |s| s.to_hex())
    }
}

/// Prints the answers as a table. A closed standard output (`| head`) ends
/// the printing quietly.
fn print_answers(answers: &[pb::InfoAnswer]) {
    let mut out = std::io::stdout().lock();
    let _ = print_table(&mut out, answers);
}

fn print_table(out: &mut impl std::io::Write, answers: &[pb::InfoAnswer]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<24} {:<20} {:<24} data",
        "serial", "outcome", "current serial"
    )?;
    for a in answers {
        let mut data = Vec::new();
        for (k, v) in [
            ("name", &a.name),
            ("address", &a.address),
            ("date_of_birth", &a.date_of_birth),
            ("sex", &a.sex),
        ] {
            if let Some(v) = v {
                data.push(format!("{k}={v}"));
            }
        }
        writeln!(
            out,
            "{:<24} {:<20} {:<24} {}",
            hex_of(&a.serial),
            outcome_name(a.outcome),
            hex_of(&a.current_serial),
            if data.is_empty() {
                "-".into()
            } else {
                data.join("  ")
            }
        )?;
    }
    Ok(())
}

fn items(names: &[String]) -> Result<InfoItems> {
    let refs: Vec<&str> = names.iter().map(|s| s.trim()).collect();
    Ok(InfoItems::parse_list(&refs)?)
}

fn consent_line(c: &pb::ConsentRecord) -> String {
    let state = match pb::ConsentState::try_from(c.state) {
        Ok(pb::ConsentState::Active) => "active",
        Ok(pb::ConsentState::Withdrawn) => "withdrawn",
        Ok(pb::ConsentState::Replaced) => "replaced",
        _ => "?",
    };
    format!(
        "consent {} to {}: {state}, signed {} with {}, expires {}",
        c.id,
        c.provider,
        UnixTime(c.granted_at),
        hex_of(&c.signing_serial),
        UnixTime(c.expires_at)
    )
}

/// Runs `shikko info ...`.
pub(crate) async fn run(cmd: InfoCommand) -> Result<()> {
    match cmd {
        InfoCommand::Query {
            serials,
            provider,
            issuer,
            conn,
        } => {
            let issuer = shikko_proto::convert::issuer(issuer);
            let mut client = operator_client(&conn).await?;
            let answers = if serials.len() == 1 {
                vec![
                    client
                        .query(pb::InfoQueryRequest {
                            provider,
                            serial: serials[0].magnitude().to_vec(),
                            issuer,
                        })
                        .await
                        .map_err(status_error)?
                        .into_inner(),
                ]
            } else {
                client
                    .query_batch(pb::InfoBatchRequest {
                        provider,
                        serials: serials.iter().map(|s| s.magnitude().to_vec()).collect(),
                        issuer,
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner()
                    .answers
            };
            print_answers(&answers);
        }
        InfoCommand::Consent {
            holder_cert,
            holder_key,
            items: names,
            provider,
            conn,
        } => {
            let bytes = std::fs::read(&holder_cert)
                .with_context(|| format!("reading {}", holder_cert.display()))?;
            let der = shikko_pki::certificate_der(&bytes)?;
            let cert = shikko_pki::parse_certificate(&der)?;
            let serial = Serial::from_be_bytes(cert.tbs_certificate().serial_number().as_bytes())?;
            let key = shikko_pki::load_signer(&holder_key)?;
            let items = items(&names)?;
            let mut client = operator_client(&conn).await?;
            let challenge = client
                .consent_challenge(pb::ConsentChallengeRequest {
                    provider: provider.clone(),
                })
                .await
                .map_err(status_error)?
                .into_inner()
                .challenge;
            if !challenge_is_well_formed(&challenge) {
                anyhow::bail!("the service sent a malformed consent challenge");
            }
            let granted_at = UnixTime::now();
            let statement = consent_statement(
                &ProviderId::new(provider.clone())?,
                items,
                &serial,
                granted_at,
                &challenge,
            );
            let signature = key.sign(&statement)?;
            let record = client
                .record_consent(pb::RecordConsentRequest {
                    provider,
                    items: shikko_info::grpc::items_to_pb(items),
                    signing_certificate: der,
                    granted_at: granted_at.0,
                    challenge,
                    signature,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!("{}", consent_line(&record));
        }
        InfoCommand::Withdraw {
            serial,
            provider,
            issuer,
            conn,
        } => {
            let record = operator_client(&conn)
                .await?
                .withdraw_consent(pb::WithdrawConsentRequest {
                    provider,
                    serial: serial.magnitude().to_vec(),
                    issuer: shikko_proto::convert::issuer(issuer),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!("{}", consent_line(&record));
        }
        InfoCommand::Usage { days, conn } => {
            let usage = operator_client(&conn)
                .await?
                .usage(pb::UsageRequest { days })
                .await
                .map_err(status_error)?
                .into_inner();
            println!("operator {}", usage.operator);
            println!("{:<12} {:<24} {:>10}", "day", "provider", "provisions");
            for d in usage.days {
                println!("{:<12} {:<24} {:>10}", d.day, d.provider, d.provisions);
            }
        }
        InfoCommand::Expiring {
            within_days,
            provider,
            conn,
        } => {
            let mut client = operator_client(&conn).await?;
            let mut token = String::new();
            println!("{:<24} {:<11} {:<10}", "serial", "issuer", "expires");
            loop {
                let r = client
                    .expiring(pb::ExpiringRequest {
                        provider: provider.clone(),
                        within_days,
                        page_size: 1_000,
                        page_token: token,
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                for c in &r.certificates {
                    let issuer = shikko_proto::convert::cert_kind(c.issuer)
                        .map(|k| k.issuer_id())
                        .unwrap_or("?");
                    let (y, m, d, ..) = UnixTime(c.not_after).to_civil();
                    println!(
                        "{:<24} {:<11} {y:04}-{m:02}-{d:02}",
                        hex_of(&c.serial),
                        issuer
                    );
                }
                if r.next_page_token.is_empty() {
                    break;
                }
                token = r.next_page_token;
            }
        }
        InfoCommand::Accesses {
            endpoint,
            cert,
            key,
            audit_key,
            ca,
            server_name,
        } => accesses(&endpoint, &cert, &key, audit_key, ca, &server_name).await?,
        InfoCommand::Challenge { provider, conn } => {
            let c = operator_client(&conn)
                .await?
                .consent_challenge(pb::ConsentChallengeRequest { provider })
                .await
                .map_err(status_error)?
                .into_inner();
            println!("challenge  {}", c.challenge);
            println!("expires at {}", c.expires_at);
        }
        InfoCommand::Statement {
            provider,
            items: names,
            serial,
            granted_at,
            challenge,
        } => {
            if !challenge_is_well_formed(&challenge) {
                anyhow::bail!("--challenge: the hexadecimal value `shikko info challenge` printed");
            }
            let text = consent_statement(
                &ProviderId::new(provider)?,
                items(&names)?,
                &serial,
                UnixTime(granted_at),
                &challenge,
            );
            std::io::stdout().write_all(&text)?;
        }
    }
    Ok(())
}

/// `shikko info accesses`: the holder's access record, every record checked.
async fn accesses(
    endpoint: &str,
    cert: &Path,
    key: &Path,
    audit_key: Option<PathBuf>,
    ca: Option<PathBuf>,
    server_name: &str,
) -> Result<()> {
    use shikko_proto::v1::holder_access_client::HolderAccessClient;
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let beside = |name: &str| cert.parent().unwrap_or_else(|| Path::new(".")).join(name);
    let cert_der = shikko_pki::certificate_der(&read(cert)?)
        .with_context(|| format!("{}: not a certificate", cert.display()))?;
    let signer = shikko_pki::SoftwareSigner::load(key)
        .with_context(|| format!("{}: not a PKCS#8 private key", key.display()))?;
    let audit_key = audit_key.unwrap_or_else(|| beside("audit-key.pem"));
    let spki = shikko_info::heads::read_public_key(&audit_key)
        .map_err(anyhow::Error::msg)
        .context("the audit key's public key (give --audit-key)")?;
    let ca = ca.unwrap_or_else(|| beside("operator-ca.pem"));
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            read(&ca).context("the server's CA certificate (give --ca)")?,
        ))
        .domain_name(server_name.to_string());
    let channel = Endpoint::from_shared(endpoint.to_string())
        .with_context(|| format!("bad endpoint {endpoint}"))?
        .tls_config(tls)?
        .connect()
        .await
        .with_context(|| format!("cannot connect to the info service at {endpoint}"))?;
    let mut client = HolderAccessClient::new(channel).max_decoding_message_size(64 << 20);
    let mut after = 0u64;
    let mut until = 0u64;
    let mut n = 0u64;
    let mut first = true;
    loop {
        let challenge = client
            .challenge(pb::HolderChallengeRequest {})
            .await
            .map_err(status_error)?
            .into_inner()
            .challenge;
        let signature = signer.sign(&shikko_info::holder::access_statement(&challenge))?;
        let page = client
            .accesses(pb::HolderAccessesRequest {
                certificate: cert_der.clone(),
                challenge,
                signature,
                after_seq: after,
                until_seq: until,
                limit: 0,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        let head = crate::audit::head_of(page.head.context("the answer has no signed head")?)?;
        if !shikko_pki::tree_head::verify(&head, &spki) {
            anyhow::bail!(
                "the answer's tree head is NOT signed by the audit key in {}",
                audit_key.display()
            );
        }
        if first {
            println!(
                "Your access record (pseudonym {}), under the audit log's head of {} records signed at {} (signature checked):",
                page.pseudonym, head.head.size, head.head.time.0
            );
            println!("seq\ttime (UTC)\twho\taction\tprovider\tsubject\toutcome");
            first = false;
        }
        for a in &page.accesses {
            let r: shikko_info::audit::AuditRecord = serde_json::from_str(&a.record)
                .context("a record of the answer is not an audit record")?;
            if r.holder != page.pseudonym {
                anyhow::bail!(
                    "record {} is not about you: the answer is NOT trustworthy",
                    r.seq
                );
            }
            let proof = a
                .proof
                .iter()
                .map(|p| {
                    p.as_slice()
                        .try_into()
                        .map_err(|_| anyhow::anyhow!("a proof hash is not 32 octets"))
                })
                .collect::<Result<Vec<_>>>()?;
            shikko_info::heads::check_inclusion(&head, r.seq, &a.record, &proof)
                .map_err(|e| anyhow::anyhow!("NOT verified: {e}"))?;
            let (y, mo, d, hh, mi, ss) = UnixTime(r.time).to_civil();
            println!(
                "{}\t{y:04}-{mo:02}-{d:02} {hh:02}:{mi:02}:{ss:02}\t{}\t{}\t{}\t{}\t{}",
                r.seq,
                r.actor,
                r.action,
                if r.provider.is_empty() {
                    "-"
                } else {
                    &r.provider
                },
                r.subject,
                r.outcome
            );
            after = r.seq;
            n += 1;
        }
        until = page.until_seq;
        if !page.more {
            break;
        }
    }
    println!("{n} records, each in the log under the signed head (inclusion proofs checked)");
    Ok(())
}
