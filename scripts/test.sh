#!/usr/bin/env bash
# The one test command (README, and .ci/run): native tests of the core, the SDK-made signature
# vectors and the Stripe parameter schemas checked for drift, a release build of the worker, the Stripe stand-in's tests, then
# end-to-end tests against real workerd. Installs what it needs first (scripts/bootstrap.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
bash scripts/bootstrap.sh

step "native tests (cargo test)"
cargo test --locked

step "signature vectors are exactly what the pinned Stripe SDK produces"
regenerated="$(mktemp)"
trap 'rm -f "$regenerated"' EXIT
node tools/gen-signature-vectors.mjs "$regenerated" >/dev/null
if ! diff -q tests/fixtures/signature_vectors.json "$regenerated" >/dev/null; then
  echo "tests/fixtures/signature_vectors.json differs from the SDK's output;" \
       "run: node tools/gen-signature-vectors.mjs" >&2
  exit 1
fi
echo "unchanged"

step "Stripe parameter schemas are exactly what the pinned Stripe SDK's types produce"
schemas="$(mktemp -d)"
trap 'rm -f "$regenerated"; rm -rf "$schemas"' EXIT
node tools/gen-stripe-schemas.mjs "$schemas" >/dev/null
if ! diff -r -q standin/schemas "$schemas" >/dev/null; then
  echo "standin/schemas differs from the SDK's types;" \
       "run: node tools/gen-stripe-schemas.mjs" >&2
  exit 1
fi
echo "unchanged"

step "release build of the worker"
bash scripts/build.sh

step "the Stripe stand-in's own tests, then end-to-end tests under wrangler dev (workerd)"
node --test --test-concurrency=1 'standin/*.test.mjs' 'e2e/*.test.mjs'
