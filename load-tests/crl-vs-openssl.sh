#!/usr/bin/env bash
# Benchmark: Shikko's full-CRL build against `openssl ca -gencrl` over the
# same revocations (fixtures written by the crl_scale example).
#
# usage: load-tests/crl-vs-openssl.sh [ENTRIES] [DIR] [ALG]
#   ENTRIES  revoked entries (default 1000000)
#   DIR      work directory (default /tmp/shikko-crl-bench-ENTRIES); the fill
#            is skipped when DIR already holds ENTRIES entries
#   ALG      CA key: p256 (default) or rsa2048
# environment:
#   CARGO_TARGET_DIR  cargo target dir (default $HOME/.cache/shikko/target-release)
#   OPENSSL=1         run openssl even above 2,000,000 entries (it is slow)
set -euo pipefail

ENTRIES=${1:-1000000}
DIR=${2:-/tmp/shikko-crl-bench-$ENTRIES}
ALG=${3:-p256}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/shikko/target-release}
VENV_PY=$HOME/.cache/shikko/venv/bin/python
TIME=/usr/bin/time

[[ $ENTRIES =~ ^[0-9]+$ && $ENTRIES -gt 0 ]] || { echo "ENTRIES must be a positive integer" >&2; exit 2; }
[[ -x $TIME ]] || { echo "$TIME is required (apt-get install time)" >&2; exit 2; }

echo "== building crl_scale (release, with every bench example: one unit graph, one RocksDB build; CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
(cd "$ROOT" && cargo build --release --workspace --examples --features shikko-crl/fixtures)
BIN=$CARGO_TARGET_DIR/release/examples/crl_scale

echo "== fill: $ENTRIES entries in $DIR ($ALG)"
"$BIN" fill --dir "$DIR" --entries "$ENTRIES" --alg "$ALG"

LOGS=$DIR/logs
mkdir -p "$LOGS"
ROWS=()

# Wall seconds from time -v's "Elapsed (wall clock) time (h:mm:ss or m:ss): ...".
wall_of() {
    awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + p[i]
        printf "%.2f", s }' "$1"
}
# Peak RSS in MiB from time -v's "Maximum resident set size (kbytes): ...".
rss_of() {
    awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$1"
}
# Entries of a DER CRL.
count_entries() {
    local crl=$1
    if [[ -x $VENV_PY ]] && "$VENV_PY" -c 'import cryptography' 2>/dev/null && ((ENTRIES > 200000)); then
        "$VENV_PY" -c 'import sys
from cryptography import x509
print(len(x509.load_der_x509_crl(open(sys.argv[1], "rb").read())))' "$crl"
    else
        openssl crl -inform DER -in "$crl" -noout -text | grep -c 'Serial Number' || true
    fi
}

SHIKKO_CRL=$DIR/out/sign/full.crl
for threads in 1 2; do
    for run in 1 2; do
        rm -rf "$DIR/out"
        log=$LOGS/shikko-t$threads-r$run
        echo "== shikko build: RAYON_NUM_THREADS=$threads, run $run"
        RAYON_NUM_THREADS=$threads $TIME -v -o "$log.time" "$BIN" build --dir "$DIR" | tee "$log.out"
        line=$(grep '^full:' "$log.out")
        n=$(sed -E 's/.*entries=([0-9]+).*/\1/' <<<"$line")
        b=$(sed -E 's/.*bytes=([0-9]+).*/\1/' <<<"$line")
        s=$(sed -E 's/.*seconds=([0-9.]+).*/\1/' <<<"$line")
        ROWS+=("shikko|$threads|$(wall_of "$log.time")|$s|$(rss_of "$log.time")|$b|$n")
    done
done

OPENSSL_CRL=$DIR/openssl.crl
RUN_OPENSSL=1
if ((ENTRIES > 2000000)) && [[ ${OPENSSL:-0} != 1 ]]; then
    RUN_OPENSSL=0
    echo "== openssl skipped above 2,000,000 entries (set OPENSSL=1 to run it)"
fi
if ((RUN_OPENSSL)); then
    rm -f "$OPENSSL_CRL" "$OPENSSL_CRL.der"
    log=$LOGS/openssl
    echo "== openssl ca -gencrl"
    $TIME -v -o "$log.time" openssl ca -gencrl -config "$DIR/openssl.cnf" -out "$OPENSSL_CRL" 2>&1 | tee "$log.out"
    # openssl ca writes PEM: compare sizes in DER.
    openssl crl -in "$OPENSSL_CRL" -outform DER -out "$OPENSSL_CRL.der"
    ob=$(stat -c %s "$OPENSSL_CRL.der")
    echo "== counting openssl CRL entries"
    on=$(count_entries "$OPENSSL_CRL.der")
    ROWS+=("openssl|1|$(wall_of "$log.time")|-|$(rss_of "$log.time")|$ob|$on")
fi

echo "== counting shikko CRL entries"
sn=$(count_entries "$SHIKKO_CRL")
echo "== verifying $SHIKKO_CRL against $DIR/ca.pem"
verify=$(openssl crl -inform DER -in "$SHIKKO_CRL" -CAfile "$DIR/ca.pem" -noout 2>&1) || true

echo
echo "== summary: $ENTRIES entries, $ALG CA key"
echo "openssl: $(openssl version)"
echo "nproc:   $(nproc)"
echo "cpu:     $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "(wall_s: whole process; build_s: the build_full call; bytes: DER)"
printf '%-8s %7s %8s %8s %9s %11s %9s\n' tool threads wall_s build_s peak_MiB crl_bytes entries
for r in "${ROWS[@]}"; do
    IFS='|' read -r tool t w s m b n <<<"$r"
    printf '%-8s %7s %8s %8s %9s %11s %9s\n' "$tool" "$t" "$w" "$s" "$m" "$b" "$n"
done
echo "shikko CRL entries (parsed): $sn"
status=0
if ((RUN_OPENSSL)); then
    echo "openssl CRL entries (parsed): $on"
    if [[ $sn == "$on" ]]; then
        echo "entry counts: same ($sn)"
    else
        echo "entry counts: DIFFER (shikko $sn, openssl $on)"
        status=1
    fi
fi
echo "shikko CRL verification: $verify"
[[ $verify == *"verify OK"* ]] || status=1
exit $status
