#!/usr/bin/env bash
# The wrangler.toml [build] command: builds the release worker into build/.
# SKIP_WORKER_BUILD=1 reuses an existing build (the test command builds once, then starts
# wrangler dev, which would otherwise build the same thing again).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
if [ "${SKIP_WORKER_BUILD:-}" = 1 ] && [ -f build/worker/shim.mjs ]; then
  echo "[build] reusing build/ (SKIP_WORKER_BUILD=1)" >&2
  exit 0
fi
exec "$CARGO_BIN/worker-build" --release
