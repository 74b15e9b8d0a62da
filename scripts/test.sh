#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs the packages,
# builds, checks module dependencies, then runs every test through ctest
# (GoogleTest unit tests, and the Python integration and real-client tests
# that start the real binary on loopback).
#
# Env: BUILD_DIR (default ./build), JOBS (build and test parallelism,
#      default 2), CTEST_ARGS (extra ctest arguments, e.g. "-R clients -V").
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD_DIR="${BUILD_DIR:-./build}"
JOBS="${JOBS:-2}"

bash scripts/install-deps.sh all

# Tests and benchmarks on explicitly: the cache may hold scripts/demo.sh's OFF.
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DOPENIMDS_BUILD_TESTS=ON -DOPENIMDS_BUILD_BENCH=ON
cmake --build "$BUILD_DIR" -j "$JOBS"

/usr/bin/python3 tools/check_deps.py

# shellcheck disable=SC2086 # CTEST_ARGS is a list of words on purpose
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" ${CTEST_ARGS:-}
