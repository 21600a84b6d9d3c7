"""The table of tools/bench_interleaved.sh: per workload, the median over the
rounds of segda's default ms (Winograd where it applies), segda's
SEGDA_CONV=im2col ms and PyTorch's f32 ms, the medians of the per-round
ratios (PyTorch / segda: above 1, segda is faster), every round's ratio of
the default and the peak RSS of each.
  bench_interleaved.py OUT"""
import glob
import json
import os
import statistics
import sys


def result(path):
    """(median ms, peak RSS MB) of a one-workload bench JSON, or None."""
    try:
        with open(path) as f:
            r = json.load(f)["results"][0]
        return r["median_ms"], r["peak_rss_mb"]
    except (OSError, ValueError, KeyError, IndexError):
        return None


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = argv[1]
    runs = {}
    for p in glob.glob(os.path.join(out, "*_*_*.json")):
        kind, rest = os.path.basename(p)[:-5].split("_", 1)
        w, r = rest.rsplit("_", 1)
        runs.setdefault(w, {}).setdefault(int(r), {})[kind] = result(p)
    order = ["vgg321", "r101", "adaptseg", "r101-infer", "r101-infer-2k", "mini"]
    print("| workload | segda f32 ms (default) | segda f32 ms, `SEGDA_CONV=im2col` | PyTorch f32 ms | "
          "PyTorch / default | PyTorch / im2col | per-round PyTorch / default | "
          "peak RSS MB default / im2col / PyTorch |")
    print("|---|---|---|---|---|---|---|---|")
    for w in sorted(runs, key=lambda k: order.index(k) if k in order else len(order)):
        rounds = [x for _, x in sorted(runs[w].items()) if all(x.get(k) for k in ("seg", "i2c", "torch"))]
        if not rounds:
            print("| %s | no complete round | | | | | | |" % w)
            continue
        med = {k: statistics.median(x[k][0] for x in rounds) for k in ("seg", "i2c", "torch")}
        rss = {k: max(x[k][1] for x in rounds) for k in ("seg", "i2c", "torch")}
        rs = [x["torch"][0] / x["seg"][0] for x in rounds]
        ri = [x["torch"][0] / x["i2c"][0] for x in rounds]
        print("| %s | %.0f | %.0f | %.0f | **%.2f** | %.2f | %s | %.0f / %.0f / %.0f |" % (
            w, med["seg"], med["i2c"], med["torch"], statistics.median(rs), statistics.median(ri),
            " / ".join("%.2f" % v for v in rs), rss["seg"], rss["i2c"], rss["torch"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
