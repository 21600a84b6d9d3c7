"""Shared by the Mask R-CNN parity scripts (test_maskrcnn_*.py): ctypes views
of include/segda/detect.h, a seeded torchvision maskrcnn_resnet50_fpn with
random weights scaled so scores are well apart (top-k and NMS on near-equal
scores would flip on float rounding) and random BN statistics, its
conversion through tools/pth2safetensors.py, and segda's load of it."""
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision

from segda_ct import lib, report

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
build = os.environ.get("SEGDA_BUILD", os.path.join(root, "build"))
P = ctypes.POINTER
f32p, i32p = P(ctypes.c_float), P(ctypes.c_int)


class Opts(ctypes.Structure):
    _fields_ = [("classes", ctypes.c_int), ("min_size", ctypes.c_int), ("max_size", ctypes.c_int),
                ("rpn_pre_nms", ctypes.c_int), ("rpn_post_nms", ctypes.c_int), ("rpn_pre_nms_train", ctypes.c_int),
                ("rpn_post_nms_train", ctypes.c_int), ("rpn_nms", ctypes.c_float), ("score_thresh", ctypes.c_float),
                ("nms", ctypes.c_float), ("detections", ctypes.c_int), ("mask_thresh", ctypes.c_float),
                ("rpn_batch", ctypes.c_int), ("rpn_pos_frac", ctypes.c_float), ("box_batch", ctypes.c_int),
                ("box_pos_frac", ctypes.c_float), ("anchor_size", ctypes.c_int),
                ("bn_train", ctypes.c_bool)]


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


class Target(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int), ("boxes", f32p), ("labels", i32p), ("masks", P(ctypes.c_uint8))]


lib.sd_detector_load.argtypes = [ctypes.c_char_p, P(ctypes.c_void_p)]
lib.sd_detector_options.restype = P(Opts)
lib.sd_detector_options.argtypes = [ctypes.c_void_p]
lib.sd_detector_predict_trace.argtypes = [ctypes.c_void_p, P(ctypes.c_uint8), ctypes.c_int, ctypes.c_int, P(Dets),
                                          P(Trace)]
lib.sd_detector_backward.argtypes = [ctypes.c_void_p, P(ctypes.c_uint8), ctypes.c_int, ctypes.c_int, P(Target),
                                     ctypes.c_void_p, ctypes.c_float, f32p]
lib.sd_detector_params.restype = ctypes.c_void_p
lib.sd_detector_params.argtypes = [ctypes.c_void_p]
lib.sd_params_find.restype = ctypes.c_void_p
lib.sd_params_find.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.sd_tensor_grad_to_host.argtypes = [ctypes.c_void_p, f32p]
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


def torch_model(rpn_scale=100.0, **kw):
    torch.manual_seed(16)
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, **kw)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.3, 0.8)
                m.bias.normal_(0, 0.1)
        model.rpn.head.cls_logits.weight.mul_(rpn_scale)
        model.roi_heads.box_predictor.cls_score.weight.mul_(20)
        model.roi_heads.box_predictor.bbox_pred.weight.mul_(5)
    return model


def segda_detector(model):
    """Converts model's state dict with the project's converter and loads it."""
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
    return det if rc == 0 else None


def test_image(h=200, w=256):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[40:120, 60:180] = (200, 40, 40)  # some structure for the features
    return img, torch.tensor(img, dtype=torch.float32).permute(2, 0, 1) / 255.0
