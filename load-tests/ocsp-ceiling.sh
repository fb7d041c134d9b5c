#!/usr/bin/env bash
# Benchmark (issue 17): the ceiling of the OCSP cached path. The same
# answer bytes (the demo's cached OCSP answer for a good signing
# certificate) served by
#   - nginx, as a static file, tuned for it (open_file_cache, no sendfile
#     for 1.5 KB): the ceiling, what the kernel and one event loop per
#     core cost;
#   - Shikko's OCSP role (`shikko serve ocsp`, following a registry), by
#     GET (RFC 6960 appendix A) and by POST; and by GET from a second OCSP
#     role with `fast_path = false` (every request through hyper and axum,
#     as before issue 17's fast path), the comparison in the same run;
#   - `openssl ocsp -index ... -port`, the reference responder, signing
#     with the same CA (GET and POST; HTTP/1.1 only);
# with the same load tool (h2load), in one run, loopback only: HTTP/1.1
# and HTTP/2 (h2c, 10 streams a connection), at 8 and 32 connections, one
# client thread, SECONDS each after an unmeasured second. For each run:
# requests/s, the latency's p50 and p99 (from h2load's per-request log),
# the share of 200 answers, and the server's CPU per answer (utime +
# stime of its processes from /proc, over the run). Then nginx and
# Shikko's GET again at half of the peak each reached (HTTP/1.1, 8
# connections, h2load --rps): the latency of a server that is not
# saturated.
#
# usage: load-tests/ocsp-ceiling.sh [SECONDS]
# environment: SHIKKO_BIN, a `shikko` binary to measure instead of building one;
# PIN=1: every server on CPU 0 (nginx with one worker, Shikko with one HTTP
# thread) and h2load on CPU 1, so that the client takes no CPU from the
# server (steadier; each server has one core).
# needs: nginx and h2load (scripts/install-deps --bench installs Debian's
# nginx-light and nghttp2-client), openssl, python3; the release build
# (CARGO_TARGET_DIR, default ~/.cache/shikko/target-release).
set -euo pipefail
SECS=${1:-10}
# shellcheck source=load-tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
for tool in nginx h2load openssl python3 curl; do
    command -v $tool > /dev/null || PATH=$PATH:/usr/sbin
    command -v $tool > /dev/null || { echo "$tool is required (scripts/install-deps --bench)" >&2; exit 2; }
done
NGINX_H1=18091
NGINX_H2=18092
OPENSSL_PORT=18093
for port in $NGINX_H1 $NGINX_H2 $OPENSSL_PORT; do
    if (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null; then
        echo "port $port is in use (a server left from an earlier run?)" >&2
        exit 2
    fi
done
bench_bin
bench_dir ocsp-ceiling
SRV=()
CLI=()
THREADS=0
WORKERS=auto
if [[ -n ${PIN:-} ]]; then
    SRV=(taskset -c 0)
    CLI=(taskset -c 1)
    THREADS=1
    WORKERS=1
    LAUNCH=("${SRV[@]}")
fi
bench_cleanup_hook() {
    [[ -s $DIR/nginx.pid ]] && kill "$(cat "$DIR/nginx.pid")" 2>/dev/null || true
    pkill -f "ocsp -index $DIR/index.txt" 2>/dev/null || true
    for _ in $(seq 50); do
        pgrep -f "ocsp -index $DIR/index.txt" > /dev/null || break
        sleep 0.1
    done
}

bench_demo
cat > "$DIR/registry.toml" <<EOF
[registry]
data_dir = "$DIR/data"
grpc_listen = "127.0.0.1:0"
$COMMON
EOF
start registry "$DIR/registry.toml"
EP=http://$(field grpc)
cat > "$DIR/ocsp.toml" <<EOF
[ocsp]
data_dir = "$DIR/data"
registry = "$EP"
http_threads = $THREADS
http_listen = "127.0.0.1:0"
grpc_listen = "127.0.0.1:0"
$COMMON
EOF
start ocsp "$DIR/ocsp.toml"
SHIKKO=$(field http)
SHIKKO_PID=$LASTPID
sed 's/^\[ocsp\]$/[ocsp]\nfast_path = false/' "$DIR/ocsp.toml" > "$DIR/ocsp-full.toml"
start ocsp "$DIR/ocsp-full.toml"
FULL=$(field http)
FULL_PID=$LASTPID

# The request, and the answer Shikko caches for it (once its index is current).
bench_request
mkdir -p "$DIR/www/ocsp"
for at in $FULL $SHIKKO; do
    for _ in $(seq 100); do
        code=$(curl -s -o "$DIR/www/ocsp/answer.der" -w '%{http_code}' "http://$at/ocsp/$B64" || true)
        [[ $code == 200 ]] && break
        sleep 0.2
    done
    [[ $code == 200 ]] || { echo "the OCSP role at $at never answered: $(cat "$DIR/ocsp.err")" >&2; exit 1; }
done
out=$(openssl ocsp -respin "$DIR/www/ocsp/answer.der" -issuer "$S/sign-ca.pem" -cert "$S/sign-good.pem" -CAfile "$S/sign-ca.pem" 2>&1)
[[ $out == *"Response verify OK"* && $out == *": good"* ]] || { echo "the answer: $out" >&2; exit 1; }

# nginx: the same bytes as a static file, one worker per core, HTTP/1.1 on
# one port and h2c on another (nginx 1.22 speaks only HTTP/2 on an
# `http2` listener without TLS).
mkdir -p "$DIR/nginx"
cat > "$DIR/nginx/nginx.conf" <<EOF
worker_processes $WORKERS;
pid $DIR/nginx.pid;
error_log $DIR/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    # Tuned for one small file: its descriptor kept open (no open, fstat,
    # close per request), read into the response rather than sendfile'd
    # after the headers. 90,500/s against 65,100/s for the defaults
    # (sendfile, no open_file_cache) in a trial here.
    open_file_cache max=100 inactive=60s;
    open_file_cache_valid 60s;
    sendfile off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    types { application/ocsp-response der; }
    default_type application/ocsp-response;
    client_body_temp_path $DIR/nginx/body;
    proxy_temp_path $DIR/nginx/proxy;
    fastcgi_temp_path $DIR/nginx/fastcgi;
    uwsgi_temp_path $DIR/nginx/uwsgi;
    scgi_temp_path $DIR/nginx/scgi;
    server { listen 127.0.0.1:$NGINX_H1; root $DIR/www; }
    server { listen 127.0.0.1:$NGINX_H2 http2; root $DIR/www; http2_max_concurrent_streams 128; }
}
EOF
# nginx's workers may run as another user (root starts them as nobody):
# the answer is readable to all, the rest of the directory is not listable.
chmod 711 "$DIR"
chmod -R a+rX "$DIR/www"
"${SRV[@]}" nginx -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf"
for _ in $(seq 50); do [[ -s $DIR/nginx.pid ]] && break; sleep 0.1; done
cmp <(curl -s "http://127.0.0.1:$NGINX_H1/ocsp/answer.der") "$DIR/www/ocsp/answer.der" \
    || { echo "nginx does not serve the answer's bytes" >&2; exit 1; }

# openssl's responder over the same certificate, signing with the CA's own key
# (P-256, as Shikko's responder key): as many processes as cores.
serial=$(openssl x509 -in "$S/sign-good.pem" -noout -serial | cut -d= -f2)
expiry=$(date -u -d "$(openssl x509 -in "$S/sign-good.pem" -noout -enddate | cut -d= -f2)" +%y%m%d%H%M%SZ)
printf 'V\t%s\t\t%s\tunknown\t/CN=good\n' "$expiry" "$serial" > "$DIR/index.txt"
openssl pkey -inform DER -in "$DIR/data/keys/sign-ca.key" -out "$DIR/ca-key.pem"
"${SRV[@]}" openssl ocsp -index "$DIR/index.txt" -port "$OPENSSL_PORT" -rsigner "$S/sign-ca.pem" -rkey "$DIR/ca-key.pem" \
    -CA "$S/sign-ca.pem" -nmin 60 -multi "$(nproc)" -timeout 2 -ignore_err > "$DIR/openssl.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$OPENSSL_PORT) 2>/dev/null && break; sleep 0.2; done
out=$(openssl ocsp -issuer "$S/sign-ca.pem" -cert "$S/sign-good.pem" -CAfile "$S/sign-ca.pem" -url "http://127.0.0.1:$OPENSSL_PORT/" -no_nonce 2>&1)
[[ $out == *"Response verify OK"* && $out == *": good"* ]] || { echo "openssl ocsp: $out" >&2; exit 1; }

CLK=$(getconf CLK_TCK)
server_pids() { # nginx|shikko|openssl
    case $1 in
        nginx) pgrep -P "$(cat "$DIR/nginx.pid")"; cat "$DIR/nginx.pid" ;;
        shikko) echo "$SHIKKO_PID" ;;
        shikko_full) echo "$FULL_PID" ;;
        openssl) pgrep -f "ocsp -index $DIR/index.txt" || true ;;
    esac
}
server_ticks() {
    local total=0 p
    for p in $(server_pids "$1"); do
        [[ -r /proc/$p/stat ]] || continue
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$total"
}

ROWS=()
run() { # server label proto conns url [post] [requests/s per connection]
    local server=$1 label=$2 proto=$3 conns=$4 url=$5 post=${6:-} rps=${7:-}
    local args=(-c "$conns" -t 1 --log-file="$DIR/h2load.log")
    [[ -n $rps ]] && args+=(--rps "$rps")
    # openssl's responder closes every connection after its answer, and
    # h2load reconnects only when it counts requests (-n), not in a timed
    # run (-D): about SECS seconds' worth of its requests, then.
    if [[ $server == openssl ]]; then
        args+=(-n $((SECS * 8000)))
    else
        args+=(-D "$SECS")
    fi
    if [[ $proto == h1 ]]; then args+=(--h1); else args+=(-m 10); fi
    [[ -n $post ]] && args+=(-d "$DIR/req.der" -H "content-type: application/ocsp-request")
    local t0 t1 out warm=("${args[@]}")
    # One unmeasured second first (connections, caches), outside the CPU count.
    if [[ $server != openssl ]]; then
        warm=(-c "$conns" -t 1 -D 1)
        if [[ $proto == h1 ]]; then warm+=(--h1); else warm+=(-m 10); fi
        [[ -n $post ]] && warm+=(-d "$DIR/req.der" -H "content-type: application/ocsp-request")
        "${CLI[@]}" h2load "${warm[@]}" "$url" > /dev/null 2>&1 || true
    fi
    t0=$(server_ticks "$server")
    out=$("${CLI[@]}" h2load "${args[@]}" "$url" 2>&1)
    t1=$(server_ticks "$server")
    [[ $out == *"succeeded"* ]] || { echo "$label: $out" >&2; exit 1; }
    local line
    line=$(python3 - "$DIR/h2load.log" $((t1 - t0)) "$CLK" "$(grep -m1 '^finished in' <<< "$out")" <<'PY'
import re, sys
lat, ok, n = [], 0, 0
for l in open(sys.argv[1]):
    f = l.split("\t")
    if len(f) < 3:
        continue
    n += 1
    ok += f[1] == "200"
    lat.append(int(f[2]))
if not lat:
    sys.exit("no answers")
lat.sort()
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0
# "finished in 10.00s, 85000.00 req/s, ...": the measured period's rate.
rps = float(re.search(r"([0-9.]+) req/s", sys.argv[4]).group(1))
cpu_us = int(sys.argv[2]) / int(sys.argv[3]) * 1e6 / n
print("%.0f|%.3f|%.3f|%.2f|%.1f" % (rps, pct(0.50), pct(0.99), 100.0 * ok / n, cpu_us))
PY
)
    ROWS+=("$label|$proto|$conns|$line")
    LAST_RPS=${line%%|*}
    rm -f "$DIR/h2load.log"
}

for conns in 8 32; do
    for proto in h1 h2c; do
        nport=$NGINX_H1; [[ $proto == h2c ]] && nport=$NGINX_H2
        run nginx "nginx static file" $proto $conns "http://127.0.0.1:$nport/ocsp/answer.der"
        [[ $conns == 8 && $proto == h1 ]] && NGINX_PEAK=$LAST_RPS
        run shikko "shikko GET (cached)" $proto $conns "http://$SHIKKO/ocsp/$B64"
        [[ $conns == 8 && $proto == h1 ]] && SHIKKO_PEAK=$LAST_RPS
        run shikko_full "shikko GET, no fast" $proto $conns "http://$FULL/ocsp/$B64"
        run shikko "shikko POST (cached)" $proto $conns "http://$SHIKKO/ocsp" post
        if [[ $proto == h1 ]]; then
            run openssl "openssl ocsp GET" h1 $conns "http://127.0.0.1:$OPENSSL_PORT/$B64"
            run openssl "openssl ocsp POST" h1 $conns "http://127.0.0.1:$OPENSSL_PORT/" post
        fi
    done
done

# Half of each one's peak (HTTP/1.1, 8 connections), spread over the connections.
run nginx "nginx at half peak" h1 8 "http://127.0.0.1:$NGINX_H1/ocsp/answer.der" "" $((NGINX_PEAK / 16))
run shikko "shikko GET half peak" h1 8 "http://$SHIKKO/ocsp/$B64" "" $((SHIKKO_PEAK / 16))

echo
[[ -n ${PIN:-} ]] && echo "== PIN=1: servers on CPU 0 (nginx 1 worker, shikko http_threads = 1), h2load on CPU 1"
echo "== $SECS s each after 1 s unmeasured (openssl: $((SECS * 8000)) requests), h2load -t 1 (h2c: -m 10); $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); $(nginx -v 2>&1 | cut -d' ' -f3); $(openssl version | cut -d' ' -f1-2); $(h2load --version | head -1); answer $(stat -c %s "$DIR/www/ocsp/answer.der") octets"
printf '%-22s %5s %5s %10s %9s %9s %8s %12s\n' server proto conns "req/s" "p50 ms" "p99 ms" "200 %" "CPU us/ans"
for r in "${ROWS[@]}"; do
    IFS='|' read -r name proto conns rps p50 p99 ok cpu <<<"$r"
    printf '%-22s %5s %5s %10s %9s %9s %8s %12s\n' "$name" "$proto" "$conns" "$rps" "$p50" "$p99" "$ok" "$cpu"
done
