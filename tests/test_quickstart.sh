#!/usr/bin/env bash
# Runs the README's quick start exactly as written (every indented line of
# its first code block, continuation lines joined; the `make` line is
# skipped, the build is there) in a scratch directory where build/ points
# at $BUILD, with the sizes its ${VAR:-default} references read scaled down.
# A README change that breaks the recipe fails here. PASS/FAIL for run.sh.
set -u
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
case $BUILD in /*) build=$BUILD ;; *) build=$root/$BUILD ;; esac
if [ -n "${SEGDA_ASAN:-}" ]; then echo "SKIP quick start: not under ASan (minutes of training)"; exit 0; fi
fails=0
ok() { if [ "$1" -eq 0 ]; then echo "PASS $2"; else echo "FAIL $2${3:+: $3}"; fails=$((fails + 1)); fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# the block: from the heading to the first blank line after the first indented line
awk '/^## Quick start/ {on = 1; next}
     on && /^## / {exit}
     on && /^    / {inblk = 1; print substr($0, 5); next}
     on && inblk && /^$/ {exit}' "$root/README.md" > "$tmp/block.sh"
n=$(grep -c 'segda' "$tmp/block.sh")
ok "$([ "$n" -ge 6 ]; echo $?)" "the README's quick start has its commands" "$n lines with segda"
grep -v '^make$' "$tmp/block.sh" > "$tmp/quickstart.sh"
for v in ITERS PRETRAIN_ITERS ADAPT_ITERS ADABN_ITERS EVAL_EVERY SIZE N_SIM; do
  grep -q "\${$v:-" "$tmp/quickstart.sh" || { ok 1 "the quick start reads \${$v:-…}" "scaled-down runs need it"; }
done
mkdir "$tmp/work" && ln -s "$build" "$tmp/work/build"
(cd "$tmp/work" && SIZE=64x32 CROPS=2 N_SIM=4 N_REAL=4 N_VAL=2 PRETRAIN_ITERS=3 ITERS=4 WARMUP=2 EVAL_EVERY=2 \
   ADAPT_ITERS=2 ADABN_ITERS=2 bash -e -x "$tmp/quickstart.sh") > "$tmp/log" 2>&1
rc=$?
ok $rc "the quick start runs as written" "$(tail -15 "$tmp/log")"
w=$tmp/work
ok "$([ -s "$w/scores.json" ] && grep -q miou_19 "$w/scores.json"; echo $?)" "it writes scores.json"
npred=$(find "$w/pred" -name '*_trainIds.png' 2>/dev/null | wc -l)
ok "$([ "$npred" -eq 2 ]; echo $?)" "it predicts every val image" "$npred predictions"
ok "$([ -s "$w/runs/src/best.safetensors" ]; echo $?)" "--eval-every leaves best.safetensors"
exit $((fails > 0))
