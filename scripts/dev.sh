#!/usr/bin/env bash
# Runs the worker locally under wrangler dev (real workerd, local KV under .wrangler/state) on
# 127.0.0.1:${PORT:-8787}. Creates .dev.vars from .dev.vars.example when it is missing. When
# .dev.vars points STRIPE_API_BASE at 127.0.0.1, the local Stripe stand-in is started there
# first, delivering its events to this worker; it is stopped when wrangler stops.
# Sets LOCAL_DEV=true (the dev server's relaxations, see below).
# APP_BASE_URL (where Checkout returns the browser) follows PORT: left unset, the worker uses
# its own loopback origin; set to a loopback address on another port (an old .dev.vars made
# for 8787), it is overridden with this port's address and a warning says so.
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
if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
  echo "[dev] PORT must be a port number, not '$port'" >&2
  exit 2
fi
vars=()
app_base_url="$(setting APP_BASE_URL | sed -E 's/^"(.*)"$/\1/')"
if [[ "$app_base_url" =~ ^http://(127\.0\.0\.1|localhost|\[::1\])(:([0-9]+))?(/.*)?$ ]]; then
  set_port="${BASH_REMATCH[3]:-80}"
  if [ "$set_port" != "$port" ]; then
    echo "[dev] warning: .dev.vars has APP_BASE_URL=$app_base_url, but the worker listens on port $port;" >&2
    echo "[dev]   using APP_BASE_URL=http://127.0.0.1:$port${BASH_REMATCH[4]} for this run, so Checkout returns here." >&2
    echo "[dev]   Delete the APP_BASE_URL line from .dev.vars to follow PORT without this warning." >&2
    vars=(--var "APP_BASE_URL:http://127.0.0.1:$port${BASH_REMATCH[4]}")
  fi
elif [ -n "$app_base_url" ]; then
  echo "[dev] APP_BASE_URL is $app_base_url (from .dev.vars): Checkout returns browsers there, not to 127.0.0.1:$port" >&2
fi
# The dev server's relaxations (a short ADMIN_TOKEN such as the example's; without
# APP_BASE_URL, Checkout returning to this loopback origin) follow this setting, never a
# request's Host header: a worker started any other way has none of them.
vars+=(--var "LOCAL_DEV:true")
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
echo "[dev] the worker: http://127.0.0.1:$port/ (wrangler builds it first; unchanged sources are not rebuilt)" >&2
wrangler dev --local --ip 127.0.0.1 --port "$port" ${vars[@]+"${vars[@]}"} "$@"
