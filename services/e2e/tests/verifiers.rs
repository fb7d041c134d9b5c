//! Registered verifiers and metered use of the CRL and OCSP endpoints, over
//! real processes (issue 15, items 1 and 2): a registry with the
//! 4-information service (where verifiers are registered and usage is
//! kept), an OCSP role and a CRL role in restricted mode, and an OCSP role
//! in public mode. An unregistered client is refused by the restricted
//! endpoints (OCSP `unauthorized`, HTTP 401) and served by the public one;
//! a revoked token is refused within a refresh; and the month's usage
//! export counts exactly the requests made, 304s and refusals included,
//! and still does after the registry restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use shikko_testkit::process::{RoleProcess, run, setup_demo_dir, start_registry, start_role};
use shikko_testkit::roles::{InfoTls, Loopback};

/// A raw HTTP/1.1 request: (status, response headers, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), raw[split + 4..].to_vec())
}

const UNAUTHORIZED: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x06];

/// A GET on a keep-alive connection (the OCSP role's fast path takes it
/// when its answer is cached).
fn get_kept(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let r = shikko_testkit::http::get_kept(addr, path, headers);
    (r.status, r.head, r.body)
}

fn ocsp_post(addr: &str, req: &[u8], headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let mut h = vec![("Content-Type", "application/ocsp-request")];
    h.extend_from_slice(headers);
    http(addr, "POST", "/ocsp", &h, req)
}

/// A successful OCSP answer (responseStatus 0), not a bare status.
fn answered(body: &[u8]) -> bool {
    body.len() > 100 && body.windows(3).take(8).any(|w| w == [0x0a, 0x01, 0x00])
}

fn token_of(out: &std::process::Output) -> (String, String) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let id = text
        .split("token ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let token = text.lines().last().unwrap().trim().to_string();
    (id, token)
}

fn usage(endpoint: &str, month: &str) -> Vec<serde_json::Value> {
    let out = run(&[
        "usage",
        "export",
        "--month",
        month,
        "--format",
        "json",
        "--endpoint",
        endpoint,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The count of the row (verifier, endpoint, purpose, outcome), 0 if none.
fn count(rows: &[serde_json::Value], v: &str, e: &str, p: &str, o: &str) -> u64 {
    rows.iter()
        .filter(|r| {
            r["verifier"] == v && r["endpoint"] == e && r["purpose"] == p && r["outcome"] == o
        })
        .map(|r| r["count"].as_u64().unwrap())
        .sum()
}

/// Writes an OCSP request (no nonce) for the demo's good signing certificate.
fn good_request(samples: &Path, out: &Path) {
    shikko_testkit::openssl(
        [
            "ocsp",
            "-no_nonce",
            "-issuer",
            "sign-ca.pem",
            "-cert",
            "sign-good.pem",
            "-reqout",
            out.to_str().unwrap(),
        ],
        samples,
    );
}

/// The Japanese month of now, `YYYY-MM` (what usage is exported by).
fn this_month() -> String {
    let (y, m, ..) = shikko_core::UnixTime::now().plus_secs(9 * 3600).to_civil();
    format!("{y:04}-{m:02}")
}

fn registry_config(dir: &Path, data: &Path, tls: &InfoTls) -> PathBuf {
    Loopback::new(dir)
        .with_sections(&format!(
            "[info]\ngrpc_listen = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\nclient_ca = {:?}\nsigning_cas = [{:?}]\n",
            tls.cert, tls.key, tls.client_ca, tls.signing_ca
        ))
        .registry_on(data, 0)
        .unwrap()
}

#[test]
fn restricted_endpoints_serve_registered_verifiers_and_every_request_is_metered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    setup_demo_dir(&data);
    let samples = data.join("samples");
    let tls = InfoTls::from_data_dir(&data, &d.join("tls")).unwrap();
    let reg_cfg = registry_config(d, &data, &tls);
    let mut registry = start_registry(&reg_cfg);
    let ep = registry.endpoint.clone();

    let add = |id: &str| {
        token_of(&run(&[
            "admin",
            "verifier-add",
            id,
            "--name",
            "a verifier",
            "--endpoint",
            &ep,
        ]))
    };
    let (bank_id, bank) = add("bank-x");
    let (_, warmup) = add("warmup");
    assert_eq!(bank.len(), 43);

    let access = |mode: &str| {
        format!(
            "access = {{ mode = \"{mode}\", info = {ep:?}, refresh_secs = 1, report_secs = 1 }}\n"
        )
    };
    let roles = Loopback::new(d);
    let ocsp: RoleProcess = start_role(
        "ocsp",
        &roles.ocsp(&data, &ep, &access("restricted")).unwrap(),
    );
    let ocsp_addr = ocsp.field("http");
    let crl: RoleProcess = start_role(
        "crl",
        &roles.crl(&data, &ep, 3600, &access("restricted")).unwrap(),
    );
    let crl_addr = crl.field("http");
    let public_dir = d.join("public");
    std::fs::create_dir_all(&public_dir).unwrap();
    let ocsp_public: RoleProcess = start_role(
        "ocsp",
        &Loopback::new(&public_dir)
            .ocsp(&data, &ep, &access("public"))
            .unwrap(),
    );
    let public_addr = ocsp_public.field("http");

    // An OCSP request for a good signing certificate.
    let reqfile = d.join("req.der");
    good_request(&samples, &reqfile);
    let req = std::fs::read(&reqfile).unwrap();
    let warm = format!("Bearer {warmup}");
    assert!(shikko_testkit::until(60, || {
        let (s, _, b) = ocsp_post(&ocsp_addr, &req, &[("Authorization", &warm)]);
        s == 200 && answered(&b)
    }));
    assert!(shikko_testkit::until(60, || {
        http(
            &crl_addr,
            "GET",
            "/crl/sign/full.crl",
            &[("Authorization", &warm)],
            b"",
        )
        .0 == 200
    }));
    assert!(shikko_testkit::until(60, || answered(
        &ocsp_post(&public_addr, &req, &[]).2
    )));

    // Restricted OCSP: no token, a wrong token: `unauthorized`, unsigned.
    for _ in 0..2 {
        let (s, _, b) = ocsp_post(&ocsp_addr, &req, &[]);
        assert_eq!((s, b.as_slice()), (200, UNAUTHORIZED.as_slice()));
    }
    let (_, _, b) = ocsp_post(&ocsp_addr, &req, &[("Authorization", "Bearer not-a-token")]);
    assert_eq!(b, UNAUTHORIZED);
    // The registered verifier: answered, three times for signature checks,
    // and a real client with its token too.
    let auth = format!("Bearer {bank}");
    for _ in 0..3 {
        let (s, h, b) = ocsp_post(
            &ocsp_addr,
            &req,
            &[("Authorization", &auth), ("Shikko-Purpose", "signature")],
        );
        assert!(s == 200 && answered(&b), "{h}");
        // Not for shared caches.
        assert!(
            h.contains("cache-control: max-age=") && h.contains("private"),
            "{h}"
        );
    }
    let text = shikko_testkit::openssl(
        [
            "ocsp",
            "-no_nonce",
            "-issuer",
            "sign-ca.pem",
            "-cert",
            "sign-good.pem",
            "-CAfile",
            "sign-ca.pem",
            "-url",
            &format!("http://{ocsp_addr}/ocsp"),
            "-header",
            &format!("Authorization=Bearer {bank}"),
        ],
        &samples,
    );
    assert!(text.contains(": good"), "{text}");
    // GET, then a revalidation: 304.
    let b64 = base64_std(&req);
    let path = format!(
        "/ocsp/{}",
        b64.replace('/', "%2F")
            .replace('+', "%2B")
            .replace('=', "%3D")
    );
    // On keep-alive connections (the fast path, the answer being cached):
    // refused without a token, served and revalidated with one, private,
    // and metered as the full path meters.
    let (s, _, b) = get_kept(&ocsp_addr, &path, &[]);
    assert_eq!((s, b.as_slice()), (200, UNAUTHORIZED.as_slice()));
    let (s, h, b) = get_kept(&ocsp_addr, &path, &[("Authorization", &auth)]);
    assert!(s == 200 && answered(&b), "{h}");
    assert!(
        h.contains("cache-control: max-age=") && h.contains("private"),
        "{h}"
    );
    let etag = h
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .trim()
        .to_string();
    let (s, _, _) = get_kept(
        &ocsp_addr,
        &path,
        &[("Authorization", &auth), ("If-None-Match", &etag)],
    );
    assert_eq!(s, 304);

    // Restricted CRLs: 401 without a token; the full CRL, a revalidation, a delta.
    let (s, h, _) = http(&crl_addr, "GET", "/crl/sign/full.crl", &[], b"");
    assert_eq!(s, 401);
    assert!(h.contains("www-authenticate: bearer"), "{h}");
    let (s, h, _) = http(
        &crl_addr,
        "GET",
        "/crl/sign/full.crl",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(s, 200);
    assert!(h.contains("private"), "{h}");
    let etag = h
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .trim()
        .to_string();
    let (s, _, _) = http(
        &crl_addr,
        "GET",
        "/crl/sign/full.crl",
        &[
            ("Authorization", &auth),
            ("If-None-Match", &etag),
            ("Shikko-Purpose", "status"),
        ],
        b"",
    );
    assert_eq!(s, 304);

    // The compact revocation filters behind the same gate: 401 without a
    // token, served (private) and metered with one.
    let (s, h, _) = http(&crl_addr, "GET", "/filter/sign/full.filter", &[], b"");
    assert_eq!(s, 401);
    assert!(h.contains("www-authenticate: bearer"), "{h}");
    let (s, h, _) = http(
        &crl_addr,
        "GET",
        "/filter/sign/full.filter",
        &[("Authorization", &auth), ("Shikko-Purpose", "status")],
        b"",
    );
    assert_eq!(s, 200, "{h}");
    assert!(h.contains("private"), "{h}");

    // The public responder answers anyone, and counts them as anonymous.
    for _ in 0..2 {
        assert!(answered(&ocsp_post(&public_addr, &req, &[]).2));
    }

    // A revoked token is refused within a refresh.
    let out = run(&[
        "admin",
        "verifier-token-revoke",
        "bank-x",
        &bank_id,
        "--endpoint",
        &ep,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shikko_testkit::until(10, || {
        ocsp_post(
            &ocsp_addr,
            &req,
            &[("Authorization", &auth), ("Shikko-Purpose", "login")],
        )
        .2 == UNAUTHORIZED
    }));

    // What was counted, once reported (every second).
    let month = this_month();
    let expect = |rows: &[serde_json::Value]| {
        count(rows, "bank-x", "ocsp", "signature", "good") == 3
            && count(rows, "bank-x", "ocsp", "unspecified", "good") == 2
            && count(rows, "bank-x", "ocsp", "unspecified", "not_modified") == 1
            && count(rows, "-", "ocsp", "unspecified", "refused_no_token") == 3
            && count(rows, "bank-x", "crl_full", "unspecified", "ok") == 1
            && count(rows, "bank-x", "crl_full", "status", "not_modified") == 1
            && count(rows, "-", "crl_full", "unspecified", "refused_no_token") == 1
            && count(rows, "bank-x", "filter_full", "status", "ok") == 1
            && count(rows, "-", "filter_full", "unspecified", "refused_no_token") == 1
            // The revoked token, refused (at least once: the wait above
            // asked until it was).
            && count(rows, "-", "ocsp", "login", "refused_bad_token") >= 1
    };
    let mut rows = Vec::new();
    assert!(
        shikko_testkit::until(20, || {
            rows = usage(&ep, &month);
            expect(&rows)
        }),
        "{rows:#?}"
    );
    // The wrong token, and the public responder's anonymous answers.
    assert!(count(&rows, "-", "ocsp", "unspecified", "refused_bad_token") >= 1);
    assert!(count(&rows, "-", "ocsp", "unspecified", "good") >= 3);
    // Until the next refresh (a second) the revoked token still served,
    // and those answers are the verifier's.
    let served_after = count(&rows, "bank-x", "ocsp", "login", "good");
    assert!(served_after <= 30, "{served_after}");

    // CSV, and the counters survive the registry's restart.
    drop((ocsp, crl, ocsp_public));
    let before = usage(&ep, &month);
    let _ = registry.child.kill();
    let _ = registry.child.wait();
    registry = start_registry(&reg_cfg);
    let after = usage(&registry.endpoint, &month);
    assert_eq!(before, after);
    let out = run(&[
        "usage",
        "export",
        "--month",
        &month,
        "--endpoint",
        &registry.endpoint,
    ]);
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        csv.starts_with("day,verifier,endpoint,purpose,outcome,count\n"),
        "{csv}"
    );
    assert!(csv.contains(",bank-x,ocsp,signature,good,3\n"), "{csv}");
}

fn base64_std(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `curl` over HTTPS to `url` (host `localhost`, resolved to 127.0.0.1),
/// trusting `ca`, presenting `client` (certificate, key) if any, POSTing
/// `body` as an OCSP request when given: (status, headers, body).
fn curl(
    url: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    post: Option<&Path>,
    extra: &[&str],
) -> (u16, String, Vec<u8>) {
    let out_dir = tempfile::tempdir().unwrap();
    let body = out_dir.path().join("body");
    let head = out_dir.path().join("head");
    let port = url
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .unwrap();
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--resolve"])
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(ca)
        .arg("-o")
        .arg(&body)
        .arg("-D")
        .arg(&head)
        .args(["-w", "%{http_code}"]);
    if let Some((c, k)) = client {
        cmd.arg("--cert").arg(c).arg("--key").arg(k);
    }
    if let Some(p) = post {
        cmd.args([
            "-H",
            "Content-Type: application/ocsp-request",
            "--data-binary",
        ])
        .arg(format!("@{}", p.display()));
    }
    cmd.args(extra).arg(url);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (
        status,
        std::fs::read_to_string(&head)
            .unwrap_or_default()
            .to_ascii_lowercase(),
        std::fs::read(&body).unwrap_or_default(),
    )
}

/// A client certificate of the data directory's operator CA (the verifier
/// CA of these endpoints) for `cn`: (certificate, key) PEM files in `out`.
fn client_cert(data: &Path, out: &Path, cn: &str, serial: u128) -> (PathBuf, PathBuf) {
    use shikko_pki::{Issuer, KeyAlgorithm, Signer, SoftwareSigner, to_pem};
    let dir = shikko_pki::DataDir::new(data);
    let ca_key = dir.load_key("operator-ca").unwrap();
    let ca_der = dir.read_cert("operator-ca").unwrap();
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let now = shikko_core::UnixTime::now();
    let der = shikko_pki::operator_client_certificate(
        &Issuer::from_certificate(&ca_key, &ca_der).unwrap(),
        cn,
        None,
        key.public_key_der(),
        shikko_core::Serial::from_u128(serial).unwrap(),
        shikko_core::UnixTime(now.0 - 86_400),
        now.plus_secs(30 * 86_400),
    )
    .unwrap();
    let (c, k) = (
        out.join(format!("{cn}.pem")),
        out.join(format!("{cn}-key.pem")),
    );
    std::fs::write(&c, to_pem("CERTIFICATE", &der).unwrap()).unwrap();
    shikko_pki::write_file_atomic(
        &k,
        to_pem("PRIVATE KEY", &key.to_pkcs8_der().unwrap())
            .unwrap()
            .as_bytes(),
        0o600,
    )
    .unwrap();
    (c, k)
}

#[test]
fn a_registered_client_certificate_is_a_verifiers_credential_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    setup_demo_dir(&data);
    let samples = data.join("samples");
    let tls = InfoTls::from_data_dir(&data, &d.join("tls")).unwrap();
    let reg_cfg = registry_config(d, &data, &tls);
    let registry = start_registry(&reg_cfg);
    let ep = registry.endpoint.clone();
    let (bank_cert, bank_key) = client_cert(&data, d, "bank-y", 0x7001);
    let (stranger_cert, stranger_key) = client_cert(&data, d, "stranger", 0x7002);

    // A verifier with a token and, registered next, a client certificate.
    let out = run(&[
        "admin",
        "verifier-add",
        "bank-y",
        "--name",
        "Y",
        "--endpoint",
        &ep,
    ]);
    let (_, token) = token_of(&out);
    let out = run(&[
        "admin",
        "verifier-cert-add",
        "bank-y",
        "--cert",
        bank_cert.to_str().unwrap(),
        "--endpoint",
        &ep,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert_id = text
        .split("certificate ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    // The same certificate twice, or something that is not one: refused.
    let again = run(&[
        "admin",
        "verifier-cert-add",
        "bank-y",
        "--cert",
        bank_cert.to_str().unwrap(),
        "--endpoint",
        &ep,
    ]);
    assert!(!again.status.success());
    let list = run(&["admin", "verifier-list", "--endpoint", &ep]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains(&format!("{cert_id}: in force")),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );

    let https = format!(
        "https = {{ listen = \"127.0.0.1:0\", cert = {:?}, key = {:?}, client_ca = {:?}, reload_secs = 1 }}\n",
        tls.cert, tls.key, tls.client_ca
    );
    let access = format!(
        "access = {{ mode = \"restricted\", info = {ep:?}, refresh_secs = 1, report_secs = 1 }}\n{https}"
    );
    let roles = Loopback::new(d);
    let ocsp = start_role("ocsp", &roles.ocsp(&data, &ep, &access).unwrap());
    let crl = start_role("crl", &roles.crl(&data, &ep, 3600, &access).unwrap());
    let ocsp_url = format!("https://localhost:{}/ocsp", port_of(&ocsp.field("https")));
    let crl_url = format!(
        "https://localhost:{}/crl/sign/full.crl",
        port_of(&crl.field("https"))
    );
    let reqfile = d.join("req.der");
    good_request(&samples, &reqfile);
    let ca = &tls.client_ca;
    let bank = Some((bank_cert.as_path(), bank_key.as_path()));
    let stranger = Some((stranger_cert.as_path(), stranger_key.as_path()));

    // The registered certificate: answered (once the table and the index are in).
    assert!(shikko_testkit::until(60, || {
        let (s, _, b) = curl(&ocsp_url, ca, bank, Some(&reqfile), &[]);
        s == 200 && answered(&b)
    }));
    // HTTP/2 as well, with its purpose.
    let (s, h, b) = curl(
        &ocsp_url,
        ca,
        bank,
        Some(&reqfile),
        &["--http2", "-H", "Shikko-Purpose: signature"],
    );
    assert!(s == 200 && answered(&b) && h.starts_with("http/2"), "{h}");
    assert!(shikko_testkit::until(60, || curl(
        &crl_url,
        ca,
        bank,
        None,
        &[]
    )
    .0 == 200));
    // A certificate of the same CA, not registered: OCSP `unauthorized`, CRLs 403.
    let (s, _, b) = curl(&ocsp_url, ca, stranger, Some(&reqfile), &[]);
    assert_eq!((s, b.as_slice()), (200, UNAUTHORIZED.as_slice()));
    let (s, _, _) = curl(&crl_url, ca, stranger, None, &[]);
    assert_eq!(s, 403);
    // No certificate: 401, unless a token in force comes over TLS instead.
    let (s, h, _) = curl(&crl_url, ca, None, None, &[]);
    assert_eq!(s, 401, "{h}");
    let bearer = format!("Authorization: Bearer {token}");
    let (s, _, _) = curl(&crl_url, ca, None, None, &["-H", &bearer]);
    assert_eq!(s, 200);
    // Plain HTTP is still served to the token, never to a certificate (it has none).
    let (s, _, _) = http(&crl.field("http"), "GET", "/crl/sign/full.crl", &[], b"");
    assert_eq!(s, 401);

    // Revoked: refused within a refresh; the token still works.
    let out = run(&[
        "admin",
        "verifier-cert-revoke",
        "bank-y",
        &cert_id,
        "--endpoint",
        &ep,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shikko_testkit::until(10, || {
        curl(&ocsp_url, ca, bank, Some(&reqfile), &[]).2 == UNAUTHORIZED
    }));
    assert!(shikko_testkit::until(10, || curl(
        &crl_url,
        ca,
        bank,
        None,
        &[]
    )
    .0 == 403));
    assert_eq!(curl(&crl_url, ca, None, None, &["-H", &bearer]).0, 200);

    // Metered as the verifier's, and the refusals as such.
    let month = this_month();
    let mut rows = Vec::new();
    assert!(
        shikko_testkit::until(20, || {
            rows = usage(&ep, &month);
            count(&rows, "bank-y", "ocsp", "signature", "good") == 1
                && count(&rows, "bank-y", "ocsp", "unspecified", "good") >= 1
                && count(&rows, "bank-y", "crl_full", "unspecified", "ok") >= 3
                && count(&rows, "-", "ocsp", "unspecified", "refused_bad_certificate") >= 2
                && count(
                    &rows,
                    "-",
                    "crl_full",
                    "unspecified",
                    "refused_bad_certificate",
                ) >= 2
                && count(&rows, "-", "crl_full", "unspecified", "refused_no_token") == 2
        }),
        "{rows:#?}"
    );
    drop((ocsp, crl, registry));
}

fn port_of(addr: &str) -> String {
    addr.rsplit(':').next().unwrap().to_string()
}
