"""PyTorch parity of the spatial ops (conv2d, conv2d_fused, conv_transpose2d, batch/instance
norm, max/avg/adaptive pooling, bilinear/nearest resize, pad, flip_w):
forward and every input gradient against torch 1.13 in float64 over a grid
of shapes (odd sizes, batch > 1, stride 2, dilations up to 24, padding,
groups, ceil mode), plus error messages for wrong shapes."""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from segda_ct import check_error, check_op, lib, summary  # noqa: E402

rng = np.random.default_rng(2024)


def rnd(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def pair(v):
    return v if isinstance(v, tuple) else (v, v)


# ---- conv2d ----
def conv_case(n, cin, h, w, cout, k, s=1, p=0, d=1, g=1, bias=True):
    kh, kw = pair(k)
    sh, sw = pair(s)
    ph, pw = pair(p)
    dh, dw = pair(d)
    x, wt = rnd(n, cin, h, w), rnd(cout, cin // g, kh, kw)
    b = rnd(cout) if bias else None
    label = "conv2d x=%s w=%s s=%s p=%s d=%s g=%d bias=%d" % ((n, cin, h, w), wt.shape, s, p, d, g, bias)
    check_op("conv2d", lambda x, wt, b: F.conv2d(x, wt, b, (sh, sw), (ph, pw), (dh, dw), g), [x, wt, b],
             [sh, sw, ph, pw, dh, dw, g], label=label)


conv_case(1, 3, 9, 11, 4, 3, 1, 1)
conv_case(2, 3, 9, 11, 4, 3, 2, 1)
conv_case(2, 3, 10, 10, 5, 3, 2, 0, bias=False)
for dil in (2, 4, 6, 12, 18, 24):
    conv_case(2, 5, 13, 10, 6, 3, 1, dil, dil)
conv_case(1, 4, 7, 9, 3, 3, 1, 0, 2)                # dilation without padding
conv_case(2, 4, 7, 5, 6, 1)                         # 1x1 direct GEMM
conv_case(2, 4, 7, 5, 6, 1, 2)                      # 1x1 stride 2 (im2col)
conv_case(2, 4, 7, 5, 6, 1, 1, 1)                   # 1x1 padded
conv_case(2, 4, 9, 7, 6, 3, 1, 1, 1, 2)             # groups 2
conv_case(1, 6, 8, 8, 9, 3, 2, 1, 1, 3)             # groups 3, stride 2
conv_case(1, 4, 7, 5, 4, 1, 1, 0, 1, 2)             # grouped 1x1
conv_case(1, 3, 23, 19, 8, 7, 2, 3)                 # ResNet stem
conv_case(2, 5, 16, 12, 1, 4, 2, 1)                 # discriminator block
conv_case(1, 3, 11, 13, 4, (3, 5), (1, 2), (1, 2), (2, 1))
conv_case(1, 64, 130, 121, 4, 3, 1, 1)              # im2col split into row blocks

# ---- conv2d_fused: act(bn_eval(conv2d(x, w, b)) + residual) ----
ACTS = {"none": 0, "relu": 1, "leaky": 2}


def fused_case(n, cin, h, w, cout, k, s=1, p=0, d=1, bias=False, bn=True, affine=True, res=False, act="relu",
               slope=0.2, eps=1e-5):
    x, wt = rnd(n, cin, h, w), rnd(cout, cin, k, k) * 0.3
    oh, ow = (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1
    ins = [x, wt, rnd(cout) if bias else None, rnd(n, cout, oh, ow) if res else None]
    ins += [rnd(cout), np.abs(rnd(cout)) + 0.5] if bn else [None, None]
    ins += [rnd(cout), rnd(cout)] if bn and affine else [None, None]

    def ref(x, wt, b, r, rm, rv, bw, bb):
        y = F.conv2d(x, wt, b, s, p, d)
        if rm is not None:
            y = F.batch_norm(y, rm, rv, bw, bb, False, 0.1, eps)
        if r is not None:
            y = y + r
        return F.relu(y) if act == "relu" else F.leaky_relu(y, slope) if act == "leaky" else y

    label = "conv2d_fused x=%s w=%s s=%d p=%d d=%d bias=%d bn=%d affine=%d res=%d act=%s" % (
        x.shape, wt.shape, s, p, d, bias, bn, affine, res, act)
    check_op("conv2d_fused", ref, ins, [s, s, p, p, d, d, 1, 0, 0, ACTS[act]], [slope, eps], nograd=(4, 5, 6, 7),
             label=label)


fused_case(2, 8, 9, 7, 12, 1, res=True)                            # bottleneck end: BN, residual, ReLU
fused_case(1, 6, 11, 9, 5, 3, 1, 2, 2)                             # dilated 3x3 + BN + ReLU
fused_case(1, 6, 11, 9, 7, 1, 2, act="none")                       # downsample: 1x1 stride 2 + BN
fused_case(1, 3, 23, 19, 8, 7, 2, 3)                               # the stem
fused_case(2, 5, 16, 12, 4, 4, 2, 1, bias=True, bn=False, act="leaky")   # discriminator
fused_case(1, 4, 9, 11, 6, 3, 1, 1, bias=True, bn=False)           # VGG conv + ReLU
fused_case(1, 4, 9, 11, 6, 3, 1, 1, bias=True, affine=False, res=True, act="leaky", slope=0.01)
fused_case(1, 4, 6, 5, 3, 3, 1, 1, bn=False, act="none")           # a plain conv
fused_case(1, 64, 40, 37, 6, 3, 1, 1, res=True)                    # parallel epilogue


# ---- conv_transpose2d ----
def convt_case(n, cin, h, w, cout, k, s=1, p=0, op=0, d=1, g=1, bias=True):
    x, wt = rnd(n, cin, h, w), rnd(cin, cout // g, k, k)
    b = rnd(cout) if bias else None
    label = "conv_transpose2d x=%s w=%s s=%d p=%d op=%d d=%d g=%d" % ((n, cin, h, w), wt.shape, s, p, op, d, g)
    check_op("conv_transpose2d",
             lambda x, wt, b: F.conv_transpose2d(x, wt, b, s, p, op, g, d), [x, wt, b],
             [s, s, p, p, d, d, g, op, op], label=label)


convt_case(2, 4, 5, 6, 3, 4, 2, 1)
convt_case(1, 3, 7, 5, 2, 3, 2, 1, 1)
convt_case(2, 4, 5, 5, 6, 3, 1, 1, 0, 1, 2, bias=False)
convt_case(1, 3, 6, 4, 5, 3, 2, 2, 0, 2)
convt_case(1, 8, 9, 7, 4, 1)
convt_case(1, 2, 4, 4, 3, 16, 8, 4)                 # FCN-style 8x upsampling


# ---- pooling ----
def pool_case(kind, n, c, h, w, k, s, p, ceil, cip=True):
    x = rnd(n, c, h, w)
    label = "%s x=%s k=%d s=%d p=%d ceil=%d%s" % (kind, x.shape, k, s, p, ceil,
                                                 "" if kind == "max_pool2d" else " cip=%d" % cip)
    if kind == "max_pool2d":
        fn = lambda x: F.max_pool2d(x, k, s, p, ceil_mode=bool(ceil))  # noqa: E731
    else:
        fn = lambda x: F.avg_pool2d(x, k, s, p, ceil_mode=bool(ceil), count_include_pad=bool(cip))  # noqa: E731
    check_op(kind, fn, [x], [k, k, s, s, p, p, int(ceil), int(cip)], label=label)


for kind in ("max_pool2d", "avg_pool2d"):
    for (h, w) in ((9, 11), (10, 10), (13, 7)):
        for ceil in (0, 1):
            pool_case(kind, 2, 3, h, w, 3, 2, 1, ceil)
            pool_case(kind, 1, 2, h, w, 2, 2, 0, ceil)
    pool_case(kind, 1, 2, 5, 5, 3, 3, 1, 1)         # ceil window starting in the right padding dropped
    pool_case(kind, 1, 3, 9, 9, 3, 1, 1, 0)
for cip in (0, 1):
    pool_case("avg_pool2d", 2, 3, 9, 11, 3, 2, 1, 1, cip)
    pool_case("avg_pool2d", 1, 2, 7, 6, 4, 3, 2, 1, cip)

for (h, w, oh, ow) in ((9, 11, 3, 4), (13, 10, 6, 6), (7, 7, 1, 1), (5, 5, 7, 7), (65, 33, 6, 3)):
    x = rnd(2, 3, h, w)
    check_op("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (oh, ow)), [x], [oh, ow],
             label="adaptive_avg_pool2d %dx%d->%dx%d" % (h, w, oh, ow))


# ---- normalisation ----
def bn_case(shape, training, affine, frozen=False, mom=0.1, eps=1e-5):
    c = shape[1]
    x = rnd(*shape) * 2 + 0.5
    rm, rv = rnd(c), np.abs(rnd(c)) + 0.5
    ins = [x, rm, rv] + ([rnd(c), rnd(c)] if affine else [None, None])
    nograd = (1, 2, 3, 4) if frozen else (1, 2)
    label = "batch_norm x=%s training=%d affine=%d frozen=%d" % (shape, training, affine, frozen)
    check_op("batch_norm", lambda x, rm, rv, w, b: F.batch_norm(x, rm, rv, w, b, training, mom, eps), ins,
             [int(training)], [mom, eps], nograd=nograd, check_inputs=(1, 2), label=label)


bn_case((2, 5, 7, 9), True, True)
bn_case((3, 4, 5, 3), True, False)
bn_case((2, 5, 7, 9), False, True)
bn_case((2, 5, 7, 9), False, True, frozen=True)
bn_case((1, 3, 1, 3), True, True)
bn_case((8, 6), True, True)

for affine in (True, False):
    x = rnd(2, 3, 7, 5)
    ins = [x, rnd(3), rnd(3)] if affine else [x, None, None]
    check_op("instance_norm", lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1e-5), ins, [], [1e-5],
             label="instance_norm affine=%d" % affine)


# ---- resize, pad, flip ----
for (h, w, oh, ow) in ((7, 9, 15, 20), (13, 11, 5, 4), (8, 8, 16, 16), (6, 5, 6, 5), (4, 3, 1, 1), (33, 65, 257, 513)):
    x = rnd(1 if h > 30 else 2, 3, h, w)
    for ac in (False, True):
        check_op("resize_bilinear",
                 lambda x: F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=ac), [x], [oh, ow, int(ac)],
                 label="resize_bilinear %dx%d->%dx%d align_corners=%d" % (h, w, oh, ow, ac))
    check_op("resize_nearest", lambda x: F.interpolate(x, size=(oh, ow), mode="nearest"), [x], [oh, ow],
             label="resize_nearest %dx%d->%dx%d" % (h, w, oh, ow))

for (t, b, l, r) in ((1, 2, 3, 0), (2, 2, 2, 2), (0, 1, 0, 4)):
    x = rnd(2, 3, 5, 6)
    check_op("pad2d", lambda x: F.pad(x, (l, r, t, b), mode="reflect"), [x], [t, b, l, r, 1],
             label="pad2d reflect %d,%d,%d,%d" % (t, b, l, r))
    check_op("pad2d", lambda x: F.pad(x, (l, r, t, b)), [x], [t, b, l, r, 0],
             label="pad2d zeros %d,%d,%d,%d" % (t, b, l, r))
x = rnd(2, 3, 4, 7)
check_op("flip_w", lambda x: torch.flip(x, [3]), [x], label="flip_w")


# ---- errors name the op and the shapes ----
check_error("conv2d", [rnd(1, 3, 8, 8), rnd(4, 2, 3, 3)], [1, 1, 1, 1, 1, 1, 1], needle="conv2d: input [1,3,8,8] and weight [4,2,3,3]")
check_error("conv2d", [rnd(1, 3, 4, 4), rnd(4, 3, 3, 3)], [1, 1, 0, 0, 3, 3, 1], needle="[1,3,4,4]")
check_error("conv2d", [rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), rnd(5)], [1, 1, 1, 1, 1, 1, 1], needle="bias [5]")
check_error("conv2d_fused", [rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), None, rnd(1, 4, 7, 8)], [1, 1, 1, 1, 1, 1, 1, 0, 0, 1],
            needle="residual[1,4,7,8]")
# a trained BN's weight: the fused op has no gradient for it
check_error("conv2d_fused", [rnd(1, 3, 8, 8), rnd(4, 3, 3, 3), None, None, rnd(4), rnd(4) ** 2, rnd(4), rnd(4)],
            [1, 1, 1, 1, 1, 1, 1, 0, 0, 1], needle="the batch norm's running statistics requires grad")
check_error("conv_transpose2d", [rnd(1, 3, 8, 8), rnd(4, 2, 3, 3)], [2, 2, 1, 1, 1, 1, 1], needle="conv_transpose2d: input [1,3,8,8]")
check_error("max_pool2d", [rnd(1, 3, 8, 8)], [3, 3, 2, 2, 2, 2, 0], needle="max_pool2d: input [1,3,8,8]")
check_error("batch_norm", [rnd(2, 3, 4, 4), rnd(3), rnd(3), rnd(4), rnd(3)], [1], [0.1, 1e-5], needle="weight [4]")
check_error("batch_norm", [rnd(1, 3, 1, 1), rnd(3), rnd(3), None, None], [1], [0.1, 1e-5], needle="more than 1 value")
check_error("pad2d", [rnd(1, 3, 4, 4)], [4, 0, 0, 0, 1], needle="pad2d: input [1,3,4,4]")
check_error("resize_bilinear", [rnd(3, 4)], [5, 5, 0], needle="resize_bilinear: input [3,4]")


# ---- determinism: two runs with two threads give identical bits ----
def det_check():
    from segda_ct import run
    lib.sd_set_threads(2)
    x, wt, b = rnd(2, 16, 33, 29), rnd(16, 16, 3, 3), rnd(16)
    go = rnd(2, 16, 33, 29)
    r1 = run("conv2d", [x, wt, b], [1, 1, 2, 2, 2, 2, 1], grad_out=go)
    r2 = run("conv2d", [x, wt, b], [1, 1, 2, 2, 2, 2, 1], grad_out=go)
    same = np.array_equal(r1[0], r2[0]) and all(np.array_equal(a, c) for a, c in zip(r1[1], r2[1]))
    from segda_ct import report
    report("conv2d deterministic with 2 threads", same, "outputs or gradients differ between runs")


det_check()
sys.exit(summary())
