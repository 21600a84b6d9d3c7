"""Merges `segda bench --json` (f32 and bf16 runs) with bench/bench_torch.py's
JSON into the one table `make bench` prints. Reads files only; runs nothing.
  bench_table.py SEGDA_F32.json SEGDA_BF16.json TORCH.json   (- for a run not made)
GFLOP/s and % of sgemm peak are segda f32's (FLOPs from segda's model cost:
3 x forward for a train step); the ratios are torch ms / segda ms, so above 1
means segda is faster."""
import json
import sys


def load(path):
    """A results file; "-" stands for a run that was skipped (its columns show -)."""
    if path == "-":
        return {"results": []}
    with open(path) as f:
        return json.load(f)


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    sf, sb, tj = load(argv[1]), load(argv[2]), load(argv[3])
    seg_f = {r["workload"]: r for r in sf["results"]}
    seg_b = {r["workload"]: r for r in sb["results"]}
    tor = {(r["workload"], r["precision"]): r for r in tj["results"]}
    print("segda vs PyTorch %s: %d threads, warmup %d, median of %d steps, batch 1; "
          "sgemm %d^3 peak %.1f GFLOP/s (OpenBLAS, %d threads)"
          % (tj.get("version", "?"), sf["threads"], sf["warmup"], sf["iters"], sf["sgemm_n"], sf["sgemm_gflops"],
             sf["threads"]))
    b = tj.get("build", {})
    print("PyTorch build: BLAS %s, CPU dispatch %s, oneDNN %s; OMP_WAIT_POLICY segda %s, torch %s"
          % (b.get("blas", "?"), b.get("cpu_capability", "?"), tj.get("mkldnn", "?"),
             sf.get("omp_wait_policy") or "?", tj.get("omp_wait_policy", "?")))
    cols = ["workload", "segda f32 ms", "segda bf16 ms", "torch f32 ms", "torch bf16 ms", "f32 ratio",
            "bf16 ratio", "GFLOP/s", "% sgemm peak", "RSS MB segda/torch"]
    rows = []
    loader = None
    for name, r in seg_f.items():
        if name == "loader":
            loader = r
            continue
        b = seg_b.get(name)
        tf, tb = tor.get((name, "f32")), tor.get((name, "bf16"))
        sfm, sbm = r["median_ms"], b["median_ms"] if b else None
        tfm, tbm = (tf or {}).get("median_ms"), (tb or {}).get("median_ms")
        rows.append([
            "%s %dx%d" % (name, r["w"], r["h"]),
            fmt(sfm, ".0f"), fmt(sbm, ".0f"), fmt(tfm, ".0f"), fmt(tbm, ".0f"),
            fmt(tfm / sfm if tfm and sfm else None, ".2f"),
            fmt(tbm / sbm if tbm and sbm else None, ".2f"),
            fmt(r["gflops"], ".1f"), fmt(100 * r["peak_frac"], ".1f"),
            "%s / %s" % (fmt(r["peak_rss_mb"], ".0f"), fmt((tf or {}).get("peak_rss_mb"), ".0f")),
        ])
    width = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(cols)]
    print(" | ".join(c.ljust(width[i]) for i, c in enumerate(cols)))
    print("-|-".join("-" * w for w in width))
    for row in rows:
        print(" | ".join(v.ljust(width[0]) if i == 0 else v.rjust(width[i]) for i, v in enumerate(row)))
    base = [r.get("base_rss_mb") for r in tj["results"] if r["precision"] == "f32"]
    if base:
        print("torch RSS includes the interpreter and libtorch: about %.0f MB before each workload starts"
              % min(base))
    if loader:
        verdict = []
        for wl, key in (("vgg321", "batches_per_s_321"), ("mini", "batches_per_s_mini")):
            step = seg_f.get(wl)
            if step:
                need = 1e3 / step["median_ms"]
                verdict.append("%s needs %.1f/s: %s" % (wl, need, "keeps up" if loader[key] > need else "TOO SLOW"))
        print("loader (2 workers, batch 1): %.1f batches/s at 321x321 crops, %.1f at 256x128%s"
              % (loader["batches_per_s_321"], loader["batches_per_s_mini"],
                 ("; " + ", ".join(verdict)) if verdict else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
