//! Who may call what: the one authorization table of Shikko's gRPC methods
//! (issue 12). Every method of every service in the compiled descriptors
//! has exactly one rule here; a test proves it, so a new RPC cannot ship
//! without one. Callers are internal identities (`spiffe://shikko/role/NAME`
//! in a certificate from the internal CA, named by `shikko_pki::InternalRole`)
//! or, on the 4-information service's public port, [`OPERATOR`]: a bank's
//! operator authenticated by the operator CA.
//!
//! The table is data; every internal gRPC server enforces it in one layer
//! (`shikko_runtime::authz` with the policy `shikko_access::InternalAccess`).
//! docs/SECURITY.md prints it and says why each rule is what it is.

/// A bank's operator, authenticated by the operator CA (the `Info` service only).
pub const OPERATOR: &str = "operator";

/// A holder on the 4-information service's public port: anyone at the
/// transport, proven by a signature with their user-authentication
/// certificate's key in the request (the `HolderAccess` service only).
pub const HOLDER: &str = "holder";

/// One method and the callers it admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The gRPC path, `/package.Service/Method`.
    pub method: &'static str,
    /// The identities that may call it.
    pub callers: &'static [&'static str],
    /// Why, in a few words (printed in docs/SECURITY.md).
    pub why: &'static str,
}

/// `Registry.Follow` asking for events or writes (both carry 4 information)
/// admits only these; a status-only `Follow` admits its rule's callers.
pub const FOLLOW_WITH_PERSONAL_DATA: &[&str] = &["info", "standby"];

/// `Registry.GetStatus` asking for the newest serial of a chain (which links
/// a person's certificates) admits only these.
pub const STATUS_WITH_NEWEST_SERIAL: &[&str] = &["info", "admin"];

/// The table.
pub const RULES: &[Rule] = &[
    Rule {
        method: "/shikko.v1.Registry/Ingest",
        callers: &["authority"],
        why: "only the issuing authority records issuance and revocation",
    },
    Rule {
        method: "/shikko.v1.Registry/IngestStream",
        callers: &["authority"],
        why: "only the issuing authority records issuance and revocation",
    },
    Rule {
        method: "/shikko.v1.Registry/GetStatus",
        callers: &["admin", "auditor", "ocsp", "info"],
        why: "status for operations; the newest serial only to info and admin",
    },
    Rule {
        method: "/shikko.v1.Registry/Follow",
        callers: &["crl", "ocsp", "info", "standby"],
        why: "the roles that follow the feed; events and writes only to info and the standby",
    },
    Rule {
        method: "/shikko.v1.Registry/Snapshot",
        callers: &["crl", "ocsp", "info", "standby"],
        why: "followers load the state when they start empty or the feed was pruned below them; the replica content (4 information) only to the info role and a standby",
    },
    Rule {
        method: "/shikko.v1.Registry/ScanRevoked",
        callers: &["crl", "standby"],
        why: "the CRL role's mirror (and a standby) scans the revoked index",
    },
    Rule {
        method: "/shikko.v1.Registry/ListPartitions",
        callers: &["crl", "ocsp", "info", "admin", "standby"],
        why: "municipality codes, no personal data",
    },
    Rule {
        method: "/shikko.v1.Registry/Checkpoint",
        callers: &["admin", "standby"],
        why: "writes a copy of the store to disk: an administrator's act, or the backup taker's",
    },
    Rule {
        method: "/shikko.v1.Registry/Replicate",
        callers: &["registry", "standby"],
        why: "the other registry of a pair receives every record as stored (4 information) and confirms it",
    },
    Rule {
        method: "/shikko.v1.Registry/Promote",
        callers: &["admin"],
        why: "makes a standby the primary: an administrator's act in a failover",
    },
    Rule {
        method: "/shikko.v1.Registry/AcknowledgeAlone",
        callers: &["admin"],
        why: "gives up the second disk until a standby catches up: an administrator's act",
    },
    Rule {
        method: "/shikko.v1.OcspResponder/Check",
        callers: &["admin", "auditor"],
        why: "the internal twin of the public HTTP responder, for diagnostics",
    },
    Rule {
        method: "/shikko.v1.CrlPublisher/List",
        callers: &["admin", "auditor"],
        why: "operations; platform operators fetch CRLs over public HTTP",
    },
    Rule {
        method: "/shikko.v1.CrlPublisher/Download",
        callers: &["admin", "auditor"],
        why: "operations; platform operators fetch CRLs over public HTTP",
    },
    Rule {
        method: "/shikko.v1.CrlPublisher/Watch",
        callers: &["admin", "auditor"],
        why: "operations; platform operators fetch CRLs over public HTTP",
    },
    Rule {
        method: "/shikko.v1.CrlPublisher/Build",
        callers: &["admin"],
        why: "a build on demand costs the builder: an administrator's act",
    },
    Rule {
        method: "/shikko.v1.Info/Query",
        callers: &[OPERATOR],
        why: "banks' operators, per consent, rate-limited and audited",
    },
    Rule {
        method: "/shikko.v1.Info/QueryBatch",
        callers: &[OPERATOR],
        why: "banks' operators, per consent, rate-limited and audited",
    },
    Rule {
        method: "/shikko.v1.Info/ConsentChallenge",
        callers: &[OPERATOR],
        why: "a bank asks for the challenge its customer signs",
    },
    Rule {
        method: "/shikko.v1.Info/RecordConsent",
        callers: &[OPERATOR],
        why: "a bank records the consent its customer signed",
    },
    Rule {
        method: "/shikko.v1.Info/WithdrawConsent",
        callers: &[OPERATOR],
        why: "a bank records a withdrawal",
    },
    Rule {
        method: "/shikko.v1.Info/Usage",
        callers: &[OPERATOR],
        why: "a bank reads its own usage",
    },
    Rule {
        method: "/shikko.v1.Info/Expiring",
        callers: &[OPERATOR],
        why: "a bank learns which consenting customers must renew soon",
    },
    Rule {
        method: "/shikko.v1.Link/Resolve",
        callers: &[OPERATOR],
        why: "a verifier's operator: status and pseudonym, audited",
    },
    Rule {
        method: "/shikko.v1.Link/Current",
        callers: &[OPERATOR],
        why: "a verifier's operator: its pseudonyms' current serials, audited",
    },
    Rule {
        method: "/shikko.v1.HolderAccess/Challenge",
        callers: &[HOLDER],
        why: "a holder asks for the challenge they sign: costs no disk",
    },
    Rule {
        method: "/shikko.v1.HolderAccess/Accesses",
        callers: &[HOLDER],
        why: "a holder reads their own access record, proven by their user-authentication key; audited",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/RegisterProvider",
        callers: &["admin"],
        why: "who may query is an administrator's decision",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/RegisterOperator",
        callers: &["admin"],
        why: "who may query is an administrator's decision",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/AddOperatorCertificate",
        callers: &["admin"],
        why: "who may query is an administrator's decision",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/RevokeOperatorCertificate",
        callers: &["admin"],
        why: "who may query is an administrator's decision",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/SetRateLimit",
        callers: &["admin"],
        why: "who may query how much is an administrator's decision",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/SetOperatorProviders",
        callers: &["admin"],
        why: "who may query for whom is an administrator's decision",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/ListOperators",
        callers: &["admin", "auditor"],
        why: "auditors check who may query",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/AuditHead",
        callers: &["admin", "auditor"],
        why: "the audit log is read by administrators and auditors",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/ExportAudit",
        callers: &["admin", "auditor"],
        why: "the audit log is read by administrators and auditors",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/AuditTreeHead",
        callers: &["admin", "auditor", "witness"],
        why: "signed heads are what witnesses and auditors compare: hashes, no records",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/AuditConsistency",
        callers: &["admin", "auditor", "witness"],
        why: "a witness checks each head against the last one it saw: hashes, no records",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/AuditInclusion",
        callers: &["admin", "auditor"],
        why: "a record of the audit log with its proof: read by administrators and auditors",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/PruneAudit",
        callers: &["admin"],
        why: "deletes archived audit records below a signed head: an administrator's act, audited",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/RegisterVerifier",
        callers: &["admin"],
        why: "who may read revocation data is an administrator's decision",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/AddVerifierToken",
        callers: &["admin"],
        why: "who may read revocation data is an administrator's decision",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/RevokeVerifierToken",
        callers: &["admin"],
        why: "who may read revocation data is an administrator's decision",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/AddVerifierCertificate",
        callers: &["admin"],
        why: "who may read revocation data is an administrator's decision",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/RevokeVerifierCertificate",
        callers: &["admin"],
        why: "who may read revocation data is an administrator's decision",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/ListVerifiers",
        callers: &["admin", "auditor"],
        why: "auditors check who may read revocation data",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/VerifierTable",
        callers: &["crl", "ocsp", "admin"],
        why: "the CRL and OCSP roles check requests against the tokens and certificates in force (hashes only)",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/ReportUsage",
        callers: &["crl", "ocsp"],
        why: "the CRL and OCSP roles report what they served, for invoices",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/VerifierUsage",
        callers: &["admin", "auditor"],
        why: "usage per verifier, for invoices and their audit",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/Checkpoint",
        callers: &["admin"],
        why: "writes a copy of the store to disk: an administrator's act",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/LinkKeys",
        callers: &["admin", "auditor"],
        why: "which link key is in use is checked by auditors; the keys never leave the store",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/RotateLinkKey",
        callers: &["admin"],
        why: "changes every verifier's pseudonyms: an administrator's act",
    },
    Rule {
        method: "/shikko.v1.InfoAdmin/RetireLinkKey",
        callers: &["admin"],
        why: "makes the pseudonyms of the previous key unknown: an administrator's act",
    },
];

/// Every internal identity: the callers of what every endpoint serves
/// beside its own services.
pub const ANY_INTERNAL: &[&str] = &[
    "registry",
    "crl",
    "ocsp",
    "info",
    "authority",
    "admin",
    "auditor",
    "standby",
    "witness",
];

/// The rules of the standard services every internal endpoint serves
/// beside its own (gRPC health and server reflection); not in the
/// compiled descriptors, so listed apart.
pub const SERVING_RULES: &[Rule] = &[
    Rule {
        method: "/grpc.health.v1.Health/Check",
        callers: ANY_INTERNAL,
        why: "whether a role serves: no data",
    },
    Rule {
        method: "/grpc.health.v1.Health/Watch",
        callers: ANY_INTERNAL,
        why: "whether a role serves: no data",
    },
    Rule {
        method: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        callers: &["admin", "auditor"],
        why: "the API's shape, for grpcurl: operations only",
    },
];

/// How much of a server one method may take: every gRPC endpoint enforces
/// these in one layer (`shikko_runtime::limits`), beside the authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest request message (each message of a request stream).
    pub max_message_bytes: u32,
    /// Calls in progress at once, per endpoint (a response stream counts
    /// until it ends); one more is refused with RESOURCE_EXHAUSTED.
    pub concurrency: u32,
    /// How long the call may take to answer (to its first response, for a
    /// stream; for a request stream, reading all of it); DEADLINE_EXCEEDED
    /// past it. 0: none (a request stream that runs as long as its caller
    /// sends).
    pub timeout_secs: u32,
}

const KIB: u32 = 1024;
const MIB: u32 = 1024 * KIB;

/// A request that names a few things (a serial, an issuer, a day).
const SMALL: Limits = Limits {
    max_message_bytes: 4 * KIB,
    concurrency: 256,
    timeout_secs: 30,
};

/// A stream that runs as long as its caller reads (a feed, a scan, a
/// download): few at once.
const fn stream(concurrency: u32) -> Limits {
    Limits {
        max_message_bytes: 4 * KIB,
        concurrency,
        timeout_secs: 30,
    }
}

/// What writes a copy of a store or builds CRLs: one or a few at once, minutes.
const fn heavy(concurrency: u32) -> Limits {
    Limits {
        max_message_bytes: 4 * KIB,
        concurrency,
        timeout_secs: 3600,
    }
}

/// The limits of each method; [`DEFAULT_LIMITS`] for a method not listed
/// (the health and reflection services).
pub const LIMITS: &[(&str, Limits)] = &[
    (
        "/shikko.v1.Registry/Ingest",
        Limits {
            max_message_bytes: 64 * MIB,
            concurrency: 64,
            timeout_secs: 300,
        },
    ),
    (
        "/shikko.v1.Registry/IngestStream",
        Limits {
            max_message_bytes: 64 * MIB,
            concurrency: 16,
            // The authority's stream runs as long as it sends.
            timeout_secs: 0,
        },
    ),
    ("/shikko.v1.Registry/GetStatus", SMALL),
    ("/shikko.v1.Registry/Follow", stream(64)),
    ("/shikko.v1.Registry/ScanRevoked", stream(8)),
    ("/shikko.v1.Registry/Snapshot", stream(4)),
    ("/shikko.v1.Registry/ListPartitions", SMALL),
    ("/shikko.v1.Registry/Checkpoint", heavy(1)),
    // The standby's confirmations (small), for as long as the link lasts;
    // one standby at a time (a second link replaces the first).
    (
        "/shikko.v1.Registry/Replicate",
        Limits {
            max_message_bytes: 64 * KIB,
            concurrency: 2,
            timeout_secs: 0,
        },
    ),
    ("/shikko.v1.Registry/Promote", SMALL),
    ("/shikko.v1.Registry/AcknowledgeAlone", SMALL),
    (
        "/shikko.v1.OcspResponder/Check",
        Limits {
            max_message_bytes: 64 * KIB,
            concurrency: 64,
            timeout_secs: 30,
        },
    ),
    ("/shikko.v1.CrlPublisher/List", SMALL),
    ("/shikko.v1.CrlPublisher/Download", stream(16)),
    ("/shikko.v1.CrlPublisher/Watch", stream(64)),
    ("/shikko.v1.CrlPublisher/Build", heavy(4)),
    ("/shikko.v1.Info/Query", SMALL),
    (
        "/shikko.v1.Info/QueryBatch",
        Limits {
            // 20,000 serials of up to 20 octets, with their framing.
            max_message_bytes: MIB,
            concurrency: 32,
            timeout_secs: 120,
        },
    ),
    ("/shikko.v1.Info/ConsentChallenge", SMALL),
    (
        "/shikko.v1.Info/RecordConsent",
        Limits {
            // A signing certificate and a signature.
            max_message_bytes: 64 * KIB,
            concurrency: 256,
            timeout_secs: 30,
        },
    ),
    ("/shikko.v1.Info/WithdrawConsent", SMALL),
    ("/shikko.v1.Info/Usage", SMALL),
    (
        "/shikko.v1.Info/Expiring",
        Limits {
            max_message_bytes: 4 * KIB,
            concurrency: 16,
            timeout_secs: 120,
        },
    ),
    (
        "/shikko.v1.Link/Resolve",
        Limits {
            // 10,000 serials of up to 20 octets, with their framing.
            max_message_bytes: MIB,
            concurrency: 32,
            timeout_secs: 120,
        },
    ),
    (
        "/shikko.v1.Link/Current",
        Limits {
            // 10,000 pseudonyms of 35 characters, with their framing.
            max_message_bytes: MIB,
            concurrency: 32,
            timeout_secs: 120,
        },
    ),
    ("/shikko.v1.HolderAccess/Challenge", SMALL),
    (
        "/shikko.v1.HolderAccess/Accesses",
        Limits {
            // A certificate (a few KiB) and a signature.
            max_message_bytes: 16 * KIB,
            concurrency: 64,
            timeout_secs: 30,
        },
    ),
    ("/shikko.v1.InfoAdmin/RegisterProvider", SMALL),
    (
        "/shikko.v1.InfoAdmin/RegisterOperator",
        Limits {
            max_message_bytes: 64 * KIB,
            concurrency: 16,
            timeout_secs: 30,
        },
    ),
    (
        "/shikko.v1.InfoAdmin/AddOperatorCertificate",
        Limits {
            max_message_bytes: 64 * KIB,
            concurrency: 16,
            timeout_secs: 30,
        },
    ),
    ("/shikko.v1.InfoAdmin/RevokeOperatorCertificate", SMALL),
    ("/shikko.v1.InfoAdmin/SetRateLimit", SMALL),
    ("/shikko.v1.InfoAdmin/SetOperatorProviders", SMALL),
    ("/shikko.v1.InfoAdmin/ListOperators", SMALL),
    ("/shikko.v1.InfoAdmin/AuditHead", SMALL),
    ("/shikko.v1.InfoAdmin/ExportAudit", stream(4)),
    ("/shikko.v1.InfoAdmin/AuditTreeHead", SMALL),
    ("/shikko.v1.InfoAdmin/AuditConsistency", SMALL),
    ("/shikko.v1.InfoAdmin/AuditInclusion", SMALL),
    ("/shikko.v1.InfoAdmin/PruneAudit", heavy(1)),
    ("/shikko.v1.InfoAdmin/RegisterVerifier", SMALL),
    ("/shikko.v1.InfoAdmin/AddVerifierToken", SMALL),
    ("/shikko.v1.InfoAdmin/RevokeVerifierToken", SMALL),
    (
        "/shikko.v1.InfoAdmin/AddVerifierCertificate",
        Limits {
            // A certificate (a few KiB).
            max_message_bytes: 64 * KIB,
            concurrency: 16,
            timeout_secs: 30,
        },
    ),
    ("/shikko.v1.InfoAdmin/RevokeVerifierCertificate", SMALL),
    ("/shikko.v1.InfoAdmin/ListVerifiers", SMALL),
    ("/shikko.v1.InfoAdmin/VerifierTable", SMALL),
    (
        "/shikko.v1.InfoAdmin/ReportUsage",
        Limits {
            // Thousands of counters after a busy interval.
            max_message_bytes: 4 * MIB,
            concurrency: 16,
            timeout_secs: 30,
        },
    ),
    ("/shikko.v1.InfoAdmin/VerifierUsage", SMALL),
    ("/shikko.v1.InfoAdmin/Checkpoint", heavy(1)),
    ("/shikko.v1.InfoAdmin/LinkKeys", SMALL),
    ("/shikko.v1.InfoAdmin/RotateLinkKey", heavy(1)),
    ("/shikko.v1.InfoAdmin/RetireLinkKey", heavy(1)),
];

/// The limits of the standard services (health, reflection) and of a
/// method no one serves.
pub const DEFAULT_LIMITS: Limits = Limits {
    max_message_bytes: 64 * KIB,
    concurrency: 64,
    timeout_secs: 30,
};

/// The limits of `method`.
pub fn limits(method: &str) -> Limits {
    LIMITS
        .iter()
        .find(|(m, _)| *m == method)
        .map_or(DEFAULT_LIMITS, |(_, l)| *l)
}

/// The rule of `method` (`/package.Service/Method`), if it has one.
pub fn rule(method: &str) -> Option<&'static Rule> {
    RULES
        .iter()
        .chain(SERVING_RULES)
        .find(|r| r.method == method)
}

/// Whether `caller` may call `method`: a method without a rule admits no one.
pub fn admits(method: &str, caller: &str) -> bool {
    rule(method).is_some_and(|r| r.callers.contains(&caller))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use prost::Message;

    /// Every method of the compiled descriptors, as `/package.Service/Method`.
    fn described_methods() -> Vec<String> {
        described().into_iter().map(|(m, _)| m).collect()
    }

    /// Every described method, and whether its request is a stream.
    fn described() -> Vec<(String, bool)> {
        let set = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap();
        let mut out = Vec::new();
        for file in set.file {
            let package = file.package.clone().unwrap_or_default();
            for service in &file.service {
                for method in &service.method {
                    out.push((
                        format!(
                            "/{package}.{}/{}",
                            service.name.as_deref().unwrap_or_default(),
                            method.name.as_deref().unwrap_or_default()
                        ),
                        method.client_streaming(),
                    ));
                }
            }
        }
        out
    }

    #[test]
    fn every_described_method_has_exactly_one_rule_and_every_rule_a_method() {
        let described = described_methods();
        assert!(described.len() >= 20, "{described:?}");
        for m in &described {
            let n = RULES.iter().filter(|r| r.method == m).count();
            assert_eq!(n, 1, "{m}: {n} rules (a new RPC needs exactly one)");
        }
        for r in RULES {
            assert!(
                described.iter().any(|m| m == r.method),
                "{}: a rule for no method",
                r.method
            );
        }
    }

    #[test]
    fn every_described_method_has_its_limits() {
        let described = described_methods();
        for m in &described {
            let n = LIMITS.iter().filter(|(l, _)| l == m).count();
            assert_eq!(n, 1, "{m}: {n} limits (a new RPC needs its own)");
        }
        for (m, l) in LIMITS {
            assert!(
                described.iter().any(|d| d == m),
                "{m}: limits for no method"
            );
            assert!(l.max_message_bytes >= 1024 && l.concurrency >= 1);
            // Only a request stream may run without a time limit.
            let request_stream = self::described()
                .iter()
                .any(|(d, streams)| d == m && *streams);
            assert!(l.timeout_secs >= 1 || request_stream, "{m}");
        }
        assert_eq!(limits("/grpc.health.v1.Health/Check"), DEFAULT_LIMITS);
        assert_eq!(
            limits("/shikko.v1.Registry/Ingest").max_message_bytes,
            64 << 20
        );
    }

    #[test]
    fn callers_are_known_and_no_one_is_admitted_by_default() {
        let known = [
            "registry",
            "crl",
            "ocsp",
            "info",
            "authority",
            "admin",
            "auditor",
            "standby",
            "witness",
            OPERATOR,
            HOLDER,
        ];
        for r in RULES {
            assert!(!r.callers.is_empty(), "{}", r.method);
            for c in r.callers {
                assert!(known.contains(c), "{}: unknown caller {c}", r.method);
            }
            // The operator CA's certificates reach only the public
            // services (Info, Link).
            let public = r.method.starts_with("/shikko.v1.Info/")
                || r.method.starts_with("/shikko.v1.Link/");
            assert_eq!(r.callers.contains(&OPERATOR), public, "{}", r.method);
            // Anyone at the transport reaches the HolderAccess service
            // only, and nothing else admits them.
            let holder = r.method.starts_with("/shikko.v1.HolderAccess/");
            assert_eq!(r.callers.contains(&HOLDER), holder, "{}", r.method);
            if holder {
                assert_eq!(r.callers, &[HOLDER], "{}", r.method);
            }
        }
        for c in FOLLOW_WITH_PERSONAL_DATA
            .iter()
            .chain(STATUS_WITH_NEWEST_SERIAL)
        {
            assert!(known.contains(c));
        }
        for r in SERVING_RULES {
            assert!(!r.callers.contains(&OPERATOR), "{}", r.method);
            assert!(rule(r.method).is_some());
        }
        assert!(admits("/grpc.health.v1.Health/Check", "ocsp"));
        assert!(!admits(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "ocsp"
        ));
        assert!(admits("/shikko.v1.Registry/Ingest", "authority"));
        assert!(!admits("/shikko.v1.Registry/Ingest", "ocsp"));
        assert!(!admits("/shikko.v1.Registry/NoSuchMethod", "admin"));
        assert!(!admits("/shikko.v1.InfoAdmin/SetRateLimit", OPERATOR));
    }

    #[test]
    fn docs_security_prints_the_table_as_it_is() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/SECURITY.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let rows: Vec<&str> = doc
            .lines()
            .filter(|l| l.starts_with("| `/shikko") || l.starts_with("| `/grpc"))
            // The rules' rows (three columns), not the limits' (four).
            .filter(|l| l.matches('|').count() == 4)
            .collect();
        assert_eq!(
            rows.len(),
            RULES.len() + SERVING_RULES.len(),
            "one row per rule in docs/SECURITY.md"
        );
        for r in RULES.iter().chain(SERVING_RULES) {
            let want = format!("| `{}` | {} | {} |", r.method, r.callers.join(", "), r.why);
            assert!(
                rows.contains(&want.as_str()),
                "docs/SECURITY.md does not print the rule as it is:\n{want}"
            );
        }
        // And the limits, one row each.
        for (m, l) in LIMITS {
            let within = match l.timeout_secs {
                0 => "no limit".to_string(),
                t => format!("{t} s"),
            };
            let want = format!(
                "| `{m}` | {} | {} | {within} |",
                human_bytes(l.max_message_bytes),
                l.concurrency,
            );
            assert!(
                doc.lines().any(|line| line == want),
                "docs/SECURITY.md does not print the limits as they are:\n{want}"
            );
        }
    }

    fn human_bytes(n: u32) -> String {
        if n.is_multiple_of(1 << 20) {
            format!("{} MiB", n >> 20)
        } else {
            format!("{} KiB", n >> 10)
        }
    }
}
