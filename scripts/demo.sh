#!/usr/bin/env bash
# Builds OpenIMDS and runs it with a demo instance that answers callers on
# loopback, so the EC2 metadata API can be tried with curl at once.
#
#   scripts/demo.sh                  # http://127.0.0.1:8169/
#   OPENIMDS_PORT=9000 scripts/demo.sh
#
# Env: OPENIMDS_PORT (default 8169), BUILD_DIR (default ./build),
#      JOBS (parallel build jobs, default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PORT="${OPENIMDS_PORT:-8169}"
BUILD_DIR="${BUILD_DIR:-./build}"
JOBS="${JOBS:-2}"

bash scripts/install-deps.sh build
# Only the server (RelWithDebInfo: -O2, and the same objects scripts/test.sh
# builds, so switching between the two does not rebuild everything). The
# options are cached, so say them explicitly (scripts/test.sh turns them on).
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DOPENIMDS_BUILD_TESTS=OFF -DOPENIMDS_BUILD_BENCH=OFF
cmake --build "$BUILD_DIR" --target openimds -j "$JOBS"

mkdir -p ./.demo
echo "OpenIMDS demo on http://127.0.0.1:${PORT}/ — try:"
echo "  curl http://127.0.0.1:${PORT}/latest/meta-data/instance-id"
echo "  TOKEN=\$(curl -sX PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://127.0.0.1:${PORT}/latest/api/token)"
echo "  curl -H \"X-aws-ec2-metadata-token: \$TOKEN\" http://127.0.0.1:${PORT}/latest/meta-data/iam/security-credentials/demo-role"
echo "  $BUILD_DIR/src/app/openimds instance list --admin unix:./.demo/admin.sock"
echo "Stop with Ctrl-C."
exec "$BUILD_DIR/src/app/openimds" serve --demo \
  --store sqlite:./.demo/openimds.db \
  --admin unix:./.demo/admin.sock \
  --listen "127.0.0.1:${PORT}"
