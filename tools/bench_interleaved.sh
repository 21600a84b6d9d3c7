#!/bin/bash
# Interleaved speed comparison for a noisy host: for each round and each
# workload, segda bench (default convolution path, with Winograd), segda
# bench with SEGDA_CONV=im2col (no Winograd) and bench/bench_torch.py (PyTorch f32), one right
# after the other, so each round's three runs see the same machine. Then
# tools/bench_interleaved.py prints the medians over the rounds.
#   tools/bench_interleaved.sh OUT [ROUNDS [WORKLOAD ...]]
# (default 4 rounds of vgg321 r101 adaptseg r101-infer mini; THREADS=2)
# Needs a built segda (BUILD, default build) and /usr/bin/python3 with torch.
set -u
out=${1:?usage: tools/bench_interleaved.sh OUT [ROUNDS [WORKLOAD ...]]}
rounds=${2:-4}
shift $(($# < 2 ? $# : 2))
workloads=${*:-vgg321 r101 adaptseg r101-infer mini}
build=${BUILD:-build}
threads=${THREADS:-2}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$out" || exit 1
run=(--threads "$threads" --iters 3 --warmup 1)
for r in $(seq 1 "$rounds"); do
    for w in $workloads; do
        env -u SEGDA_CONV "$build/segda" bench "$w" "${run[@]}" --json "$out/seg_${w}_$r.json" > /dev/null
        SEGDA_CONV=im2col "$build/segda" bench "$w" "${run[@]}" --json "$out/i2c_${w}_$r.json" > /dev/null
        SEGDA_BUILD=$build /usr/bin/python3 bench/bench_torch.py "$w" "${run[@]}" --precision f32 \
            --json "$out/torch_${w}_$r.json" > /dev/null
        echo "round $r $w done"
    done
done
python3 "$(dirname "$0")/bench_interleaved.py" "$out"
