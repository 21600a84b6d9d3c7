#!/usr/bin/env bash
# The domain-gap report of issue #7 for two checkpoints: every measure of
# `segda gap` for sim-vs-real (gta5:BENCH/sim vs cityscapes:BENCH/real:val)
# and, as a control, real-vs-real (real:train vs real:val), from labels
# alone, from raw colours (--rgb), and from the features of a source-only and
# of an adapted checkpoint; one table on stdout, each run's gap.json, pca.svg
# and retrieval.png under OUTDIR.
#
#   tools/gap_report.sh [options] SOURCE_ONLY.safetensors ADAPTED.safetensors
#     -b DIR    benchmark root from `segda synth --out DIR` (default: a fresh
#               one with synth's defaults in OUTDIR/bench)
#     -l LAYER  feature layer (default layer4; e.g. layer3, logits, softmax)
#     -n N      images per domain, a seeded sample, the same N everywhere so
#               the class_kl smoothing does not favour one pair (default 100)
#     -s WxH    network input size for the checkpoints (default: image size)
#     -o DIR    where the per-run outputs go (default gap-report)
#     -x ARGS   extra arguments for every `segda gap` call (e.g. "--pixels 16")
# It runs 8 `segda gap` calls; with -n 100 at 256x128 and deeplab-mini that is
# 800 forward passes (about 6 min on 2 busy cores).
# Environment: SEGDA (default build/segda), PYTHON (default /usr/bin/python3).
set -euo pipefail

SEGDA=${SEGDA:-build/segda}
PYTHON=${PYTHON:-/usr/bin/python3}
BENCH= LAYER=layer4 N=100 SIZE= OUT=gap-report EXTRA=
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "b:l:n:s:o:x:h" opt; do
  case $opt in
    b) BENCH=$OPTARG ;; l) LAYER=$OPTARG ;; n) N=$OPTARG ;; s) SIZE=$OPTARG ;;
    o) OUT=$OPTARG ;; x) EXTRA=$OPTARG ;; *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || usage
SRC=$1 ADA=$2
for f in "$SRC" "$ADA"; do [ -f "$f" ] || { echo "gap_report: $f: no such checkpoint" >&2; exit 1; }; done
[ -x "$SEGDA" ] || { echo "gap_report: $SEGDA: not built (make, or set SEGDA=)" >&2; exit 1; }

mkdir -p "$OUT"
if [ -z "$BENCH" ]; then
  BENCH=$OUT/bench
  [ -d "$BENCH/real" ] || "$SEGDA" synth --out "$BENCH" --quiet
fi
SIM="gta5:$BENCH/sim" REAL_TRAIN="cityscapes:$BENCH/real:train" REAL_VAL="cityscapes:$BENCH/real:val"

# run NAME ARGS...: both pairs for one feature source
run() {
  local name=$1; shift
  for pair in sim ctrl; do
    local a=$SIM
    [ $pair = ctrl ] && a=$REAL_TRAIN
    echo "gap_report: $name, $pair" >&2
    # shellcheck disable=SC2086
    "$SEGDA" gap "$@" --n "$N" --a "$a" --b "$REAL_VAL" --out "$OUT/$name-$pair" $EXTRA \
      > "$OUT/$name-$pair.txt" 2>&1 || { cat "$OUT/$name-$pair.txt" >&2; exit 1; }
  done
}
sizearg=()
[ -n "$SIZE" ] && sizearg=(--size "$SIZE")
run labels --labels-only
run rgb --rgb
run source --model "$SRC" --layer "$LAYER" ${sizearg[@]+"${sizearg[@]}"}
run adapted --model "$ADA" --layer "$LAYER" ${sizearg[@]+"${sizearg[@]}"}

"$PYTHON" - "$OUT" "$LAYER" "$N" "$SRC" "$ADA" "$BENCH" <<'EOF'
import json, math, os, sys
out, layer, n, src, ada, bench = sys.argv[1:]
sets = ["labels", "rgb", "source", "adapted"]
res = {}
for s in sets:
    for p in ("sim", "ctrl"):
        with open(os.path.join(out, "%s-%s" % (s, p), "gap.json")) as f:
            res[s, p] = json.load(f)
def kl_mean(d):
    v = [x for x in d.get("class_kl", {}).values() if x is not None]
    return sum(v) / len(v) if v else None
# measure, getter, larger gap when the value is "higher" or "lower"
measures = [
    ("svm_linear_accuracy", lambda d: d.get("svm_linear_accuracy"), "higher"),
    ("svm_poly_accuracy", lambda d: d.get("svm_poly_accuracy"), "higher"),
    ("mmd", lambda d: d.get("mmd"), "higher"),
    ("mmd_p", lambda d: d.get("mmd_p"), "lower"),
    ("retrieval_other_domain", lambda d: d.get("retrieval_other_domain"), "lower"),
    ("class_kl (mean of 19)", lambda d: kl_mean(d), "higher"),  # from labels: the same for every source
]
def fmt(v):
    return "%8s" % "-" if v is None or (isinstance(v, float) and math.isnan(v)) else "%8.4f" % v
print("domain gap on %s: sim = sim vs real val, ctrl = real train vs real val; %s images per domain; layer %s"
      % (bench, n, layer))
print("source-only = %s\nadapted     = %s\n" % (src, ada))
hdr = "%-24s" % "measure" + "".join("  %-17s" % s for s in ("labels", "rgb", "source-only", "adapted")) \
      + "  %-9s  %s" % ("adapt-src", "larger gap")
print(hdr)
print("%-24s" % "" + "".join("  %8s %8s" % ("sim", "ctrl") for _ in sets) + "  %9s" % "(sim)")
for name, get, way in measures:
    row = "%-24s" % name
    verdict = []
    for s in sets:
        a, b = get(res[s, "sim"]), get(res[s, "ctrl"])
        if name.startswith("class_kl") and s != "labels":
            a = b = None
        row += "  " + fmt(a) + " " + fmt(b)
        if a is not None and b is not None:
            ok = a > b if way == "higher" else a < b
            verdict.append("%s:%s" % (s[:3], "sim" if ok else "CTRL"))
    s_, a_ = get(res["source", "sim"]), get(res["adapted", "sim"])
    if name.startswith("class_kl"):
        s_ = a_ = None
    row += "  " + ("%9s" % "-" if s_ is None or a_ is None else "%+9.4f" % (a_ - s_))
    print(row + "  " + " ".join(verdict))
print("\nlarger gap: for each feature source, 'sim' when sim-vs-real shows the larger gap (higher accuracy, MMD,")
print("KL; lower p-value, fewer neighbours from the other domain), 'CTRL' when real-vs-real does.")
print("adapt-src: adapted minus source-only on sim-vs-real (alignment lowers accuracy/MMD, raises retrieval).")
EOF
