#!/usr/bin/env bash
# Runs the worker locally under wrangler dev (real workerd, local KV under .wrangler/state) on
# 127.0.0.1:${PORT:-8787}. Creates .dev.vars from .dev.vars.example when it is missing. When
# .dev.vars points STRIPE_API_BASE at 127.0.0.1, the local Stripe stand-in is started there
# first, delivering its events to this worker; it is stopped when wrangler stops.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
bash scripts/bootstrap.sh
if [ ! -f .dev.vars ]; then
  cp .dev.vars.example .dev.vars
  echo "[dev] created .dev.vars from .dev.vars.example (local test values)" >&2
fi
port="${PORT:-8787}"
# Loopback only: the local settings (.dev.vars) hold test secrets and a short admin token that
# the worker accepts on loopback alone. Any other --ip/--host is refused, not passed on.
for arg in "$@"; do
  case "$arg" in
    --ip|--ip=*|--host|--host=*|--local-upstream|--local-upstream=*|--remote)
      echo "[dev] $arg is not allowed: scripts/dev.sh serves 127.0.0.1 only (run wrangler yourself to do otherwise)" >&2
      exit 2
      ;;
  esac
done
setting() { sed -n "s/^$1=//p" .dev.vars | tail -n 1; }
api_base="$(setting STRIPE_API_BASE)"
if [[ "$api_base" =~ ^http://127\.0\.0\.1:([0-9]+)/?$ ]]; then
  # The secret goes through the environment, never the command line (which `ps` shows).
  STANDIN_WEBHOOK_SECRET="$(setting STRIPE_WEBHOOK_SECRET | cut -d, -f1)" \
    node standin/server.mjs --port "${BASH_REMATCH[1]}" \
    --webhook-url "http://127.0.0.1:$port/webhook" &
  standin_pid=$!
  trap 'kill "$standin_pid" 2>/dev/null || true' EXIT
  echo "[dev] Stripe stand-in on $api_base (test routes under $api_base/_test/)" >&2
else
  echo "[dev] STRIPE_API_BASE is ${api_base:-the default}: talking to real Stripe" >&2
fi
wrangler dev --local --ip 127.0.0.1 --port "$port" "$@"
