#!/usr/bin/env bash
# The wrangler.toml [build] command: builds the release worker into build/.
#
# wrangler runs it on every `wrangler dev` start. A release build with wasm-opt takes minutes,
# so it is skipped when nothing that goes into build/ changed since the last build: the stamp
# build/.inputs holds a hash of the inputs (src/, Cargo.toml, Cargo.lock, this script and
# env.sh, the tools' versions, RUSTFLAGS) and of the files the build wrote, and both must
# still match. FORCE_BUILD=1 builds anyway.
# SKIP_WORKER_BUILD=1 reuses an existing build/ whatever it was built from (the test command
# builds once, then starts wrangler dev, which would otherwise look again).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
if [ "${SKIP_WORKER_BUILD:-}" = 1 ] && [ -f build/worker/shim.mjs ]; then
  echo "[build] reusing build/ (SKIP_WORKER_BUILD=1)" >&2
  exit 0
fi

stamp=build/.inputs
outputs=(build/worker/shim.mjs build/index.js build/index_bg.wasm)

inputs_hash() {
  {
    # Every file under src/ by name and content, in a fixed order.
    find src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    sha256sum Cargo.toml Cargo.lock scripts/build.sh scripts/env.sh
    rustc --version --verbose
    "$CARGO_BIN/worker-build" --version
    "$WASM_BINDGEN_BIN" --version
    "$WASM_OPT_BIN" --version
    "$ESBUILD_BIN" --version
    echo "RUSTFLAGS=${RUSTFLAGS:-}"
  } 2>&1 | sha256sum | cut -d' ' -f1
}

outputs_hash() {
  sha256sum "${outputs[@]}" 2>/dev/null | sha256sum | cut -d' ' -f1
}

want="$(inputs_hash)"
if [ "${FORCE_BUILD:-}" != 1 ] && [ -f "$stamp" ] &&
  [ "$(sed -n 1p "$stamp")" = "$want" ] && [ "$(sed -n 2p "$stamp")" = "$(outputs_hash)" ]; then
  echo "[build] build/ is up to date with src/, Cargo.* and the tools (FORCE_BUILD=1 rebuilds)" >&2
  exit 0
fi

rm -f "$stamp"
"$CARGO_BIN/worker-build" --release
printf '%s\n%s\n' "$want" "$(outputs_hash)" > "$stamp"
