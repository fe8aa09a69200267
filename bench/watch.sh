#!/usr/bin/env bash
# Times watch mode's speed targets (issue 13):
#   - first check after `start` of a new instance, median of N:
#       cold   `start --no-prebuild`, then `check` at once (what it was before the prebuild)
#       now    `start`, then `check` at once (the check waits for the background build)
#       later  `start`, wait for the background build to finish, then `check`:
#              target < 1.5 s median
#   - save-to-verdict in `bughunt watch` (in tmux: write the learner's file, poll the screen
#     until the new verdict shows) against a plain warm `check` after the same write, median
#     of N: target within 100 ms of the warm check. The screen is polled every ~10 ms, so the
#     watch figure carries up to that much more.
# Usage: bench/watch.sh [RUNS]   (default 10). Uses a release build and a fresh home in /tmp;
# with CARGO_TARGET_DIR set, builds there (dependencies already built skip init's build time).
# Needs tmux and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
template=visibility-timeout
env -u CARGO_TARGET_DIR cargo build --release --quiet
bin=$PWD/target/release/bughunt
work=$(mktemp -d /tmp/bughunt-bench-watch.XXXXXX)
socket=bughunt-bench-$$
trap 'tmux -L "$socket" kill-server 2>/dev/null || true; rm -rf "$work"' EXIT

ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)] " ms (min " a[1] ", max " a[NR] ")"}'; }

"$bin" init "$work/home" >/dev/null
cd "$work/home"
seed=100

# One first check after a start of a new instance (a new seed writes other code and checks,
# so the hunt's crate builds anew), in the given way; appends to `times`, counts warm checks.
first_check() {
  local how=$1 t0
  seed=$(( seed + 1 ))
  case $how in
    cold) "$bin" start "$template" --seed "$seed" --no-prebuild >/dev/null ;;
    *) "$bin" start "$template" --seed "$seed" >/dev/null ;;
  esac
  if [ "$how" = later ]; then
    for _ in $(seq 9000); do [ -f .bughunt/prebuild.log ] && break; sleep 0.1; done
    [ -f .bughunt/prebuild.log ] || { echo "bench: the background build did not finish in 900 s" >&2; exit 1; }
  fi
  t0=$(ms)
  BUGHUNT_SHOW_BUILD=1 "$bin" check >/dev/null 2>"$work/check.err" || true
  times+=($(( $(ms) - t0 )))
  if grep -q "nothing compiled" "$work/check.err"; then warm_count=$(( warm_count + 1 )); fi
  # A prebuild still running would build beside the next start's.
  for _ in $(seq 9000); do pgrep -f "$bin prebuild" >/dev/null || break; sleep 0.1; done
}

"$bin" start "$template" --seed "$seed" --no-prebuild >/dev/null
"$bin" check >/dev/null 2>&1 || true   # the first hunt of a home builds the kit's dependencies
for how in cold now later; do
  times=(); warm_count=0
  for _ in $(seq "$runs"); do first_check "$how"; done
  echo "first check after start, $how: $(median "${times[@]}") over $runs runs; warm (nothing compiled) in $warm_count"
done

# Save-to-verdict. Each write alternates the broken and the fixed code (with a fresh comment,
# so every write changes the file) and waits for the verdict the other code gives.
lib=$("$bin" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["current"]["path"])')
cp "$lib" "$work/broken.rs"
"$bin" reveal --raw > "$work/fixed.rs"
"$bin" check >/dev/null 2>&1 || true
write() { { cat "$work/$1.rs"; echo "// bench $(date +%s%N)"; } > "$lib.tmp" && mv "$lib.tmp" "$lib"; }
expect() { [ "$1" = fixed ] && echo "Every check passes" || echo "The bug is still there"; }

times=()
for i in $(seq "$runs"); do
  form=$([ $(( i % 2 )) = 1 ] && echo fixed || echo broken)
  write "$form"
  t0=$(ms)
  "$bin" check >/dev/null 2>&1 || true
  times+=($(( $(ms) - t0 )))
done
echo "warm check after a save:        $(median "${times[@]}") over $runs runs"

write broken
"$bin" check >/dev/null 2>&1 || true   # watch opens on the broken code's verdict; run 1 saves the fix
tmux -L "$socket" new-session -d -s bench -x 200 -y 80 -c "$PWD" "exec env NO_COLOR=1 '$bin' watch"
for _ in $(seq 3000); do
  tmux -L "$socket" capture-pane -p -t bench | grep -q '\[watching: save to check\]' && break
  sleep 0.1
done
times=()
for i in $(seq "$runs"); do
  form=$([ $(( i % 2 )) = 1 ] && echo fixed || echo broken)
  want=$(expect "$form")
  t0=$(ms)
  write "$form"
  seen=
  for _ in $(seq 30000); do   # ~300 s at most
    screen=$(tmux -L "$socket" capture-pane -p -t bench)
    if grep -q "$want" <<<"$screen" && grep -q '\[watching: save to check\]' <<<"$screen"; then
      seen=1; break
    fi
    sleep 0.01
  done
  [ -n "$seen" ] || { echo "bench: watch showed no verdict in 300 s" >&2; exit 1; }
  times+=($(( $(ms) - t0 )))
done
tmux -L "$socket" send-keys -t bench q
echo "save-to-verdict in watch:       $(median "${times[@]}") over $runs runs (the 50 ms debounce included)"
