#!/usr/bin/env bash
# Release-profile experiments: builds the worker with each (opt-level, wasm-opt level) pair and
# prints the wasm and JS sizes, raw and gzip; with SPEED=1 it then measures all of them against
# the reference in one interleaved run of bench/bench.mjs (paths from BENCH_PATHS, default
# reject,accept). Leaves Cargo.toml and build/ as committed. Not a test.
#   bash bench/profiles.sh                # sizes (a few minutes: every variant is a full LTO build)
#   SPEED=1 bash bench/profiles.sh        # sizes, then speed
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$ROOT"
bash scripts/bootstrap.sh

VARIANTS="${VARIANTS:-s:-Os z:-Oz 3:-O3 s:-Oz z:-Os}"
work="$(mktemp -d)"
cp Cargo.toml "$work/Cargo.toml"
restore() { cp "$work/Cargo.toml" Cargo.toml; }
trap 'restore; rm -rf "$work"' EXIT

committed="$(sed -n 's/^opt-level = "\(.*\)"/\1/p' Cargo.toml | head -n 1) / $(sed -n 's/^wasm-opt = \["\(.*\)"\]/\1/p' Cargo.toml)"
echo "| opt-level | wasm-opt | wasm raw KiB | wasm gzip KiB | JS raw KiB | JS gzip KiB | total gzip KiB |"
echo "|---|---|---:|---:|---:|---:|---:|"
extra=""
for variant in $VARIANTS; do
  opt="${variant%%:*}" wasm_opt="${variant#*:}" name="o${variant%%:*}w${variant#*:-O}"
  restore
  sed -i "s/^wasm-opt = \[.*\]/wasm-opt = [\"$wasm_opt\"]/" Cargo.toml
  CARGO_PROFILE_RELEASE_OPT_LEVEL="$opt" "$CARGO_BIN/worker-build" --release >"$work/$name.log" 2>&1 \
    || { echo "build $name failed: $work/$name.log" >&2; cat "$work/$name.log" >&2; exit 1; }
  mkdir -p "$work/$name"
  cp -r build "$work/$name/build"
  # The same settings as wrangler.toml, pointing at this build.
  sed -e "1s/^name = .*/name = \"variant-$name\"/" -e '/^\[build\]/,/^$/d' wrangler.toml > "$work/$name/wrangler.toml"
  kib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; }
  w=build/index_bg.wasm j=build/index.js
  wr=$(stat -c%s $w) wg=$(gzip -9c $w | wc -c) jr=$(stat -c%s $j) jg=$(gzip -9c $j | wc -c)
  echo "| $opt | $wasm_opt | $(kib "$wr") | $(kib "$wg") | $(kib "$jr") | $(kib "$jg") | $(kib $((wg + jg))) |"
  extra="${extra:+$extra,}$name=$work/$name/wrangler.toml"
done
echo
echo "(committed: $committed)"
restore
bash scripts/build.sh >/dev/null 2>&1

if [ "${SPEED:-}" = 1 ]; then
  names="$(echo "$extra" | tr ',' '\n' | cut -d= -f1 | paste -sd,)"
  BENCH_EXTRA="$extra" BENCH_WORKERS="$names,reference" BENCH_PATHS="${BENCH_PATHS:-reject,accept}" \
    WRITE_RESULTS=0 BENCH_COMMAND="SPEED=1 bash bench/profiles.sh" \
    timeout --kill-after=30 1800 node bench/bench.mjs
fi
