"""PyTorch parity of the Winograd convolution path (src/cpu/conv_winograd.c),
which the default rule takes for these convs (SEGDA_CONV unset): conv2d and conv2d_fused forward and every input
gradient against torch 1.13 in float64, on shapes the path takes (3x3,
stride 1, 128+ channels, 1024+ output pixels): padding 1, the dilations of
DeepLab's layer3/layer4 and VGG's conv5, padding 2d, odd sizes, batch 2."""
import ctypes
import os
import sys

os.environ.pop("SEGDA_CONV", None)  # the default rule; read once, at the first convolution

import numpy as np  # noqa: E402
import torch  # noqa: E402,F401
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from segda_ct import check_op, lib, report, summary  # noqa: E402

SD_CPU_CONV_AUTO = 0  # src/cpu/dnnl.h
rng = np.random.default_rng(77)


def rnd(*shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


class Geom(ctypes.Structure):
    _fields_ = [(f, ctypes.c_int) for f in ("n", "cin", "h", "w", "cout", "kh", "kw", "oh", "ow", "sh", "sw",
                                             "ph", "pw", "dh", "dw", "groups", "compute")]


def taken(n, cin, h, w, cout, p, d):
    """Whether the path applies to this conv (so the case tests it)."""
    g = Geom(n, cin, h, w, cout, 3, 3, h + 2 * p - 2 * d, w + 2 * p - 2 * d, 1, 1, p, p, d, d, 1, 0)
    lib.sd_cpu_winograd_applies.argtypes = [ctypes.POINTER(Geom)]
    lib.sd_cpu_winograd_applies.restype = ctypes.c_bool
    return lib.sd_cpu_winograd_applies(ctypes.byref(g))


def conv_case(n, cin, h, w, cout, p, d, bias=True):
    report("winograd takes x=%s cout=%d p=%d d=%d" % ((n, cin, h, w), cout, p, d), taken(n, cin, h, w, cout, p, d),
           "declined: the case would test im2col")
    x, wt = rnd(n, cin, h, w), rnd(cout, cin, 3, 3, scale=0.05)
    b = rnd(cout) if bias else None
    check_op("conv2d", lambda x, wt, b: F.conv2d(x, wt, b, 1, p, d), [x, wt, b], [1, 1, p, p, d, d, 1],
             label="conv2d winograd x=%s w=%s p=%d d=%d" % ((n, cin, h, w), wt.shape, p, d))


def fused_case(n, cin, h, w, cout, p, d):
    """a ResNet bottleneck's 3x3 with frozen BN and ReLU (conv2d_fused)"""
    x, wt = rnd(n, cin, h, w), rnd(cout, cin, 3, 3, scale=0.05)
    rm, rv, bw, bb = rnd(cout), np.abs(rnd(cout)) + 0.5, rnd(cout), rnd(cout)

    def ref(x, wt, b, r, rm, rv, bw, bb):
        return F.relu(F.batch_norm(F.conv2d(x, wt, None, 1, p, d), rm, rv, bw, bb, False, 0.1, 1e-5))

    check_op("conv2d_fused", ref, [x, wt, None, None, rm, rv, bw, bb], [1, 1, p, p, d, d, 1, 0, 0, 1], [0.0, 1e-5],
             nograd=(4, 5, 6, 7), label="conv2d_fused winograd x=%s p=%d d=%d" % ((n, cin, h, w), p, d))


conv_case(1, 128, 33, 35, 128, 1, 1)                 # VGG-like, odd sizes
conv_case(2, 128, 32, 33, 144, 2, 2, bias=False)     # layer3: dilation 2, batch 2
conv_case(1, 136, 34, 36, 128, 4, 4)                 # layer4: dilation 4
conv_case(1, 128, 30, 32, 128, 2, 1)                 # padding 2d
fused_case(1, 128, 32, 40, 128, 2, 2)
lib.sd_cpu_conv_impl_get.restype = ctypes.c_int
lib.sd_cpu_bf16_supported.restype = ctypes.c_bool
# with native bf16 the default hands f32 convs to oneDNN; then this checks oneDNN
report("the default rule ran (Winograd where it applies, no native bf16: %s)" % (not lib.sd_cpu_bf16_supported()),
       lib.sd_cpu_conv_impl_get() == SD_CPU_CONV_AUTO,
       "impl %d" % lib.sd_cpu_conv_impl_get())
sys.exit(summary())
