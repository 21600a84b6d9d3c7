#!/bin/sh
# The detection-based foreground chain of Saleh et al. (ECCV 2018) on the
# built-in benchmark (README: "The instance detector", measured table):
#   1. the benchmark with object crops and VEIS-like simple scenes;
#   2. the segmentation network by the demo's recipe (pretrain on crops,
#      source-only on sim: the demo's source-base run);
#   3. Mask R-CNN from random weights on sim + simple instances at the
#      images' own size (--min-size 128 --max-size 256, anchors 8..128);
#   4. real val: detector AP/AP50, segmentation alone, + detection
#      foreground (eval --detector), background ps-GT self-training
#      (stuff-only pseudo-labels, every stuff prediction kept), + detection.
# Usage: tools/measure_detect.sh OUTDIR   (steps already done are kept)
# Knobs (environment): SEGDA, SEED, N_SIMPLE, DET_ITERS, DET_LR, DET_WARMUP,
# DET_BOX_BATCH, DET_ANCHOR, DET_BN, ST_ITERS, ST_LR, THREADS.
set -eu
OUT=${1:?usage: tools/measure_detect.sh OUTDIR}
SEGDA=${SEGDA:-build/segda}
SEED=${SEED:-1}
N_SIMPLE=${N_SIMPLE:-400}      # simple scenes (50 per thing class)
DET_ITERS=${DET_ITERS:-200}    # detector steps, one image each (README: the step-100 checkpoint of this run)
DET_LR=${DET_LR:-0.0025}       # README's by-hand run: 0.005 and warm-up 30, with frozen BN
DET_WARMUP=${DET_WARMUP:-100}
DET_BOX_BATCH=${DET_BOX_BATCH:-128}
DET_ANCHOR=${DET_ANCHOR:-8}
DET_BN=${DET_BN:-auto}         # the detector's BN (README's by-hand run: frozen, the only setting then)
ST_ITERS=${ST_ITERS:-120}      # background ps-GT self-training (measured: 120; the demo's adapt-iters: 400)
ST_LR=${ST_LR:-0.0025}         # the demo's adapt-lr
THREADS=${THREADS:-1}
export OMP_NUM_THREADS=$THREADS
B=$OUT/demo/bench
REAL=cityscapes:$B/real
mkdir -p "$OUT"
log() { echo "[$(date -u +%H:%M:%S)] $*"; }

# 1. benchmark (default sizes: 400 sim, 400 real train, 100 real val, 256x128)
if [ ! -d "$B/simple" ]; then
    log "synth"
    "$SEGDA" synth --out "$B" --crops 200 --simple-scenes "$N_SIMPLE" --seed "$SEED" --quiet
fi

# 2. segmentation network: the demo's source-base (pretrain 600 it on crops,
#    source-only 800 it at lr 0.01 from it); the demo reuses the benchmark
SEG=$OUT/demo/runs/source-base-s$SEED/last.safetensors
if [ ! -f "$SEG" ]; then
    log "demo (pretrain + source-base)"
    "$SEGDA" demo --methods source-only --no-gap --out "$OUT/demo" --jobs 1 --threads "$THREADS" --seeds 1
fi

# 3. detector: sim and simple scenes in one GTA5-layout folder (links)
D=$OUT/detdata
if [ ! -d "$D/instances" ]; then
    mkdir -p "$D/images" "$D/labels" "$D/instances"
    for sub in images labels instances; do
        for f in "$B"/sim/$sub/*.png; do ln -sf "$(realpath "$f")" "$D/$sub/s$(basename "$f")"; done
        for f in "$B"/simple/$sub/*.png; do ln -sf "$(realpath "$f")" "$D/$sub/v$(basename "$f")"; done
    done
fi
DET=$OUT/det/detector.safetensors
if [ ! -f "$OUT/det/done" ]; then
    log "detector ($DET_ITERS steps)"
    mkdir -p "$OUT/det"
    "$SEGDA" train --method detect --data "gta5:$D" --out "$OUT/det" --iters "$DET_ITERS" --min-size 128 \
        --max-size 256 --anchor-size "$DET_ANCHOR" --box-batch "$DET_BOX_BATCH" --lr "$DET_LR" \
        --warmup "$DET_WARMUP" --bn "$DET_BN" --save-every 25 --seed "$SEED" --resume
    touch "$OUT/det/done"
fi

# 4. background ps-GT: stuff-only pseudo-labels of real train, all kept, one round
ST=$OUT/selftrain-stuff/last.safetensors
if [ ! -f "$ST" ]; then
    log "background ps-GT self-training ($ST_ITERS it)"
    "$SEGDA" train --method selftrain --mode stuff --pseudo-classes stuff --portion 1 --portion-max 1 --rounds 1 \
        --source "gta5:$B/sim" --target "$REAL" --model deeplab-mini --init "$SEG" --iters "$ST_ITERS" \
        --lr "$ST_LR" --bn train --batch 2,2 --flip --seed "$SEED" --threads "$THREADS" --out "$OUT/selftrain-stuff"
fi

# 5. real val: the detector runs once (its instances in cityscapesScripts'
#    format, scored for AP and painted over both networks' maps by eval
#    --fuse-out, the same fusion as eval --detector with its defaults)
log "eval"
VAL=$B/real/leftImg8bit/val
[ -d "$OUT/p_seg" ] || "$SEGDA" predict --model "$SEG" --input "$VAL" --out "$OUT/p_seg" > /dev/null
[ -d "$OUT/p_st" ] || "$SEGDA" predict --model "$ST" --input "$VAL" --out "$OUT/p_st" > /dev/null
[ -d "$OUT/inst" ] || "$SEGDA" predict --model "$SEG" --detector "$DET" --input "$VAL" --out "$OUT/p_segdet" \
    --instances-out "$OUT/inst" > /dev/null
"$SEGDA" eval --instances "$OUT/inst" --data "$REAL" --quiet | tee "$OUT/ap.txt"
for n in seg st; do
    rm -rf "$OUT/f_$n"
    "$SEGDA" eval --pred "$OUT/p_$n" --data "$REAL" --quiet --name "$n" --json "$OUT/$n.json" | tee "$OUT/$n.txt"
    "$SEGDA" eval --pred "$OUT/p_$n" --instances "$OUT/inst" --fuse-out "$OUT/f_$n" --data "$REAL" --quiet \
        --name "$n+det" --json "$OUT/${n}_det.json" | tee "$OUT/${n}_det.txt"
done
log "done: $OUT/{ap,seg,seg_det,st,st_det}.txt"
