#!/usr/bin/env bash
# The benchmark, one command: builds the release worker, then measures it against the reference
# JS worker (bench/reference) and the do-nothing floor (bench/floor) under the same local
# workerd, and writes bench/RESULTS.md. Not a test: it prints figures and never runs in CI.
# Settings: ROUNDS, SECONDS, CONNECTIONS, WARMUP_SECONDS (see bench/bench.mjs); WRITE_RESULTS=0
# prints without touching bench/RESULTS.md. Bounded: the whole run stops within 30 minutes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$ROOT"

bash scripts/bootstrap.sh          # the pinned tools, autocannon among them (package-lock.json)
bash scripts/build.sh              # the release worker, as deployed
BENCH_COMMAND="bash bench/run.sh${*:+ $*}" exec timeout --kill-after=30 1800 node bench/bench.mjs "$@"
