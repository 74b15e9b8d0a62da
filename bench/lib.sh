# Shared helpers for the bench/ scripts. Sourced, never run.
#
# Callers set TMP (a private temp dir) before calling start_openimds, and
# install `trap cleanup EXIT` so every process started here is stopped by PID.

BENCH_PIDS=()                     # PIDs of the servers this run started

# serve's per-instance request limits. These benchmarks drive one instance
# (the demo's, or a few probes) far past any guest's rate, so the limits are
# off unless LIMIT_ARGS says otherwise, e.g. to measure the limiter's cost on
# every request without refusing any:
#   LIMIT_ARGS="--instance-rate-limit 1000000 --instance-rate-burst 1000000"
read -r -a LIMIT_ARGS <<<"${LIMIT_ARGS:---instance-rate-limit 0 --instance-max-in-flight 0}"

die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

need_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || die "missing '$t' (Debian: apt-get install wrk nginx-light curl util-linux)"
  done
}

# Stops what this run started: SIGTERM by PID, SIGKILL after 5 s.
cleanup() {
  local pid i
  for pid in "${BENCH_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${BENCH_PIDS[@]}"; do
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n ${TMP:-} && -d $TMP ]]; then
    if [[ -n ${KEEP_TMP:-} ]]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
  fi
}

# Sets OPENIMDS_BINARY, building it into <repo>/build-bench (Release) if unset.
resolve_binary() {
  local repo=$1
  if [[ -z ${OPENIMDS_BINARY:-} ]]; then
    local build=$repo/build-bench
    echo "building openimds (Release) in $build ..." >&2
    cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DOPENIMDS_BUILD_TESTS=OFF \
      >"$TMP/cmake.log" 2>&1 ||
      { tail -20 "$TMP/cmake.log" >&2; die "cmake failed"; }
    ninja -C "$build" -j2 openimds bare_beast ceiling_server >"$TMP/ninja.log" 2>&1 ||
      { tail -20 "$TMP/ninja.log" >&2; die "build failed"; }
    OPENIMDS_BINARY=$build/src/app/openimds
    BARE_BEAST=${BARE_BEAST:-$build/bench/bare_beast}
  fi
  [[ -x $OPENIMDS_BINARY ]] || die "OPENIMDS_BINARY=$OPENIMDS_BINARY is not an executable"
}

# Starts `openimds serve --demo` pinned to $SERVER_CPU on an ephemeral loopback
# port. Sets IMDS_PID, IMDS_ADDR (host:port) and IMDS_ADMIN (unix socket path).
start_openimds() {
  IMDS_ADMIN=$TMP/admin.sock
  taskset -c "$SERVER_CPU" "$OPENIMDS_BINARY" serve --demo --threads 1 "${LIMIT_ARGS[@]}" \
    --store "sqlite:$TMP/db" --admin "unix:$IMDS_ADMIN" --listen 127.0.0.1:0 \
    --ready-file "$TMP/ready.json" --log-level warn >"$TMP/openimds.log" 2>&1 &
  IMDS_PID=$!
  BENCH_PIDS+=("$IMDS_PID")
  local i
  for i in $(seq 100); do
    [[ -s $TMP/ready.json ]] && break
    kill -0 "$IMDS_PID" 2>/dev/null || { cat "$TMP/openimds.log" >&2; die "openimds exited"; }
    sleep 0.1
  done
  [[ -s $TMP/ready.json ]] || die "openimds not ready after 10 s"
  IMDS_ADDR=$(sed -n 's/.*"guest":\[{"endpoint":"\([^"]*\)".*/\1/p' "$TMP/ready.json")
  [[ $IMDS_ADDR == 127.0.0.1:* ]] || die "unexpected ready file: $(cat "$TMP/ready.json")"
}

# Prints one counter of openimds' admin /metrics, e.g.
# imds_counter 'http_connections_total{listener="guest"}'.
imds_counter() {
  curl -s --unix-socket "$IMDS_ADMIN" http://admin/metrics |
    awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print "?" }'
}

# "cpu_ns wait_ns" so far for process $1, all its threads and its direct
# children: time on a CPU, and time runnable but waiting for one (the
# scheduler's run_delay), i.e. how much other load on the machine delayed it.
proc_sched() {
  local pid cpu=0 wait=0 f t
  for pid in "$1" $(cat "/proc/$1/task/"*/children 2>/dev/null); do
    for t in /proc/"$pid"/task/*/schedstat; do
      read -r -a f 2>/dev/null <"$t" || continue
      cpu=$((cpu + f[0])) wait=$((wait + f[1]))
    done
  done
  echo "$cpu $wait"
}

now_ns() { date +%s%N; }

# Converts a wrk latency such as 512.00us, 1.10ms or 1.02s to milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "?" }'
}

# Runs wrk pinned to $WRK_CPU against $1 for $2 seconds (more wrk args after)
# while watching server process $SERVER_PID_FOR_RUN. Sets globals RPS P50 P99
# (ms) REQS SOCKERR NON2XX, SRV_CPU/WRK_CPU_PCT (% of one core) and
# SRV_WAIT/WRK_WAIT (% of the run spent runnable but not running: contention),
# and leaves wrk's output in $TMP/wrk.out.
run_wrk() {
  local url=$1 secs=$2
  shift 2
  local s0 s1 w=(0 0) cur t0 t1 wpid
  read -r -a s0 <<<"$(proc_sched "$SERVER_PID_FOR_RUN")"
  t0=$(now_ns)
  taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --latency "$@" "$url" \
    >"$TMP/wrk.out" 2>&1 &
  wpid=$!
  # wrk's own counters vanish with it: keep the last sample (0.2 s granularity).
  while kill -0 "$wpid" 2>/dev/null; do
    read -r -a cur <<<"$(proc_sched "$wpid")"
    [[ ${cur[0]:-0} -gt ${w[0]} ]] && w=("${cur[@]}")
    sleep 0.2
  done
  wait "$wpid" || { cat "$TMP/wrk.out" >&2; die "wrk failed"; }
  t1=$(now_ns)
  read -r -a s1 <<<"$(proc_sched "$SERVER_PID_FOR_RUN")"
  local out=$TMP/wrk.out
  RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  P50=$(to_ms "$(awk '/Latency Distribution/ { f = 1 } f && $1 == "50%" { print $2; exit }' "$out")")
  P99=$(to_ms "$(awk '/Latency Distribution/ { f = 1 } f && $1 == "99%" { print $2; exit }' "$out")")
  REQS=$(awk '/ requests in / { print $1; exit }' "$out")
  SOCKERR=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$out")
  SOCKERR=${SOCKERR:-0}
  NON2XX=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  NON2XX=${NON2XX:-0}
  local pct='BEGIN { printf "%.0f", 100 * d / r }' r=$((t1 - t0))
  SRV_CPU=$(awk -v d=$((s1[0] - s0[0])) -v r=$r "$pct")
  SRV_WAIT=$(awk -v d=$((s1[1] - s0[1])) -v r=$r "$pct")
  WRK_CPU_PCT=$(awk -v d="${w[0]}" -v r=$r "$pct")
  WRK_WAIT=$(awk -v d="${w[1]}" -v r=$r "$pct")
}

# One measured run of wrk after an unreported warm-up; prints a table row and
# sets R_RPS R_P50 R_P99 R_CONNS R_REQS R_PERCPU R_WAIT (server + wrk wait%). counts_fn prints two counters
# ("connections requests" or any pair); the row shows their change over the
# run, less COUNTS_SELF for a counter that counts its own fetch (stub_status).
measure() {   # scenario server url pid counts_fn wrk-args...
  local scenario=$1 server=$2 url=$3 pid=$4 counts_fn=$5
  shift 5
  SERVER_PID_FOR_RUN=$pid
  run_wrk "$url" "$WARMUP" "$@"
  local before after
  read -r -a before <<<"$($counts_fn)"
  run_wrk "$url" "$DURATION" "$@"
  read -r -a after <<<"$($counts_fn)"
  local self=${COUNTS_SELF:-0} conns=? reqs=?
  if [[ ${before[0]:-?}${after[0]:-?}${before[1]:-?}${after[1]:-?} =~ ^[0-9]+$ ]]; then
    conns=$((after[0] - before[0] - self)) reqs=$((after[1] - before[1] - self))
  fi
  local note=""
  [[ $NON2XX != 0 ]] && note+=" NON-2XX=$NON2XX(invalid)"
  [[ $SOCKERR != 0 ]] && note+=" sock-errors=$SOCKERR"
  [[ $WRK_CPU_PCT -ge 95 ]] && note+=" wrk-cpu-bound"
  [[ $SRV_WAIT -ge 5 || $WRK_WAIT -ge 5 ]] && note+=" CONTENDED"
  # Requests per second of server CPU: less sensitive to other load than req/s.
  local per_cpu
  per_cpu=$(awk -v r="$RPS" -v c="$SRV_CPU" 'BEGIN { if (c > 0) printf "%.0f", 100 * r / c; else print "?" }')
  printf '%-22s %-8s %8s %9s %9s %8s %8s %8s %9s %9s%s\n' "$scenario" "$server" "$RPS" "${P50}ms" \
    "${P99}ms" "$per_cpu" "$SRV_CPU/$WRK_CPU_PCT" "$SRV_WAIT/$WRK_WAIT" "$conns" "$reqs" "$note"
  R_RPS=$RPS R_P50=$P50 R_P99=$P99 R_CONNS=$conns R_REQS=$reqs R_PERCPU=$per_cpu R_WAIT=$((SRV_WAIT + WRK_WAIT))
}

print_header() {   # labels of the two counter columns
  printf '%-22s %-8s %8s %9s %9s %8s %8s %8s %9s %9s\n' scenario server req/s p50 p99 req/cpu-s \
    'cpu% s/w' 'wait%' "$1" "$2"
}

print_legend() {
  echo "req/cpu-s: req/s per server CPU-second (steadier than req/s under other load);"
  echo "cpu% s/w: server/wrk CPU use (100 = one core); wait% s/w: time runnable but not"
  echo "running (other load on the machine); rows marked CONTENDED (wait >= 5%) are not clean."
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else printf "?" }'; }

print_machine() {
  echo "== machine"
  echo "nproc: $(nproc)   cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "kernel: $(uname -r)   loadavg: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "openimds: $("$OPENIMDS_BINARY" --version 2>&1 | head -1) ($OPENIMDS_BINARY)"
  echo "wrk: $(wrk -v 2>&1 | head -1 | awk '{ print $2 }')   curl: $(curl --version | head -1 | awk '{ print $2 }')"
  echo "pinning: server on cpu $SERVER_CPU, wrk (1 thread, $CONNECTIONS connections) on cpu $WRK_CPU"
}
