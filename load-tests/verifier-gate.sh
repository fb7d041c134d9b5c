#!/usr/bin/env bash
# Benchmark (issue 15): the cost of the verifier gate on the OCSP cached
# path. Two `shikko serve ocsp` processes follow one registry (with the
# 4-information service, where verifiers are registered and usage kept):
# one without `[ocsp.access]` (no gate), one restricted to registered
# verifiers with metering on (a bearer token checked, every request
# counted and reported each second). The same cached GET of a good signing
# certificate, h2load `--h1`, 8 connections, one client thread, SECONDS
# each, the two alternating (ROUNDS rounds, the order swapped every round);
# requests/s and the server's CPU per answer (utime + stime from /proc).
#
# usage: load-tests/verifier-gate.sh [SECONDS] [ROUNDS]
# needs: h2load (Debian nghttp2-client), openssl; the release build
# (CARGO_TARGET_DIR, default ~/.cache/shikko/target-release).
set -euo pipefail
SECS=${1:-10}
ROUNDS=${2:-3}
# shellcheck source=load-tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v h2load > /dev/null || { echo "h2load is required (apt install nghttp2-client)" >&2; exit 2; }
bench_bin
bench_dir gate-bench
bench_demo
# The info service's operator-port TLS, as PEM (the registry's [info] needs files).
mkdir -p "$DIR/tls"
openssl x509 -inform DER -in "$DIR/data/certs/server.der" -out "$DIR/tls/server.pem"
openssl pkey -inform DER -in "$DIR/data/keys/server.key" -out "$DIR/tls/server-key.pem"
chmod 600 "$DIR/tls/server-key.pem"
cat > "$DIR/registry.toml" <<EOF
[registry]
data_dir = "$DIR/data"
grpc_listen = "127.0.0.1:0"
[info]
grpc_listen = "127.0.0.1:0"
tls_cert = "$DIR/tls/server.pem"
tls_key = "$DIR/tls/server-key.pem"
client_ca = "$S/operator-ca.pem"
signing_cas = ["$S/sign-ca.pem"]
$COMMON
EOF
start registry "$DIR/registry.toml"
EP=http://$(field grpc)
TOKEN=$("$BIN" admin verifier-add bench --name bench --ocsp-per-second 1000000 --ocsp-burst 1000000 --endpoint "$EP" | tail -1)
ocsp_config() { # name access-line
    cat > "$DIR/$1.toml" <<EOF
[ocsp]
data_dir = "$DIR/data"
registry = "$EP"
http_listen = "127.0.0.1:0"
grpc_listen = "127.0.0.1:0"
$2
$COMMON
EOF
}
ocsp_config plain ""
ocsp_config gated "access = { mode = \"restricted\", info = \"$EP\", refresh_secs = 10, report_secs = 1 }"
start ocsp "$DIR/plain.toml"; PLAIN=$(field http); PLAIN_PID=$LASTPID
start ocsp "$DIR/gated.toml"; GATED=$(field http); GATED_PID=$LASTPID
bench_request
# Warm: both caught up, the answer signed and cached, the token loaded.
for _ in $(seq 100); do
    a=$(curl -s -o /dev/null -w '%{size_download}' "http://$PLAIN/ocsp/$B64")
    b=$(curl -s -o /dev/null -w '%{size_download}' -H "Authorization: Bearer $TOKEN" "http://$GATED/ocsp/$B64")
    [[ $a -gt 100 && $b -gt 100 ]] && break
    sleep 0.2
done
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
run() { # name addr pid [header]
    local c0 out n c1
    c0=$(cpu "$3")
    if [[ -n ${4:-} ]]; then
        out=$(h2load --h1 -c 8 -t 1 -D "$SECS" -H "$4" "http://$2/ocsp/$B64")
    else
        out=$(h2load --h1 -c 8 -t 1 -D "$SECS" "http://$2/ocsp/$B64")
    fi
    c1=$(cpu "$3")
    n=$(sed -n 's/^requests: [0-9]* total, [0-9]* started, \([0-9]*\) done, \([0-9]*\) succeeded.*/\2/p' <<< "$out")
    local rps p50
    rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<< "$out")
    printf '%-8s %10s req/s  %6.1f us CPU/answer  (%s answers)\n' "$1" "$rps" \
        "$(echo "($c1 - $c0) * 1000000 / $TICK / $n" | bc -l)" "$n"
}
echo "== OCSP cached GET, h2load --h1 -c 8 -t 1 -D $SECS, $(nproc) cores, $(date -u +%F)"
for r in $(seq "$ROUNDS"); do
    if (( r % 2 )); then
        run plain "$PLAIN" "$PLAIN_PID"
        run gated "$GATED" "$GATED_PID" "Authorization: Bearer $TOKEN"
    else
        run gated "$GATED" "$GATED_PID" "Authorization: Bearer $TOKEN"
        run plain "$PLAIN" "$PLAIN_PID"
    fi
done
sleep 2
echo "== metered (shikko usage export, this month):"
"$BIN" usage export --month "$(TZ=Asia/Tokyo date +%Y-%m)" --endpoint "$EP" | grep -E '^day|bench'
