//! Issue 12 over real processes: the four roles run as separate processes
//! with internal identities from a test internal CA, and every method of
//! every internal gRPC service in the compiled descriptors (and the health
//! and reflection services every internal endpoint serves) refuses a
//! caller without a certificate, a plaintext caller, and a caller with an
//! identity the authorization table does not name, and admits one it does.
//! The methods come from the descriptors, not from a list here, so a new
//! RPC is tested the day it is added.
//!
//! The `Info` service is not among them: it is served on the
//! 4-information service's public port to banks' operators (the operator
//! CA, consents, rate limits), whose refusals services/info's tests check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message;
use shikko_proto::access;
use shikko_testkit::identities::Identities;
use shikko_testkit::process::{SecureRegistry, setup_demo_dir, start_role, start_secure_registry};
use shikko_testkit::roles::{InfoTls, Loopback};
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Every method of every service in the compiled descriptors, by service
/// (`package.Service`), as `/package.Service/Method`.
fn described() -> BTreeMap<String, Vec<String>> {
    let set = prost_types::FileDescriptorSet::decode(shikko_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in set.file {
        let package = file.package.clone().unwrap_or_default();
        for service in &file.service {
            let name = format!("{package}.{}", service.name.as_deref().unwrap_or_default());
            for method in &service.method {
                let path = format!("/{name}/{}", method.name.as_deref().unwrap_or_default());
                out.entry(name.clone()).or_default().push(path);
            }
        }
    }
    out
}

/// Calls `method` with one empty message (a valid encoding of every
/// request type) as a stream, which is the same on the wire for unary and
/// streaming methods alike: Ok once the server answers with headers (a
/// streaming method admitted), or the status it answered with.
async fn call(
    channel: Result<Channel, tonic::transport::Error>,
    method: &str,
) -> Result<(), tonic::Status> {
    let transport = |e: tonic::transport::Error| tonic::Status::from_error(Box::new(e));
    let mut grpc = tonic::client::Grpc::new(channel.map_err(transport)?);
    grpc.ready().await.map_err(transport)?;
    let request = tonic::Request::new(tokio_stream::once(()));
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    grpc.streaming(request, PathAndQuery::try_from(method).unwrap(), codec)
        .await
        .map(drop)
}

/// A refusal before any handler ran: no TLS session for a caller without a
/// certificate or without TLS (the transport fails: the status comes from
/// the client's own transport, not from a server's answer), or
/// UNAUTHENTICATED.
fn refused_at_the_door(outcome: &Result<(), tonic::Status>) -> bool {
    use std::error::Error;
    matches!(outcome, Err(s) if s.source().is_some() || s.code() == Code::Unauthenticated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_internal_method_admits_exactly_the_identities_of_its_rule() {
    let dir = tempfile::tempdir().unwrap();
    let SecureRegistry {
        data,
        ids,
        configs,
        registry: _registry,
        url: registry_url,
        addr: registry_addr,
    } = start_secure_registry(dir.path(), |_| ());
    let ocsp = start_role("ocsp", &configs.ocsp(&data, &registry_url, "").unwrap());
    let crl = start_role("crl", &configs.crl(&data, &registry_url, 3600, "").unwrap());
    let tls = InfoTls::from_data_dir(&data, &dir.path().join("tls")).unwrap();
    let info = start_role(
        "info",
        &configs
            .info(&dir.path().join("info-data"), &registry_url, &tls)
            .unwrap(),
    );

    // Where each internal service is served.
    let endpoints: BTreeMap<&str, String> = BTreeMap::from([
        ("shikko.v1.Registry", registry_addr.clone()),
        ("shikko.v1.CrlPublisher", crl.field("grpc")),
        ("shikko.v1.OcspResponder", ocsp.field("grpc")),
        ("shikko.v1.InfoAdmin", info.field("grpc")),
    ]);

    let mut services = described();
    // The public services (Info, Link): on the operators' port, below.
    let mut public = Vec::new();
    for name in ["shikko.v1.Info", "shikko.v1.Link"] {
        public.extend(
            services
                .remove(name)
                .unwrap_or_else(|| panic!("the public {name} service is described")),
        );
    }
    // The holders' service (HolderAccess): on the same port, open to anyone.
    let holder = services
        .remove("shikko.v1.HolderAccess")
        .expect("the HolderAccess service is described");
    for service in services.keys() {
        assert!(
            endpoints.contains_key(service.as_str()),
            "{service} is described but this test does not know where it is served: add it"
        );
    }
    // Health and reflection, on every internal endpoint.
    let serving: Vec<String> = access::SERVING_RULES
        .iter()
        .map(|r| r.method.to_string())
        .collect();

    let mut checked = 0;
    let mut calls = Vec::new();
    for (service, methods) in &services {
        let addr = &endpoints[service.as_str()];
        for m in methods {
            calls.push((addr.clone(), m.clone()));
        }
    }
    for addr in endpoints.values() {
        for m in &serving {
            calls.push((addr.clone(), m.clone()));
        }
    }

    for (addr, method) in &calls {
        let rule = access::rule(method).unwrap_or_else(|| panic!("{method} has no rule"));

        // A stock gRPC client without TLS: no session at all.
        let plain = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .connect()
            .await;
        let outcome = call(plain, method).await;
        assert!(
            refused_at_the_door(&outcome),
            "{method} on {addr} without TLS: {outcome:?}"
        );

        // TLS without a client certificate: the handshake is refused.
        let outcome = call(ids.channel(addr, None).await, method).await;
        assert!(
            refused_at_the_door(&outcome),
            "{method} on {addr} without a certificate: {outcome:?}"
        );

        // Every identity the rule does not name: PERMISSION_DENIED.
        let wrong: Vec<&str> = access::ANY_INTERNAL
            .iter()
            .copied()
            .filter(|c| !rule.callers.contains(c))
            .collect();
        for who in &wrong {
            let outcome = call(ids.channel(addr, Some(who)).await, method).await;
            assert!(
                matches!(&outcome, Err(s) if s.code() == Code::PermissionDenied),
                "{method} on {addr} as {who}: {outcome:?}"
            );
        }
        // Only what every internal identity may call has no wrong one.
        assert!(
            !wrong.is_empty() || method.starts_with("/grpc.health.v1.Health/"),
            "{method} admits every internal identity"
        );

        // Every identity the rule names gets past the layer: whatever the
        // handler makes of an empty request, it is not a refusal.
        for who in rule.callers {
            let outcome = call(ids.channel(addr, Some(who)).await, method).await;
            assert!(
                !matches!(&outcome, Err(s) if matches!(s.code(), Code::PermissionDenied | Code::Unauthenticated | Code::Unavailable)),
                "{method} on {addr} refused {who}, whom its rule admits: {outcome:?}"
            );
        }
        checked += 1;
    }
    // Every rule of the table was exercised (but the public services').
    let internal_rules = access::RULES
        .iter()
        .filter(|r| !public.iter().chain(&holder).any(|m| m == r.method))
        .count();
    assert_eq!(
        checked,
        internal_rules + access::SERVING_RULES.len() * endpoints.len()
    );

    // The public services, on the operators' port: a TLS client without
    // a certificate (which that port lets a client withhold) is refused by
    // the port's layer, before the method's limits (it takes no place among
    // its calls), told why, and counted; every described method.
    let operators = info.field("info");
    let anonymous = Endpoint::from_shared(format!("https://{operators}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(
                    std::fs::read(&tls.client_ca).unwrap(),
                ))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    for method in &public {
        let outcome = call(Ok(anonymous.clone()), method).await;
        assert!(
            matches!(&outcome, Err(s) if s.code() == Code::Unauthenticated && s.message().contains("operator certificate")),
            "{method} without a certificate: {outcome:?}"
        );
    }
    // A holder needs no certificate: the handler answers (a challenge, or
    // why an empty request proves no one), never the port's refusal.
    for method in &holder {
        let outcome = call(Ok(anonymous.clone()), method).await;
        assert!(
            !matches!(&outcome, Err(s) if s.code() == Code::Unauthenticated && s.message().contains("operator certificate")),
            "{method} without a certificate: {outcome:?}"
        );
    }
    let (_, text) = shikko_testkit::process::http_get(&info.field("metrics"), "/metrics");
    let text = String::from_utf8_lossy(&text);
    for method in &public {
        let line = format!(
            "shikko_authz_denied_total{{method=\"{method}\",reason=\"unauthenticated\"}} 1"
        );
        assert!(text.contains(&line), "{line} in\n{text}");
    }
}

/// The rule that looks at the request: a status-only follower (the CRL
/// role's identity) may follow the feed, but not with the writes, which
/// carry 4 information.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_info_role_and_the_standby_follow_with_personal_data() {
    use shikko_proto::v1::registry_client::RegistryClient;
    let dir = tempfile::tempdir().unwrap();
    let SecureRegistry {
        ids,
        registry,
        addr,
        ..
    } = start_secure_registry(dir.path(), |_| ());

    for (who, admitted) in [
        ("crl", false),
        ("ocsp", false),
        ("info", true),
        ("standby", true),
    ] {
        let channel = ids.channel(&addr, Some(who)).await.unwrap();
        let mut client = RegistryClient::new(channel);
        let status_only = client
            .follow(shikko_proto::v1::FollowRequest {
                from_seq: 1,
                max_batch: 10,
                with_writes: false,
            })
            .await;
        assert!(status_only.is_ok(), "{who}: {status_only:?}");
        let with_writes = client
            .follow(shikko_proto::v1::FollowRequest {
                from_seq: 1,
                max_batch: 10,
                with_writes: true,
            })
            .await;
        if admitted {
            let mut stream = with_writes.unwrap().into_inner();
            let first = stream.message().await.unwrap().unwrap();
            assert!(!first.records.is_empty(), "{who} got no records");
        } else {
            let status = with_writes.unwrap_err();
            assert_eq!(status.code(), Code::PermissionDenied, "{who}: {status:?}");
        }
        // The same for a snapshot: statuses to every follower, the
        // replica's writes (4 information) to the info role and the standby.
        let mut statuses = client
            .snapshot(shikko_proto::v1::SnapshotRequest {
                content: shikko_proto::v1::SnapshotContent::Status as i32,
            })
            .await
            .unwrap_or_else(|e| panic!("{who}: {e:?}"))
            .into_inner();
        let first = statuses.message().await.unwrap().unwrap();
        assert!(first.writes.is_empty() && !first.last, "{who}");
        let replica = client
            .snapshot(shikko_proto::v1::SnapshotRequest {
                content: shikko_proto::v1::SnapshotContent::Replica as i32,
            })
            .await;
        if admitted {
            let mut stream = replica.unwrap().into_inner();
            let mut writes = 0;
            while let Some(chunk) = stream.message().await.unwrap() {
                writes += chunk.writes.len();
                if chunk.last {
                    break;
                }
            }
            assert!(writes > 0, "{who} got no writes");
        } else {
            let status = replica.unwrap_err();
            assert_eq!(status.code(), Code::PermissionDenied, "{who}: {status:?}");
        }
    }
    // Both refusals counted with the layer's own, by method and reason.
    let (_, text) = shikko_testkit::process::http_get(&registry.metrics, "/metrics");
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains(
            "shikko_authz_denied_total{method=\"/shikko.v1.Registry/Follow\",reason=\"request_denied\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "shikko_authz_denied_total{method=\"/shikko.v1.Registry/Snapshot\",reason=\"request_denied\"} 2"
        ),
        "{text}"
    );
}

/// `Registry.ListPartitions` as `who`: Ok, or why not.
async fn list_partitions(ids: Identities, addr: String, who: &str) -> Result<(), String> {
    let channel = ids
        .channel(&addr, Some(who))
        .await
        .map_err(|e| e.to_string())?;
    shikko_proto::v1::registry_client::RegistryClient::new(channel)
        .list_partitions(shikko_proto::v1::ListPartitionsRequest::default())
        .await
        .map(drop)
        .map_err(|s| s.to_string())
}

/// A role process refuses an internal certificate the internal CA has
/// revoked (from its next reading of the CRL, without a restart) and one
/// that has expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_process_refuses_revoked_and_expired_identities() {
    let dir = tempfile::tempdir().unwrap();
    // An empty internal CRL first: the registry's [tls] names it.
    let SecureRegistry {
        ids,
        registry: _registry,
        addr,
        ..
    } = start_secure_registry(dir.path(), |ids| {
        ids.revoke(&[], 1).unwrap();
    });

    let partitions = |who: &'static str| list_partitions(ids.clone(), addr.clone(), who);
    let ok = partitions("ocsp").await;
    assert!(ok.is_ok(), "{ok:?}");

    ids.revoke(&["ocsp"], 2).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut outcome = partitions("ocsp").await;
    while outcome.is_ok() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        outcome = partitions("ocsp").await;
    }
    assert!(outcome.is_err(), "a revoked identity is still admitted");
    assert!(
        partitions("crl").await.is_ok(),
        "an identity not revoked is refused"
    );

    // An expired certificate (renewal missed) is refused too.
    let now = shikko_core::UnixTime::now();
    ids.issue(
        shikko_pki::InternalRole::Crl,
        "crl",
        now.plus_secs(-7_200),
        now.plus_secs(-60),
    )
    .unwrap();
    let outcome = partitions("crl").await;
    assert!(outcome.is_err(), "an expired identity is admitted");
}

/// `shikko serve ROLE --config CONFIG`, which must exit within 30 s: its
/// exit status and standard error (killed and reported if it keeps running).
fn serve_until_exit(role: &str, config: &std::path::Path) -> (bool, String) {
    use std::io::Read;
    let mut child = shikko_testkit::process::shikko()
        .args(["serve", role, "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut said = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    match status {
        Some(s) => (s.success(), said),
        None => panic!("the {role} role kept running: {said}"),
    }
}

/// A role refuses to start with a private key file other users could read,
/// and says which file and what to do.
#[test]
fn a_role_refuses_to_start_with_a_key_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    setup_demo_dir(&data);
    let ids = Identities::create(&dir.path().join("identities")).unwrap();
    let configs = Loopback::new(dir.path()).with_identities(&ids);
    let config = configs.ocsp(&data, "https://127.0.0.1:1", "").unwrap();
    let chmod = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };

    // A responder key readable by everyone.
    let key = data.join("keys/sign-ocsp.key");
    chmod(&key, 0o644);
    let (ok, said) = serve_until_exit("ocsp", &config);
    assert!(!ok, "{said}");
    assert!(
        said.contains("sign-ocsp.key") && said.contains("chmod 600"),
        "{said}"
    );

    // Its own identity's key, readable by its group.
    chmod(&key, 0o600);
    chmod(&ids.key("ocsp"), 0o640);
    let (ok, said) = serve_until_exit("ocsp", &config);
    assert!(!ok, "{said}");
    assert!(
        said.contains("ocsp-key.pem") && said.contains("chmod 600"),
        "{said}"
    );
}
