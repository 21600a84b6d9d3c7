"""PyTorch parity of the detection ops (float64 references): roi_align against
torchvision.ops.roi_align, forward and the feature gradient, for aligned
true/false, fixed and adaptive sampling, several scales (the FPN levels),
rois partly outside the map, tiny rois (legacy minimum size 1) and batch
indices > 0; gather (rows by index, repeats included) against indexing;
smooth_l1 against F.smooth_l1_loss(reduction="sum") at Mask R-CNN's beta 1/9
and at 1."""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from segda_ct import check_error, check_op, summary  # noqa: E402

rng = np.random.default_rng(16)


def rois_for(k, n, size):
    b = rng.integers(0, n, size=(k, 1)).astype(np.float32)
    xy = rng.uniform(-0.2 * size, 1.1 * size, size=(k, 4)).astype(np.float32)
    x1, x2 = np.minimum(xy[:, 0], xy[:, 2]), np.maximum(xy[:, 0], xy[:, 2])
    y1, y2 = np.minimum(xy[:, 1], xy[:, 3]), np.maximum(xy[:, 1], xy[:, 3])
    r = np.stack([b[:, 0], x1, y1, x2, y2], 1)
    r[0, 3], r[0, 4] = r[0, 1] + 0.3, r[0, 2] + 0.2  # a tiny roi
    return r.astype(np.float32)


def roi_case(n, c, h, w, k, out, scale, sampling, aligned):
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    r = rois_for(k, n, h / scale)
    label = "roi_align x=%s k=%d out=%s scale=%g sampling=%d aligned=%d" % ((n, c, h, w), k, out, scale,
                                                                               sampling, aligned)
    check_op("roi_align", lambda x, r: roi_align(x, r, (out[0], out[1]), scale, sampling, aligned), [x, r],
             [out[0], out[1], sampling, int(aligned)], [scale], nograd=(1,), label=label)


for aligned in (False, True):
    roi_case(1, 3, 13, 11, 5, (7, 7), 1.0, 2, aligned)
    roi_case(2, 4, 16, 20, 9, (7, 7), 0.25, 2, aligned)      # P2 of the FPN
    roi_case(2, 2, 10, 9, 6, (14, 14), 0.125, 2, aligned)    # the mask head's 14x14
    roi_case(1, 3, 12, 12, 4, (3, 5), 0.5, 0, aligned)       # adaptive sampling
    roi_case(3, 2, 7, 8, 7, (2, 2), 1 / 32, 1, aligned)      # coarse level, one sample

for shape, block, idx in (((2, 3, 4, 5), 1, [7, 0, 119, 7, 33]), ((3, 4, 7, 7), 49, [11, 0, 5, 5, 2]),
                          ((1, 12, 6, 5), 4, [0, 89, 17, 44])):
    x = rng.standard_normal(shape).astype(np.float32)
    check_op("gather", lambda x: x.reshape(-1, block)[torch.tensor(idx)], [x], [block] + idx,
             label="gather %s block %d rows %s" % (shape, block, idx))
for beta in (1.0 / 9, 1.0):
    x = rng.standard_normal((37, 4)).astype(np.float32) * 0.3
    tg = rng.standard_normal((37, 4)).astype(np.float32) * 0.3
    check_op("smooth_l1", lambda x, tg: F.smooth_l1_loss(x, tg, beta=beta, reduction="sum").reshape(1), [x, tg], [], [beta],
             nograd=(1,), label="smooth_l1 sum beta %.3g" % beta)

check_error("gather", [np.zeros((2, 3), np.float32)], [3, 2], [], "index", label="gather rejects a row out of range")
x = np.zeros((1, 2, 4, 4), np.float32)
check_error("roi_align", [x, np.array([[1, 0, 0, 2, 2]], np.float32)], [2, 2, 2, 0], [1.0],
            "batch index", label="roi_align rejects a batch index beyond N")
sys.exit(summary())
