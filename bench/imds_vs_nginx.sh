#!/usr/bin/env bash
# Serves the same leaf (/latest/meta-data/instance-id) from OpenIMDS and from
# nginx (1 worker, static file with the same bytes), each pinned to one core
# with wrk on the other, in the same run; prints req/s, p50/p99 and the ratio
# openimds/nginx for keep-alive and for a new connection per request
# (cloud-init's pattern). Loopback only; every run is bounded by DURATION.
#
# Two reference servers are measured in the same run, returning the same bytes:
#  - bare Beast (bench/bare_beast.cc: Beast's coroutine example, no routing,
#    identity or rendering): what a Beast-based server can reach here;
#  - the client ceiling (bench/ceiling_server.cc: raw epoll, one recv and one
#    send per request, nothing else): the most req/s one wrk thread can show
#    against any server on this machine. When ceiling/nginx is below a target
#    ratio, no server can be measured at that ratio with this method here.
#
# Env: OPENIMDS_BINARY (default: build into <repo>/build-bench, Release),
#      BARE_BEAST (default: <repo>/build-bench/bench/bare_beast; "none" skips it),
#      CEILING (default: <repo>/build-bench/bench/ceiling_server; "none" skips it),
#      TARGET (the keep-alive ratio to reach, default 1.3: the summary
#      says whether the client ceiling leaves room for it),
#      PIPELINE (unset: off; N: a third scenario where each wrk write carries N
#      pipelined requests, bench/pipeline.lua, as `openimds proxy` talks to
#      serve; not how the two main scenarios measure, and one wrk thread is
#      far from its limit there, so it shows the servers' own capacity),
#      DURATION (s, default 10), WARMUP (s, default 2), CONNECTIONS (default 64),
#      ROUNDS (default 1; with more, rounds interleave the servers and each
#      ratio uses each server's median round by req/s, with the spread shown),
#      SERVER_CPU (default 0), WRK_CPU (default 1), KEEP_TMP (keep the temp dir),
#      NGINX_CONTENT: static (default: the file, open_file_cache on, sendfile off,
#      nginx's fastest way to serve a tiny file) or return (`return 200 "<bytes>"`,
#      the bytes in the config: an upper bound for nginx, no file at all).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$REPO/bench/lib.sh"

DURATION=${DURATION:-10}
DURATION=${DURATION%s}
WARMUP=${WARMUP:-2}
WARMUP=${WARMUP%s}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-1}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
LEAF=/latest/meta-data/instance-id
NGINX_CONTENT=${NGINX_CONTENT:-static}
[[ $NGINX_CONTENT == static || $NGINX_CONTENT == return ]] || die "NGINX_CONTENT must be static or return"

need_tools wrk nginx curl taskset cmp
[[ $(nproc) -ge 2 ]] || echo "warning: fewer than 2 CPUs; server and wrk share a core" >&2

TMP=$(mktemp -d /tmp/imds-vs-nginx.XXXXXX)
chmod 755 "$TMP"                  # nginx workers (user nobody) read the docroot
trap cleanup EXIT

resolve_binary "$REPO"
BARE_BEAST=${BARE_BEAST:-$REPO/build-bench/bench/bare_beast}
start_openimds
IMDS_URL=http://$IMDS_ADDR$LEAF

# The static file is exactly the bytes OpenIMDS answers with.
mkdir -p "$TMP/www$(dirname "$LEAF")"
code=$(curl -s -o "$TMP/www$LEAF" -w '%{http_code}' "$IMDS_URL")
[[ $code == 200 ]] || die "openimds answered $code for $LEAF: $(cat "$TMP/www$LEAF")"
chmod 644 "$TMP/www$LEAF"

# nginx: 1 worker, no access log, keep-alive never cut by a request count.
# For a 19-byte file sendfile only adds a syscall and open_file_cache saves
# open/fstat/close per request: measured here, these settings double nginx's rate.
start_nginx() {
  local port content="root $TMP/www;"
  if [[ $NGINX_CONTENT == return ]]; then
    local body
    body=$(cat "$TMP/www$LEAF")
    [[ $body =~ ^[A-Za-z0-9._-]*$ ]] || die "NGINX_CONTENT=return needs a plain body, got '$body'"
    content="return 200 '$body';"
  fi
  for _ in $(seq 20); do
    port=$((20000 + RANDOM % 12000))
    [[ -z $(ss -Htln "sport = :$port") ]] && break
  done
  mkdir -p "$TMP/nginx"
  cat >"$TMP/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/plain;
  sendfile off;
  open_file_cache max=16;
  open_file_cache_valid 60s;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  server {
    listen 127.0.0.1:$port;
    location = $LEAF { $content }
    location = /nginx_status { stub_status; }
  }
}
EOF
  taskset -c "$SERVER_CPU" nginx -p "$TMP/nginx" -c "$TMP/nginx.conf" -e "$TMP/nginx/error.log" \
    >"$TMP/nginx/stdout.log" 2>&1 &
  NGINX_PID=$!
  BENCH_PIDS+=("$NGINX_PID")
  NGINX_ADDR=127.0.0.1:$port
  for _ in $(seq 50); do
    curl -s -o /dev/null "http://$NGINX_ADDR/nginx_status" && return 0
    kill -0 "$NGINX_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$TMP/nginx/error.log" "$TMP/nginx/stdout.log" >&2
  die "nginx did not start"
}
start_nginx
NGINX_URL=http://$NGINX_ADDR$LEAF

# Reference servers (PORT BODY on the command line, port printed on stdout):
# name -> URL and PID. They keep no counters.
declare -A REF_URL REF_PID
REFS=()
start_reference() {   # name binary
  local name=$1 bin=$2
  [[ $bin != none && -x $bin ]] || { echo "note: $name not measured ($bin)" >&2; return 0; }
  taskset -c "$SERVER_CPU" "$bin" 0 "$(cat "$TMP/www$LEAF")" >"$TMP/$name.port" 2>"$TMP/$name.log" &
  REF_PID[$name]=$!
  BENCH_PIDS+=("${REF_PID[$name]}")
  for _ in $(seq 50); do [[ -s $TMP/$name.port ]] && break; sleep 0.1; done
  REF_URL[$name]=http://127.0.0.1:$(head -1 "$TMP/$name.port")$LEAF
  curl -s -o "$TMP/$name.body" "${REF_URL[$name]}" && cmp -s "$TMP/$name.body" "$TMP/www$LEAF" ||
    die "$name did not serve the same bytes"
  REFS+=("$name")
}
start_reference beast "${BARE_BEAST:-none}"
start_reference ceiling "${CEILING:-$REPO/build-bench/bench/ceiling_server}"
TARGET=${TARGET:-1.3}
ref_counts() { echo "? ?"; }

# Same bytes from both, or no comparison.
curl -s -D "$TMP/nginx.headers" -o "$TMP/nginx.body" "$NGINX_URL"
curl -s -D "$TMP/imds.headers" -o "$TMP/imds.body" "$IMDS_URL"
cmp -s "$TMP/nginx.body" "$TMP/imds.body" || die "bodies differ: nginx '$(cat "$TMP/nginx.body")' vs openimds '$(cat "$TMP/imds.body")'"
grep -q '^HTTP/1.1 200' "$TMP/nginx.headers" || die "nginx: $(head -1 "$TMP/nginx.headers")"

# Connections accepted / requests served, as each server counts them.
nginx_counts() {   # "accepts requests" from stub_status
  curl -s "http://$NGINX_ADDR/nginx_status" | awk 'NR == 3 { print $1, $3 }'
}
imds_counts() {
  echo "$(imds_counter 'http_connections_total{listener="guest"}')" \
    "$(imds_counter 'http_requests_total{listener="guest"}')"
}

print_machine
echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //') ($NGINX_CONTENT)   duration: ${DURATION}s per run after a ${WARMUP}s warm-up"
echo "body: $(wc -c <"$TMP/imds.body") bytes, identical ('$(cat "$TMP/imds.body")');" \
  "response headers: nginx $(wc -c <"$TMP/nginx.headers") B, openimds $(wc -c <"$TMP/imds.headers") B"
echo

print_header conns requests
SUMMARY=()
SCENARIOS=(keepalive close)
[[ -n ${PIPELINE:-} ]] && SCENARIOS+=(pipelined)
export PIPELINE
for scenario in "${SCENARIOS[@]}"; do
  if [[ $scenario == keepalive ]]; then
    label="keep-alive ($CONNECTIONS conns)"; args=()
  elif [[ $scenario == pipelined ]]; then
    label="pipelined x$PIPELINE ($CONNECTIONS)"; args=(-s "$REPO/bench/pipeline.lua")
  else
    label="conn/request ($CONNECTIONS)"; args=(-H 'Connection: close')
  fi
  # Each round runs nginx, openimds and bare Beast in turn, so slow drifts of
  # the machine hit all three; each server's median round (by req/s) is used,
  # and the min..max of its rounds is printed: on a noisy VM the spread says
  # how far a single ratio can be trusted.
  # One "rps p50 p99 conns reqs per-cpu wait" line per round, by server.
  declare -A rounds=()
  for ((round = 1; round <= ROUNDS; round++)); do
    COUNTS_SELF=1 measure "$label" nginx "$NGINX_URL" "$NGINX_PID" nginx_counts "${args[@]}"
    rounds[nginx]+="$R_RPS $R_P50 $R_P99 $R_CONNS $R_REQS $R_PERCPU $R_WAIT"$'\n'
    COUNTS_SELF=0 measure "$label" openimds "$IMDS_URL" "$IMDS_PID" imds_counts "${args[@]}"
    rounds[openimds]+="$R_RPS $R_P50 $R_P99 $R_CONNS $R_REQS $R_PERCPU $R_WAIT"$'\n'
    for ref in "${REFS[@]}"; do
      COUNTS_SELF=0 measure "$label" "$ref" "${REF_URL[$ref]}" "${REF_PID[$ref]}" ref_counts "${args[@]}"
      rounds[$ref]+="$R_RPS $R_P50 $R_P99 $R_CONNS $R_REQS $R_PERCPU $R_WAIT"$'\n'
    done
  done
  median() { printf '%s' "${rounds[$1]}" | sort -n -k1,1 | sed -n "$(( (ROUNDS + 1) / 2 ))p"; }
  spread() { printf '%s' "${rounds[$1]}" | sort -n -k1,1 | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo ".." hi }'; }
  read -r -a n <<<"$(median nginx)"
  read -r -a o <<<"$(median openimds)"
  b=() c=()
  [[ -n ${rounds[beast]:-} ]] && read -r -a b <<<"$(median beast)"
  [[ -n ${rounds[ceiling]:-} ]] && read -r -a c <<<"$(median ceiling)"
  if ((ROUNDS > 1)); then
    spreads="nginx $(spread nginx), openimds $(spread openimds)"
    [[ ${#b[@]} -gt 0 ]] && spreads+=", bare Beast $(spread beast)"
    [[ ${#c[@]} -gt 0 ]] && spreads+=", client ceiling $(spread ceiling)"
    SUMMARY+=("$(printf '%s: req/s over %d rounds (min..max): %s' "$label" "$ROUNDS" "$spreads")")
  fi
  if [[ $scenario == close ]]; then
    # wrk only reconnects if the server says "Connection: close"; prove it closed.
    for pair in "nginx ${n[3]} ${n[4]}" "openimds ${o[3]} ${o[4]}"; do
      set -- $pair
      [[ $2 == ? ]] && { echo "WARNING: $1 has no connection counter" >&2; continue; }
      awk -v c="$2" -v r="$3" 'BEGIN { exit !(r > 0 && c >= 0.99 * r) }' ||
        echo "WARNING: $1 accepted $2 connections for $3 requests: it did not close per request" >&2
    done
  fi
  flag=""
  [[ ${n[6]} -ge 10 || ${o[6]} -ge 10 ]] && flag=" [CONTENDED: rerun when the machine is quiet]"
  SUMMARY+=("$(printf '%s: nginx %s req/s p50 %sms p99 %sms | openimds %s req/s p50 %sms p99 %sms | ratio %s (p50 %s, p99 %s, req/cpu-s %s)%s' \
    "$label" "${n[0]}" "${n[1]}" "${n[2]}" "${o[0]}" "${o[1]}" "${o[2]}" \
    "$(ratio "${o[0]}" "${n[0]}")" "$(ratio "${o[1]}" "${n[1]}")" "$(ratio "${o[2]}" "${n[2]}")" \
    "$(ratio "${o[5]}" "${n[5]}")" "$flag")")
  if [[ ${#b[@]} -gt 0 ]]; then
    SUMMARY+=("$(printf '  reference: bare Beast %s req/s = %s nginx (req/cpu-s %s); openimds = %s of bare Beast' \
      "${b[0]}" "$(ratio "${b[0]}" "${n[0]}")" "$(ratio "${b[5]}" "${n[5]}")" "$(ratio "${o[0]}" "${b[0]}")")")
  fi
  if [[ ${#c[@]} -gt 0 ]]; then
    SUMMARY+=("$(printf '  client ceiling: raw epoll server %s req/s = %s nginx; openimds = %s of the ceiling' \
      "${c[0]}" "$(ratio "${c[0]}" "${n[0]}")" "$(ratio "${o[0]}" "${c[0]}")")")
    if [[ $scenario == keepalive ]] && awk -v c="${c[0]}" -v n="${n[0]}" -v t="$TARGET" 'BEGIN { exit !(c < t * n) }'; then
      SUMMARY+=("$(printf '  NOTE: %sx nginx is %s req/s, above the client ceiling: no server can be measured at %sx with this method on this machine' \
        "$TARGET" "$(awk -v n="${n[0]}" -v t="$TARGET" 'BEGIN { printf "%.0f", n * t }')" "$TARGET")")
    fi
  fi
done

echo
echo "== ratio openimds/nginx (req/s: higher is better for openimds; latency: lower is)"
printf '%s\n' "${SUMMARY[@]}"
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)"
print_legend
