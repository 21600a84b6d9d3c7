"""Mask R-CNN's host-side box arithmetic (src/nn/detect_boxes.c) against
torchvision 0.14: box_iou, nms, batched_nms, AnchorGenerator, BoxCoder
(RPN weights 1,1,1,1 and RoI-head weights 10,10,5,5 with the dw/dh clip),
Matcher (with and without low-quality matches) and the balanced sampler's
counts."""
import ctypes
import os
import sys

import numpy as np
import torch
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import batched_nms, box_iou, nms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from segda_ct import lib, report, summary  # noqa: E402

F = ctypes.POINTER(ctypes.c_float)
I = ctypes.POINTER(ctypes.c_int)
rng = np.random.default_rng(7)


def fp(a):
    return np.ascontiguousarray(a, np.float32).ctypes.data_as(F)


def boxes(n, size=100.0):
    xy = rng.uniform(0, size, (n, 2)).astype(np.float32)
    wh = rng.uniform(2, size / 3, (n, 2)).astype(np.float32)
    return np.concatenate([xy, xy + wh], 1)


# IoU
a, b = boxes(13), boxes(17)
out = np.zeros((13, 17), np.float32)
aa, bb = np.ascontiguousarray(a), np.ascontiguousarray(b)
lib.sd_box_iou(13, aa.ctypes.data_as(F), 17, bb.ctypes.data_as(F), out.ctypes.data_as(F))
ref = box_iou(torch.tensor(a), torch.tensor(b)).numpy()
report("box_iou", np.abs(out - ref).max() < 1e-6, "max err %g" % np.abs(out - ref).max())

# NMS and batched NMS
for thresh in (0.3, 0.5, 0.7):
    bx = boxes(200)
    sc = rng.uniform(0, 1, 200).astype(np.float32)
    keep = np.zeros(200, np.int32)
    m = lib.sd_box_nms(200, bx.ctypes.data_as(F), sc.ctypes.data_as(F), None, ctypes.c_float(thresh),
                       keep.ctypes.data_as(I))
    ref = nms(torch.tensor(bx), torch.tensor(sc), thresh).numpy()
    report("nms %.1f (%d kept)" % (thresh, len(ref)), m == len(ref) and (keep[:m] == ref).all())
    grp = rng.integers(0, 4, 200).astype(np.int32)
    m = lib.sd_box_nms(200, bx.ctypes.data_as(F), sc.ctypes.data_as(F), grp.ctypes.data_as(I), ctypes.c_float(thresh),
                       keep.ctypes.data_as(I))
    ref = batched_nms(torch.tensor(bx), torch.tensor(sc), torch.tensor(grp, dtype=torch.int64), thresh).numpy()
    report("batched_nms %.1f (%d kept)" % (thresh, len(ref)), m == len(ref) and (keep[:m] == ref).all())

# anchors: one level per FPN stride, as the model's generator
sizes = ((32,), (64,), (128,), (256,), (512,))
gen = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 5)
img = torch.zeros(1, 3, 352, 320)
feats = [torch.zeros(1, 1, (352 + s - 1) // s, (320 + s - 1) // s) for s in (4, 8, 16, 32)]
feats.append(torch.zeros(1, 1, (feats[-1].shape[2] + 1) // 2, (feats[-1].shape[3] + 1) // 2))
ref = gen(ImageList(img, [(352, 320)]), feats)[0].numpy()
ours, ratios = [], np.array([0.5, 1.0, 2.0], np.float32)
for f, s in zip(feats, sizes):
    gh, gw = f.shape[2], f.shape[3]
    o = np.zeros(gh * gw * 3 * 4, np.float32)
    lib.sd_box_anchors(gh, gw, 352 // gh, 320 // gw, ctypes.c_float(s[0]), 3, ratios.ctypes.data_as(F),
                       o.ctypes.data_as(F))
    ours.append(o.reshape(-1, 4))
ours = np.concatenate(ours)
report("anchors (5 levels, odd P6 stride)", ours.shape == ref.shape and np.abs(ours - ref).max() == 0)

# box coder
for w in ((1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)):
    coder = det_utils.BoxCoder(w)
    ref_b, d = boxes(50), rng.standard_normal((50, 4)).astype(np.float32) * 2
    d[0, 2] = 9.0  # beyond the clip
    wt = np.array(w, np.float32)
    out = np.zeros((50, 4), np.float32)
    lib.sd_box_decode(50, d.ctypes.data_as(F), ref_b.ctypes.data_as(F), wt.ctypes.data_as(F), out.ctypes.data_as(F))
    r = coder.decode_single(torch.tensor(d), torch.tensor(ref_b)).numpy()
    report("decode weights %s" % (w,), np.abs(out - r).max() / np.abs(r).max() < 1e-6)
    gt = boxes(50)
    lib.sd_box_encode(50, gt.ctypes.data_as(F), ref_b.ctypes.data_as(F), wt.ctypes.data_as(F), out.ctypes.data_as(F))
    r = coder.encode_single(torch.tensor(gt), torch.tensor(ref_b)).numpy()
    report("encode weights %s" % (w,), np.abs(out - r).max() / np.abs(r).max() < 1e-5)

# matcher
for high, low, allow in ((0.7, 0.3, True), (0.5, 0.5, False)):
    gt, pr = boxes(6), boxes(300)
    iou = box_iou(torch.tensor(gt), torch.tensor(pr))
    ref = det_utils.Matcher(high, low, allow)(iou).numpy()
    iou_np = np.ascontiguousarray(iou.numpy())
    out = np.zeros(300, np.int32)
    lib.sd_box_match(6, 300, iou_np.ctypes.data_as(F), ctypes.c_float(high), ctypes.c_float(low), ctypes.c_bool(allow),
                     out.ctypes.data_as(I))
    report("matcher %.1f/%.1f low-quality %d" % (high, low, allow), (out == ref).all(),
           "%d differ" % (out != ref).sum())

# sampler: counts as torchvision's, deterministic mode takes the first ones
labels = rng.integers(-1, 3, 500).astype(np.int32)
pos, neg = np.zeros(500, np.uint8), np.zeros(500, np.uint8)
U8 = ctypes.POINTER(ctypes.c_uint8)
lib.sd_box_sample(500, labels.ctypes.data_as(I), 256, ctypes.c_float(0.25), None, pos.ctypes.data_as(U8),
                  neg.ctypes.data_as(U8))
tp, tn = det_utils.BalancedPositiveNegativeSampler(256, 0.25)([torch.tensor(labels, dtype=torch.int64)])
report("sampler counts", pos.sum() == tp[0].sum().item() and neg.sum() == tn[0].sum().item(),
       "ours %d/%d torchvision %d/%d" % (pos.sum(), neg.sum(), tp[0].sum(), tn[0].sum()))
report("sampler deterministic mode takes the first", (np.flatnonzero(pos) == np.flatnonzero(labels >= 1)[:64]).all())
sys.exit(summary())
