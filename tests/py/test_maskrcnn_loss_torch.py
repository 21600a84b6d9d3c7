"""segda's Mask R-CNN training losses against torchvision's
maskrcnn_resnet50_fpn in training mode, same random weights, image and
targets, in both BN settings: frozen BN (torchvision's with pretrained
weights: FrozenBatchNorm2d, conv1 and layer1 frozen) and trained BN (its
setting without them: BatchNorm2d with batch statistics, every layer
trained; segda's bn_train). The five losses (loss_objectness,
loss_rpn_box_reg, loss_classifier, loss_box_reg, loss_mask), the gradients
of their sum for parameters of every head, the FPN and the backbone (conv1,
layer1 and the BN affine too with trained BN), and the running statistics
after the step. Both samplers take every candidate (batch sizes above the
candidate counts), so nothing depends on random draws.

With trained BN the backbone's gradients are ill-conditioned at these
random weights (batch statistics over a few positions per channel in
layer4): PyTorch's own float32 gradients differ from its float64 ones by up
to ~20 % (max-relative) there. So with trained BN each gradient is checked
against torchvision in float64, and segda's float32 error must be within
twice PyTorch's float32 error (+ 2e-3), its direction within cosine 0.98 of it."""
import copy
import ctypes
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from segda_ct import lib, report, summary  # noqa: E402
from segda_det import Target, f32p, i32p, rel, segda_detector, test_image, torch_model  # noqa: E402

CLASSES, MIN, MAX, BIG = 9, 256, 320, 10 ** 6
base = torch_model(rpn_scale=30.0, num_classes=CLASSES, min_size=MIN, max_size=MAX, rpn_pre_nms_top_n_train=600,
                   rpn_post_nms_top_n_train=150, rpn_batch_size_per_image=BIG, box_batch_size_per_image=BIG)
img, timg = test_image()
H, W = img.shape[:2]
masks = np.zeros((3, H, W), np.uint8)
masks[0, 40:120, 60:180] = 1
yy, xx = np.mgrid[:H, :W]
masks[1] = ((yy - 150) ** 2 / 30.0 ** 2 + (xx - 70) ** 2 / 45.0 ** 2) < 1
masks[2, 10:60, 190:250] = 1
masks[2, 30:45, 200:230] = 0
labels = np.array([3, 1, 5], np.int32)
boxes = np.array([[xx[m > 0].min(), yy[m > 0].min(), xx[m > 0].max() + 1, yy[m > 0].max() + 1] for m in masks],
                 np.float32)
names = ["loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"]
GRADS = ["rpn.head.cls_logits.weight", "rpn.head.bbox_pred.weight", "rpn.head.conv.0.0.weight",
         "roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.bbox_pred.weight",
         "roi_heads.box_head.fc6.weight", "roi_heads.mask_predictor.mask_fcn_logits.weight",
         "roi_heads.mask_predictor.conv5_mask.weight", "roi_heads.mask_head.0.0.weight",
         "backbone.fpn.layer_blocks.0.0.weight", "backbone.fpn.inner_blocks.3.0.weight",
         "backbone.body.layer4.2.conv3.weight", "backbone.body.layer2.0.conv1.weight"]
TRAINED_BN = ["backbone.body.conv1.weight", "backbone.body.bn1.weight", "backbone.body.layer1.0.conv2.weight",
              "backbone.body.layer1.0.bn2.bias", "backbone.body.layer3.1.bn3.weight"]
RUNNING = ["backbone.body.bn1.running_mean", "backbone.body.layer1.0.bn1.running_var",
           "backbone.body.layer4.2.bn3.running_mean", "backbone.body.layer4.2.bn3.running_var"]


def host(t, shape, grad):
    g = np.zeros(shape, np.float32)
    (lib.sd_tensor_grad_to_host if grad else lib.sd_tensor_to_host)(t, g.ctypes.data_as(f32p))
    return g


def run(bn_train):
    tag = "trained BN" if bn_train else "frozen BN"
    model = copy.deepcopy(base)
    model.train()
    if not bn_train:
        for m in model.modules():  # frozen BN, as FrozenBatchNorm2d
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
    det = segda_detector(model)
    if not det:
        return
    o = lib.sd_detector_options(det).contents
    o.min_size, o.max_size, o.rpn_pre_nms_train, o.rpn_post_nms_train = MIN, MAX, 600, 150
    o.rpn_batch, o.box_batch, o.bn_train = BIG, BIG, bn_train
    tg = Target(3, boxes.ctypes.data_as(f32p), labels.ctypes.data_as(i32p),
                masks.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
    losses = (ctypes.c_float * 5)()
    rc = lib.sd_detector_backward(det, img.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), W, H, ctypes.byref(tg),
                                  None, 1.0, losses)
    report("%s: sd_detector_backward" % tag, rc == 0, lib.sd_errmsg().decode())
    if rc:
        lib.sd_detector_free(det)
        return
    target = {"boxes": torch.tensor(boxes), "labels": torch.tensor(labels, dtype=torch.int64),
              "masks": torch.tensor(masks)}
    ld = model([timg], [target])
    for k, n in enumerate(names):
        ref = ld[n].item()
        e = abs(losses[k] - ref) / max(abs(ref), 1e-12)
        report("%s: %s %.6g vs torchvision %.6g (rel err %.2g)" % (tag, n, losses[k], ref, e), e < 1e-3)
    sum(ld.values()).backward()
    params = lib.sd_detector_params(det)
    sdict = dict(model.named_parameters())
    if bn_train:  # the float64 reference
        m64 = copy.deepcopy(base).double()
        m64.train()
        t64 = dict(target, boxes=target["boxes"].double())
        sum(m64([timg.double()], [t64]).values()).backward()
        sdict64 = dict(m64.named_parameters())
    for name in GRADS + (TRAINED_BN if bn_train else []):
        ref = sdict[name].grad.numpy()
        got = host(lib.sd_params_find(params, name.encode()), ref.shape, True)
        if not bn_train:
            e = rel(got, ref)
            report("%s: grad %s (rel err %.2g)" % (tag, name, e), e < 2e-3)
            continue
        ref64 = sdict64[name].grad.numpy()
        e, et = rel(got, ref64), rel(ref, ref64)
        cos = float(np.dot(got.ravel(), ref64.ravel()) / (np.linalg.norm(got) * np.linalg.norm(ref64) + 1e-30))
        report("%s: grad %s (rel err to float64 %.2g, PyTorch float32's %.2g; cosine %.5f)" % (tag, name, e, et, cos),
               e < 2 * et + 2e-3 and cos > 0.98)
    if not bn_train:  # segda freezes these as torchvision does with pretrained weights
        for name in TRAINED_BN:
            g = host(lib.sd_params_find(params, name.encode()), sdict[name].shape, True)
            report("%s: no gradient for %s" % (tag, name), not g.any())
    bufs = dict(model.named_buffers())
    for name in RUNNING:
        ref = bufs[name].numpy()
        got = host(lib.sd_params_find(params, name.encode()), ref.shape, False)
        e = rel(got, ref)
        moved = not np.array_equal(ref, dict(base.named_buffers())[name].numpy())
        report("%s: %s after the step (rel err %.2g, %s)" % (tag, name, e, "moved" if moved else "unchanged"),
               e < 1e-4 and moved == bn_train)
    lib.sd_detector_free(det)


lib.sd_tensor_to_host.argtypes = [ctypes.c_void_p, f32p]
run(False)
run(True)
sys.exit(summary())
