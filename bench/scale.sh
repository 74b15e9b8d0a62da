#!/usr/bin/env bash
# Fleet-scale benchmark: what N realistic instances cost OpenIMDS. In one run:
# generate N records (~3 KiB NDJSON each, 1 KiB of it user-data), import them
# into a fresh `openimds serve`, its RSS per instance, a cold start on the
# filled store (exec -> first guest 200), single-write admin latency, the time
# from an admin write's return until a guest sees it, writes/s with 4
# concurrent writers, and guest keep-alive req/s and p99 idle vs during those
# writes. A benchmark, never a test: it prints figures and asserts nothing
# about time. Loopback and unix sockets only; every load phase is bounded by a
# count and by DURATION.
#
# Env: N (instances, default 10000), THREADS (serve --threads, default 1),
#      DURATION (s per load phase, default 10), OPENIMDS_BINARY (default: build
#      Release into <repo>/build-bench), KEEP (keep the work dir), PROBES (probe
#      instances, default 4), GUEST_CONNECTIONS (default 4), WRITERS (default 4),
#      ADMIN_COUNT (max sequential PATCHes, default 2000), VISIBILITY_COUNT
#      (default 1000), CHUNK_LINES (lines per import request, default 5000),
#      SERVER_CPU / CLIENT_CPU (taskset CPU lists; unset = not pinned), WRITER_NICE
#      (nice increment of the writer threads in the second "during writes"
#      phase, default 10).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$REPO/bench/lib.sh"

N=${N:-10000}
THREADS=${THREADS:-1}
DURATION=${DURATION:-10}
DURATION=${DURATION%s}
PROBES=${PROBES:-4}
GUEST_CONNECTIONS=${GUEST_CONNECTIONS:-4}
WRITERS=${WRITERS:-4}
ADMIN_COUNT=${ADMIN_COUNT:-2000}
VISIBILITY_COUNT=${VISIBILITY_COUNT:-1000}
CHUNK_LINES=${CHUNK_LINES:-5000}
WRITER_NICE=${WRITER_NICE:-10}
KEEP_TMP=${KEEP:-${KEEP_TMP:-}}
NETWORKS=20                 # bench/scale_fleet.h: kNetworks
USER_DATA_BYTES=768         # decoded user-data per generated record (scale_gen.cc)
PROBE_SOURCE=127.0.0.2      # probe-0's address (scale_fleet.h)
LEAF=/latest/meta-data/instance-id
# Generous bounds for the waits on the server (N = 1e6 loads for a while).
START_TIMEOUT=$((120 + N / 500))

[[ $N =~ ^[0-9]+$ && $N -ge $((WRITERS * 2)) ]] || die "N must be an integer >= $((WRITERS * 2))"
[[ $PROBES -ge 1 && $PROBES -le 200 ]] || die "PROBES must be 1..200"
need_tools cmake ninja split awk

TMP=$(mktemp -d /tmp/openimds-scale.XXXXXX)
WORK=$TMP
trap cleanup EXIT
ADMIN=$WORK/admin.sock
SERVE_PID=

# Optional pinning, as the other bench scripts do it (taskset by CPU list).
server_pin=() client_pin=()
[[ -n ${SERVER_CPU:-} ]] && server_pin=(taskset -c "$SERVER_CPU")
[[ -n ${CLIENT_CPU:-} ]] && client_pin=(taskset -c "$CLIENT_CPU")

# --- build ------------------------------------------------------------------
# The generator and the client come from <repo>/build-bench (bench/CMakeLists.txt);
# openimds too unless OPENIMDS_BINARY names one. The two tools need nothing
# from src/, so when the project does not configure or build (src/ mid-change)
# and OPENIMDS_BINARY is set, they are compiled directly instead.
BUILD=$REPO/build-bench
GEN=$BUILD/bench/scale_gen
CLIENT=$BUILD/bench/scale_client
targets=(scale_gen scale_client)
[[ -z ${OPENIMDS_BINARY:-} ]] && targets+=(openimds)
echo "building ${targets[*]} (Release) in $BUILD ..." >&2
if ! { cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
         -DOPENIMDS_BUILD_TESTS=OFF -DOPENIMDS_BUILD_BENCH=ON >"$WORK/cmake.log" 2>&1 &&
       ninja -C "$BUILD" -j"${BUILD_JOBS:-2}" "${targets[@]}" >"$WORK/ninja.log" 2>&1; }; then
  [[ -n ${OPENIMDS_BINARY:-} ]] ||
    { tail -20 "$WORK"/{cmake,ninja}.log >&2 2>/dev/null; die "build failed (src/ broken? set OPENIMDS_BINARY)"; }
  echo "project build failed (see below); compiling scale_gen and scale_client directly" >&2
  tail -5 "$WORK"/{cmake,ninja}.log >&2 2>/dev/null || true
  GEN=$WORK/scale_gen CLIENT=$WORK/scale_client
  c++ -std=c++20 -O2 -Wall -Wextra -o "$GEN" "$REPO/bench/scale_gen.cc" &&
    c++ -std=c++20 -O2 -Wall -Wextra -pthread -o "$CLIENT" "$REPO/bench/scale_client.cc" ||
    die "could not compile the bench tools"
fi
OPENIMDS_BINARY=${OPENIMDS_BINARY:-$BUILD/src/app/openimds}
[[ -x $OPENIMDS_BINARY ]] || die "OPENIMDS_BINARY=$OPENIMDS_BINARY is not an executable"

# --- helpers ----------------------------------------------------------------
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }   # pid field -> kB
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ms() { awk -v u="$1" 'BEGIN { if (u == "") print "?"; else printf "%.2f", u / 1000 }'; }   # us -> ms
ms_since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }   # key line -> value
row() { printf '%-44s %14s  %-12s %s\n' "$1" "$2" "$3" "${4:-}"; }
client() { "${client_pin[@]}" "$CLIENT" "$@"; }
# Server CPU and run-queue wait over a phase (lib.sh's proc_sched, summed over
# the server's threads, 100 = one core): SCHED_NOTE reads "server cpu C%, wait
# W%". Wait is time runnable but not running: behind the client (same cores
# unless pinned) or other load on the machine.
sched_begin() { read -r -a SCHED0 <<<"$(proc_sched "$SERVE_PID")"; SCHED_T0=$(now_ns); }
sched_end() {
  local s1 r
  read -r -a s1 <<<"$(proc_sched "$SERVE_PID")"
  r=$(($(now_ns) - SCHED_T0))
  SCHED_NOTE=$(awk -v c=$((s1[0] - SCHED0[0])) -v w=$((s1[1] - SCHED0[1])) -v r=$r 'BEGIN {
    printf "server cpu %.0f%%, wait %.0f%%", 100 * c / r, 100 * w / r }')
}
imds() { OPENIMDS_ADMIN="unix:$ADMIN" "$OPENIMDS_BINARY" "$@"; }

# Where the binary came from: the git revision of the source tree its build
# directory was configured from (+dirty when that tree has local changes).
binary_revision() {
  local dir src rev
  dir=$(dirname "$(readlink -f "$OPENIMDS_BINARY")")
  while [[ $dir != / && ! -f $dir/CMakeCache.txt ]]; do dir=$(dirname "$dir"); done
  src=$(sed -n 's/^openimds_SOURCE_DIR:STATIC=//p' "$dir/CMakeCache.txt" 2>/dev/null)
  rev=$(git -C "${src:-/nonexistent}" rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
  [[ -n $(git -C "$src" status --porcelain -- src CMakeLists.txt 2>/dev/null) ]] && rev+="+dirty"
  echo "$rev ($src)"
}

# LISTEN holds one --listen per tenant network plus the probe network; port 0
# on the first start, the same ports again for the cold start.
declare -A PORT=()
listen_args() {
  LISTEN=()
  local net
  for net in $(seq -f 'tenant-%02g' 0 $((NETWORKS - 1))) probe; do
    LISTEN+=(--listen "127.0.0.1:${PORT[$net]:-0},network=$net")
  done
}

start_serve() {
  rm -f "$WORK/ready.json"
  listen_args
  "${server_pin[@]}" "$OPENIMDS_BINARY" serve --threads "$THREADS" "${LIMIT_ARGS[@]}" \
    --store "sqlite:$WORK/store.db" \
    --admin "unix:$ADMIN" "${LISTEN[@]}" --ready-file "$WORK/ready.json" --log-level warn \
    >>"$WORK/serve.log" 2>&1 &
  SERVE_PID=$!
  BENCH_PIDS+=("$SERVE_PID")
}

wait_ready_file() {
  local deadline=$((SECONDS + START_TIMEOUT))
  until [[ -s $WORK/ready.json ]]; do
    kill -0 "$SERVE_PID" 2>/dev/null || { tail -20 "$WORK/serve.log" >&2; die "serve exited"; }
    ((SECONDS < deadline)) || die "serve not ready after ${START_TIMEOUT}s"
    sleep 0.05
  done
  local ep net
  while read -r ep net; do
    [[ $ep == 127.0.0.1:* ]] || die "unexpected guest endpoint $ep"
    PORT[$net]=${ep##*:}
  done < <(grep -o '"endpoint":"[^"]*","network":"[^"]*"' "$WORK/ready.json" |
    sed 's/"endpoint":"\([^"]*\)","network":"\([^"]*\)"/\1 \2/')
  [[ -n ${PORT[probe]:-} ]] || die "no probe listener in $(cat "$WORK/ready.json")"
  GUEST=127.0.0.1:${PORT[probe]}
}

# SIGTERM by PID, SIGKILL after 30 s; forgets the PID.
stop_serve() {
  local i
  kill -TERM "$SERVE_PID" 2>/dev/null || true
  for i in $(seq 300); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVE_PID" 2>/dev/null || true
  wait "$SERVE_PID" 2>/dev/null || true
  local keep=() p
  for p in "${BENCH_PIDS[@]}"; do [[ $p == "$SERVE_PID" ]] || keep+=("$p"); done
  BENCH_PIDS=("${keep[@]}")
}

# --- header -----------------------------------------------------------------
echo "== openimds fleet scale (bench/scale.sh)"
echo "machine: nproc $(nproc), memory $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)," \
  "cpu $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "kernel: $(uname -r)   loadavg: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "openimds: $("$OPENIMDS_BINARY" --version 2>&1 | head -1), git $(binary_revision)"
echo "binary: $OPENIMDS_BINARY"
echo "N=$N (+$PROBES probes) over $NETWORKS tenant networks, THREADS=$THREADS, DURATION=${DURATION}s," \
  "writers=$WRITERS, guest connections=$GUEST_CONNECTIONS, pinning: server ${SERVER_CPU:-none}," \
  "client ${CLIENT_CPU:-none}"
echo
row figure value unit note
row ------ ----- ---- ----

# --- 1. generate -------------------------------------------------------------
FLEET=$WORK/fleet.ndjson
t0=$(now_ns)
"$GEN" fleet "$N" "$FLEET"
t1=$(now_ns)
"$GEN" probes "$PROBES" "$WORK/probes.ndjson"
fleet_bytes=$(stat -c %s "$FLEET")
gen_ms=$(ms_since "$t0" "$t1")
row "generate: time" "$gen_ms" ms "$(awk -v n="$N" -v ms="$gen_ms" 'BEGIN { printf "%.0f records/s", n / (ms / 1000 + 1e-9) }')"
row "generate: file" "$(mib $((fleet_bytes / 1024)))" MiB \
  "$((fleet_bytes / N)) B/record, ${USER_DATA_BYTES} B user-data (base64 1024 B)"

# --- 2. import ----------------------------------------------------------------
start_serve
wait_ready_file
# One record through `instance put` first: the generator's fields are valid
# against this binary's docs/instance.md rules (then removed: 0 instances).
head -1 "$FLEET" >"$WORK/one.json"
first_id=$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' "$WORK/one.json")
imds instance put "$WORK/one.json" >/dev/null 2>"$WORK/put.err" ||
  { cat "$WORK/put.err" >&2; die "the first generated record was refused"; }
imds instance delete "$first_id" >/dev/null 2>&1 || die "could not delete $first_id"
client get --guest "$GUEST" --source "$PROBE_SOURCE" --path "$LEAF" >/dev/null 2>&1 || true
sleep 0.5
rss0=$(kib "$SERVE_PID" VmRSS)

if "$OPENIMDS_BINARY" instance import --help 2>&1 | grep -q -- '--batch-size'; then
  method="instance import --batch-size $CHUNK_LINES (CLI batching)"
  t0=$(now_ns)
  imds instance import --batch-size "$CHUNK_LINES" "$FLEET" >/dev/null 2>"$WORK/import.err" ||
    { tail -5 "$WORK/import.err" >&2; die "import failed"; }
  t1=$(now_ns)
else
  # The CLI sends the whole file in one request and the server caps a request
  # at 64 MiB: split into chunks, one all-or-nothing import each.
  method="split -l $CHUNK_LINES, one 'instance import' per chunk (CLI has no --batch-size)"
  split -l "$CHUNK_LINES" -d -a 6 "$FLEET" "$WORK/chunk."
  t0=$(now_ns)
  for f in "$WORK"/chunk.*; do
    imds instance import "$f" >/dev/null 2>>"$WORK/import.err" ||
      { tail -5 "$WORK/import.err" >&2; die "import of $f failed"; }
    rm -f "$f"
  done
  t1=$(now_ns)
fi
imported=$(awk '/^imported [0-9]+ instances/ { s += $2 } END { print s + 0 }' "$WORK/import.err")
[[ $imported == "$N" ]] || echo "warning: the CLI reported $imported imported, not $N" >&2
import_ms=$(ms_since "$t0" "$t1")
import_rate=$(awk -v n="$N" -v ms="$import_ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }')
row "import: time" "$import_ms" ms "$method"
row "import: rate" "$import_rate" instances/s \
  "$(awk -v b="$fleet_bytes" -v ms="$import_ms" 'BEGIN { printf "%.1f MiB/s of NDJSON", b / 1048576 / (ms / 1000) }')"

# --- 3. RSS -----------------------------------------------------------------------
rss1=$(kib "$SERVE_PID" VmRSS)
hwm1=$(kib "$SERVE_PID" VmHWM)
db_bytes=$(cat "$WORK"/store.db* | wc -c)
per_inst=$(awk -v a="$rss1" -v b="$rss0" -v n="$N" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }')
per_inst_nud=$((per_inst - USER_DATA_BYTES))
row "RSS: 0 instances (baseline)" "$(mib "$rss0")" MiB "after one put+delete and one guest GET"
row "RSS: after import (VmRSS)" "$(mib "$rss1")" MiB
row "RSS: after import (VmHWM)" "$(mib "$hwm1")" MiB "peak during import"
row "RSS: per instance" "$per_inst" B/instance "(VmRSS - baseline) / N"
row "RSS: per instance, less user-data" "$per_inst_nud" B/instance "minus ${USER_DATA_BYTES} B decoded user-data"
# Settled: the server gives freed heap back once a burst of writes is over
# (the follower trims after an idle poll); what an operator sees a few
# seconds later. Sampled until two readings 0.5 s apart agree, at most 10 s.
rss_settled=$rss1
for _ in $(seq 20); do
  sleep 0.5
  next=$(kib "$SERVE_PID" VmRSS)
  [[ $next == "$rss_settled" ]] && break
  rss_settled=$next
done
per_inst_settled=$(awk -v a="$rss_settled" -v b="$rss0" -v n="$N" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }')
row "RSS: after import, settled (VmRSS)" "$(mib "$rss_settled")" MiB \
  "$per_inst_settled B/instance, $((per_inst_settled - USER_DATA_BYTES)) less user-data"
row "store: size on disk" "$(mib $((db_bytes / 1024)))" MiB \
  "$((db_bytes / N)) B/instance (store.db + -wal + -shm)"

# Probes: the instances a loopback client can call as (scale_fleet.h).
imds instance import "$WORK/probes.ndjson" >/dev/null 2>"$WORK/probes.err" ||
  { cat "$WORK/probes.err" >&2; die "probe import failed"; }
probe=$(client get --guest "$GUEST" --source "$PROBE_SOURCE" --path "$LEAF") ||
  die "probe GET failed: $probe"
[[ $probe == *"body=probe-0"* ]] || die "probe GET answered: $probe"
# Record 0 (http_tokens optional) as its guest would see it, from the catalog.
render=$(imds instance render "$first_id" /latest/meta-data/local-ipv4 2>/dev/null) ||
  die "render of $first_id failed"
[[ $render == 10.0.0.4 ]] || die "render of $first_id local-ipv4 answered: $render"

# --- 4. cold start -------------------------------------------------------------
stop_serve
t0=$(now_ns)
start_serve                                  # same store, same ports
ready=$(client wait-ready --guest "$GUEST" --source "$PROBE_SOURCE" --path "$LEAF" \
  --timeout "$START_TIMEOUT") || die "cold start: no 200 from the probe"
hwm2=$(kib "$SERVE_PID" VmHWM)
rss2a=$(kib "$SERVE_PID" VmRSS)
cold_ms=$(ms_since "$t0" "$(field ready_realtime_ns "$ready")")
wait_ready_file
sleep 2
rss2=$(kib "$SERVE_PID" VmRSS)
row "cold start: exec -> guest 200" "$cold_ms" ms "$(field attempts "$ready") polls, $(field refused "$ready") refused"
row "cold start: VmHWM at first 200" "$(mib "$hwm2")" MiB "VmRSS then $(mib "$rss2a") MiB"
per_inst_cold=$(awk -v a="$rss2" -v b="$rss0" -v n="$N" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }')
row "cold start: VmRSS 2 s later" "$(mib "$rss2")" MiB \
  "$per_inst_cold B/instance, $((per_inst_cold - USER_DATA_BYTES)) less user-data"
row "cold start: peak / steady" "$(awk -v a="$hwm2" -v b="$rss2" 'BEGIN { printf "%.2f", a / b }')" x VmHWM/VmRSS

# --- 5. single-writer admin latency -------------------------------------------------
sched_begin
out=$(client admin-latency --admin "$ADMIN" --n "$N" --count "$ADMIN_COUNT" --duration "$DURATION")
sched_end
adm_p50=$(ms "$(field p50_us "$out")") adm_p99=$(ms "$(field p99_us "$out")")
row "admin PATCH latency p50" "$adm_p50" ms "sequential, unix socket, keep-alive; $SCHED_NOTE"
row "admin PATCH latency p99" "$adm_p99" ms \
  "$(field writes "$out") writes in $(field secs "$out") s, max $(ms "$(field max_us "$out")") ms, errors $(field errors "$out"), cut $(field cut "$out")"

# --- 6. admin return -> guest visible ----------------------------------------------
sched_begin
out=$(client visibility --admin "$ADMIN" --guest "$GUEST" --probes "$PROBES" \
  --count "$VISIBILITY_COUNT" --duration "$DURATION")
sched_end
vis_p99=$(ms "$(field p99_us "$out")")
row "visible after return p50" "$(ms "$(field p50_us "$out")")" ms "PATCH returns -> guest GET shows the tag; $SCHED_NOTE"
row "visible after return p99" "$vis_p99" ms \
  "$(field rounds "$out") rounds, stale first reads $(field stale_first_reads "$out"), timeouts $(field timeouts "$out"), errors $(field errors "$out")"

# --- 7. concurrent writers -------------------------------------------------------------
sched_begin
out=$(client writers --admin "$ADMIN" --n "$N" --writers "$WRITERS" --duration "$DURATION")
sched_end
wps=$(field writes_per_s "$out")
row "writes/s, $WRITERS concurrent writers" "$wps" writes/s \
  "p50 $(ms "$(field p50_us "$out")") ms, p99 $(ms "$(field p99_us "$out")") ms, errors $(field errors "$out"), cut $(field cut "$out"); $SCHED_NOTE"

# --- 8. guest load idle vs during writes -------------------------------------------------
sched_begin
idle=$(client guest-load --guest "$GUEST" --probes "$PROBES" --connections "$GUEST_CONNECTIONS" \
  --duration "$DURATION" --path "$LEAF")
sched_end
idle_note=$SCHED_NOTE
sched_begin
busy=$(client guest-load --guest "$GUEST" --probes "$PROBES" --connections "$GUEST_CONNECTIONS" \
  --duration "$DURATION" --path "$LEAF" --writers "$WRITERS" --admin "$ADMIN" --n "$N")
sched_end
busy_note=$SCHED_NOTE
# Again with the writer threads below the load generator's priority: the
# writers stand for a control plane that runs elsewhere, and on this machine
# their own CPU (in the client process) otherwise shows as guest latency.
sched_begin
busy_n=$(client guest-load --guest "$GUEST" --probes "$PROBES" --connections "$GUEST_CONNECTIONS" \
  --duration "$DURATION" --path "$LEAF" --writers "$WRITERS" --admin "$ADMIN" --n "$N" \
  --writer-nice "$WRITER_NICE")
sched_end
p99_idle=$(field p99_us "$idle") p99_busy=$(field p99_us "$busy") p99_busy_n=$(field p99_us "$busy_n")
row "guest req/s, idle" "$(field rps "$idle")" req/s \
  "p50 $(field p50_us "$idle") us, errors $(field errors "$idle"); $idle_note"
row "guest p99, idle" "$p99_idle" us "p99.9 $(field p999_us "$idle") us"
row "guest req/s, during $WRITERS writers" "$(field rps "$busy")" req/s \
  "p50 $(field p50_us "$busy") us, errors $(field errors "$busy"); writers $(field writes_per_s "$busy") writes/s; $busy_note"
row "guest p99, during $WRITERS writers" "$p99_busy" us "p99.9 $(field p999_us "$busy") us"
p99_ratio=$(awk -v a="$p99_busy" -v b="$p99_idle" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }')
row "guest p99 during / idle" "$p99_ratio" x "writers at the load generator's priority"
row "guest req/s, during writers at nice +$WRITER_NICE" "$(field rps "$busy_n")" req/s \
  "p50 $(field p50_us "$busy_n") us, errors $(field errors "$busy_n"); writers $(field writes_per_s "$busy_n") writes/s; $SCHED_NOTE"
row "guest p99, during writers at nice +$WRITER_NICE" "$p99_busy_n" us "p99.9 $(field p999_us "$busy_n") us"
p99_ratio_n=$(awk -v a="$p99_busy_n" -v b="$p99_idle" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }')
row "guest p99 during (writers nice) / idle" "$p99_ratio_n" x "the server's share of it"
rss3=$(kib "$SERVE_PID" VmRSS)
row "RSS: after all writes" "$(mib "$rss3")" MiB "VmHWM $(mib "$(kib "$SERVE_PID" VmHWM)") MiB"

echo "loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "summary: N=$N: import $import_rate inst/s, $per_inst B/instance RSS ($per_inst_nud without user-data)," \
  "cold start ${cold_ms} ms (peak/steady $(awk -v a="$hwm2" -v b="$rss2" 'BEGIN { printf "%.2f", a / b }')x)," \
  "admin PATCH p99 ${adm_p99} ms, visible p99 ${vis_p99} ms after return, $WRITERS writers $wps writes/s," \
  "guest p99 ${p99_ratio}x under writes (${p99_ratio_n}x with the writers at nice +$WRITER_NICE)"
stop_serve
