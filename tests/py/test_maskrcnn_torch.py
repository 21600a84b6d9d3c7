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
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from segda_ct import lib, report, summary  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
build = os.environ.get("SEGDA_BUILD", os.path.join(root, "build"))
P = ctypes.POINTER
f32p, i32p = P(ctypes.c_float), P(ctypes.c_int)


class Opts(ctypes.Structure):
    _fields_ = [("classes", ctypes.c_int), ("min_size", ctypes.c_int), ("max_size", ctypes.c_int),
                ("rpn_pre_nms", ctypes.c_int), ("rpn_post_nms", ctypes.c_int), ("rpn_pre_nms_train", ctypes.c_int),
                ("rpn_post_nms_train", ctypes.c_int), ("rpn_nms", ctypes.c_float), ("score_thresh", ctypes.c_float),
                ("nms", ctypes.c_float), ("detections", ctypes.c_int), ("mask_thresh", ctypes.c_float)]


class Det(ctypes.Structure):
    _fields_ = [("label", ctypes.c_int), ("train_id", ctypes.c_int), ("score", ctypes.c_float),
                ("box", ctypes.c_float * 4), ("mask", P(ctypes.c_uint8))]


class Dets(ctypes.Structure):
    _fields_ = [("w", ctypes.c_int), ("h", ctypes.c_int), ("n", ctypes.c_int), ("d", P(Det))]


class Trace(ctypes.Structure):
    _fields_ = [("in_h", ctypes.c_int), ("in_w", ctypes.c_int), ("img_h", ctypes.c_int), ("img_w", ctypes.c_int),
                ("input", f32p), ("feat_h", ctypes.c_int * 5), ("feat_w", ctypes.c_int * 5), ("feat", f32p * 5),
                ("n_props", ctypes.c_int), ("props", f32p), ("class_logits", f32p), ("box_regression", f32p),
                ("n_det", ctypes.c_int), ("det_boxes", f32p), ("det_scores", f32p), ("det_labels", i32p),
                ("mask_probs", f32p)]


lib.sd_detector_load.argtypes = [ctypes.c_char_p, P(ctypes.c_void_p)]
lib.sd_detector_options.restype = P(Opts)
lib.sd_detector_options.argtypes = [ctypes.c_void_p]
lib.sd_detector_predict_trace.argtypes = [ctypes.c_void_p, P(ctypes.c_uint8), ctypes.c_int, ctypes.c_int, P(Dets),
                                          P(Trace)]
lib.sd_detector_free.argtypes = [ctypes.c_void_p]
lib.sd_detections_free.argtypes = [P(Dets)]
lib.sd_detector_trace_free.argtypes = [P(Trace)]
lib.sd_errmsg.restype = ctypes.c_char_p


def arr(p, *shape):
    return np.ctypeslib.as_array(p, shape=shape).copy()


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)) if a.size else 0.0


CLASSES, MIN, MAX, PRE, POST, DETS = 9, 256, 320, 600, 200, 12
torch.manual_seed(16)
model = torchvision.models.detection.maskrcnn_resnet50_fpn(
    weights=None, weights_backbone=None, num_classes=CLASSES, min_size=MIN, max_size=MAX,
    rpn_pre_nms_top_n_test=PRE, rpn_post_nms_top_n_test=POST, box_detections_per_img=DETS)
with torch.no_grad():
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.3, 0.8)
            m.bias.normal_(0, 0.1)
    model.rpn.head.cls_logits.weight.mul_(100)
    model.roi_heads.box_predictor.cls_score.weight.mul_(20)
    model.roi_heads.box_predictor.bbox_pred.weight.mul_(5)
model.eval()

rng = np.random.default_rng(3)
H, W = 200, 256
img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
img[40:120, 60:180] = (200, 40, 40)  # some structure for the features
timg = torch.tensor(img, dtype=torch.float32).permute(2, 0, 1) / 255.0

tmp = tempfile.mkdtemp()
pth, st = os.path.join(tmp, "m.pth"), os.path.join(tmp, "m.safetensors")
torch.save(model.state_dict(), pth)
env = dict(os.environ, SEGDA_BIN=os.path.join(build, "segda"))
r = subprocess.run([sys.executable, os.path.join(root, "tools", "pth2safetensors.py"), pth, st], env=env,
                   capture_output=True, text=True)
report("converter auto-detects the detector", r.returncode == 0 and "maskrcnn-r50-fpn" in r.stdout,
       r.stdout + r.stderr)

det = ctypes.c_void_p()
rc = lib.sd_detector_load(st.encode(), ctypes.byref(det))
report("sd_detector_load", rc == 0, lib.sd_errmsg().decode())
if rc:
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
