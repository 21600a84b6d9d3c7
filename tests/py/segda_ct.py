"""PyTorch parity harness: runs one segda op by name through the ctypes shim
(tests/shim_ops.c, loaded from $SEGDA_BUILD/libsegda.so) and compares its
output and every input gradient with torch 1.13 computed in float64.

    from segda_ct import check_op, summary
    check_op("conv2d", lambda x, w: F.conv2d(x, w, padding=1), [x, w], iparams=[1, 1, 1, 1])
    sys.exit(summary())

Each case prints "PASS label" or "FAIL label: what, error"; the error is
max|ours - ref| / max|ref| (relative to the largest reference magnitude).
Run with /usr/bin/python3 (the interpreter that has torch).
"""
import ctypes
import os
import sys

import numpy as np
import torch

_here = os.path.dirname(os.path.abspath(__file__))
_root = os.path.dirname(os.path.dirname(_here))
_build = os.environ.get("SEGDA_BUILD", "build")
if not os.path.isabs(_build):
    _build = os.path.join(_root, _build)
lib = ctypes.CDLL(os.path.join(_build, "libsegda.so"))

_P = ctypes.POINTER
_f = ctypes.c_float
_i = ctypes.c_int
lib.sdt_forward.argtypes = [ctypes.c_char_p, _i, _P(_P(_f)), _P(_i), _P(_i), _P(_i),
                            _P(_i), _i, _P(_f), _i, _P(_i), _P(_i)]
lib.sdt_forward.restype = _i
lib.sdt_output.argtypes = [_P(_f)]
lib.sdt_backward.argtypes = [_P(_f)]
lib.sdt_grad.argtypes = [_i, _P(_f)]
lib.sdt_input.argtypes = [_i, _P(_f)]
lib.sdt_errmsg.restype = ctypes.c_char_p
lib.sd_set_threads.argtypes = [_i]

_failed = 0
_passed = 0
torch.set_num_threads(1)


class SegdaError(RuntimeError):
    pass


def _fptr(a):
    return a.ctypes.data_as(_P(_f))


def errmsg():
    return lib.sdt_errmsg().decode()


def run(op, inputs, iparams=(), fparams=(), req_grad=None, grad_out=None):
    """Runs `op` on float32 copies of `inputs` (numpy arrays or None for an
    absent optional input). Returns (out, grads, inputs_after); grads is None
    without grad_out. Raises SegdaError with the library's message."""
    n = len(inputs)
    arrs = [None if x is None else np.ascontiguousarray(x, dtype=np.float32) for x in inputs]
    if req_grad is None:
        req_grad = [1] * n
    ptrs = (_P(_f) * max(n, 1))(*[(_fptr(a) if a is not None else _P(_f)()) for a in arrs])
    ndim = (_i * max(n, 1))(*[(a.ndim if a is not None else 0) for a in arrs])
    shp = []
    for a in arrs:
        s = list(a.shape) if a is not None else []
        shp += s + [1] * (4 - len(s))
    shapes = (_i * max(4 * n, 1))(*shp)
    rg = (_i * max(n, 1))(*[int(bool(r)) for r in req_grad])
    ip = (_i * max(len(iparams), 1))(*[int(v) for v in iparams])
    fp = (_f * max(len(fparams), 1))(*[float(v) for v in fparams])
    ond = _i()
    osh = (_i * 4)()
    st = lib.sdt_forward(op.encode(), n, ptrs, ndim, shapes, rg, ip, len(iparams), fp, len(fparams),
                         ctypes.byref(ond), osh)
    if st != 0:
        raise SegdaError(errmsg())
    out = np.empty(tuple(osh[:ond.value]), dtype=np.float32)
    lib.sdt_output(_fptr(out))
    after = []
    for k, a in enumerate(arrs):
        if a is None:
            after.append(None)
            continue
        d = np.empty_like(a)
        lib.sdt_input(k, _fptr(d))
        after.append(d)
    grads = None
    if grad_out is not None:
        go = np.ascontiguousarray(grad_out, dtype=np.float32)
        if go.shape != out.shape:
            raise SegdaError("grad_out shape %s != output %s" % (go.shape, out.shape))
        if lib.sdt_backward(_fptr(go)) != 0:
            raise SegdaError(errmsg())
        grads = []
        for k, a in enumerate(arrs):
            if a is None:
                grads.append(None)
                continue
            g = np.empty_like(a)
            lib.sdt_grad(k, _fptr(g))
            grads.append(g)
    return out, grads, after


def rel_err(ours, ref):
    ref = np.asarray(ref, dtype=np.float64)
    ours = np.asarray(ours, dtype=np.float64)
    if ours.shape != ref.shape:
        return float("inf")
    if ref.size == 0:
        return 0.0
    if not np.all(np.isfinite(ours)):
        return float("inf")
    scale = max(np.abs(ref).max(), 1e-12)
    return float(np.abs(ours - ref).max() / scale)


def report(label, ok, detail=""):
    global _failed, _passed
    if ok:
        _passed += 1
        print("PASS %s" % label)
    else:
        _failed += 1
        print("FAIL %s: %s" % (label, detail))
    sys.stdout.flush()


def check_op(name, torch_fn, inputs, iparams=(), fparams=(), rtol=1e-4, nograd=(), label=None,
             check_inputs=(), seed=0):
    """Compares segda's `name` with torch_fn on `inputs` (numpy arrays; None
    for an absent optional input, passed to torch_fn as None). Inputs whose
    index is in `nograd` get no gradient (running statistics); those in
    `check_inputs` are compared after the call (in-place updates). The
    backward is seeded with a random grad_out. Returns True on a pass."""
    label = label or name
    rng = np.random.default_rng(seed)
    tins = []
    for k, x in enumerate(inputs):
        if x is None:
            tins.append(None)
            continue
        t = torch.tensor(np.asarray(x, dtype=np.float32), dtype=torch.float64)
        t.requires_grad_(k not in nograd)
        tins.append(t)
    ref = torch_fn(*tins)
    go = rng.standard_normal(tuple(ref.shape)).astype(np.float32)
    if ref.requires_grad:
        ref.backward(torch.tensor(go, dtype=torch.float64))
    req = [0 if (k in nograd or x is None) else 1 for k, x in enumerate(inputs)]
    try:
        out, grads, after = run(name, inputs, iparams, fparams, req, go)
    except SegdaError as e:
        report(label, False, "segda error: %s" % e)
        return False
    problems = []
    e = rel_err(out, ref.detach().numpy())
    if e > rtol:
        problems.append("output err %.3g (shape ours %s ref %s)" % (e, out.shape, tuple(ref.shape)))
    for k, t in enumerate(tins):
        if t is None or k in nograd:
            continue
        rg = t.grad.numpy() if t.grad is not None else np.zeros(t.shape)
        e = rel_err(grads[k], rg)
        if e > rtol:
            problems.append("grad[%d] err %.3g" % (k, e))
    for k in check_inputs:
        e = rel_err(after[k], tins[k].detach().numpy())
        if e > rtol:
            problems.append("input[%d] after call err %.3g" % (k, e))
    report(label, not problems, "; ".join(problems))
    return not problems


def check_error(name, inputs, iparams=(), fparams=(), needle="", label=None):
    """The op must fail with a message containing `needle`."""
    label = label or ("error " + name)
    try:
        run(name, inputs, iparams, fparams, None, None)
    except SegdaError as e:
        ok = needle in str(e)
        report(label, ok, "message %r lacks %r" % (str(e), needle))
        return ok
    report(label, False, "no error")
    return False


def summary():
    print("%d passed, %d failed" % (_passed, _failed))
    return 1 if _failed else 0
