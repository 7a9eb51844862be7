#!/usr/bin/env bash
# The benchmark, one command: builds the release worker, then measures it against the reference
# JS worker (bench/reference) and the floors (bench/floor, bench/floor-log, bench/floor-do)
# under the same local workerd, and writes bench/RESULTS.md. Not a test: it prints figures and never runs in CI.
# Settings: ROUNDS, SECONDS, CONNECTIONS, WARMUP_SECONDS, STARTUP_REPEATS (see bench/bench.mjs); WRITE_RESULTS=0
# prints without touching bench/RESULTS.md; LOAD_EVENTS, LOAD_CONNECTIONS for the load test that
# follows (bench/load.mjs). Bounded: the whole run stops within 45 minutes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$ROOT"

bash scripts/bootstrap.sh          # the pinned tools, autocannon among them (package-lock.json)
bash scripts/build.sh              # the release worker, as deployed
BENCH_COMMAND="bash bench/run.sh${*:+ $*}" timeout --kill-after=30 1800 node bench/bench.mjs "$@"
# Then the bounded load test (issue 7): LOAD_EVENTS signed deliveries over LOAD_CONNECTIONS,
# 0 non-2xx and every event id recorded, or it exits 1.
results=()
if [ "${WRITE_RESULTS:-1}" != 0 ]; then results=(--append-results bench/RESULTS.md); fi
exec timeout --kill-after=30 900 node bench/load.mjs --events "${LOAD_EVENTS:-20000}" \
  --connections "${LOAD_CONNECTIONS:-16}" "${results[@]}"
