#!/usr/bin/env bash
# Installs what OpenIMDS needs from Debian 12's packages, and nothing when it
# is all there already (no apt-get update, no network).
#
# Usage: scripts/install-deps.sh [SET...]
#   build   compiler, CMake, Ninja and the libraries the server links
#   test    build + GoogleTest/Benchmark + the Python suite (pytest, botocore,
#           cloud-init as a library) + curl
#   tools   iproute2, nftables, nginx-light, wrk (netns tests, benchmarks)
#   fuzz    clang and its libFuzzer/sanitizer runtimes (scripts/fuzz.sh)
#   all     build, test and tools (the default; CI needs no clang)
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake ninja-build g++ pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev openssl libsqlite3-dev sqlite3 libpq-dev libcli11-dev
)
TEST_PKGS=(
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-pytest python3-botocore cloud-init curl
  python3-nova  # the reference renderer for tools/nova_conformance.py (a library only)
)
TOOLS_PKGS=(iproute2 nftables nginx-light wrk)
FUZZ_PKGS=(clang-14 libclang-rt-14-dev)

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
}

sets=("$@")
[[ ${#sets[@]} -eq 0 ]] && sets=(all)
wanted=()
for set in "${sets[@]}"; do
  case "$set" in
    build) wanted+=("${BUILD_PKGS[@]}") ;;
    test) wanted+=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
    tools) wanted+=("${TOOLS_PKGS[@]}") ;;
    fuzz) wanted+=("${FUZZ_PKGS[@]}") ;;
    all) wanted+=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${TOOLS_PKGS[@]}") ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install-deps.sh: unknown set '$set'" >&2; usage >&2; exit 2 ;;
  esac
done
# Deduplicate, keeping the order.
declare -A seen=()
packages=()
for p in "${wanted[@]}"; do
  [[ -n "${seen[$p]:-}" ]] && continue
  seen[$p]=1
  packages+=("$p")
done

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  fi
fi

# cloud-init is installed only to be used as a library by the tests: it must
# never act on this machine at boot. The marker must exist before the package
# does (its postinst may enable units).
disable_cloud_init() {
  if [[ ! -e /etc/cloud/cloud-init.disabled ]]; then
    "${SUDO[@]}" mkdir -p /etc/cloud
    "${SUDO[@]}" touch /etc/cloud/cloud-init.disabled
  fi
}

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [[ "$status" == ii* ]] || missing+=("$p")
done

needs_cloud_init=0
for p in "${packages[@]}"; do
  [[ "$p" == cloud-init ]] && needs_cloud_init=1
done
# Also when cloud-init is already there: the marker is cheap insurance.
[[ $needs_cloud_init -eq 1 ]] && disable_cloud_init

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps.sh: all ${#packages[@]} packages present (${sets[*]})"
  exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
