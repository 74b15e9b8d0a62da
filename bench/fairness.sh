#!/usr/bin/env bash
# Fairness between guests: one `openimds serve` (pinned to SERVER_CPU, THREADS
# I/O threads) with two instances, a quiet guest at 127.0.0.2 and a noisy one
# at 127.0.0.3 (both loopback; the client binds each connection to its
# guest's source address). The quiet guest asks QUIET_RATE GETs a second on
# one keep-alive connection throughout; its p99 is measured
#   1. idle: the quiet guest alone;
#   2. noisy, limits on: the noisy guest hammers from NOISY_CONNECTIONS
#      keep-alive connections at full speed, ignoring 429 and Retry-After,
#      under serve's default per-instance limits (100/s, burst 500), 429s
#      held back 1 s on this direct listener (the default);
#   3. noisy, 429 at once: the same with --instance-refusal-delay-ms 0
#      (the hold is what proxy-mode listeners do without);
#   4. noisy, no limits: the noisy instance's record sets
#      limits.requests_per_second and max_in_flight to 0;
#   5. idle again: against the first idle row, how much the machine's other
#      load moves the figures (the ratios mean little beyond that spread).
# Each row: the quiet guest's p50/p99/p99.9 and p99 against idle (TARGET:
# at most 2x in phase 2), the noisy guest's req/s by status, server CPU
# (100 = one core) and server CPU µs per request answered, and the client's
# CPU wait (time its threads were runnable but not running: client-side
# delay in the quiet latencies, see below).
#
# Loopback only; about 5 x DURATION + 4 s in all (default DURATION 5: ~29 s).
# Env: OPENIMDS_BINARY (default: build Release into <repo>/build-bench),
#      DURATION (s per phase, 5), QUIET_RATE (80), NOISY_CONNECTIONS (32),
#      THREADS (serve --threads, 1), SERVER_CPU (0), CLIENT_CPU (1),
#      TARGET (2), KEEP_TMP (keep the temp dir).
# Reading: both client threads share CLIENT_CPU, so in phases 3 and 4 the
# quiet guest's latency also includes its own wait behind the noisy client
# thread on that CPU (client wait%); phase 2 leaves that CPU nearly idle.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$REPO/bench/lib.sh"

DURATION=${DURATION:-5}
DURATION=${DURATION%s}
QUIET_RATE=${QUIET_RATE:-80}
NOISY_CONNECTIONS=${NOISY_CONNECTIONS:-32}
THREADS=${THREADS:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
TARGET=${TARGET:-2}
QUIET=127.0.0.2
NOISY=127.0.0.3
LEAF=/latest/meta-data/instance-id

need_tools taskset curl awk c++
TMP=$(mktemp -d /tmp/openimds-fairness.XXXXXX)
trap cleanup EXIT

# The client needs nothing from src/: compile it directly. The server: as
# given, else a Release build of this tree.
CLIENT=$TMP/fairness_client
c++ -std=c++20 -O2 -Wall -Wextra -pthread -o "$CLIENT" "$REPO/bench/fairness_client.cc" ||
  die "could not compile bench/fairness_client.cc"
if [[ -z ${OPENIMDS_BINARY:-} ]]; then
  need_tools cmake ninja
  echo "building openimds (Release) in $REPO/build-bench ..." >&2
  cmake -S "$REPO" -B "$REPO/build-bench" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DOPENIMDS_BUILD_TESTS=OFF >"$TMP/cmake.log" 2>&1 &&
    ninja -C "$REPO/build-bench" -j2 openimds >"$TMP/ninja.log" 2>&1 ||
    { tail -20 "$TMP"/{cmake,ninja}.log >&2; die "build failed"; }
  OPENIMDS_BINARY=$REPO/build-bench/src/app/openimds
fi
[[ -x $OPENIMDS_BINARY ]] || die "OPENIMDS_BINARY=$OPENIMDS_BINARY is not an executable"

ADMIN=$TMP/admin.sock
SERVE_PID=
GUEST=

imds() { OPENIMDS_ADMIN="unix:$ADMIN" "$OPENIMDS_BINARY" "$@"; }
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }   # key=value line -> value

start_serve() {   # extra serve flags...
  rm -f "$TMP/ready.json"
  taskset -c "$SERVER_CPU" "$OPENIMDS_BINARY" serve --threads "$THREADS" \
    --store "sqlite:$TMP/store.db" --admin "unix:$ADMIN" --listen "127.0.0.1:${PORT:-0}" \
    --ready-file "$TMP/ready.json" --log-level warn "$@" >>"$TMP/serve.log" 2>&1 &
  SERVE_PID=$!
  BENCH_PIDS+=("$SERVE_PID")
  local i
  for i in $(seq 100); do
    [[ -s $TMP/ready.json ]] && break
    kill -0 "$SERVE_PID" 2>/dev/null || { tail -20 "$TMP/serve.log" >&2; die "serve exited"; }
    sleep 0.1
  done
  [[ -s $TMP/ready.json ]] || die "serve not ready after 10 s"
  GUEST=$(sed -n 's/.*"guest":\[{"endpoint":"\([^"]*\)".*/\1/p' "$TMP/ready.json")
  [[ $GUEST == 127.0.0.1:* ]] || die "unexpected ready file: $(cat "$TMP/ready.json")"
  PORT=${GUEST##*:}
}

stop_serve() {
  kill -TERM "$SERVE_PID"
  wait "$SERVE_PID" 2>/dev/null || true
}

put_instance() {   # id address [extra JSON members]
  local n=${2##*.}
  local nic='{"mac":"02:00:00:00:00:%02x","private_ipv4s":["%s"]}'
  printf "{\"id\":\"%s\",\"network\":\"default\",\"nics\":[$nic]%s}\n" \
    "$1" "$n" "$2" "${3:-}" >"$TMP/$1.json"
  imds instance put "$TMP/$1.json" >/dev/null 2>"$TMP/put.err" ||
    { cat "$TMP/put.err" >&2; die "instance put $1 failed"; }
}

IDLE_P99=
phase() {   # name [--noisy]
  local name=$1 noisy=${2:-} s0 s1 c0 c1 t0 t1 out cpid
  local args=(--guest "$GUEST" --path "$LEAF" --quiet-source "$QUIET" --quiet-rate "$QUIET_RATE"
              --duration "$DURATION")
  [[ -n $noisy ]] && args+=(--noisy-source "$NOISY" --noisy-connections "$NOISY_CONNECTIONS")
  read -r -a s0 <<<"$(proc_sched "$SERVE_PID")"
  t0=$(now_ns)
  taskset -c "$CLIENT_CPU" "$CLIENT" "${args[@]}" >"$TMP/client.out" &
  cpid=$!
  c0=(0 0) c1=(0 0)
  # The client's own counters vanish with it: keep the last sample.
  while kill -0 "$cpid" 2>/dev/null; do
    read -r -a c1 <<<"$(proc_sched "$cpid")"
    sleep 0.2
  done
  wait "$cpid" || die "fairness_client failed"
  t1=$(now_ns)
  read -r -a s1 <<<"$(proc_sched "$SERVE_PID")"
  out=$(cat "$TMP/client.out")
  local r=$((t1 - t0)) p99 reqs cpu_ns
  p99=$(field quiet_p99_us "$out")
  [[ -z $IDLE_P99 ]] && IDLE_P99=$p99
  local quiet_n noisy_n
  quiet_n=$(field quiet_requests "$out")
  noisy_n=$(field noisy_requests "$out")
  reqs=$((quiet_n + ${noisy_n:-0}))
  cpu_ns=$((s1[0] - s0[0]))
  printf '%-24s %7s %7s %8s %6s %9s %8s %8s %6s %9s %7s\n' "$name" \
    "$(field quiet_p50_us "$out")" "$p99" "$(field quiet_p999_us "$out")" \
    "$(ratio "$p99" "$IDLE_P99")" "${noisy:+$(field noisy_rps "$out")}" \
    "${noisy:+$(field noisy_200 "$out")}" "${noisy:+$(field noisy_429 "$out")}" \
    "$(awk -v c="$cpu_ns" -v r="$r" 'BEGIN { printf "%.0f", 100 * c / r }')" \
    "$(awk -v c="$cpu_ns" -v n="$reqs" 'BEGIN { printf "%.1f", c / (n > 0 ? n : 1) / 1000 }')" \
    "$(awk -v w="${c1[1]:-0}" -v r="$r" 'BEGIN { printf "%.0f", 100 * w / r }')"
  local bad
  bad=$(($(field quiet_non200 "$out") + $(field quiet_errors "$out")))
  [[ $bad == 0 ]] || echo "  warning: the quiet guest got $bad non-200 answers or errors: $out" >&2
  LAST_RATIO=$(awk -v a="$p99" -v b="$IDLE_P99" \
    'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }')
}

echo "== machine"
echo "nproc: $(nproc)   cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "kernel: $(uname -r)   loadavg: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "openimds: $OPENIMDS_BINARY ($("$OPENIMDS_BINARY" --version 2>&1 | head -1))"
echo "serve: --threads $THREADS on cpu $SERVER_CPU; client (quiet and noisy threads)" \
  "on cpu $CLIENT_CPU"
echo "quiet guest $QUIET: $QUIET_RATE req/s, one keep-alive connection; noisy guest $NOISY:" \
  "$NOISY_CONNECTIONS keep-alive connections, closed loop; $DURATION s per phase"
echo

start_serve
put_instance i-quiet "$QUIET"
put_instance i-noisy "$NOISY"
r=$(curl -s --interface "$QUIET" "http://$GUEST$LEAF") || true
[[ $r == i-quiet ]] || die "the quiet guest got '$r' for $LEAF"

printf '%-24s %7s %7s %8s %6s %9s %8s %8s %6s %9s %7s\n' phase p50us p99us p99.9us \
  p99/idle noisy/s noisy200 noisy429 cpu% cpu-us/req cwait%
phase "1 idle"
phase "2 noisy, limits on" --noisy
held_ratio=$LAST_RATIO
stop_serve
start_serve --instance-refusal-delay-ms 0
phase "3 noisy, 429 at once" --noisy
put_instance i-noisy "$NOISY" ',"limits":{"requests_per_second":0,"max_in_flight":0}'
phase "4 noisy, no limits" --noisy
phase "5 idle again"
stop_serve
echo
echo "loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
verdict=$(awk -v r="$held_ratio" -v t="$TARGET" \
  'BEGIN { print (r != "?" && r <= t) ? "within" : "NOT within" }')
echo "summary: quiet guest p99 while a noisy guest hammers under default limits =" \
  "${held_ratio}x its idle p99 ($verdict the ${TARGET}x target)"
