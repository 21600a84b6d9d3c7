"""FDA's amplitude swap (sd_fda_swap_channel, FFTW inside) against numpy's
FFT written as the FDA paper's code does it: full 2-D spectra of source and
target, the target's amplitude in the four corner windows of half-size
floor(min(H, W) * beta) with the source's phase, inverse, real part. Sizes
that are not powers of two (1280x720, GTA5's frames halved; odd 37x53) and
one that is. Prints PASS/FAIL lines."""
import ctypes
import os
import sys

import numpy as np

_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_build = os.environ.get("SEGDA_BUILD", "build")
lib = ctypes.CDLL(os.path.join(_build if os.path.isabs(_build) else os.path.join(_root, _build), "libsegda.so"))
_fp = ctypes.POINTER(ctypes.c_float)
lib.sd_fda_swap_channel.argtypes = [_fp, _fp, ctypes.c_int, ctypes.c_int, ctypes.c_float]
lib.sd_fda_swap_channel.restype = ctypes.c_int
failed = 0


def reference(src, trg, beta):
    h, w = src.shape
    b = int(np.floor(min(h, w) * np.float64(np.float32(beta))))
    b = min(b, h // 2, w // 2)
    fs, ft = np.fft.fft2(src.astype(np.float64)), np.fft.fft2(trg.astype(np.float64))
    amp, pha = np.abs(fs), np.angle(fs)
    at = np.abs(ft)
    rows = np.r_[0:b, h - b:h]
    cols = np.r_[0:b, w - b:w]
    amp[np.ix_(rows, cols)] = at[np.ix_(rows, cols)]
    return np.real(np.fft.ifft2(amp * np.exp(1j * pha)))


rng = np.random.default_rng(21)
for h, w, beta in [(720, 1280, 0.01), (720, 1280, 0.05), (37, 53, 0.1), (64, 128, 0.09)]:
    src = (rng.random((h, w)) * 255).astype(np.float32)
    trg = (rng.random((h, w)) * 255).astype(np.float32)
    ref = reference(src, trg, beta)
    out = np.ascontiguousarray(src.copy())
    st = lib.sd_fda_swap_channel(out.ctypes.data_as(_fp), trg.ctypes.data_as(_fp), h, w, beta)
    err = float(np.max(np.abs(out - ref)))
    # float32 output of values up to ~255: a few ulps at 256 is ~1e-4
    ok = st == 0 and err < 1e-3 and float(np.max(np.abs(out - src))) > 0.1
    print(("PASS" if ok else "FAIL") + f" fda swap {w}x{h} beta {beta} vs numpy fft2 (max |diff| {err:.2e}, tol 1e-3)")
    failed += not ok
sys.exit(1 if failed else 0)
