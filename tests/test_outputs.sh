#!/usr/bin/env bash
# What output files record: config.txt holds the values a run used (an
# "auto" knob resolved: bn, aux, head-lr-mult,
# adaptseg's lambda-adv), and such a run resumes; gap.json carries its setup
# (inputs, options, segda version, precision, device). The demo's
# results.json and one-seed table are checked in tests/test_demo.c.
# Prints PASS/FAIL lines for tests/run.sh.
set -u
BIN=${SEGDA_BIN:-build/segda}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
fails=0
ok() { if [ "$1" -eq 0 ]; then echo "PASS $2"; else echo "FAIL $2${3:+: $3}"; fails=$((fails + 1)); fi; }
has() { grep -qxF "$2" "$1"; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
"$BIN" synth --out b --n-sim 2 --n-real 2 --n-real-val 2 --size 64x32 >/dev/null 2>&1
run() { "$BIN" train --source gta5:b/sim --target cityscapes:b/real --model deeplab-mini --crop 64x32 "$@" >>log 2>&1; }

run --method adaptseg --out a --iters 2 --stop-after 1
ok $? "adaptseg from scratch runs"
ok "$(has a/config.txt "lambda-adv = 0.001" && has a/config.txt "bn = train" && has a/config.txt "aux = off" &&
      has a/config.txt "head-lr-mult = 1"; echo $?)" \
   "config.txt stores the resolved values (lambda-adv 0.001, bn train, aux off, head-lr-mult 1)" \
   "$(grep -E 'lambda-adv|^bn|^aux|head-lr' a/config.txt | tr '\n' ';')"
run --method adaptseg --out a --resume
ok "$([ $? -eq 0 ] && grep -q '"it": 1,' a/log.jsonl; echo $?)" "a run whose config.txt holds resolved values resumes" \
   "$(tail -2 log)"
run --method adaptseg --out a2 --iters 2 --stop-after 1 && run --method adaptseg --out a2 --resume --bn auto --lambda-adv auto
ok $? "resuming with the \"auto\" given at the start matches the resolved values stored" "$(tail -2 log)"
run --method adaptseg --gan ls --out ls --iters 1
ok "$(has ls/config.txt "lambda-adv = 0.01"; echo $?)" "LS-GAN's published lambda-adv (0.01) is stored"
run --method adaptseg --lambda-adv 0.005 --init a/last.safetensors --out ex --iters 1
ok "$(has ex/config.txt "lambda-adv = 0.005" && has ex/config.txt "bn = batch-stats" &&
      has ex/config.txt "head-lr-mult = 10"; echo $?)" "a value given stays; with --init the auto values resolve to adaptseg's recipe (batch-stats BN), head x10"

"$BIN" gap --labels-only --a gta5:b/sim --b cityscapes:b/real --json gap.json >/dev/null 2>&1
ok $? "segda gap --labels-only --json"
/usr/bin/python3 - <<'PY' > py.out 2>&1
import json, subprocess, sys
g = json.load(open("gap.json"))
s = g.get("setup", {})
want = {"a": "gta5:b/sim", "b": "cityscapes:b/real", "mode": "labels-only", "precision": "f32", "device": "cpu"}
bad = {k: s.get(k) for k in want if s.get(k) != want[k]}
if s.get("segda_version", "") == "" or bad or "class_kl" not in g:
    print("setup %s, wrong %s" % (s, bad)); sys.exit(1)
PY
ok $? "gap.json carries its setup, segda version, precision and device" "$(cat py.out)"
exit $((fails > 0))
