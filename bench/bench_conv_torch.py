"""PyTorch's conv2d on the cases of bench/bench_conv.c, for comparison
(run with /usr/bin/python3; argument: thread count, default all cores)."""
import sys
import time

import torch
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 and int(sys.argv[1]) > 0 else torch.get_num_threads()
torch.set_num_threads(threads)
cases = [
    ("layer1 3x3 64->64 128x256", 1, 64, 128, 256, 64, 3, 1, 1, 1),
    ("layer1 3x3 64->64 128x256 dil2", 1, 64, 128, 256, 64, 3, 1, 2, 2),
    ("layer3 3x3 256->256 65x129 dil2", 1, 256, 65, 129, 256, 3, 1, 2, 2),
    ("1x1 256->64 128x256", 1, 256, 128, 256, 64, 1, 1, 0, 1),
    ("stem 7x7/2 3->64 512x1024", 1, 3, 512, 1024, 64, 7, 2, 3, 1),
    ("aspp 3x3 2048->19 65x129 dil12", 1, 2048, 65, 129, 19, 3, 1, 12, 12),
]
print("torch %s conv2d f32, %d threads (GFLOP/s; backward = input + weight gradients)" % (torch.__version__, threads))
for name, n, cin, h, w, cout, k, s, p, d in cases:
    x = torch.randn(n, cin, h, w, requires_grad=True)
    wt = (0.05 * torch.randn(cout, cin, k, k)).requires_grad_()
    bf = bb = 1e9
    for rep in range(4):
        t0 = time.perf_counter()
        y = F.conv2d(x, wt, None, s, p, d)
        t1 = time.perf_counter()
        y.backward(torch.ones_like(y))
        t2 = time.perf_counter()
        x.grad = None
        wt.grad = None
        if rep > 0:
            bf, bb = min(bf, t1 - t0), min(bb, t2 - t1)
    flops = 2.0 * n * cout * cin * k * k * y.shape[2] * y.shape[3]
    print("%-34s fwd %7.2f ms %6.1f GFLOP/s   bwd %7.2f ms %6.1f GFLOP/s"
          % (name, bf * 1e3, flops / bf * 1e-9, bb * 1e3, 2 * flops / bb * 1e-9))
