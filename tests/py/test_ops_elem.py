"""PyTorch 1.13 parity of the element-wise ops (element-wise, shape, softmax, losses):
forward and every input gradient, max relative error <= 1e-4, over shapes
with odd sizes and batch > 1, ignore pixels (255), all-ignored batches and
class weights. Runs each op through tests/shim_ops.c (segda_ct harness)."""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from segda_ct import check_op, check_error, report, run, SegdaError, summary  # noqa: E402

rng = np.random.default_rng(2)
SHAPES = [(2, 5, 7, 9), (3, 19, 5, 3), (1, 4, 1, 1), (2, 3, 13, 1)]


def randn(*s, scale=2.0):
    return (rng.standard_normal(s) * scale).astype(np.float32)


def scalar(v):
    return v.reshape(1)


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


def test_unary():
    for s in SHAPES:
        x = randn(*s)
        tag = "x".join(map(str, s))
        check_op("relu", F.relu, [x], label="relu %s" % tag)
        check_op("leaky_relu", lambda a: F.leaky_relu(a, 0.2), [x], fparams=[0.2], label="leaky_relu %s" % tag)
        check_op("tanh", torch.tanh, [x], label="tanh %s" % tag)
        check_op("sigmoid", torch.sigmoid, [x * 5], label="sigmoid %s" % tag)
        check_op("scale", lambda a: -0.3 * a, [x], fparams=[-0.3], label="scale %s" % tag)
        check_op("add_scalar", lambda a: a + 1.5, [x], fparams=[1.5], label="add_scalar %s" % tag)
        check_op("grad_reverse", lambda a: GradReverse.apply(a, 0.7), [x], fparams=[0.7],
                 label="grad_reverse %s" % tag)
        # pow: positive inputs (FDA raises E^2 + 1e-8 to eta), real and integer exponents
        xp = np.abs(x) + 0.05
        for p in (2.5, 1.5, 2.0, 0.5, -0.7):
            check_op("pow_scalar", lambda a, p=p: torch.pow(a, p), [xp], fparams=[p],
                     label="pow_scalar %g %s" % (p, tag))
    # detach: same values, no gradient flows
    x = randn(2, 3, 4, 5)
    check_op("detach", lambda a: a.detach() * 1.0, [x], label="detach")


def test_dropout():
    x = np.abs(randn(4, 8, 16, 16)) + 0.5
    p = 0.3
    go = rng.standard_normal(x.shape).astype(np.float32)
    out, grads, _ = run("dropout", [x], iparams=[1, 7], fparams=[p], grad_out=go)
    mask = out / x
    keep = 1.0 / (1.0 - p)
    okvals = np.all(np.isclose(mask, 0) | np.isclose(mask, keep, rtol=1e-6))
    frac = float(np.mean(np.isclose(mask, 0)))
    report("dropout mask values {0, 1/(1-p)}", okvals, "unexpected mask values")
    report("dropout drop rate", abs(frac - p) < 0.02, "dropped %.4f, expected %.2f" % (frac, p))
    ref_g = go * mask
    report("dropout grad = grad_out * mask", np.abs(grads[0] - ref_g).max() <= 1e-5 * np.abs(ref_g).max(),
           "grad mismatch")
    out2, _, _ = run("dropout", [x], iparams=[1, 7], fparams=[p])
    report("dropout same seed same mask", np.array_equal(out, out2), "masks differ")
    out3, _, _ = run("dropout", [x], iparams=[0, 7], fparams=[p])
    report("dropout eval is identity", np.array_equal(out3, x), "eval output differs from input")


def test_binary():
    a_shape = (2, 5, 7, 9)
    for bs in [(2, 5, 7, 9), (1, 5, 1, 1), (2, 1, 7, 9), (1, 1, 1, 1), (2, 5, 1, 9), (1, 5, 7, 1), (2, 1, 1, 1)]:
        a, b = randn(*a_shape), randn(*bs)
        tag = "x".join(map(str, bs))
        check_op("add", lambda x, y: x + y, [a, b], label="add b=%s" % tag)
        check_op("sub", lambda x, y: x - y, [a, b], label="sub b=%s" % tag)
        check_op("mul", lambda x, y: x * y, [a, b], label="mul b=%s" % tag)
    check_error("add", [randn(2, 3, 4, 4), randn(2, 2, 1, 1)], needle="add: [2,3,4,4] and [2,2,1,1]")
    check_error("mul", [randn(1, 3, 1, 1), randn(2, 3, 1, 1)], needle="mul: [1,3,1,1] and [2,3,1,1]")


def test_shape_ops():
    for dim in (0, 1, 2, 3):
        shapes = []
        for k in (1, 3, 2):
            s = [2, 3, 5, 7]
            s[dim] = k
            shapes.append(tuple(s))
        xs = [randn(*s) for s in shapes]
        check_op("concat", lambda *t, d=dim: torch.cat(t, d), xs, iparams=[dim], label="concat dim %d" % dim)
    xs = [randn(1, k, 3, 3) for k in (1, 2, 3, 1, 2, 4)]
    check_op("concat", lambda *t: torch.cat(t, 1), xs, iparams=[1], label="concat 6 inputs")
    x = randn(2, 6, 7, 9)
    for dim, s, e in [(1, 2, 5), (2, 0, 3), (3, 4, 9), (1, 0, 6), (0, 1, 2)]:
        check_op("slice", lambda t, d=dim, s=s, e=e: t.narrow(d, s, e - s), [x], iparams=[dim, s, e],
                 label="slice dim %d [%d,%d)" % (dim, s, e))
    check_op("reshape", lambda t: t.reshape(2, 42, 9), [x[:, :, :, :]], iparams=[2, 42, 9], label="reshape")
    check_op("reshape", lambda t: t.reshape(6, -1), [x], iparams=[6, -1], label="reshape -1")
    check_error("slice", [x], iparams=[1, 4, 8], needle="slice: [4, 8) along dim 1 of [2,6,7,9]")
    check_error("concat", [randn(1, 2, 3, 3), randn(1, 2, 4, 3)], iparams=[1],
                needle="concat: input 1 [1,2,4,3] does not match input 0 [1,2,3,3]")
    check_error("reshape", [x], iparams=[5, 7], needle="reshape: [2,6,7,9] (756 elements) cannot become [5,7]")


def test_softmax_reduce():
    for s in SHAPES + [(4, 7)]:
        x = randn(*s, scale=4.0)
        tag = "x".join(map(str, s))
        check_op("softmax", lambda t: F.softmax(t, 1), [x], label="softmax %s" % tag)
        check_op("log_softmax", lambda t: F.log_softmax(t, 1), [x], label="log_softmax %s" % tag)
        check_op("sum", lambda t: scalar(t.sum()), [x], label="sum %s" % tag)
        check_op("mean", lambda t: scalar(t.mean()), [x], label="mean %s" % tag)
    big = np.array([[1000.0, -1000.0, 0.0], [88.0, 89.0, 90.0]], dtype=np.float32)
    check_op("log_softmax", lambda t: F.log_softmax(t, 1), [big], label="log_softmax large logits")
    check_op("softmax", lambda t: F.softmax(t, 1), [big], label="softmax large logits")


def ce_ref(weights=None):
    def fn(x, y, w=None):
        yl = y.detach().long()
        valid = yl != 255
        wt = w.detach() if w is not None else None
        if not bool(valid.any()):
            return scalar((x * 0).sum())
        if wt is not None and float(wt[yl[valid]].sum()) == 0.0:
            return scalar((x * 0).sum())
        return scalar(F.cross_entropy(x, yl, weight=wt, ignore_index=255))
    return fn


def labels_for(n, c, h, w, ignore_frac):
    lab = rng.integers(0, c, size=(n, h, w)).astype(np.float32)
    lab[rng.random((n, h, w)) < ignore_frac] = 255
    return lab


def test_cross_entropy():
    for (n, c, h, w) in [(2, 19, 7, 9), (3, 5, 5, 3), (1, 4, 1, 1), (2, 7, 33, 17)]:
        x = randn(n, c, h, w, scale=3.0)
        tag = "%dx%dx%dx%d" % (n, c, h, w)
        lab = labels_for(n, c, h, w, 0.2)
        cw = (rng.random(c) * 2 + 0.1).astype(np.float32)
        check_op("cross_entropy", ce_ref(), [x, lab, None], iparams=[255], nograd=(1,), label="ce %s" % tag)
        check_op("cross_entropy", ce_ref(), [x, lab, cw], iparams=[255], nograd=(1, 2),
                 label="ce weighted %s" % tag)
        pw = rng.random((n, h, w)).astype(np.float32)

        def pw_ref(x, y, p):
            yl = y.detach().long()
            nll = F.cross_entropy(x, yl, ignore_index=255, reduction="none")
            return scalar((nll * p.detach()).sum() / (yl != 255).sum())
        check_op("cross_entropy_pixel_weighted", pw_ref, [x, lab, pw], iparams=[255], nograd=(1, 2),
                 label="ce pixel weighted %s" % tag)
    # 2-D logits [N, C]
    x = randn(6, 5)
    lab = np.array([0, 4, 255, 2, 1, 3], dtype=np.float32)
    check_op("cross_entropy", ce_ref(), [x, lab, None], iparams=[255], nograd=(1,), label="ce [N,C]")
    # everything ignored: loss 0 and zero gradient, never NaN
    x = randn(2, 5, 3, 4)
    lab = np.full((2, 3, 4), 255, dtype=np.float32)
    check_op("cross_entropy", ce_ref(), [x, lab, None], iparams=[255], nograd=(1,), label="ce all ignored")
    check_op("cross_entropy", ce_ref(), [x, lab, np.ones(5, np.float32)], iparams=[255], nograd=(1, 2),
             label="ce all ignored weighted")
    out, grads, _ = run("cross_entropy", [x, lab, None], iparams=[255], req_grad=[1, 0, 0],
                        grad_out=np.ones(1, np.float32))
    report("ce all ignored finite", out[0] == 0.0 and np.all(grads[0] == 0), "loss %r" % out)
    # a different ignore index
    lab = labels_for(2, 5, 3, 4, 0.0)
    lab[0, 0, :] = 3

    def ref3(x, y, w=None):
        return scalar(F.cross_entropy(x, y.detach().long(), ignore_index=3))
    check_op("cross_entropy", ref3, [x, lab, None], iparams=[3], nograd=(1,), label="ce ignore index 3")
    bad = labels_for(1, 5, 2, 2, 0.0)
    bad[0, 1, 1] = 7
    check_error("cross_entropy", [randn(1, 5, 2, 2), bad, None], iparams=[255],
                needle="cross_entropy: label 7 at pixel 3 of logits [1,5,2,2]")


def test_bce_mse():
    for s in [(2, 1, 7, 9), (3, 1, 5, 3), (1, 1, 1, 1)]:
        x = randn(*s, scale=6.0)
        tag = "x".join(map(str, s))
        for tv in (0.0, 1.0, 0.3):
            check_op("bce_logits_const",
                     lambda t, tv=tv: scalar(F.binary_cross_entropy_with_logits(t, torch.full_like(t, tv))),
                     [x], fparams=[tv], label="bce const %g %s" % (tv, tag))
            check_op("mse_const", lambda t, tv=tv: scalar(F.mse_loss(t, torch.full_like(t, tv))), [x],
                     fparams=[tv], label="mse const %g %s" % (tv, tag))
        tgt = rng.random(s).astype(np.float32)
        check_op("bce_logits", lambda t, g: scalar(F.binary_cross_entropy_with_logits(t, g)), [x, tgt],
                 nograd=(1,), label="bce %s" % tag)
        b = randn(*s)
        check_op("mse", lambda t, u: scalar(F.mse_loss(t, u)), [x, b], label="mse %s" % tag)
    check_error("mse", [randn(1, 1, 2, 2), randn(1, 2, 2, 2)], needle="mse: [1,1,2,2] and [1,2,2,2] differ")


def test_entropy_l2():
    for s in [(2, 19, 7, 9), (3, 5, 5, 3), (1, 2, 1, 1)]:
        x = randn(*s, scale=3.0)
        c = s[1]
        tag = "x".join(map(str, s))

        def ent(t, c=c):
            return -(F.softmax(t, 1) * F.log_softmax(t, 1)).sum(1, keepdim=True) / math.log(c)

        def si(t, c=c):
            return -(F.softmax(t, 1) * F.log_softmax(t, 1)) / math.log(c)
        check_op("entropy_map", ent, [x], label="entropy_map %s" % tag)
        check_op("self_information", si, [x], label="self_information %s" % tag)
        b = randn(*s)
        check_op("l2_feature_distance", lambda u, v: scalar(torch.norm(u - v, dim=1).mean()), [x, b],
                 label="l2_feature_distance %s" % tag)
    check_error("entropy_map", [randn(1, 1, 2, 2)], needle="entropy_map: logits [1,1,2,2]")


if __name__ == "__main__":
    torch.manual_seed(0)
    test_unary()
    test_dropout()
    test_binary()
    test_shape_ops()
    test_softmax_reduce()
    test_cross_entropy()
    test_bce_mse()
    test_entropy_l2()
    sys.exit(summary())
