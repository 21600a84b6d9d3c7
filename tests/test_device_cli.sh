#!/usr/bin/env bash
# --device on every command that takes it: a malformed value is a usage
# error (exit 2) naming what is accepted; --device cpu runs; where no CUDA
# device is present (or the build has no CUDA backend) --device cuda and
# cuda:N fail before any work with a message naming the device and what was
# found, and --help documents the option. On a machine with a GPU the cuda
# checks are skipped (test_backend_cuda and test_cuda_emulated cover it).
# Prints PASS/FAIL lines for tests/run.sh.
set -u
BIN=${SEGDA_BIN:-build/segda}
fails=0
ok() { if [ "$1" -eq 0 ]; then echo "PASS $2"; else echo "FAIL $2${3:+: $3}"; fails=$((fails + 1)); fi; }
tmp=$(mktemp -d /tmp/segda-device-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$BIN" synth --out "$tmp/b" --n-sim 2 --n-real 2 --n-real-val 1 --size 64x32 --crops 1 --crop-size 32 --threads 1 \
  > /dev/null 2>&1 || { echo "FAIL device: synth"; exit 1; }
src="gta5:$tmp/b/sim"; tgt="cityscapes:$tmp/b/real"
# each command's arguments up to the point where it would start work
declare -A args=(
  [train]="--method source-only --source $src --target $tgt --model deeplab-mini --iters 1 --crop 48x32 --threads 1 --out $tmp/run"
  [pretrain]="--data $tmp/b/crops --model deeplab-mini --iters 1 --batch 2 --size 32 --threads 1 --out $tmp/pt.safetensors"
  [predict]="--model $tmp/pt.safetensors --input $tmp/b/sim/images/00001.png --out $tmp/pred"
  [eval]="--model $tmp/pt.safetensors --data $tgt"
  [gap]="--source $src --target $tgt"
  [bench]="deeplab-mini-train --iters 1 --warmup 0 --threads 1"
  [demo]="--out $tmp/demo"
)
for c in train pretrain predict eval gap bench demo; do
  h=$("$BIN" "$c" --help 2>&1)
  ok "$([[ "$h" == *"--device"*"cuda:N"* ]]; echo $?)" "segda $c --help documents --device"
  out=$("$BIN" "$c" ${args[$c]} --device gpu 2>&1); rc=$?
  ok "$([ $rc -eq 2 ] && [[ "$out" == *"cpu, cuda or cuda:N"* ]]; echo $?)" \
     "segda $c --device gpu is a usage error naming the accepted values" "exit $rc: $(echo "$out" | head -2)"
done
# --device cpu really runs (a training iteration, then the checkpoint on the CPU)
"$BIN" pretrain ${args[pretrain]} --device cpu > "$tmp/pt.log" 2>&1
ok $? "segda pretrain --device cpu runs" "$(tail -2 "$tmp/pt.log")"
"$BIN" train ${args[train]} --device cpu > "$tmp/train.log" 2>&1
ok $? "segda train --device cpu runs" "$(tail -2 "$tmp/train.log")"
"$BIN" predict ${args[predict]} --device cpu > "$tmp/predict.log" 2>&1
ok $? "segda predict --device cpu runs" "$(tail -2 "$tmp/predict.log")"
if "$BIN" devices 2>&1 | grep -q '^cuda:[0-9]'; then
  echo "SKIP device: the no-GPU errors (this machine has a CUDA device: $("$BIN" devices | grep '^cuda:0'))"
  exit $((fails > 0))
fi
found=$("$BIN" devices 2>&1 | grep '^cuda')
for c in train pretrain predict eval gap bench demo; do
  for d in cuda cuda:1; do
    rm -rf "$tmp/run2" "$tmp/demo"
    a=${args[$c]//$tmp\/run/$tmp/run2}
    out=$("$BIN" "$c" $a --device $d 2>&1); rc=$?
    want="no CUDA device: segda devices lists none"
    [[ $("$BIN" --version) == *"backends: cpu cuda"* ]] || want="this build has no cuda backend"
    ok "$([ $rc -ne 0 ] && [[ "$out" == *"$d"*"$want"* ]]; echo $?)" \
       "segda $c --device $d without a GPU fails naming the device and what was found" \
       "exit $rc: $(echo "$out" | head -3) (segda devices: $found)"
  done
done
ok "$([ ! -e "$tmp/run2/last.safetensors" ] && [ ! -e "$tmp/demo" ]; echo $?)" \
   "nothing is written by a refused --device cuda"
exit $((fails > 0))
