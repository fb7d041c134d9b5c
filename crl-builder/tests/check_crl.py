#!/usr/bin/env python3
"""Check a DER X.509 CRL against its issuing CA and an expectation file.

Usage:
    check_crl.py --ca CA.der --crl CRL.der --expect EXPECT.json

EXPECT.json:
    {
      "crl_number": 7,
      "delta_base": null | 5,
      "entries": {
        "<lowercase hex serial, no leading zeros>": {
          "reason": null | "key_compromise" | ... (cryptography ReasonFlags names),
          "invalidity_date": null | <unix seconds>
        }
      },
      "this_update": <unix seconds>,
      "next_update": <unix seconds>,
      "idp_directory_name": null | "<Name.rfc4514_string()>",
      "freshest_crl_uri": null | "http://..."
    }

The structure is checked with `cryptography`; then pkilint is run as
`lint_crl lint -t CRL -p PKIX -f JSON CRL.der` (from the bin dir of the
interpreter running this script). FATAL/ERROR findings fail the check;
lower severities are printed as info on stderr.

On success prints "OK <n> entries" on stdout and exits 0; otherwise prints
each problem on its own stderr line and exits 1.

Run it with the venv interpreter that has `cryptography` and `pkilint`.
Stdlib + cryptography only.
"""

import argparse
import json
import os
import subprocess
import sys

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import ExtensionOID

REASONS = {flag.name: flag for flag in x509.ReasonFlags}
FAILING_SEVERITIES = {"FATAL", "ERROR"}
EXPECT_KEYS = {
    "crl_number",
    "delta_base",
    "entries",
    "this_update",
    "next_update",
    "idp_directory_name",
    "freshest_crl_uri",
}


def get_ext(extensions, cls):
    try:
        return extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None


def parse_serial(key, problems):
    try:
        value = int(key, 16)
    except (TypeError, ValueError):
        problems.append(f"expect: entry key {key!r} is not a hex serial")
        return None
    if key != format(value, "x"):
        problems.append(
            f"expect: entry key {key!r} is not lowercase hex without leading zeros"
        )
    return value


def check_expect_shape(expect, problems):
    if not isinstance(expect, dict):
        problems.append("expect: top level is not a JSON object")
        return False
    unknown = set(expect) - EXPECT_KEYS
    if unknown:
        problems.append(f"expect: unknown keys {sorted(unknown)}")
    ok = True
    for key in ("crl_number", "entries", "this_update", "next_update"):
        if key not in expect:
            problems.append(f"expect: missing required key {key!r}")
            ok = False
    if "entries" in expect and not isinstance(expect["entries"], dict):
        problems.append("expect: 'entries' is not an object")
        ok = False
    return ok


def check_entries(crl, expect, problems):
    revoked = list(crl)
    actual = {}
    for rc in revoked:
        serial = rc.serial_number
        if serial in actual:
            problems.append(f"serial {serial:x}: listed more than once")
        else:
            actual[serial] = rc
    if len(revoked) != len(actual):
        problems.append(
            f"revoked certificates: {len(revoked)} entries but "
            f"{len(actual)} distinct serials"
        )

    expected = {}
    for key, spec in expect["entries"].items():
        serial = parse_serial(key, problems)
        if serial is None:
            continue
        if not isinstance(spec, dict):
            problems.append(f"expect: entry {key} is not an object")
            spec = {}
        extra = set(spec) - {"reason", "invalidity_date"}
        if extra:
            problems.append(f"expect: entry {key} has unknown keys {sorted(extra)}")
        if serial in expected:
            problems.append(f"expect: serial {serial:x} given twice")
        expected[serial] = spec

    for serial in sorted(set(expected) - set(actual)):
        problems.append(f"serial {serial:x}: expected but missing from CRL")
    for serial in sorted(set(actual) - set(expected)):
        problems.append(f"serial {serial:x}: in CRL but not expected")

    for serial in sorted(set(expected) & set(actual)):
        spec = expected[serial]
        rc = actual[serial]
        exts = rc.extensions
        tag = f"serial {serial:x}"

        want_reason = spec.get("reason")
        reason_ext = get_ext(exts, x509.CRLReason)
        if want_reason is None:
            if reason_ext is not None:
                problems.append(
                    f"{tag}: reasonCode present ({reason_ext.value.reason.name}) "
                    "but expected absent"
                )
        else:
            flag = REASONS.get(want_reason)
            if flag is None:
                problems.append(f"expect: {tag}: unknown reason {want_reason!r}")
            elif reason_ext is None:
                problems.append(f"{tag}: reasonCode missing, expected {want_reason}")
            elif reason_ext.value.reason != flag:
                problems.append(
                    f"{tag}: reasonCode {reason_ext.value.reason.name}, "
                    f"expected {want_reason}"
                )
        if reason_ext is not None and reason_ext.critical:
            problems.append(f"{tag}: reasonCode extension is critical")

        want_inv = spec.get("invalidity_date")
        inv_ext = get_ext(exts, x509.InvalidityDate)
        if want_inv is None:
            if inv_ext is not None:
                problems.append(
                    f"{tag}: invalidityDate present "
                    f"({int(inv_ext.value.invalidity_date_utc.timestamp())}) "
                    "but expected absent"
                )
        else:
            if inv_ext is None:
                problems.append(f"{tag}: invalidityDate missing, expected {want_inv}")
            else:
                got = inv_ext.value.invalidity_date_utc.timestamp()
                if got != want_inv:
                    problems.append(
                        f"{tag}: invalidityDate {int(got)}, expected {want_inv}"
                    )
        if inv_ext is not None and inv_ext.critical:
            problems.append(f"{tag}: invalidityDate extension is critical")

    return len(revoked)


def check_crl(ca, crl, expect, problems):
    # Signature.
    try:
        if not crl.is_signature_valid(ca.public_key()):
            problems.append("signature: invalid against CA public key")
    except (UnsupportedAlgorithm, TypeError, ValueError) as e:
        problems.append(f"signature: cannot verify: {e}")

    # Issuer.
    if crl.issuer != ca.subject:
        problems.append(
            f"issuer: {crl.issuer.rfc4514_string()!r} != CA subject "
            f"{ca.subject.rfc4514_string()!r}"
        )
    elif crl.issuer.public_bytes() != ca.subject.public_bytes():
        problems.append("issuer: equal to CA subject but DER encoding differs")

    exts = crl.extensions

    # CRL number.
    num = get_ext(exts, x509.CRLNumber)
    if num is None:
        problems.append("cRLNumber: missing")
    else:
        if num.value.crl_number != expect["crl_number"]:
            problems.append(
                f"cRLNumber: {num.value.crl_number}, expected {expect['crl_number']}"
            )
        if num.critical:
            problems.append("cRLNumber: critical")

    # Delta CRL indicator.
    want_base = expect.get("delta_base")
    delta = get_ext(exts, x509.DeltaCRLIndicator)
    if want_base is None:
        if delta is not None:
            problems.append(
                f"deltaCRLIndicator: present (base {delta.value.crl_number}) "
                "but expected absent"
            )
    elif delta is None:
        problems.append(f"deltaCRLIndicator: missing, expected base {want_base}")
    else:
        if delta.value.crl_number != want_base:
            problems.append(
                f"deltaCRLIndicator: base {delta.value.crl_number}, "
                f"expected {want_base}"
            )
        if not delta.critical:
            problems.append("deltaCRLIndicator: not critical")

    # Authority key identifier.
    aki = get_ext(exts, x509.AuthorityKeyIdentifier)
    ski = get_ext(ca.extensions, x509.SubjectKeyIdentifier)
    if aki is None:
        problems.append("authorityKeyIdentifier: missing")
    else:
        if aki.critical:
            problems.append("authorityKeyIdentifier: critical")
        if ski is None:
            problems.append("CA certificate has no subjectKeyIdentifier to compare")
        elif aki.value.key_identifier != ski.value.digest:
            got = (aki.value.key_identifier or b"").hex()
            problems.append(
                f"authorityKeyIdentifier: keyIdentifier {got or '<absent>'} "
                f"!= CA SKI {ski.value.digest.hex()}"
            )

    # Validity.
    got_this = crl.last_update_utc.timestamp()
    if got_this != expect["this_update"]:
        problems.append(f"thisUpdate: {int(got_this)}, expected {expect['this_update']}")
    nu = crl.next_update_utc
    if nu is None:
        problems.append(f"nextUpdate: missing, expected {expect['next_update']}")
    elif nu.timestamp() != expect["next_update"]:
        problems.append(
            f"nextUpdate: {int(nu.timestamp())}, expected {expect['next_update']}"
        )

    # Issuing distribution point.
    want_idp = expect.get("idp_directory_name")
    try:
        idp = exts.get_extension_for_oid(ExtensionOID.ISSUING_DISTRIBUTION_POINT)
    except x509.ExtensionNotFound:
        idp = None
    if want_idp is None:
        if idp is not None:
            problems.append("issuingDistributionPoint: present but expected absent")
    elif idp is None:
        problems.append(f"issuingDistributionPoint: missing, expected {want_idp!r}")
    else:
        if not idp.critical:
            problems.append("issuingDistributionPoint: not critical")
        full = idp.value.full_name
        if (
            full is None
            or len(full) != 1
            or not isinstance(full[0], x509.DirectoryName)
        ):
            problems.append(
                "issuingDistributionPoint: fullName is not a single "
                f"directoryName: {full!r} (relativeName "
                f"{idp.value.relative_name!r})"
            )
        else:
            got = full[0].value.rfc4514_string()
            if got != want_idp:
                problems.append(
                    f"issuingDistributionPoint: directoryName {got!r}, "
                    f"expected {want_idp!r}"
                )

    # Freshest CRL.
    want_uri = expect.get("freshest_crl_uri")
    fresh = get_ext(exts, x509.FreshestCRL)
    if want_uri is None:
        if fresh is not None:
            problems.append("freshestCRL: present but expected absent")
    elif fresh is None:
        problems.append(f"freshestCRL: missing, expected {want_uri!r}")
    else:
        if fresh.critical:
            problems.append("freshestCRL: critical")
        dps = list(fresh.value)
        want_names = [x509.UniformResourceIdentifier(want_uri)]
        if (
            len(dps) != 1
            or dps[0].full_name != want_names
            or dps[0].reasons is not None
            or dps[0].crl_issuer is not None
        ):
            problems.append(
                f"freshestCRL: expected one distributionPoint with fullName "
                f"[URI {want_uri!r}], got {dps!r}"
            )

    return check_entries(crl, expect, problems)


def run_pkilint(crl_path, problems):
    lint = os.path.join(os.path.dirname(sys.executable), "lint_crl")
    cmd = [lint, "lint", "-t", "CRL", "-p", "PKIX", "-f", "JSON", crl_path]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        problems.append(f"pkilint: cannot run {lint}: {e}")
        return
    # lint_crl exits with the number of findings (clamped), so the exit
    # code alone says nothing about severity: parse the JSON report.
    try:
        report = json.loads(proc.stdout)
        results = report["results"]
    except (ValueError, KeyError, TypeError):
        err = " | ".join(proc.stderr.strip().splitlines()[-5:])
        problems.append(
            f"pkilint: no JSON report (exit {proc.returncode}): "
            f"{proc.stdout.strip()[:200]!r} {err}"
        )
        return
    for result in results:
        where = f"{result.get('validator')} @ {result.get('node_path')}"
        for f in result.get("finding_descriptions", []):
            sev = f.get("severity")
            line = f"pkilint {sev} {f.get('code')}: {where}"
            if f.get("message"):
                line += f": {f['message']}"
            if sev in FAILING_SEVERITIES:
                problems.append(line)
            else:
                print(f"info: {line}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ca", required=True, help="issuing CA certificate (DER)")
    ap.add_argument("--crl", required=True, help="CRL to check (DER)")
    ap.add_argument("--expect", required=True, help="expectations (JSON)")
    args = ap.parse_args()

    problems = []
    ca = crl = expect = None
    try:
        with open(args.ca, "rb") as f:
            ca = x509.load_der_x509_certificate(f.read())
    except (OSError, ValueError) as e:
        problems.append(f"cannot load CA certificate {args.ca}: {e}")
    try:
        with open(args.crl, "rb") as f:
            crl = x509.load_der_x509_crl(f.read())
    except (OSError, ValueError) as e:
        problems.append(f"cannot load CRL {args.crl}: {e}")
    try:
        with open(args.expect, "rb") as f:
            expect = json.load(f)
    except (OSError, ValueError) as e:
        problems.append(f"cannot load expectations {args.expect}: {e}")

    count = 0
    if ca is not None and crl is not None and expect is not None:
        if check_expect_shape(expect, problems):
            try:
                count = check_crl(ca, crl, expect, problems)
            except Exception as e:  # noqa: BLE001 - lazy extension parsing
                # cryptography parses extensions lazily (ValueError,
                # DuplicateExtension, ...): report rather than crash.
                problems.append(f"CRL parse error: {type(e).__name__}: {e}")
    if os.path.exists(args.crl):
        run_pkilint(args.crl, problems)

    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return 1
    print(f"OK {count} entries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
