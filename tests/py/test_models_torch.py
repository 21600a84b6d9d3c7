"""Model parity with PyTorch: every named segda model is written here as a
PyTorch module from its published architecture (AdaptSegNet's DeepLab-v2
ResNet/VGG, torchvision's DeepLab-v3, semseg's PSPNet), given random weights,
saved as safetensors with a small writer of our own, loaded by segda through
tests/shim_models.c, and run on an odd-sized input: same logits (and aux
logits) within 1e-4 relative to the largest reference magnitude. For
deeplab-mini (training-mode BN) and deeplabv2-resnet101 (frozen BN) one loss
and backward as well: same loss, every gradient and every updated running
statistic. References are computed in float64. Prints PASS/FAIL lines.
By default one model of each ResNet-50/101 pair runs (see main)."""
import ctypes
import json
import os
import struct
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

_here = os.path.dirname(os.path.abspath(__file__))
_root = os.path.dirname(os.path.dirname(_here))
_build = os.environ.get("SEGDA_BUILD", "build")
if not os.path.isabs(_build):
    _build = os.path.join(_root, _build)
lib = ctypes.CDLL(os.path.join(_build, "libsegda.so"))
_P = ctypes.POINTER
_f, _i = ctypes.c_float, ctypes.c_int
lib.sd_shim_model_run.argtypes = [ctypes.c_char_p, _i, _i, _i, _P(_f), _i, _P(ctypes.c_uint8), ctypes.c_char_p,
                                  _P(_f), _i, _P(_i), _P(_f), _i, _P(_f)]
lib.sd_shim_model_run.restype = _i
lib.sd_errmsg.restype = ctypes.c_char_p

failed = 0


def report(ok, label, detail=""):
    global failed
    print(("PASS " if ok else "FAIL ") + label + ("" if ok else ": " + detail))
    sys.stdout.flush()
    if not ok:
        failed += 1


# ---- safetensors, written and read with numpy + json + struct ----

def st_write(path, tensors, meta):
    header, off, blobs = {"__metadata__": meta}, 0, []
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def st_read(path):
    with open(path, "rb") as f:
        buf = f.read()
    n = struct.unpack("<Q", buf[:8])[0]
    header = json.loads(buf[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(buf[8 + n + b:8 + n + e], dtype="<f4").reshape(v["shape"])
    return out


# ---- the published architectures ----

def BN(c):
    return nn.BatchNorm2d(c)


class CaffeBottleneck(nn.Module):
    """AdaptSegNet's Bottleneck: stride on conv1 (1x1), dilation on conv2."""
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None, caffe=True):
        super().__init__()
        s1, s3 = (stride, 1) if caffe else (1, stride)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=s1, bias=False)
        self.bn1 = BN(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=s3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = BN(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = BN(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + res)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None, caffe=True):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = BN(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = BN(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        res = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + res)


class ClassifierModule(nn.Module):
    """DeepLab-v2 ASPP: biased 3x3 convs, outputs summed."""

    def __init__(self, cin, rates, classes):
        super().__init__()
        self.conv2d_list = nn.ModuleList([nn.Conv2d(cin, classes, 3, padding=r, dilation=r, bias=True) for r in rates])

    def forward(self, x):
        out = self.conv2d_list[0](x)
        for c in self.conv2d_list[1:]:
            out = out + c(x)
        return out


def make_layer(owner, block, planes, blocks, stride, dilation, caffe, first_dilation=None, down_stride=None):
    down = None
    if stride != 1 or owner.inplanes != planes * block.expansion:
        down = nn.Sequential(nn.Conv2d(owner.inplanes, planes * block.expansion, 1,
                                       stride=stride if down_stride is None else down_stride, bias=False),
                             BN(planes * block.expansion))
    layers = [block(owner.inplanes, planes, stride, first_dilation or dilation, down, caffe)]
    owner.inplanes = planes * block.expansion
    for _ in range(1, blocks):
        layers.append(block(owner.inplanes, planes, 1, dilation, None, caffe))
    return nn.Sequential(*layers)


class DeepLabV2ResNet(nn.Module):
    """AdaptSegNet's DeeplabMulti / ADVENT's ResNetMulti as published: layer5
    is the classifier on layer3 (1024 channels, the auxiliary output) and
    layer6 the one on layer4 (the main output); forward returns (main, aux)."""

    def __init__(self, block, layers, widths, stem, rates, classes, caffe=True):
        super().__init__()
        self.inplanes = stem
        self.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = BN(stem)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.layer1 = make_layer(self, block, widths[0], layers[0], 1, 1, caffe)
        self.layer2 = make_layer(self, block, widths[1], layers[1], 2, 1, caffe)
        self.layer3 = make_layer(self, block, widths[2], layers[2], 1, 2, caffe)
        mid = self.inplanes
        self.layer4 = make_layer(self, block, widths[3], layers[3], 1, 4, caffe)
        self.layer5 = ClassifierModule(mid, rates, classes)
        self.layer6 = ClassifierModule(self.inplanes, rates, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        mid = self.layer3(x)
        return self.layer6(self.layer4(mid)), self.layer5(mid)


class DeepLabV2VGG(nn.Module):
    """AdaptSegNet's DeeplabVGG: torchvision VGG-16 features without pool4 and
    pool5, conv5 dilated 2, fc6/fc7 as 3x3 dilation-4 convs; plus segda's aux
    head on conv4_3."""

    def __init__(self, classes):
        super().__init__()
        cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
        feats, cin = [], 3
        for v in cfg:
            if v == "M":
                feats.append(nn.MaxPool2d(2, 2))
            else:
                feats += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
                cin = v
        feats = [feats[i] for i in list(range(23)) + list(range(24, 30))]
        for i in (23, 25, 27):
            feats[i].dilation, feats[i].padding = (2, 2), (2, 2)
        feats += [nn.Conv2d(512, 1024, 3, padding=4, dilation=4), nn.ReLU(),
                  nn.Conv2d(1024, 1024, 3, padding=4, dilation=4), nn.ReLU()]
        self.features = nn.Sequential(*feats)
        self.classifier = ClassifierModule(1024, [6, 12, 18, 24], classes)
        self.aux_classifier = ClassifierModule(512, [6, 12, 18, 24], classes)

    def forward(self, x):
        mid = self.features[:23](x)
        return self.classifier(self.features[23:](mid)), self.aux_classifier(mid)


class TVBottleneck(CaffeBottleneck):
    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None, caffe=False):
        super().__init__(inplanes, planes, stride, dilation, downsample, caffe=False)


class TVResNet(nn.Module):
    """torchvision ResNet with replace_stride_with_dilation=[False, True, True]."""

    def __init__(self, layers):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = BN(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = make_layer(self, TVBottleneck, 64, layers[0], 1, 1, False)
        self.layer2 = make_layer(self, TVBottleneck, 128, layers[1], 2, 1, False)
        # dilate: the stride becomes dilation; the first block keeps the previous dilation
        self.layer3 = make_layer(self, TVBottleneck, 256, layers[2], 1, 2, False, first_dilation=1)
        self.layer4 = make_layer(self, TVBottleneck, 512, layers[3], 1, 4, False, first_dilation=2)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        mid = self.layer3(self.layer2(self.layer1(x)))
        return self.layer4(mid), mid


class ASPP(nn.Module):
    def __init__(self, cin, rates):
        super().__init__()
        mods = [nn.Sequential(nn.Conv2d(cin, 256, 1, bias=False), BN(256), nn.ReLU())]
        for r in rates:
            mods.append(nn.Sequential(nn.Conv2d(cin, 256, 3, padding=r, dilation=r, bias=False), BN(256), nn.ReLU()))
        mods.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, 256, 1, bias=False), BN(256), nn.ReLU()))
        self.convs = nn.ModuleList(mods)
        self.project = nn.Sequential(nn.Conv2d(5 * 256, 256, 1, bias=False), BN(256), nn.ReLU(), nn.Dropout(0.5))

    def forward(self, x):
        res = [c(x) for c in self.convs[:-1]]
        p = self.convs[-1](x)
        res.append(F.interpolate(p, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.project(torch.cat(res, dim=1))


class DeepLabV3(nn.Module):
    def __init__(self, layers, classes):
        super().__init__()
        self.backbone = TVResNet(layers)
        self.classifier = nn.Sequential(ASPP(2048, [12, 24, 36]), nn.Conv2d(256, 256, 3, padding=1, bias=False),
                                        BN(256), nn.ReLU(), nn.Conv2d(256, classes, 1))
        self.aux_classifier = nn.Sequential(nn.Conv2d(1024, 256, 3, padding=1, bias=False), BN(256), nn.ReLU(),
                                            nn.Dropout(0.1), nn.Conv2d(256, classes, 1))

    def forward(self, x):
        feat, mid = self.backbone(x)
        return self.classifier(feat), self.aux_classifier(mid)


class PSPNet(nn.Module):
    """semseg's PSPNet: deep-stem ResNet (layer0), dilated layer3/4 in every
    block, PPM bins 1/2/3/6 upsampled with align_corners=True."""

    def __init__(self, layers, classes):
        super().__init__()
        self.layer0 = nn.Sequential(nn.Conv2d(3, 64, 3, 2, 1, bias=False), BN(64), nn.ReLU(),
                                    nn.Conv2d(64, 64, 3, 1, 1, bias=False), BN(64), nn.ReLU(),
                                    nn.Conv2d(64, 128, 3, 1, 1, bias=False), BN(128), nn.ReLU(),
                                    nn.MaxPool2d(3, 2, 1))
        self.inplanes = 128
        self.layer1 = make_layer(self, TVBottleneck, 64, layers[0], 1, 1, False)
        self.layer2 = make_layer(self, TVBottleneck, 128, layers[1], 2, 1, False)
        self.layer3 = make_layer(self, TVBottleneck, 256, layers[2], 1, 2, False)
        self.layer4 = make_layer(self, TVBottleneck, 512, layers[3], 1, 4, False)
        self.ppm = nn.Module()
        self.ppm.features = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(2048, 512, 1, bias=False),
                                                         BN(512), nn.ReLU()) for b in (1, 2, 3, 6)])
        self.cls = nn.Sequential(nn.Conv2d(4096, 512, 3, padding=1, bias=False), BN(512), nn.ReLU(),
                                 nn.Dropout2d(0.1), nn.Conv2d(512, classes, 1))
        self.aux = nn.Sequential(nn.Conv2d(1024, 256, 3, padding=1, bias=False), BN(256), nn.ReLU(),
                                 nn.Dropout2d(0.1), nn.Conv2d(256, classes, 1))

    def forward(self, x):
        mid = self.layer3(self.layer2(self.layer1(self.layer0(x))))
        feat = self.layer4(mid)
        outs = [feat] + [F.interpolate(f(feat), feat.shape[-2:], mode="bilinear", align_corners=True)
                         for f in self.ppm.features]
        return self.cls(torch.cat(outs, 1)), self.aux(mid)


def build(name, classes):
    if name == "deeplab-mini":
        return DeepLabV2ResNet(BasicBlock, [2, 2, 2, 2], [16, 32, 64, 128], 16, [2, 4, 6, 8], classes)
    if name == "deeplabv2-resnet18":
        return DeepLabV2ResNet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], 64, [6, 12, 18, 24], classes)
    if name == "deeplabv2-resnet50":
        return DeepLabV2ResNet(CaffeBottleneck, [3, 4, 6, 3], [64, 128, 256, 512], 64, [6, 12, 18, 24], classes)
    if name == "deeplabv2-resnet101":
        return DeepLabV2ResNet(CaffeBottleneck, [3, 4, 23, 3], [64, 128, 256, 512], 64, [6, 12, 18, 24], classes)
    if name == "deeplabv2-vgg16":
        return DeepLabV2VGG(classes)
    if name == "deeplabv3-resnet50":
        return DeepLabV3([3, 4, 6, 3], classes)
    if name == "deeplabv3-resnet101":
        return DeepLabV3([3, 4, 23, 3], classes)
    if name == "pspnet-resnet50":
        return PSPNet([3, 4, 6, 3], classes)
    if name == "pspnet-resnet101":
        return PSPNet([3, 4, 23, 3], classes)
    raise ValueError(name)


def randomize(model, gen):
    """Weights that keep activations O(1) through 100 layers, and BN
    statistics far from the identity so that every buffer matters."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.Conv2d):
                fan_in = mod.weight[0].numel()
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * (1.0 / fan_in) ** 0.5)
                if mod.bias is not None:
                    mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen) * 0.1)
            elif isinstance(mod, nn.BatchNorm2d):
                c = mod.num_features
                mod.weight.copy_(torch.rand(c, generator=gen) * 0.5 + 0.5)
                mod.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                mod.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                mod.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def norm_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def run_segda(path, x, training, labels, grads_path, out_shape):
    n, _, h, w = x.shape
    cap = int(np.prod(out_shape))
    logits = np.zeros(cap, np.float32)
    aux = np.zeros(cap, np.float32)
    shape = (ctypes.c_int * 8)()
    loss = ctypes.c_float(0)
    xc = np.ascontiguousarray(x, np.float32)
    lab = None
    if labels is not None:
        lab = np.ascontiguousarray(labels, np.uint8).ctypes.data_as(_P(ctypes.c_uint8))
    rc = lib.sd_shim_model_run(path.encode(), n, h, w, xc.ctypes.data_as(_P(_f)), int(training), lab,
                               grads_path.encode() if grads_path else None,
                               logits.ctypes.data_as(_P(_f)), cap, shape, aux.ctypes.data_as(_P(_f)), cap,
                               ctypes.byref(loss))
    if rc != 0:
        return None, None, lib.sd_errmsg().decode(), None
    s1, s2 = tuple(shape[:4]), tuple(shape[4:])
    return logits[:int(np.prod(s1))].reshape(s1), aux[:int(np.prod(s2))].reshape(s2), s1, loss.value


def check_model(name, tmp, size, batch=1, classes=7, grad=False, training=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    model = build(name, classes)
    randomize(model, gen)
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()
          if not k.endswith("num_batches_tracked")}
    path = os.path.join(tmp, name + ".safetensors")
    st_write(path, sd, {"model": name, "classes": str(classes), "aux": "1", "norm": "imagenet"})
    h, w = size
    x = torch.randn(batch, 3, h, w, generator=gen).float()
    ref_model = model.double()
    if training:
        ref_model.train()
        for mod in ref_model.modules():  # no dropout in these two, but be explicit
            if isinstance(mod, (nn.Dropout, nn.Dropout2d)):
                mod.p = 0.0
    else:
        ref_model.eval()
    if grad and not training:  # frozen BN: affine parameters take no gradient
        for mod in ref_model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.requires_grad_(False)
                mod.bias.requires_grad_(False)
    xd = x.double()
    if grad:
        out, aux = ref_model(xd)
    else:
        with torch.no_grad():
            out, aux = ref_model(xd)
    labels = None
    if grad:
        lg = torch.Generator().manual_seed(seed + 1)
        lab = torch.randint(0, classes, (batch, out.shape[2], out.shape[3]), generator=lg)
        lab[torch.rand(lab.shape, generator=lg) < 0.2] = 255
        loss = F.cross_entropy(out, lab, ignore_index=255) + 0.4 * F.cross_entropy(aux, lab, ignore_index=255)
        loss.backward()
        labels = lab.numpy().astype(np.uint8)
    gpath = os.path.join(tmp, name + ".grads.safetensors") if grad else None
    ours, ours_aux, shape, our_loss = run_segda(path, x.numpy(), training, labels, gpath, tuple(out.shape))
    os.unlink(path)
    label = "%s %dx%d" % (name, h, w)
    if ours is None:
        report(False, label + " logits", "segda failed: " + shape)
        return
    report(shape == tuple(out.shape), label + " logits shape", "%s vs %s" % (shape, tuple(out.shape)))
    if shape != tuple(out.shape):
        return
    e = rel_err(ours, out.detach().numpy())
    report(e <= 1e-4, label + " logits", "rel err %.3g" % e)
    e = rel_err(ours_aux, aux.detach().numpy())
    report(e <= 1e-4, label + " aux logits", "rel err %.3g" % e)
    if not grad:
        return
    report(abs(our_loss - loss.item()) <= 1e-4 * max(1.0, abs(loss.item())), label + " loss",
           "%.7g vs %.7g" % (our_loss, loss.item()))
    got = st_read(gpath)
    os.unlink(gpath)
    # float32 through ~100 layers forward and back: judged per tensor by the
    # relative L2 error. PyTorch's own float32 gradients of deeplabv2-resnet101
    # differ from its float64 ones by up to 2e-4 in this measure, so 1e-3.
    worst, worst_name, worst_max, n = 0.0, "", 0.0, 0
    for k, p in ref_model.named_parameters():
        if not p.requires_grad:
            if ("grad:" + k) in got:
                report(False, label + " frozen " + k, "segda computed a gradient for a frozen parameter")
            continue
        if ("grad:" + k) not in got:
            report(False, label + " grad " + k, "missing")
            continue
        e = norm_err(got["grad:" + k], p.grad.numpy())
        worst_max = max(worst_max, rel_err(got["grad:" + k], p.grad.numpy()))
        n += 1
        if e > worst:
            worst, worst_name = e, k
    report(worst <= 1e-3 and worst_max <= 1e-2 and n > 0, label + " gradients (%d tensors)" % n,
           "worst %s relative L2 error %.3g, worst element error %.3g" % (worst_name, worst, worst_max))
    worst, worst_name, n = 0.0, "", 0
    for k, b in ref_model.named_buffers():
        if k.endswith("num_batches_tracked"):
            continue
        e = rel_err(got["buf:" + k], b.numpy())
        n += 1
        if e > worst:
            worst, worst_name = e, k
    report(worst <= 1e-4 and n > 0, label + " running statistics (%d buffers)" % n,
           "worst %s rel err %.3g" % (worst_name, worst))


def main():
    """With no arguments, one model of each ResNet-50/101 pair: deeplabv2
    keeps ResNet-101 (the gradient case), deeplabv3 and pspnet ResNet-50. The
    two rows of a pair in segda's model table differ only in layer3's block
    count, which tests/test_models.c checks against torchvision's parameter
    counts, so the other twin runs the same code for about twice the time.
    Name models (or "all") to run any of them."""
    torch.set_num_threads(2)
    only = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        cases = [  # (name, options, run by default)
            ("deeplab-mini", dict(size=(67, 93), batch=2, grad=True, training=True), True),
            ("deeplabv2-resnet18", dict(size=(65, 97)), True),
            ("deeplabv2-vgg16", dict(size=(57, 75)), True),
            ("deeplabv2-resnet50", dict(size=(65, 97)), False),
            ("deeplabv2-resnet101", dict(size=(41, 57), grad=True), True),
            ("deeplabv3-resnet50", dict(size=(65, 97)), True),
            ("deeplabv3-resnet101", dict(size=(65, 97)), False),
            ("pspnet-resnet50", dict(size=(65, 97)), True),
            ("pspnet-resnet101", dict(size=(65, 97)), False),
        ]
        for name, kw, default in cases:
            if (only and "all" not in only and name not in only) or (not only and not default):
                continue
            t0 = time.time()
            check_model(name, tmp, **kw)
            print("# %s: %.1f s" % (name, time.time() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
