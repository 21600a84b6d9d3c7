"""segda's Mask R-CNN against torchvision's maskrcnn_resnet50_fpn (eval mode)
with the same random weights: the state dict goes through
tools/pth2safetensors.py and sd_detector_load, the same u8 image through
both. Compared: the normalised, resized, padded input; FPN P2..P6; the RPN
proposals; the box head's class logits and box regression, the detections
(boxes, scores, labels) and the 28x28 mask probabilities given segda's
proposals; the pasted full-image masks. Weights are random but scaled so that
scores are well apart (RPN and class logits), since top-k and NMS on near-
equal scores would flip on float rounding; BN statistics are random too
(frozen BN)."""
import ctypes
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from segda_ct import lib, report, summary  # noqa: E402
from segda_det import Dets, Trace, arr, rel, segda_detector, test_image, torch_model  # noqa: E402
P = ctypes.POINTER

CLASSES, MIN, MAX, PRE, POST, DETS = 9, 256, 320, 600, 200, 12
model = torch_model(num_classes=CLASSES, min_size=MIN, max_size=MAX, rpn_pre_nms_top_n_test=PRE,
                    rpn_post_nms_top_n_test=POST, box_detections_per_img=DETS)
model.eval()
img, timg = test_image()
H, W = img.shape[:2]
det = segda_detector(model)
if not det:
    sys.exit(summary())
o = lib.sd_detector_options(det).contents
o.min_size, o.max_size, o.rpn_pre_nms, o.rpn_post_nms, o.detections = MIN, MAX, PRE, POST, DETS
dets, tr = Dets(), Trace()
rc = lib.sd_detector_predict_trace(det, img.ctypes.data_as(P(ctypes.c_uint8)), W, H, ctypes.byref(dets),
                                   ctypes.byref(tr))
report("sd_detector_predict", rc == 0, lib.sd_errmsg().decode())
if rc:
    sys.exit(summary())

with torch.no_grad():
    images, _ = model.transform([timg])
    x = images.tensors
    report("input size", (tr.in_h, tr.in_w, tr.img_h, tr.img_w) == tuple(x.shape[2:]) + tuple(images.image_sizes[0]),
           "ours %s torchvision %s %s" % ((tr.in_h, tr.in_w, tr.img_h, tr.img_w), tuple(x.shape), images.image_sizes))
    e = rel(arr(tr.input, 3, tr.in_h, tr.in_w), x[0].numpy())
    report("normalised resized input (rel err %.2g)" % e, e < 1e-4)
    feats = model.backbone(x)
    for l, k in enumerate(["0", "1", "2", "3", "pool"]):
        ref = feats[k][0].numpy()
        e = rel(arr(tr.feat[l], 256, tr.feat_h[l], tr.feat_w[l]), ref)
        report("FPN P%d %s (rel err %.2g)" % (l + 2, ref.shape, e), e < 1e-3)
    props, _ = model.rpn(images, feats)
    ref = props[0].numpy()
    ours = arr(tr.props, tr.n_props, 4)
    # scores that saturate the sigmoid tie, and torch.sort orders ties as it
    # likes: compare the proposals as sets (rows sorted lexicographically)
    e = rel(ours[np.lexsort(ours.T[::-1])], ref[np.lexsort(ref.T[::-1])])
    report("RPN proposals as a set (%d ours, %d torchvision, rel err %.2g)" % (tr.n_props, len(ref), e), e < 1e-4)
    # the RoI heads on segda's proposals
    mine = [torch.tensor(ours)]
    bf = model.roi_heads.box_roi_pool(feats, mine, images.image_sizes)
    logits, regr = model.roi_heads.box_predictor(model.roi_heads.box_head(bf))
    e = rel(arr(tr.class_logits, tr.n_props, CLASSES), logits.numpy())
    report("class logits (rel err %.2g)" % e, e < 1e-3)
    e = rel(arr(tr.box_regression, tr.n_props, CLASSES * 4), regr.numpy())
    report("box regression (rel err %.2g)" % e, e < 1e-3)
    out, _ = model.roi_heads(feats, mine, images.image_sizes)
    out = out[0]
    n = tr.n_det
    report("detection count %d" % n, n == len(out["boxes"]) and n > 0, "torchvision %d" % len(out["boxes"]))
    if n == len(out["boxes"]) and n > 0:
        report("labels", (arr(tr.det_labels, n) == out["labels"].numpy()).all())
        e = rel(arr(tr.det_scores, n), out["scores"].numpy())
        report("scores (rel err %.2g)" % e, e < 1e-4)
        e = rel(arr(tr.det_boxes, n, 4), out["boxes"].numpy())
        report("boxes (rel err %.2g)" % e, e < 1e-4)
        e = rel(arr(tr.mask_probs, n, 28, 28), out["masks"][:, 0].numpy())
        report("28x28 mask probabilities (rel err %.2g)" % e, e < 1e-3)
        post = model.transform.postprocess([out], images.image_sizes, [(H, W)])[0]
        ob = np.array([list(dets.d[i].box) for i in range(dets.n)], np.float32)
        e = rel(ob, post["boxes"].numpy())
        report("boxes in the input image (rel err %.2g)" % e, e < 1e-4)
        agree = []
        for i in range(dets.n):
            m = np.ctypeslib.as_array(dets.d[i].mask, shape=(H, W))
            agree.append((m == (post["masks"][i, 0].numpy() > 0.5)).mean())
        report("pasted masks (worst pixel agreement %.5f)" % min(agree), min(agree) > 0.999)
        report("train ids of a 9-class model are 10 + label",
               all(dets.d[i].train_id == 10 + dets.d[i].label for i in range(dets.n)))
lib.sd_detections_free(ctypes.byref(dets))
lib.sd_detector_trace_free(ctypes.byref(tr))
lib.sd_detector_free(det)
sys.exit(summary())
