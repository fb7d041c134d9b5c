#!/usr/bin/env bash
# Benchmark: the 4-information service over mutual TLS on loopback: single
# queries (rate, p50/p99/p99.9) from C connections, and batches of 10,000
# serials; beside them, in the same run, the same answers computed in process
# from the store (no network, no TLS, no audit).
#
# usage: load-tests/info-load.sh [HOLDERS] [SECONDS] [CONNECTIONS]
#   HOLDERS      population, each with a real P-256 signing certificate and a
#                consent (signed, verified) to the bench bank; one in ten moved (default 100000)
#   SECONDS      duration of the single-query run (default 10)
#   CONNECTIONS  concurrent mTLS connections (default 32)
# environment: SERVER_CPUS / LOAD_CPUS (taskset lists) pin server and load generator.
set -euo pipefail

HOLDERS=${1:-100000}
SECS=${2:-10}
CONNS=${3:-32}
PORT=18095
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/shikko/target-release}
DIR=$(mktemp -d /tmp/shikko-info-bench.XXXXXX)
if (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then
    echo "port $PORT is in use (a server left from an earlier run?)" >&2
    exit 2
fi
SERVER=
cleanup() {
    [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

echo "== building info_bench (release, with every bench example: one unit graph, one RocksDB build; CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
(cd "$ROOT" && cargo build --release --workspace --examples --features shikko-crl/fixtures)
BIN=$CARGO_TARGET_DIR/release/examples/info_bench
PIN_SERVER=()
[[ -n ${SERVER_CPUS:-} ]] && PIN_SERVER=(taskset -c "$SERVER_CPUS")
PIN_LOAD=()
[[ -n ${LOAD_CPUS:-} ]] && PIN_LOAD=(taskset -c "$LOAD_CPUS")

"$BIN" setup --dir "$DIR" --holders "$HOLDERS"
RESOLVE=$("${PIN_SERVER[@]}" "$BIN" resolve --dir "$DIR" --seconds 5)
"${PIN_SERVER[@]}" "$BIN" serve --dir "$DIR" --addr "127.0.0.1:$PORT" > "$DIR/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do
    (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
    sleep 0.1
done
SINGLE=$("${PIN_LOAD[@]}" "$BIN" load --dir "$DIR" --addr "127.0.0.1:$PORT" --seconds "$SECS" --conns "$CONNS")
ONE=$("${PIN_LOAD[@]}" "$BIN" load --dir "$DIR" --addr "127.0.0.1:$PORT" --seconds "$SECS" --conns 1)
BATCH=$("${PIN_LOAD[@]}" "$BIN" batch --dir "$DIR" --addr "127.0.0.1:$PORT" --size 10000 --runs 10)

echo
echo "== summary ($HOLDERS holders, $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); server ${SERVER_CPUS:-any core}, load ${LOAD_CPUS:-any core})"
echo "$SINGLE"
echo "$ONE"
echo "$BATCH"
echo "$RESOLVE"
