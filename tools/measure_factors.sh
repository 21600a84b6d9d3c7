#!/bin/bash
# Which style factors carry the sim->real gap (README "Controllable domain"):
# for each factor F, sim images that take F alone from the real domain
# (`segda synth --sim-as-real F`), source-only trained on them with the
# demo's source-base recipe, mIoU-19 on real val from each run's summary.json.
#   tools/measure_factors.sh DEMO_OUT OUT [FACTOR...]
# DEMO_OUT: a finished `segda demo` output (its runs/source-base-s1.cfg and
# pretrained backbone are reused). SEGDA: the binary (default build/segda).
set -eu
[ $# -ge 2 ] || { echo "usage: $0 DEMO_OUT OUT [FACTOR...]" >&2; exit 2; }
demo=$1 out=$2
shift 2
segda=${SEGDA:-build/segda}
cfg=$demo/runs/source-base-s1.cfg
[ -f "$cfg" ] || { echo "$0: $cfg: not found (run segda demo first)" >&2; exit 1; }
factors=${*:-textures lighting sky haze blur noise jpeg cast vignette colors camera traffic ego all}
mkdir -p "$out"
for f in $factors; do
  if [ ! -f "$out/$f/run/summary.json" ]; then
    "$segda" synth --out "$out/$f/bench" --sim-as-real "$f" --n-real 1 --n-real-val 1 --quiet --force
    sed -e "s#^source = .*#source = gta5:$out/$f/bench/sim#" -e "s#^out = .*#out = $out/$f/run#" "$cfg" > "$out/$f.cfg"
    rm -rf "$out/$f/run"
    "$segda" train --config "$out/$f.cfg" > "$out/$f.log" 2>&1
  fi
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print('%-10s %5.1f' % (sys.argv[2], 100*s['final']['miou_19']))" \
    "$out/$f/run/summary.json" "$f"
done
