#!/usr/bin/env bash
# Deploy preflight: names the environment and its worker, and refuses (exit 1) placeholder KV
# ids, secrets not set, a secret among the vars, and a weak ADMIN_TOKEN (when exported in this
# shell; never printed). See tools/preflight.mjs and docs/DEPLOY.md.
#   scripts/preflight.sh --env staging                    # asks wrangler for the secrets' names
#   scripts/preflight.sh --env staging --secret-list F    # offline: names from a file
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec node tools/preflight.mjs "$@"
