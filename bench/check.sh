#!/usr/bin/env bash
# Times the hunt loop's speed targets (issue 3):
#   - cold `bughunt init` (crates already downloaded, empty target): target <= 90 s
#   - warm check = touch the learner's file, then `bughunt check` to the verdict, median of N:
#     target <= 0.7 s for a std (sim) or shuttle hunt, <= 1.0 s for a tokio hunt.
# Usage: bench/check.sh [RUNS]   (default 10). Uses a release build and a fresh home in /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
cargo build --release --quiet
bin=$PWD/target/release/bughunt
work=$(mktemp -d /tmp/bughunt-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
unset CARGO_TARGET_DIR

ms() { echo $(( $(date +%s%N) / 1000000 )); }

start=$(ms)
"$bin" init "$work/home" >/dev/null
echo "cold init: $(( $(ms) - start )) ms"

cd "$work/home"
for pair in "message-loss:sim" "race-condition:shuttle" "shutdown-leak:tokio"; do
  family=${pair%%:*}; checker=${pair##*:}
  "$bin" start "$family" >/dev/null
  lib=$("$bin" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["current"]["path"])')
  "$bin" check >/dev/null || true          # first check: builds the hunt crate
  times=()
  for _ in $(seq "$runs"); do
    touch "$lib"
    t0=$(ms)
    "$bin" check >/dev/null || true
    times+=($(( $(ms) - t0 )))
  done
  sorted=($(printf '%s\n' "${times[@]}" | sort -n))
  echo "warm check, $checker ($family): median ${sorted[$(( runs / 2 ))]} ms, max ${sorted[$(( runs - 1 ))]} ms over $runs runs"
done
