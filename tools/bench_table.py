"""Merges `segda bench --json` (f32 and bf16 runs, and optionally an f32 run
with SEGDA_CONV=im2col: every conv on im2col, no Winograd) with bench/bench_torch.py's JSON into the one table
`make bench` prints. Reads files only; runs nothing.
  bench_table.py SEGDA_F32.json SEGDA_BF16.json TORCH.json [SEGDA_F32_IM2COL.json]
  (- for a run not made)
GFLOP/s and % of sgemm peak are segda f32's (FLOPs from segda's model cost:
3 x forward for a train step); the ratios are torch ms / segda ms, so above 1
means segda is faster."""
import json
import sys


problems = []


def load(path):
    """A results file; "-" stands for a run that was skipped (its columns show
    -), and a missing or unreadable file is reported and shown the same way."""
    if path == "-":
        return {"results": []}
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        problems.append("%s: %s" % (path, e))
        return {"results": []}


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    sf, sb, tj = load(argv[1]), load(argv[2]), load(argv[3])
    sw = load(argv[4] if len(argv) == 5 else "-")
    for label, d in (("segda f32", sf), ("segda bf16", sb), ("segda f32 im2col", sw)):
        problems.extend("%s %s failed: %s" % (label, r["workload"], r["error"]) for r in d["results"] if "error" in r)
    seg_f = {r["workload"]: r for r in sf["results"] if "error" not in r}
    seg_b = {r["workload"]: r for r in sb["results"] if "error" not in r}
    seg_w = {r["workload"]: r for r in sw["results"] if "error" not in r}
    tor = {(r["workload"], r["precision"]): r for r in tj["results"]}
    print("segda vs PyTorch %s: %d threads, warmup %d, median of %d steps, batch 1; "
          "sgemm %d^3 peak %.1f GFLOP/s (OpenBLAS, %d threads)"
          % (tj.get("version", "?"), sf.get("threads", 0), sf.get("warmup", 0), sf.get("iters", 0),
             sf.get("sgemm_n", 0), sf.get("sgemm_gflops", 0), sf.get("threads", 0)))
    b = tj.get("build", {})
    print("PyTorch build: BLAS %s, CPU dispatch %s, oneDNN %s; OMP_WAIT_POLICY segda %s, torch %s"
          % (b.get("blas", "?"), b.get("cpu_capability", "?"), tj.get("mkldnn", "?"),
             sf.get("omp_wait_policy") or "?", tj.get("omp_wait_policy", "?")))
    cols = ["workload", "segda f32 ms", "segda bf16 ms", "torch f32 ms", "torch bf16 ms", "f32 ratio",
            "bf16 ratio", "GFLOP/s", "% sgemm peak", "RSS MB segda/torch"]
    if seg_w:
        cols[2:2] = ["f32 im2col ms"]
        cols[7:7] = ["im2col ratio"]
    rows = []
    loader = None
    # every workload any run reports, in the order the runs list them
    names = list(dict.fromkeys(list(seg_f) + list(seg_b) + [w for w, _ in tor]))
    for name in names:
        if name == "loader":
            loader = seg_f.get(name) or seg_b.get(name)
            continue
        r, b, wg = seg_f.get(name, {}), seg_b.get(name, {}), seg_w.get(name, {})
        tf, tb = tor.get((name, "f32"), {}), tor.get((name, "bf16"), {})
        size = next((d for d in (r, b, tf, tb) if "w" in d), {"w": 0, "h": 0})
        sfm, sbm, tfm, tbm, swm = (d.get("median_ms") for d in (r, b, tf, tb, wg))
        row = [
            "%s %dx%d" % (name, size["w"], size["h"]),
            fmt(sfm, ".0f"), fmt(sbm, ".0f"), fmt(tfm, ".0f"), fmt(tbm, ".0f"),
            fmt(tfm / sfm if tfm and sfm else None, ".2f"),
            fmt(tbm / sbm if tbm and sbm else None, ".2f"),
            fmt(r.get("gflops"), ".1f"), fmt(100 * r["peak_frac"] if "peak_frac" in r else None, ".1f"),
            "%s / %s" % (fmt(r.get("peak_rss_mb"), ".0f"), fmt(tf.get("peak_rss_mb"), ".0f")),
        ]
        if seg_w:
            row[2:2] = [fmt(swm, ".0f")]
            row[7:7] = [fmt(tfm / swm if tfm and swm else None, ".2f")]
        rows.append(row)
    width = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(cols)]
    print(" | ".join(c.ljust(width[i]) for i, c in enumerate(cols)))
    print("-|-".join("-" * w for w in width))
    for row in rows:
        print(" | ".join(v.ljust(width[0]) if i == 0 else v.rjust(width[i]) for i, v in enumerate(row)))
    if seg_w:
        print("f32 im2col: SEGDA_CONV=im2col (no Winograd: the path before it, other last bits); "
              "its ratio is torch f32 ms / its ms")
    if sb.get("precision") not in (None, "bf16"):
        print("segda bf16 column: ran as %s (%s)" % (sb.get("precision"),
              "no native bf16 on this CPU: f32" if sb.get("precision") == "bf16->f32"
              else "inputs rounded to bf16, f32 kernels: bf16's numbers at f32's speed"))
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
    for p in problems:
        print("problem: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
