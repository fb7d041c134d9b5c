#!/usr/bin/env python3
"""Check a DER OCSP response with Python `cryptography`.

Usage:
    check_ocsp.py RESPONSE.der ISSUER.pem SERIAL_HEX STATUS [REASON]

STATUS is good, revoked or unknown; REASON a cryptography ReasonFlags name
(key_compromise, certificate_hold, ...) for revoked answers. Checks: the
response is successful, signed by the certificate it carries (verified with
that certificate's key), which the issuer signed; the single response names
SERIAL_HEX with STATUS (and REASON), thisUpdate <= now < nextUpdate.
Prints "OK" and exits 0, or prints the problems and exits 1.
"""

import datetime
import sys

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp


def verify(public_key, signature, data, hash_algorithm):
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
    else:
        raise ValueError("unsupported key type")


def main():
    der_path, issuer_path, serial_hex, status = sys.argv[1:5]
    reason = sys.argv[5] if len(sys.argv) > 5 else None
    problems = []
    resp = ocsp.load_der_ocsp_response(open(der_path, "rb").read())
    issuer = x509.load_pem_x509_certificate(open(issuer_path, "rb").read())
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        print(f"response status {resp.response_status}", file=sys.stderr)
        sys.exit(1)
    certs = resp.certificates
    signer = certs[0] if certs else issuer
    try:
        verify(signer.public_key(), resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm)
    except Exception as e:  # noqa: BLE001
        problems.append(f"response signature does not verify: {e!r}")
    if certs:
        try:
            verify(issuer.public_key(), signer.signature, signer.tbs_certificate_bytes, signer.signature_hash_algorithm)
        except Exception as e:  # noqa: BLE001
            problems.append(f"the responder certificate is not signed by the issuer: {e!r}")
        eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            problems.append("the responder certificate lacks id-kp-OCSPSigning")
    singles = list(resp.responses)
    match = [s for s in singles if format(s.serial_number, "x") == serial_hex.lower().lstrip("0")]
    if len(match) != 1:
        problems.append(f"serial {serial_hex} not answered exactly once ({len(match)})")
    else:
        s = match[0]
        want = {"good": ocsp.OCSPCertStatus.GOOD, "revoked": ocsp.OCSPCertStatus.REVOKED,
                "unknown": ocsp.OCSPCertStatus.UNKNOWN}[status]
        if s.certificate_status != want:
            problems.append(f"status {s.certificate_status}, expected {want}")
        if status == "revoked" and reason is not None:
            got = s.revocation_reason.name if s.revocation_reason else None
            if got != reason:
                problems.append(f"reason {got}, expected {reason}")
        now = datetime.datetime.now(datetime.timezone.utc)
        if not (s.this_update_utc <= now + datetime.timedelta(seconds=5)):
            problems.append("thisUpdate in the future")
        if s.next_update_utc is None or s.next_update_utc <= now:
            problems.append("nextUpdate missing or past")
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
