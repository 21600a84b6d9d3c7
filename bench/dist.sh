#!/usr/bin/env bash
# Data-parallel speed (issue 15), not a test: images/s of `segda train`
# (deeplab-mini, source-only, per-rank batch B of CROP crops) for 1 process
# of 1 thread and for N ranks of 1 thread under mpirun, from the loop time
# in log.jsonl (set-up excluded). Usage: bench/dist.sh [N] [ITERS] [B] [CROP]
# Noisy wherever other work shares the cores.
set -eu
N=${1:-2}; ITERS=${2:-30}; B=${3:-2}; CROP=${4:-256x128}
BIN=${SEGDA_BIN:-build/segda}
dir=$(mktemp -d /tmp/segda-bench-dist-XXXXXX); trap 'rm -rf "$dir"' EXIT
"$BIN" synth --out "$dir/data" --n-sim 32 --n-real 8 --n-real-val 4 --threads 2 > /dev/null 2>&1
common=(train --method source-only --source "gta5:$dir/data/sim" --target "cityscapes:$dir/data/real"
        --model deeplab-mini --iters "$ITERS" --batch "$B,$B" --crop "$CROP" --threads 1 --workers 1 --log-every 1000)
loop_time() { grep '"it": '"$ITERS"',' "$1/log.jsonl" | sed 's/.*"time": \([0-9.]*\).*/\1/'; }
"$BIN" "${common[@]}" --out "$dir/r1" > /dev/null 2>&1
t1=$(loop_time "$dir/r1")
mpirun --allow-run-as-root --oversubscribe -np "$N" "$BIN" "${common[@]}" --out "$dir/rN" > /dev/null 2>&1
tn=$(loop_time "$dir/rN")
awk -v t1="$t1" -v tn="$tn" -v n="$N" -v it="$ITERS" -v b="$B" 'BEGIN {
  i1 = it * b / t1; in_ = it * b * n / tn;
  printf "| ranks x threads | images/s | speed-up |\n|---|---|---|\n";
  printf "| 1 x 1 | %.1f | 1.00 |\n| %d x 1 | %.1f | %.2f (efficiency %.0f%%) |\n", i1, n, in_, in_ / i1, 100 * in_ / i1 / n }'
