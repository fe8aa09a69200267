#!/usr/bin/env bash
# Times `bughunt demo` (text) for each seed family: median and max of N runs, whole process.
# Target (issue 2): under 0.2 s each. Usage: bench/demo.sh [RUNS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
cargo build --release --quiet
bin=target/release/bughunt
printf '%-22s %10s %10s\n' family median_ms max_ms
for family in message-loss duplicate-delivery consumer-starvation persistence shutdown-leak; do
  times=()
  for _ in $(seq "$runs"); do
    start=$(date +%s%N)
    "$bin" demo "$family" >/dev/null
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000 )))
  done
  sorted=($(printf '%s\n' "${times[@]}" | sort -n))
  median=${sorted[$(( runs / 2 ))]}
  max=${sorted[$(( runs - 1 ))]}
  awk -v f="$family" -v m="$median" -v x="$max" 'BEGIN { printf "%-22s %10.1f %10.1f\n", f, m / 1000, x / 1000 }'
done
