# Sourced by the other scripts: the pinned tools first on PATH, and worker-build pointed at
# local binaries so that it never tries to download wasm-bindgen, wasm-opt or esbuild.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$ROOT/node_modules/.bin:$CARGO_BIN:$PATH"
export WASM_BINDGEN_BIN="$CARGO_BIN/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
export WRANGLER_SEND_METRICS=false
# wrangler dev (miniflare) fetches https://workers.cloudflare.com/cf.json for `request.cf` at
# start; offline that prints `getaddrinfo ENOTFOUND workers.cloudflare.com` and falls back to a
# placeholder anyway. The worker never reads `request.cf`, so the placeholder is used directly.
export CLOUDFLARE_CF_FETCH_ENABLED="${CLOUDFLARE_CF_FETCH_ENABLED:-false}"
