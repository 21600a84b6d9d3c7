#!/usr/bin/env bash
# Data-parallel speed (issue 15), not a test: images/s of `segda train`
# (deeplab-mini, source-only, per-rank batch B of CROP crops) for 1 process
# of 1 thread and for N ranks of 1 thread under mpirun, REPS times each,
# interleaved. Wall: the loop time of log.jsonl (set-up excluded). CPU: user
# + sys seconds of the whole command per image (set-up included), which
# shows the cost of the ranks' communication apart from what else runs.
# Usage: bench/dist.sh [N] [ITERS] [B] [CROP] [REPS]; EXTRA="--freeze-bn true"
# adds options. Noisy wherever other work shares the cores.
set -eu
N=${1:-2}; ITERS=${2:-30}; B=${3:-2}; CROP=${4:-256x128}; REPS=${5:-3}
BIN=${SEGDA_BIN:-build/segda}
dir=$(mktemp -d /tmp/segda-bench-dist-XXXXXX); trap 'rm -rf "$dir"' EXIT
"$BIN" synth --out "$dir/data" --n-sim 32 --n-real 8 --n-real-val 4 --threads 2 > /dev/null 2>&1
common=(train --method source-only --source "gta5:$dir/data/sim" --target "cityscapes:$dir/data/real"
        --model deeplab-mini --iters "$ITERS" --batch "$B,$B" --crop "$CROP" --threads 1 --workers 1
        --log-every 1000 ${EXTRA:-})
loop_time() { grep '"it": '"$ITERS"',' "$1/log.jsonl" | sed 's/.*"time": \([0-9.]*\).*/\1/'; }
one() {  # ranks, out -> "wall cpu"
  rm -rf "$2"
  if [ "$1" -eq 1 ]; then
    /usr/bin/time -f "%U %S" -o "$2.time" "$BIN" "${common[@]}" --out "$2" > /dev/null 2>&1
  else
    /usr/bin/time -f "%U %S" -o "$2.time" mpirun --allow-run-as-root --oversubscribe -np "$1" \
      "$BIN" "${common[@]}" --out "$2" > /dev/null 2>&1
  fi
  echo "$(loop_time "$2") $(awk '{print $1 + $2}' "$2.time")"
}
for r in $(seq "$REPS"); do
  echo "1 $(one 1 "$dir/r1")"
  echo "$N $(one "$N" "$dir/rN")"
done | awk -v it="$ITERS" -v b="$B" -v n="$N" '
  { imgs = it * b * $1; ips[$1] = ips[$1] " " sprintf("%.1f", imgs / $2); cpu[$1] = cpu[$1] " " sprintf("%.3f", $3 / imgs);
    s[$1] += imgs / $2; c[$1]++ }
  END {
    printf "| ranks x threads | images/s (each run) | mean | speed-up | CPU s per image (each run) |\n|---|---|---|---|---|\n";
    printf "| 1 x 1 |%s | %.1f | 1.00 |%s |\n", ips[1], s[1] / c[1], cpu[1];
    printf "| %d x 1 |%s | %.1f | %.2f |%s |\n", n, ips[n], s[n] / c[n], (s[n] / c[n]) / (s[1] / c[1]), cpu[n] }'
