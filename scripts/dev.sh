#!/usr/bin/env bash
# Runs the worker locally under wrangler dev (real workerd, local KV under .wrangler/state),
# on 127.0.0.1:${PORT:-8787}. Creates .dev.vars from .dev.vars.example when it is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
bash scripts/bootstrap.sh
if [ ! -f .dev.vars ]; then
  cp .dev.vars.example .dev.vars
  echo "[dev] created .dev.vars from .dev.vars.example (test values; edit it for your own)" >&2
fi
exec wrangler dev --local --ip 127.0.0.1 --port "${PORT:-8787}" "$@"
