#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs one of them
# (fuzz/README.md).
#
# Usage: scripts/fuzz.sh TARGET SECONDS [LIBFUZZER_FLAG...]
#   TARGET   one of: guest_request admin_json imds_token proxy_signature import_lines
#   SECONDS  how long to fuzz (libFuzzer's -max_total_time)
# Env: BUILD_DIR  the clang build (default ./build-fuzz; gitignored)
#      WORK_DIR   scratch for this target (default $BUILD_DIR/work/TARGET):
#                 new inputs go to WORK_DIR/corpus, crashes and timeouts to
#                 WORK_DIR/findings, the output to WORK_DIR/fuzz.log
#      JOBS       build parallelism (default 2)
# Reads fuzz/corpus/TARGET (and fuzz/TARGET.dict if there), never writes to
# the repository. One process, one thread (no -jobs, no -fork). Prints the
# executions at the end; exits non-zero if libFuzzer found something.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGETS=(guest_request admin_json imds_token proxy_signature import_lines)
usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}
if [[ $# -lt 2 ]]; then
  usage >&2
  exit 2
fi
TARGET="$1"
SECONDS_TO_RUN="$2"
shift 2
known=0
for t in "${TARGETS[@]}"; do [[ "$t" == "$TARGET" ]] && known=1; done
if [[ $known -eq 0 ]]; then
  echo "fuzz.sh: unknown target '$TARGET' (known: ${TARGETS[*]})" >&2
  exit 2
fi
if ! [[ "$SECONDS_TO_RUN" =~ ^[0-9]+$ ]] || [[ "$SECONDS_TO_RUN" -eq 0 ]]; then
  echo "fuzz.sh: SECONDS must be a positive number, not '$SECONDS_TO_RUN'" >&2
  exit 2
fi

BUILD_DIR="${BUILD_DIR:-./build-fuzz}"
JOBS="${JOBS:-2}"
WORK_DIR="${WORK_DIR:-$BUILD_DIR/work/$TARGET}"

# The build set plus clang and its sanitizer/libFuzzer runtimes.
bash scripts/install-deps.sh build fuzz

launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 "${launcher[@]}" \
  -DOPENIMDS_BUILD_FUZZ=ON -DOPENIMDS_BUILD_TESTS=OFF -DOPENIMDS_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS" --target "fuzz_$TARGET"

mkdir -p "$WORK_DIR/corpus" "$WORK_DIR/findings"
log="$WORK_DIR/fuzz.log"
# Findings of earlier runs stay; only this run's count.
started="$WORK_DIR/.started"
touch "$started"
dict=()
[[ -f "fuzz/$TARGET.dict" ]] && dict=(-dict="fuzz/$TARGET.dict")

echo "fuzz.sh: $TARGET for ${SECONDS_TO_RUN}s; new inputs in $WORK_DIR/corpus," \
  "findings in $WORK_DIR/findings, output in $log"
status=0
# The first corpus directory receives what libFuzzer finds; the repository's
# seeds come second and are only read.
"$BUILD_DIR/fuzz/fuzz_$TARGET" "$WORK_DIR/corpus" "fuzz/corpus/$TARGET" \
  -max_total_time="$SECONDS_TO_RUN" -timeout=30 -print_final_stats=1 \
  -artifact_prefix="$WORK_DIR/findings/" "${dict[@]}" "$@" >"$log" 2>&1 || status=$?

grep -E '^(stat::|#[0-9]+ +DONE)' "$log" || true
executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
echo "fuzz.sh: $TARGET: ${executions:-?} executions (${per_second:-?}/s)," \
  "$(find "$WORK_DIR/corpus" -type f | wc -l) inputs in the scratch corpus"
findings=$(find "$WORK_DIR/findings" -type f -newer "$started" | wc -l)
if [[ $status -ne 0 || $findings -ne 0 ]]; then
  echo "fuzz.sh: $TARGET: libFuzzer exited $status; findings:" >&2
  find "$WORK_DIR/findings" -type f -newer "$started" >&2
  grep -m1 -A30 -E '^==[0-9]+==|invariant broken|runtime error' "$log" >&2 || tail -30 "$log" >&2
  exit 1
fi
