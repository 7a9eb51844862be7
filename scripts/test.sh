#!/usr/bin/env bash
# The one test command (README, and .ci/run): native tests of the core, the files made from the
# pinned Stripe SDK (signature vectors, parameter schemas, example objects) checked for drift, a
# release build of the worker, the links of the docs, the tools' and the stand-in's tests, then
# end-to-end tests against real workerd. Installs what it needs first (scripts/bootstrap.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
bash scripts/bootstrap.sh

step "every relative link and anchor in README.md and docs/ resolves"
node tools/check-links.mjs

step "native tests (cargo test)"
cargo test --locked

# Files made from the pinned Stripe SDK are committed; each is made again into a scratch copy
# and must come out the same, so a new SDK version shows up as a diff to review and commit.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
unchanged_since_generated() { # committed file or folder, its generator, what it is
  local committed="$1" generator="$2" fresh
  fresh="$scratch/$(basename "$1")"
  step "$3"
  node "$generator" "$fresh" >/dev/null
  if ! diff -r -q "$committed" "$fresh" >/dev/null; then
    echo "$committed differs from what $generator makes now; run: node $generator" >&2
    exit 1
  fi
  echo "unchanged"
}
unchanged_since_generated tests/fixtures/signature_vectors.json tools/gen-signature-vectors.mjs \
  "signature vectors are exactly what the pinned Stripe SDK produces"
unchanged_since_generated standin/schemas tools/gen-stripe-schemas.mjs \
  "Stripe parameter schemas are exactly what the pinned Stripe SDK's types produce"
unchanged_since_generated tests/fixtures/stripe_objects.json tools/gen-object-fixtures.mjs \
  "Stripe's example objects and their nullable variants are what the pinned SDK's types give"

step "release build of the worker"
bash scripts/build.sh

step "the tools' and the Stripe stand-in's own tests, then end-to-end tests under wrangler dev (workerd)"
node --test --test-concurrency=1 'tools/*.test.mjs' 'standin/*.test.mjs' 'e2e/*.test.mjs'
