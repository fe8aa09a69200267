#!/usr/bin/env bash
# Times the hunt loop's speed targets:
#   - cold `bughunt init` (crates already downloaded, empty target): target <= 90 s
#   - warm check = touch the learner's file, then `bughunt check` to the verdict, median of N,
#     once on the broken code as started and once on the fixed code (`reveal --raw`), where
#     every stage, properties included, runs to the end:
#     target <= 0.7 s for a std (sim) or shuttle hunt, <= 1.0 s for a tokio hunt.
#   - the stages' own time on the fixed code (the report's elapsed_ms, summed): the property
#     stages may add at most 150 ms in sim and tokio hunts and 400 ms in shuttle and loom hunts.
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

# Median and max of the warm checks of the current hunt, after a first (building) check.
warm() {
  local lib=$1 times=() sorted
  "$bin" check >/dev/null 2>&1 || true
  for _ in $(seq "$runs"); do
    touch "$lib"
    t0=$(ms)
    "$bin" check >/dev/null 2>&1 || true
    times+=($(( $(ms) - t0 )))
  done
  sorted=($(printf '%s\n' "${times[@]}" | sort -n))
  echo "median ${sorted[$(( runs / 2 ))]} ms, max ${sorted[$(( runs - 1 ))]} ms"
}

cd "$work/home"
for pair in "visibility-timeout:sim" "lost-update:shuttle" "relaxed-flag:loom" "cancel-and-join:tokio"; do
  template=${pair%%:*}; checker=${pair##*:}
  "$bin" start "$template" >/dev/null
  lib=$("$bin" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["current"]["path"])')
  echo "warm check, $checker ($template), broken: $(warm "$lib") over $runs runs"
  "$bin" reveal --raw > "$lib.fixed" && mv "$lib.fixed" "$lib"
  echo "warm check, $checker ($template), fixed:  $(warm "$lib") over $runs runs"
  report=$(ls -t .bughunt/reports/*.json | head -n 1)
  python3 - "$report" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
stages = report["stages"]
total = sum(s.get("elapsed_ms", 0) for s in stages)
shown = ", ".join(f'{s["id"]} {s.get("elapsed_ms", 0)}' for s in stages)
print(f"  stages on the fixed code: {total} ms in all ({shown})")
PY
done
