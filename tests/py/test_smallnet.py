"""A small segmentation network built in PyTorch and in segda with the same
weights (conv-BN-ReLU blocks, two summed dilated branches, bilinear
upsampling, cross-entropy with ignore 255): same loss and every parameter
gradient (max rel err <= 1e-4), then five SGD steps (momentum 0.9, weight
decay, classifier lr x10) give the same losses, weights and BN running
statistics. segda side: sdt_smallnet_run in tests/shim_smallnet.c."""
import ctypes
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from segda_ct import lib, rel_err, report, summary  # noqa: E402

K, N, H, W = 5, 2, 17, 19
STEPS, LR, MOM, WD = 5, 0.01, 0.9, 5e-4


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.branch0 = nn.Conv2d(8, K, 3, padding=2, dilation=2)
        self.branch1 = nn.Conv2d(8, K, 3, padding=4, dilation=4)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        y = self.branch0(h) + self.branch1(h)
        return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=True)

    def trainable(self):
        # the declaration order of sdt_smallnet_run
        return [self.conv1.weight, self.bn1.weight, self.bn1.bias, self.conv2.weight, self.bn2.weight,
                self.bn2.bias, self.branch0.weight, self.branch0.bias, self.branch1.weight, self.branch1.bias]


def main():
    torch.manual_seed(3)
    net = SmallNet().double()
    with torch.no_grad():  # non-trivial affine BN parameters
        for bn in (net.bn1, net.bn2):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    # float32-representable weights and inputs, so both sides start equal
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.float().double())
    rng = np.random.default_rng(4)
    x = rng.standard_normal((N, 3, H, W)).astype(np.float32)
    lab = rng.integers(0, K, size=(N, H, W)).astype(np.float32)
    lab[rng.random((N, H, W)) < 0.25] = 255
    w0 = np.concatenate([p.detach().numpy().ravel() for p in net.trainable()]).astype(np.float32)

    # torch: float64 reference
    xt = torch.tensor(x, dtype=torch.float64)
    lt = torch.tensor(lab).long()
    bb = net.trainable()[:6]
    cl = net.trainable()[6:]
    opt = torch.optim.SGD([{"params": bb, "lr": LR}, {"params": cl, "lr": 10 * LR}], lr=LR, momentum=MOM,
                          weight_decay=WD)
    ref_losses, ref_g0 = [], None
    for s in range(STEPS):
        opt.zero_grad()
        loss = F.cross_entropy(net(xt), lt, ignore_index=255)
        loss.backward()
        ref_losses.append(loss.item())
        if s == 0:
            ref_g0 = [p.grad.detach().numpy().copy() for p in net.trainable()]
        opt.step()
    ref_w = [p.detach().numpy() for p in net.trainable()]
    ref_stats = [net.bn1.running_mean, net.bn1.running_var, net.bn2.running_mean, net.bn2.running_var]

    # segda
    fp = ctypes.POINTER(ctypes.c_float)
    f = ctypes.c_float
    lib.sdt_smallnet_run.argtypes = [fp, ctypes.c_int, fp, ctypes.c_int, ctypes.c_int, ctypes.c_int, fp,
                                     ctypes.c_int, f, f, f, fp, fp, fp, fp]
    lib.sdt_smallnet_run.restype = ctypes.c_int
    losses = np.zeros(STEPS, np.float32)
    g0 = np.zeros_like(w0)
    w_out = np.zeros_like(w0)
    stats = np.zeros(32, np.float32)
    p = lambda a: a.ctypes.data_as(fp)  # noqa: E731
    st = lib.sdt_smallnet_run(p(w0), K, p(x), N, H, W, p(lab), STEPS, LR, MOM, WD, p(losses), p(g0), p(w_out),
                              p(stats))
    if st != 0:
        report("smallnet runs", False, lib.sdt_errmsg().decode())
        return
    names = ["conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias",
             "branch0.weight", "branch0.bias", "branch1.weight", "branch1.bias"]
    e = abs(losses[0] - ref_losses[0]) / abs(ref_losses[0])
    report("smallnet loss", e <= 1e-4, "ours %.7f ref %.7f" % (losses[0], ref_losses[0]))
    off = 0
    for name, g in zip(names, ref_g0):
        ours = g0[off:off + g.size].reshape(g.shape)
        off += g.size
        e = rel_err(ours, g)
        report("smallnet grad %s" % name, e <= 1e-4, "rel err %.3g" % e)
    e = max(abs(a - b) / abs(b) for a, b in zip(losses, ref_losses))
    report("smallnet %d SGD steps: losses" % STEPS, e <= 1e-4,
           "ours %s ref %s (rel %.3g)" % (np.round(losses, 6), np.round(ref_losses, 6), e))
    report("smallnet loss decreases", ref_losses[-1] < ref_losses[0] and losses[-1] < losses[0],
           "losses %s" % losses)
    off = 0
    worst = 0.0
    for name, wr in zip(names, ref_w):
        worst = max(worst, rel_err(w_out[off:off + wr.size].reshape(wr.shape), wr))
        off += wr.size
    report("smallnet weights after %d steps" % STEPS, worst <= 1e-4, "rel err %.3g" % worst)
    e = max(rel_err(stats[8 * i:8 * i + 8], r.numpy()) for i, r in enumerate(ref_stats))
    report("smallnet BN running statistics", e <= 1e-4, "rel err %.3g" % e)


if __name__ == "__main__":
    main()
    sys.exit(summary())
