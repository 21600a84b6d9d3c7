"""PyTorch parity of conv2d / conv_transpose2d with the tape's compute dtype
set to bf16: x, w and dy rounded to bf16 (torch's own round-to-nearest-even
cast), f32 accumulation, f32 results; the bias and its gradient stay f32.

Each case checks, for the output and every gradient, relative error
(max|ours - ref| / max|ref|):
  - <= 1e-4 against torch float64 on the bf16-rounded inputs (only the f32
    summation order differs; this is the f32 parity tolerance),
  - <= 2e-2 against torch float64 on the unrounded f32 inputs,
  - > 1e-5 against that f32 reference for the output (bf16 was applied).
Native oneDNN bf16 kernels are used where the CPU has them; elsewhere segda
emulates bf16 by rounding (the script says which) and the checks are the same."""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from segda_ct import SegdaError, lib, rel_err, report, run, summary  # noqa: E402

rng = np.random.default_rng(77)
TIGHT, LOOSE, APPLIED = 1e-4, 2e-2, 1e-5


def rnd(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def bf16(a):
    return torch.tensor(a).to(torch.bfloat16).to(torch.float64)


def reference(fn, x, wt, b, go, rounded):
    """fn's output and (dx, dw, db) in float64; rounded: x, w, go in bf16."""
    cast = bf16 if rounded else (lambda a: torch.tensor(a, dtype=torch.float64))
    tx, tw = cast(x).requires_grad_(True), cast(wt).requires_grad_(True)
    tb = None if b is None else torch.tensor(b, dtype=torch.float64)
    y = fn(tx, tw, tb)
    y.backward(cast(go))
    db = None if b is None else torch.tensor(go, dtype=torch.float64).sum(dim=(0, 2, 3)).numpy()
    return y.detach().numpy(), [tx.grad.numpy(), tw.grad.numpy(), db]


def check(op, fn, x, wt, b, iparams, label):
    ref_shape = fn(torch.tensor(x, dtype=torch.float64), torch.tensor(wt, dtype=torch.float64), None).shape
    go = rnd(*ref_shape)
    lib.sdt_set_compute(1)
    try:
        out, grads, _ = run(op, [x, wt, b], iparams, (), [1, 1, 1 if b is not None else 0], go)
    except SegdaError as e:
        report(label, False, "segda error: %s" % e)
        return
    finally:
        lib.sdt_set_compute(0)
    problems = []
    for rounded, tol in ((True, TIGHT), (False, LOOSE)):
        ry, rg = reference(fn, x, wt, b, go, rounded)
        what = "rounded-input" if rounded else "f32"
        e = rel_err(out, ry)
        if e > tol:
            problems.append("output err %.3g vs %s reference" % (e, what))
        if not rounded and e <= APPLIED:
            problems.append("output err %.3g vs f32 reference: bf16 rounding not applied" % e)
        for k, name in enumerate(("dx", "dw", "db")):
            if rg[k] is None:
                continue
            e = rel_err(grads[k], rg[k])
            if e > tol:
                problems.append("%s err %.3g vs %s reference" % (name, e, what))
    report(label, not problems, "; ".join(problems))


def conv_case(n, cin, h, w, cout, k, s=1, p=0, d=1, g=1, bias=True):
    x, wt = rnd(n, cin, h, w), rnd(cout, cin // g, k, k)
    b = rnd(cout) if bias else None
    label = "conv2d bf16 x=%s w=%s s=%d p=%d d=%d g=%d bias=%d" % ((n, cin, h, w), wt.shape, s, p, d, g, bias)
    check("conv2d", lambda x, wt, b: F.conv2d(x, wt, b, s, p, d, g), x, wt, b, [s, s, p, p, d, d, g], label)


def convt_case(n, cin, h, w, cout, k, s=1, p=0, op=0, d=1, bias=True):
    x, wt = rnd(n, cin, h, w), rnd(cin, cout, k, k)
    b = rnd(cout) if bias else None
    label = "conv_transpose2d bf16 x=%s w=%s s=%d p=%d op=%d d=%d" % ((n, cin, h, w), wt.shape, s, p, op, d)
    check("conv_transpose2d", lambda x, wt, b: F.conv_transpose2d(x, wt, b, s, p, op, 1, d), x, wt, b,
          [s, s, p, p, d, d, 1, op, op], label)


native = bool(lib.sdt_bf16_native())
print("bf16 convolutions: %s" % ("native oneDNN kernels" if native else
                                 "no native kernels on this CPU; checking segda's bf16 emulation"))
sys.stdout.flush()
conv_case(1, 3, 9, 11, 4, 3, 1, 1)                  # odd sizes, padding, bias
conv_case(2, 5, 13, 10, 6, 3, 2, 1)                 # batch 2, stride 2
conv_case(2, 3, 10, 10, 5, 3, 2, 0, bias=False)
for dil in (2, 6, 12, 24):
    conv_case(2, 8, 29, 27, 6, 3, 1, dil, dil)        # dilated, padding = dilation
conv_case(1, 4, 7, 9, 3, 3, 1, 0, 2)                # dilation without padding
conv_case(2, 16, 7, 5, 24, 1)                       # 1x1
conv_case(1, 3, 23, 19, 8, 7, 2, 3)                 # ResNet stem
conv_case(1, 32, 21, 19, 40, 3, 1, 1)               # oneDNN's blocked kernels
conv_case(2, 64, 17, 15, 19, 3, 1, 6, 6)            # ASPP-like, many input channels
conv_case(2, 4, 9, 7, 6, 3, 1, 1, 1, 2)             # groups 2 (im2col path)
convt_case(2, 4, 5, 6, 3, 4, 2, 1)
convt_case(1, 3, 7, 5, 2, 3, 2, 1, 1)
convt_case(1, 16, 9, 7, 8, 3, 1, 2, 0, 2)
convt_case(1, 2, 4, 4, 3, 16, 8, 4)                 # FCN-style 8x upsampling
sys.exit(summary())
