#!/usr/bin/env bash
# Benchmark: Shikko's OCSP responder against `openssl ocsp -index ... -port`
# serving the same certificates, same machine, same load tool (oha), loopback
# only, each run bounded in time.
#
# usage: load-tests/ocsp-vs-openssl.sh [ALG] [SECONDS] [CONNECTIONS]
#   ALG          responder key: p256 (default) or rsa2048
#   SECONDS      duration of each load run (default 10)
#   CONNECTIONS  concurrent connections (default 32)
# environment: SERVER_CPUS / OHA_CPUS (taskset lists, e.g. 0 and 1) pin the
# servers and the load generator to separate cores.
# needs: oha (cargo install oha), openssl, python3; builds the example
# ocsp-responder/examples/ocsp_bench.rs in release.
set -euo pipefail

ALG=${1:-p256}
SECS=${2:-10}
CONNS=${3:-32}
CERTS=100000
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/shikko/target-release}
DIR=$(mktemp -d /tmp/shikko-ocsp-bench.XXXXXX)
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
[[ -x $OHA ]] || { echo "oha is required: cargo install oha" >&2; exit 2; }
SHIKKO_PORT=18081
OPENSSL_PORT=18082
for port in $SHIKKO_PORT $OPENSSL_PORT; do
    if (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null; then
        echo "port $port is in use (a responder left from an earlier run?)" >&2
        exit 2
    fi
done
PIDS=()
# openssl's -multi parent does not take its children down with it: kill by command line too.
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    pkill -f "ocsp -index $DIR/index.txt" 2>/dev/null || true
    # Leave the ports free for the next run.
    for _ in $(seq 50); do
        pgrep -f "ocsp -index $DIR/index.txt" > /dev/null || break
        sleep 0.1
    done
}
trap cleanup EXIT

echo "== building ocsp_bench (release, with every bench example: one unit graph, one RocksDB build; CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
(cd "$ROOT" && cargo build --release --workspace --examples --features shikko-crl/fixtures)
BIN=$CARGO_TARGET_DIR/release/examples/ocsp_bench

"$BIN" setup --dir "$DIR" --alg "$ALG" --certs "$CERTS"
PIN_SERVER=()
[[ -n ${SERVER_CPUS:-} ]] && PIN_SERVER=(taskset -c "$SERVER_CPUS")
PIN_OHA=()
[[ -n ${OHA_CPUS:-} ]] && PIN_OHA=(taskset -c "$OHA_CPUS")
"${PIN_SERVER[@]}" "$BIN" serve --dir "$DIR" --certs "$CERTS" --addr "127.0.0.1:$SHIKKO_PORT" > "$DIR/shikko.log" 2>&1 &
PIDS+=($!)
# openssl's responder: as many processes as cores, like Shikko's runtime.
SERVER_PROCS=$(nproc)
[[ -n ${SERVER_CPUS:-} ]] && SERVER_PROCS=$(taskset -c "$SERVER_CPUS" nproc)
"${PIN_SERVER[@]}" openssl ocsp -index "$DIR/index.txt" -port "$OPENSSL_PORT" -rsigner "$DIR/resp.pem" -rkey "$DIR/resp-key.pem" \
    -CA "$DIR/ca.pem" -nmin 60 -multi "$SERVER_PROCS" -timeout 2 -ignore_err > "$DIR/openssl.log" 2>&1 &
PIDS+=($!)
for port in $SHIKKO_PORT $OPENSSL_PORT; do
    for _ in $(seq 50); do
        (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break
        sleep 0.2
    done
done

# The requests: one good certificate, without and with a nonce (openssl's own client makes them).
GOOD=0x4A5000000001
(cd "$DIR" && openssl ocsp -issuer ca.pem -serial "$GOOD" -no_nonce -reqout req.der > /dev/null 2>&1)
(cd "$DIR" && openssl ocsp -issuer ca.pem -serial "$GOOD" -nonce -reqout req-nonce.der > /dev/null 2>&1)
B64=$(base64 -w0 < "$DIR/req.der" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g')

# Both answer correctly before being measured.
for url in "http://127.0.0.1:$SHIKKO_PORT/ocsp" "http://127.0.0.1:$OPENSSL_PORT/"; do
    out=$(cd "$DIR" && openssl ocsp -issuer ca.pem -CAfile ca.pem -serial "$GOOD" -url "$url" -no_nonce 2>&1)
    [[ $out == *"Response verify OK"* && $out == *": good"* ]] || { echo "$url: $out"; exit 1; }
done

# CPU time (user + system, clock ticks) of a server's processes: Shikko's
# one process, or every process of openssl's responder (-multi forks).
CLK=$(getconf CLK_TCK)
server_ticks() { # shikko|openssl
    local pids
    if [[ $1 == shikko ]]; then pids=${PIDS[0]}; else pids=$(pgrep -f "ocsp -index $DIR/index.txt" || true); fi
    local total=0 p
    for p in $pids; do
        [[ -r /proc/$p/stat ]] || continue
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$total"
}

ROWS=()
run() { # name url method body [rate]
    local name=$1 url=$2 method=$3 body=${4:-} rate=${5:-}
    local args=(-z "${SECS}s" -c "$CONNS" --no-tui --output-format json)
    [[ -n $rate ]] && args+=(-q "$rate")
    if [[ $method == POST ]]; then
        args+=(-m POST -T application/ocsp-request -D "$body")
    fi
    local server=${name%% *} t0 t1
    t0=$(server_ticks "$server")
    "${PIN_OHA[@]}" "$OHA" "${args[@]}" "$url" > "$DIR/$name.json"
    t1=$(server_ticks "$server")
    local line
    line=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
s = d["summary"]; p = d["latencyPercentiles"]; codes = d.get("statusCodeDistribution", {})
if p["p99"] is None:
    sys.exit("no answers at all: %s" % d.get("errorDistribution"))
ok = codes.get("200", 0); total = sum(codes.values()) or 1
answers = s["requestsPerSec"] * s["total"]
cpu_us = (int(sys.argv[2]) / int(sys.argv[3])) * 1e6 / answers
print("%.0f|%.3f|%.3f|%.3f|%.1f" % (s["requestsPerSec"], p["p50"] * 1000, p["p99"] * 1000, 100.0 * ok / total, cpu_us))
' "$DIR/$name.json" $((t1 - t0)) "$CLK")
    ROWS+=("$name|$line")
}

echo "== load: $SECS s each, $CONNS connections, $ALG responder key"
run "shikko GET (cached)" "http://127.0.0.1:$SHIKKO_PORT/ocsp/$B64" GET
run "shikko POST (cached)" "http://127.0.0.1:$SHIKKO_PORT/ocsp" POST "$DIR/req.der"
run "openssl POST" "http://127.0.0.1:$OPENSSL_PORT/" POST "$DIR/req.der"
run "openssl GET" "http://127.0.0.1:$OPENSSL_PORT/$B64" GET
run "shikko POST nonce" "http://127.0.0.1:$SHIKKO_PORT/ocsp" POST "$DIR/req-nonce.der"
# Latency under a fixed load: Shikko's cached GET offered ten times openssl's
# best rate (the goal's load), and offered openssl's own best rate (same load, both).
best=0
for r in "${ROWS[@]}"; do
    IFS='|' read -r name rps _ <<<"$r"
    [[ $name == openssl* ]] && ((rps > best)) && best=$rps
done
run "shikko GET at 10x ossl" "http://127.0.0.1:$SHIKKO_PORT/ocsp/$B64" GET "" $((best * 10))
run "shikko GET at 1x ossl" "http://127.0.0.1:$SHIKKO_PORT/ocsp/$B64" GET "" "$best"
RAW=$("${PIN_SERVER[@]}" "$BIN" sign --dir "$DIR" --seconds 5)

echo
echo "== pinning: servers ${SERVER_CPUS:-any core}, oha ${OHA_CPUS:-any core}"
echo "== summary ($ALG responder key, $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(openssl version | cut -d' ' -f1-2), oha $("$OHA" --version | awk '{print $2}'))"
printf '%-22s %10s %9s %9s %7s %14s\n' run "req/s" "p50 ms" "p99 ms" "200 %" "server CPU us"
for r in "${ROWS[@]}"; do
    IFS='|' read -r name rps p50 p99 ok cpu <<<"$r"
    printf '%-22s %10s %9s %9s %7s %14s\n' "$name" "$rps" "$p50" "$p99" "$ok" "$cpu"
done
echo "$RAW"
rm -rf "$DIR"
