"""segda's Mask R-CNN training losses against torchvision's
maskrcnn_resnet50_fpn in training mode with frozen BN (its setting with
pretrained weights), same random weights, image and targets: the five
losses (loss_objectness, loss_rpn_box_reg, loss_classifier, loss_box_reg,
loss_mask) and the gradients of their sum for parameters of every head, the
FPN and layer4. Both samplers take every candidate (batch sizes above the
candidate counts), so nothing depends on random draws."""
import ctypes
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from segda_ct import lib, report, summary  # noqa: E402
from segda_det import Target, f32p, i32p, rel, segda_detector, test_image, torch_model  # noqa: E402

CLASSES, MIN, MAX, BIG = 9, 256, 320, 10 ** 6
model = torch_model(rpn_scale=30.0, num_classes=CLASSES, min_size=MIN, max_size=MAX, rpn_pre_nms_top_n_train=600,
                    rpn_post_nms_top_n_train=150, rpn_batch_size_per_image=BIG, box_batch_size_per_image=BIG)
model.train()
for m in model.modules():  # frozen BN, as FrozenBatchNorm2d
    if isinstance(m, torch.nn.BatchNorm2d):
        m.eval()
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

det = segda_detector(model)
if not det:
    sys.exit(summary())
o = lib.sd_detector_options(det).contents
o.min_size, o.max_size, o.rpn_pre_nms_train, o.rpn_post_nms_train = MIN, MAX, 600, 150
o.rpn_batch, o.box_batch = BIG, BIG
tg = Target(3, boxes.ctypes.data_as(f32p), labels.ctypes.data_as(i32p), masks.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
losses = (ctypes.c_float * 5)()
rc = lib.sd_detector_backward(det, img.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), W, H, ctypes.byref(tg), None,
                              1.0, losses)
report("sd_detector_backward", rc == 0, lib.sd_errmsg().decode())
if rc:
    sys.exit(summary())

target = {"boxes": torch.tensor(boxes), "labels": torch.tensor(labels, dtype=torch.int64),
          "masks": torch.tensor(masks)}
ld = model([timg], [target])
names = ["loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"]
for k, n in enumerate(names):
    ref = ld[n].item()
    e = abs(losses[k] - ref) / max(abs(ref), 1e-12)
    report("%s %.6g vs torchvision %.6g (rel err %.2g)" % (n, losses[k], ref, e), e < 1e-3)
sum(ld.values()).backward()
params = lib.sd_detector_params(det)
sdict = dict(model.named_parameters())
for name in ["rpn.head.cls_logits.weight", "rpn.head.bbox_pred.weight", "rpn.head.conv.0.0.weight",
             "roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.bbox_pred.weight",
             "roi_heads.box_head.fc6.weight", "roi_heads.mask_predictor.mask_fcn_logits.weight",
             "roi_heads.mask_predictor.conv5_mask.weight", "roi_heads.mask_head.0.0.weight",
             "backbone.fpn.layer_blocks.0.0.weight", "backbone.fpn.inner_blocks.3.0.weight",
             "backbone.body.layer4.2.conv3.weight", "backbone.body.layer2.0.conv1.weight"]:
    ref = sdict[name].grad.numpy()
    t = lib.sd_params_find(params, name.encode())
    g = np.zeros(ref.shape, np.float32)
    lib.sd_tensor_grad_to_host(t, g.ctypes.data_as(f32p))
    e = rel(g, ref)
    report("grad %s (rel err %.2g)" % (name, e), e < 2e-3)
lib.sd_detector_free(det)
sys.exit(summary())
