"""torch.optim parity for segda's SGD and Adam (tests/shim_optim.c via
ctypes): per-group lr / weight-decay multipliers, a frozen group, poly decay,
several steps with random gradients. Prints PASS/FAIL lines."""
import ctypes
import os
import sys

import numpy as np
import torch

build = os.environ.get("SEGDA_BUILD", "build")
lib = ctypes.CDLL(os.path.join(build, "libsegda.so"))
fp = ctypes.POINTER(ctypes.c_float)
f = ctypes.c_float
i = ctypes.c_int
lib.sd_shim_optim_run.argtypes = [i, f, f, f, f, f, f, i, f, i, i, i, i, fp, fp, fp, fp]
lib.sd_shim_optim_run.restype = i

failed = False


def ptr(a):
    return a.ctypes.data_as(fp)


def run_case(name, kind, momentum=0.9, wd=5e-4, b1=0.9, b2=0.99, eps=1e-8,
             base_lr=2.5e-2, max_iters=20, power=0.9, steps=7, sizes=(37, 11, 5), seed=0):
    global failed
    rng = np.random.default_rng(seed)
    n0, n1, n2 = sizes
    n = n0 + n1 + n2
    w0 = rng.standard_normal(n).astype(np.float32)
    grads = rng.standard_normal((steps, n)).astype(np.float32)
    w_out = np.zeros(n, np.float32)
    st_out = np.zeros(n0 + n1, np.float32)
    rc = lib.sd_shim_optim_run(kind, momentum, wd, b1, b2, eps, base_lr, max_iters, power, steps,
                               n0, n1, n2, ptr(w0), ptr(np.ascontiguousarray(grads)), ptr(w_out), ptr(st_out))
    ps = [torch.nn.Parameter(torch.from_numpy(w0[:n0].copy())),
          torch.nn.Parameter(torch.from_numpy(w0[n0:n0 + n1].copy()))]
    frozen = torch.from_numpy(w0[n0 + n1:].copy())
    groups = [{"params": [ps[0]], "lr": base_lr, "weight_decay": wd},
              {"params": [ps[1]], "lr": base_lr * 10, "weight_decay": wd * 0.5}]
    if kind == 0:
        opt = torch.optim.SGD(groups, lr=base_lr, momentum=momentum)
    else:
        opt = torch.optim.Adam(groups, lr=base_lr, betas=(b1, b2), eps=eps)
    for it in range(steps):
        factor = (1 - it / max_iters) ** power
        opt.param_groups[0]["lr"] = base_lr * factor
        opt.param_groups[1]["lr"] = base_lr * 10 * factor
        ps[0].grad = torch.from_numpy(grads[it, :n0].copy())
        ps[1].grad = torch.from_numpy(grads[it, n0:n0 + n1].copy())
        opt.step()
    ref = np.concatenate([ps[0].detach().numpy(), ps[1].detach().numpy(), frozen.numpy()])
    slot = "momentum_buffer" if kind == 0 else "exp_avg"
    if kind == 0 and momentum == 0:
        ref_st = np.zeros(n0 + n1, np.float32)  # torch keeps no buffer either
    else:
        ref_st = np.concatenate([opt.state[ps[0]][slot].numpy(), opt.state[ps[1]][slot].numpy()])
    err = np.max(np.abs(w_out - ref) / np.maximum(1.0, np.abs(ref)))
    err_st = np.max(np.abs(st_out - ref_st) / np.maximum(1.0, np.abs(ref_st)))
    ok = rc == 0 and err <= 1e-5 and err_st <= 1e-5 and np.array_equal(w_out[n0 + n1:], w0[n0 + n1:])
    print(("PASS" if ok else "FAIL") + f" {name} (max rel err weights {err:.2e}, state {err_st:.2e}, rc {rc})")
    failed |= not ok


run_case("sgd_momentum_wd_poly", 0)
run_case("sgd_plain_nowd", 0, momentum=0.0, wd=0.0, steps=3)
run_case("sgd_large_wd", 0, wd=0.1, steps=12, seed=3)
run_case("adam_betas_0.9_0.99", 1, wd=0.0, base_lr=1e-3, seed=1)
run_case("adam_l2_wd", 1, wd=1e-2, base_lr=1e-3, seed=2, steps=15)
sys.exit(1 if failed else 0)
