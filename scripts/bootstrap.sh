#!/usr/bin/env bash
# Idempotent toolchain setup, run by every README command. On a fresh machine it adds the
# wasm32 target, installs worker-build and wasm-bindgen-cli at the versions Cargo.lock needs,
# and the npm tools at the versions package-lock.json pins; each step is skipped when done.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

say() { printf '[bootstrap] %s\n' "$*" >&2; }

# The version of a package as resolved in Cargo.lock.
lock_version() {
  awk -v name="$1" '
    $0 == "name = \"" name "\"" { found = 1; next }
    found && /^version = / { gsub(/version = |"/, ""); print; exit }
  ' Cargo.lock
}

# Looks in $CARGO_BIN itself, not on PATH: that is where env.sh points worker-build's
# WASM_BINDGEN_BIN, and a copy elsewhere on PATH must not count as installed.
installed_version() {
  [ -x "$CARGO_BIN/$1" ] || return 0
  "$CARGO_BIN/$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1
}

ensure_cargo_tool() { # crate binary version
  local crate="$1" binary="$2" want="$3"
  if [ -z "$want" ]; then say "Cargo.lock names no version for $crate"; exit 1; fi
  local have; have="$(installed_version "$binary")"
  if [ "$have" = "$want" ]; then return 0; fi
  say "installing $crate $want (found: ${have:-none}); this takes a few minutes once"
  cargo install "$crate" --version "$want" --force
}

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# worker-build is released with the worker crate; wasm-bindgen-cli must equal the library.
ensure_cargo_tool worker-build worker-build "$(lock_version worker)"
ensure_cargo_tool wasm-bindgen-cli wasm-bindgen "$(lock_version wasm-bindgen)"

# `npm ci`: exactly the versions package-lock.json pins, and it never rewrites the lockfile
# (`npm install` may add the optional packages of other platforms to it, leaving the checkout
# modified; `npm ci` refuses a lockfile out of sync with package.json instead). The lockfile
# lists every platform's workerd and esbuild; npm installs only this machine's. It runs only
# when package.json or the lockfile changed since the last install: the stamp is their hash,
# and nothing here writes either file, so a second run installs nothing.
stamp="node_modules/.bootstrap-stamp"
want_stamp="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_stamp" ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want_stamp" > "$stamp"
fi

node_major="$(node --version | sed -E 's/^v([0-9]+).*/\1/')"
if [ "$node_major" -lt 22 ]; then
  say "node on PATH is $(node --version); expected the pinned Node LTS from node_modules"
  exit 1
fi

# The browser test (e2e/browser.test.mjs) drives Debian's chromium through playwright-core,
# which downloads no browser of its own. Installed here when missing; CI runs as root.
CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM_BIN" ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "$CHROMIUM_BIN is missing: the browser test needs Debian's chromium; install it as root with: apt-get install -y chromium"
    exit 1
  fi
  say "installing Debian's chromium for the browser test"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  if [ ! -x "$CHROMIUM_BIN" ]; then
    say "apt-get installed chromium, but $CHROMIUM_BIN is still missing"
    exit 1
  fi
fi
