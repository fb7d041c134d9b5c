# Shared by the load scripts that run Shikko's roles as processes
# (ocsp-ceiling.sh, verifier-gate.sh): source it, then
#   bench_bin             BIN: $SHIKKO_BIN, or the release build (one unit
#                         graph with the bench examples) of this checkout
#   bench_dir NAME        DIR: a new temporary directory, removed on exit
#                         with every process started (bench_cleanup_hook,
#                         if defined, runs first)
#   bench_demo            the demo's data in $DIR/data (P-256, 300 holders); S: its samples
#   start ROLE CONFIG     `shikko serve ROLE` (after the prefix LAUNCH, if set);
#                         LINE: its "listening" line, LASTPID
#   field NAME            the address NAME= in LINE
#   bench_request         $DIR/req.der (a GET-able OCSPRequest for sign-good.pem), B64 its path
# and COMMON, the telemetry and loopback TLS sections of every config.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/shikko/target-release}
COMMON='[telemetry]
metrics_listen = "127.0.0.1:0"
log_filter = "warn"
[tls]
insecure_loopback_only = true'
PIDS=()
# A command prefix for the roles `start` starts (e.g. taskset -c 0).
LAUNCH=()

bench_bin() {
    if [[ -n ${SHIKKO_BIN:-} ]]; then
        # A given build (another commit's, for a before/after comparison).
        BIN=$SHIKKO_BIN
    else
        echo "== building (release, the binary and every bench example: one unit graph; CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
        (cd "$ROOT" && cargo build --release --workspace --bins --examples --features shikko-crl/fixtures)
        BIN=$CARGO_TARGET_DIR/release/shikko
    fi
}

bench_cleanup() {
    if declare -F bench_cleanup_hook > /dev/null; then bench_cleanup_hook; fi
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$DIR"
}

bench_dir() {
    DIR=$(mktemp -d "/tmp/shikko-$1.XXXXXX")
    trap bench_cleanup EXIT
}

bench_demo() {
    "$BIN" demo --setup-only --holders 300 --key-algorithm p256 --data-dir "$DIR/data" > /dev/null
    S=$DIR/data/samples
}

start() { # role config -> sets LINE, LASTPID
    local out=$DIR/$1.$RANDOM.out
    "${LAUNCH[@]}" "$BIN" serve "$1" --config "$2" > "$out" 2> "$DIR/$1.err" &
    PIDS+=($!)
    LASTPID=$!
    for _ in $(seq 100); do [[ -s $out ]] && break; sleep 0.1; done
    LINE=$(head -1 "$out")
}

field() { tr ' ' '\n' <<< "$LINE" | sed -n "s/^$1=//p"; }

bench_request() {
    openssl ocsp -no_nonce -issuer "$S/sign-ca.pem" -cert "$S/sign-good.pem" -reqout "$DIR/req.der" > /dev/null 2>&1
    B64=$(base64 -w0 < "$DIR/req.der" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g')
}
