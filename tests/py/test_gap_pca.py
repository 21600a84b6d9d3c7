"""The gap tool's PCA (sd_gap_pca, LAPACK inside) against numpy.linalg.eigh
of the covariance in float64: components equal up to the documented sign
(largest-magnitude entry positive), projections and variances too. Cases
with more rows than features (the covariance path), fewer (the Gram path),
and rank-deficient data. Prints PASS/FAIL lines."""
import ctypes
import os
import sys

import numpy as np

_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_build = os.environ.get("SEGDA_BUILD", "build")
lib = ctypes.CDLL(os.path.join(_build if os.path.isabs(_build) else os.path.join(_root, _build), "libsegda.so"))
_fp = ctypes.POINTER(ctypes.c_float)
_dp = ctypes.POINTER(ctypes.c_double)
lib.sd_gap_pca.argtypes = [_fp, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_uint64, _fp, _fp, _dp]
lib.sd_gap_pca.restype = ctypes.c_int
failed = 0


def reference(x, k):
    xc = x.astype(np.float64) - x.astype(np.float64).mean(0)
    lam, vec = np.linalg.eigh(xc.T @ xc / len(x))
    comp = vec[:, ::-1][:, :k].T.copy()
    for c in comp:
        c *= np.sign(c[np.argmax(np.abs(c))])
    return comp, xc @ comp.T, lam[::-1][:k]


rng = np.random.default_rng(5)
for n, d, k, rank in [(300, 40, 3, None), (60, 500, 2, None), (50, 50, 8, None), (200, 64, 2, 5), (30, 80, 4, 10)]:
    scale = np.linspace(6, 1, d)   # distinct variances: the components are determined
    if rank:
        x = rng.standard_normal((n, rank)) @ (rng.standard_normal((rank, d)) * scale)
        x[:, :rank] *= np.linspace(4, 1, rank)
    else:
        x = rng.standard_normal((n, d)) * scale
    x = (x + 3).astype(np.float32)
    comp = np.zeros((k, d), np.float32)
    proj = np.zeros((n, k), np.float32)
    var = np.zeros(k, np.float64)
    st = lib.sd_gap_pca(x.ctypes.data_as(_fp), n, d, k, 1, comp.ctypes.data_as(_fp), proj.ctypes.data_as(_fp),
                        var.ctypes.data_as(_dp))
    rc, rp, rv = reference(x, k)
    ec = float(np.max(np.abs(comp - rc)))
    ep = float(np.max(np.abs(proj - rp)) / np.max(np.abs(rp)))
    ev = float(np.max(np.abs(var - rv) / rv))
    ok = st == 0 and ec < 1e-4 and ep < 1e-4 and ev < 1e-5
    print(("PASS" if ok else "FAIL") + f" pca n {n} d {d} k {k}{f' rank {rank}' if rank else ''} vs numpy eigh "
          f"(max |comp diff| {ec:.1e}, tol 1e-4; rel proj {ep:.1e}, tol 1e-4; rel var {ev:.1e}, tol 1e-5)")
    failed += not ok
sys.exit(1 if failed else 0)
