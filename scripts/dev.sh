#!/usr/bin/env bash
# Runs the worker locally under wrangler dev (real workerd, local KV and Durable Objects) on
# 127.0.0.1:${PORT:-8787}. Creates .dev.vars from .dev.vars.example when it is missing. When
# .dev.vars points STRIPE_API_BASE at 127.0.0.1, the local Stripe stand-in is started there
# first (or on STANDIN_PORT, which then overrides STRIPE_API_BASE for this run), delivering its
# events to this worker; it is stopped when wrangler stops.
#
# Local state: the worker's (KV, Durable Objects) and the stand-in's live together under
# .wrangler/state (DEV_STATE to move it), so a restart keeps both; `--reset` wipes both first.
# A taken port (the worker's or the stand-in's) stops the script before anything starts.
# `--test-scheduled` (passed to wrangler) adds the /__scheduled route that runs the Cron Trigger.
# Sets LOCAL_DEV=true (the dev server's relaxations, see below).
# APP_BASE_URL (where Checkout returns the browser) follows PORT: left unset, the worker uses
# its own loopback origin; set to a loopback address on another port (an old .dev.vars made
# for 8787), it is overridden with this port's address and a warning says so.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
if [ ! -f .dev.vars ]; then
  cp .dev.vars.example .dev.vars
  echo "[dev] created .dev.vars from .dev.vars.example (local test values)" >&2
fi
port="${PORT:-8787}"
state_dir="${DEV_STATE:-.wrangler/state}"
# Loopback only: the local settings (.dev.vars) hold test secrets and a short admin token that
# the worker accepts on loopback alone. Any other --ip/--host is refused, not passed on.
reset=false
scheduled=false
wrangler_args=()
for arg in "$@"; do
  case "$arg" in
    --ip|--ip=*|--host|--host=*|--local-upstream|--local-upstream=*|--remote)
      echo "[dev] $arg is not allowed: scripts/dev.sh serves 127.0.0.1 only (run wrangler yourself to do otherwise)" >&2
      exit 2
      ;;
    --persist-to|--persist-to=*)
      echo "[dev] $arg is not allowed: the state lives in $state_dir with the stand-in's (set DEV_STATE to move both)" >&2
      exit 2
      ;;
    --reset) reset=true ;;
    --test-scheduled) scheduled=true; wrangler_args+=("$arg") ;;
    *) wrangler_args+=("$arg") ;;
  esac
done
setting() { sed -n "s/^$1=//p" .dev.vars | tail -n 1; }
valid_port() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
# Something accepts connections there (another scripts/dev.sh, a stand-in, any server).
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! valid_port "$port"; then
  echo "[dev] PORT must be a port number, not '$port'" >&2
  exit 2
fi
if port_taken "$port"; then
  echo "[dev] port $port is taken on 127.0.0.1 (another scripts/dev.sh?): nothing started." >&2
  echo "[dev]   Stop it, or run this one on another port: PORT=$((port + 1)) STANDIN_PORT=<free port> scripts/dev.sh" >&2
  exit 1
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
else
  # Unset: this worker. Where a recovery session made by an event (a bank debit that failed
  # days later) returns: there is no request to take the origin from.
  vars=(--var "APP_BASE_URL:http://127.0.0.1:$port")
fi
# The dev server's relaxations (a short ADMIN_TOKEN such as the example's; without
# APP_BASE_URL, Checkout returning to this loopback origin) follow this setting, never a
# request's Host header: a worker started any other way has none of them.
vars+=(--var "LOCAL_DEV:true")
api_base="$(setting STRIPE_API_BASE)"
standin_port=""
if [[ "$api_base" =~ ^http://127\.0\.0\.1:([0-9]+)/?$ ]]; then
  configured_port="${BASH_REMATCH[1]}"
  standin_port="${STANDIN_PORT:-$configured_port}"
  if ! valid_port "$standin_port"; then
    echo "[dev] STANDIN_PORT must be a port number, not '$standin_port'" >&2
    exit 2
  fi
  if [ "$standin_port" != "$configured_port" ]; then
    vars+=(--var "STRIPE_API_BASE:http://127.0.0.1:$standin_port")
  fi
  if port_taken "$standin_port"; then
    echo "[dev] the stand-in's port $standin_port is taken on 127.0.0.1 (another scripts/dev.sh's stand-in?): nothing started." >&2
    echo "[dev]   Its events would go to the other worker. Stop it, or choose another: STANDIN_PORT=<free port> PORT=$port scripts/dev.sh" >&2
    exit 1
  fi
elif [ -n "${STANDIN_PORT:-}" ]; then
  echo "[dev] STANDIN_PORT is set but STRIPE_API_BASE in .dev.vars is ${api_base:-unset}, not a 127.0.0.1 stand-in" >&2
  exit 2
fi
bash scripts/bootstrap.sh
if $reset; then
  rm -rf "$state_dir"
  echo "[dev] --reset: removed $state_dir (the worker's KV and Durable Objects, and the stand-in's objects)" >&2
fi
mkdir -p "$state_dir"
if [ -n "$standin_port" ]; then
  # The secret goes through the environment, never the command line (which `ps` shows).
  STANDIN_WEBHOOK_SECRET="$(setting STRIPE_WEBHOOK_SECRET | cut -d, -f1)" \
    node standin/server.mjs --port "$standin_port" --state "$state_dir/standin.json" \
    --webhook-url "http://127.0.0.1:$port/webhook" &
  standin_pid=$!
  trap 'kill "$standin_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    port_taken "$standin_port" && break
    if ! kill -0 "$standin_pid" 2>/dev/null; then
      echo "[dev] the stand-in did not start (see above): nothing else started." >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "[dev] Stripe stand-in on http://127.0.0.1:$standin_port (test routes under /_test/; state in $state_dir/standin.json)" >&2
else
  echo "[dev] STRIPE_API_BASE is ${api_base:-the default}: talking to real Stripe" >&2
fi
echo "[dev] the worker: http://127.0.0.1:$port/ (wrangler builds it first; unchanged sources are not rebuilt; state in $state_dir)" >&2
echo "[dev] in a second terminal, before the README's tour:" >&2
echo "export PORT=$port${standin_port:+ STANDIN_PORT=$standin_port}" >&2
if $scheduled; then
  echo "[dev] --test-scheduled: curl \"http://127.0.0.1:$port/__scheduled?cron=*+*+*+*+*\" runs the Cron Trigger once (wrangler's" >&2
  echo "[dev]   \"Scheduled Workers are not automatically triggered\" warning means exactly this: nothing runs it on a clock)" >&2
else
  echo "[dev] the Cron Trigger (catch-up, notification retries) does not run locally; scripts/dev.sh --test-scheduled adds /__scheduled to run it" >&2
fi
wrangler dev --local --ip 127.0.0.1 --port "$port" --persist-to "$state_dir" ${vars[@]+"${vars[@]}"} ${wrangler_args[@]+"${wrangler_args[@]}"}
