#!/usr/bin/env bash
# What `openimds proxy` costs: GET /latest/meta-data/instance-id straight from
# `openimds serve` and through `openimds proxy` (signed identity, keep-alive
# pool to a mode=proxy listener of the same server), in the same run:
#   1. added latency: 1 connection, p50/p99 direct vs proxied;
#   2. throughput: $CONNECTIONS keep-alive connections, req/s direct vs proxied,
#      with the proxy's upstream over TCP (proxy and server on different hosts)
#      and over a unix socket (proxy beside the server, as Neutron's agent);
#   3. memory: proxy RSS with $IDLE_CONNS idle guest connections (connected,
#      no request yet) and after one request on each.
# Loopback only (127.0.0.1); every process is started and stopped by PID.
#
# Env: OPENIMDS_BINARY (default: build into <repo>/build-bench, Release),
#      DURATION (s, default 10), WARMUP (s, default 2), CONNECTIONS (64),
#      SERVER_CPU, PROXY_CPU, WRK_CPU (taskset lists; default: every CPU),
#      IDLE_CONNS (10000), KEEP_TMP.
# By default nothing is pinned: both paths get the whole machine, one server
# thread and one proxy thread, and the ratio is what the extra hop costs.
# SERVER_CPU=0 PROXY_CPU=0 WRK_CPU=1 is the harshest setting: server and
# proxy share one core, so the ratio is the share of that core's throughput
# left when it also runs the proxy. The req/cpu-s column (requests per CPU-
# second of the measured process) is the steadiest number on a busy machine.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$REPO/bench/lib.sh"

DURATION=${DURATION:-10}
DURATION=${DURATION%s}
WARMUP=${WARMUP:-2}
WARMUP=${WARMUP%s}
CONNECTIONS=${CONNECTIONS:-64}
ALL_CPUS=0-$(($(nproc) - 1))
SERVER_CPU=${SERVER_CPU:-$ALL_CPUS}
PROXY_CPU=${PROXY_CPU:-$ALL_CPUS}
WRK_CPU=${WRK_CPU:-$ALL_CPUS}
IDLE_CONNS=${IDLE_CONNS:-10000}
LEAF=/latest/meta-data/instance-id

need_tools wrk curl taskset python3
TMP=$(mktemp -d /tmp/imds-proxy-bench.XXXXXX)
trap cleanup EXIT
resolve_binary "$REPO"
"$OPENIMDS_BINARY" proxy --help >/dev/null 2>&1 || die "$OPENIMDS_BINARY has no 'proxy' command"

echo "bench $(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$TMP/proxy.keys"
chmod 600 "$TMP/proxy.keys"

# The server: the demo instance answers 127.0.0.1 in network "default", both
# directly and through the proxy (which signs network=default, source=127.0.0.1).
taskset -c "$SERVER_CPU" "$OPENIMDS_BINARY" serve --demo --threads 1 "${LIMIT_ARGS[@]}" \
  --store "sqlite:$TMP/db" --admin "unix:$TMP/admin.sock" \
  --listen 127.0.0.1:0 --listen 127.0.0.1:0,mode=proxy \
  --listen "unix:$TMP/proxied.sock,mode=proxy" \
  --trusted-proxy 127.0.0.1/32 --proxy-keys-file "$TMP/proxy.keys" \
  --ready-file "$TMP/serve.json" --log-level warn >"$TMP/serve.log" 2>&1 &
SERVE_PID=$!
BENCH_PIDS+=("$SERVE_PID")
IMDS_ADMIN=$TMP/admin.sock
wait_ready() {   # file pid log
  local i
  for i in $(seq 100); do
    [[ -s $1 ]] && return 0
    kill -0 "$2" 2>/dev/null || { cat "$3" >&2; die "process $2 exited"; }
    sleep 0.1
  done
  die "not ready after 10 s: $(cat "$3")"
}
wait_ready "$TMP/serve.json" "$SERVE_PID" "$TMP/serve.log"
endpoint() {   # ready-file index: the guest listener's bound endpoint
  python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["guest"][int(sys.argv[2])]["endpoint"])' "$1" "$2"
}
DIRECT=$(endpoint "$TMP/serve.json" 0)
UPSTREAM=$(endpoint "$TMP/serve.json" 1)

start_proxy() {   # name upstream; sets <NAME>_PID and <NAME>_ADDR
  taskset -c "$PROXY_CPU" "$OPENIMDS_BINARY" proxy --threads 1 \
    --listen 127.0.0.1:0,network=default --upstream "$2" --key-file "$TMP/proxy.keys" \
    --metrics "unix:$TMP/$1-metrics.sock" --max-connections $((IDLE_CONNS + 1000)) \
    --ready-file "$TMP/$1.json" --log-level warn >"$TMP/$1.log" 2>&1 &
  local pid=$!
  BENCH_PIDS+=("$pid")
  wait_ready "$TMP/$1.json" "$pid" "$TMP/$1.log"
  printf -v "${1^^}_PID" '%s' "$pid"
  printf -v "${1^^}_ADDR" '%s' "$(endpoint "$TMP/$1.json" 0)"
}
start_proxy proxy "$UPSTREAM"
start_proxy proxyunix "unix:$TMP/proxied.sock"
PROXIED=$PROXY_ADDR

# Same bytes both ways, or no comparison.
curl -s -o "$TMP/direct.body" "http://$DIRECT$LEAF"
curl -s -o "$TMP/proxied.body" -w '%{http_code}' "http://$PROXIED$LEAF" >"$TMP/code"
[[ $(cat "$TMP/code") == 200 ]] ||
  die "through the proxy: $(cat "$TMP/code") $(cat "$TMP/proxied.body")"
cmp -s "$TMP/direct.body" "$TMP/proxied.body" || die "bodies differ"

proxy_counter() {   # counter [proxy name]
  curl -s --unix-socket "$TMP/${2:-proxy}-metrics.sock" http://proxy/metrics |
    awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print "?" }'
}
counts_direct() {
  echo "$(imds_counter 'http_connections_total{listener="guest"}')" \
    "$(imds_counter 'http_requests_total{listener="guest"}')"
}
counts_proxied() {   # guest side of the proxy, and what reached the server (both listeners)
  echo "$(proxy_counter proxy_connections_total)" \
    "$(curl -s --unix-socket "$IMDS_ADMIN" http://admin/metrics |
       awk '$1 == "http_requests_total{listener=\"proxied\"}" { n += $2 } END { print n + 0 }')"
}
counts_proxyunix() {
  echo "$(proxy_counter proxy_connections_total proxyunix)" \
    "$(curl -s --unix-socket "$IMDS_ADMIN" http://admin/metrics |
       awk '$1 == "http_requests_total{listener=\"proxied\"}" { n += $2 } END { print n + 0 }')"
}

print_machine
echo "pinning: proxies on cpu $PROXY_CPU (1 thread); direct listener: $DIRECT;" \
  "proxy $PROXIED -> $UPSTREAM; proxy $PROXYUNIX_ADDR -> unix:$TMP/proxied.sock"
echo "cpu% s/w below: the process measured (server for direct rows, proxy for proxied rows) / wrk"
echo

print_header conns requests
CONNECTIONS_SAVED=$CONNECTIONS
CONNECTIONS=1
measure "latency (1 conn)" direct "http://$DIRECT$LEAF" "$SERVE_PID" counts_direct
d1=("$R_RPS" "$R_P50" "$R_P99")
measure "latency (1 conn)" proxied "http://$PROXIED$LEAF" "$PROXY_PID" counts_proxied
p1=("$R_RPS" "$R_P50" "$R_P99")
CONNECTIONS=$CONNECTIONS_SAVED
measure "keep-alive ($CONNECTIONS conns)" direct "http://$DIRECT$LEAF" "$SERVE_PID" counts_direct
dn=("$R_RPS" "$R_P50" "$R_P99")
measure "keep-alive ($CONNECTIONS conns)" proxied "http://$PROXIED$LEAF" "$PROXY_PID" counts_proxied
pn=("$R_RPS" "$R_P50" "$R_P99")
measure "keep-alive ($CONNECTIONS conns)" prox-unx "http://$PROXYUNIX_ADDR$LEAF" "$PROXYUNIX_PID" \
  counts_proxyunix
pu=("$R_RPS" "$R_P50" "$R_P99")
pool_conns=$(imds_counter 'http_connections_total{listener="proxied"}')

# Idle guests: RSS of the proxy with IDLE_CONNS connections open.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$PROXY_PID/status"; }
idle_out=$(python3 - "$PROXIED" "$IDLE_CONNS" "$PROXY_PID" "$LEAF" <<'EOF'
import resource, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
n, pid, leaf = int(sys.argv[2]), sys.argv[3], sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
time.sleep(0.5)
base = rss()
socks = []
for _ in range(n):
    s = socket.socket()
    s.connect((host, int(port)))
    socks.append(s)
time.sleep(2)
idle = rss()
req = f"GET {leaf} HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n".encode()
for s in socks:
    s.sendall(req)
for s in socks:
    s.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    assert data.startswith(b"HTTP/1.1 200"), data[:100]
time.sleep(2)
after = rss()
for s in socks:
    s.close()
print(base, idle, after)
EOF
) || die "idle-connection run failed"
read -r rss_base rss_idle rss_used <<<"$idle_out"

echo
echo "== proxied/direct (same run)"
printf 'throughput, %s keep-alive conns: direct %s req/s; proxied: TCP upstream %s req/s -> %s,\n' \
  "$CONNECTIONS" "${dn[0]}" "${pn[0]}" "$(ratio "${pn[0]}" "${dn[0]}")"
printf '  unix-socket upstream %s req/s -> %s (target >= 0.50x)\n' \
  "${pu[0]}" "$(ratio "${pu[0]}" "${dn[0]}")"
added=$(awk -v a="${p1[1]}" -v b="${d1[1]}" 'BEGIN { printf "%.0f", (a - b) * 1000 }')
printf 'latency, 1 conn: p50 direct %sms, proxied %sms -> added median %s us (target <= 100 us)\n' \
  "${d1[1]}" "${p1[1]}" "$added"
printf '  p99 direct %sms, proxied %sms\n' "${d1[2]}" "${p1[2]}"
echo "connections the server accepted from the proxies (health checks included): $pool_conns"
awk -v n="$IDLE_CONNS" -v b="$rss_base" -v i="$rss_idle" -v u="$rss_used" 'BEGIN {
  printf "memory: proxy RSS %.1f MiB at rest; %.1f MiB with %d idle guest connections", b/1024, i/1024, n
  printf " (%.2f KiB each);\n        %.1f MiB after one request on each, still open", (i-b)/n, u/1024
  printf " (%.2f KiB each)\n", (u-b)/n }'
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)"
print_legend
