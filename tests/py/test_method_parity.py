"""Per-method training-step parity with the official code: each method's
iteration is written here in PyTorch (float64) as the published training
script computes it -- AdaptSegNet's pytorch_0.4/train_gta2cityscapes_multi.py,
ADVENT's train_UDA.py (train_advent / train_minent), FDA's train.py with its
model's robust entropy -- with their loss composition, detach points, domain
labels (source 0, target 1), optimiser groups (SGD: backbone x1 without BN
affine, classifiers x10, momentum 0.9, weight decay 5e-4; Adam (0.9, 0.99)
for discriminators; poly decay of both from iteration index 0) and order of
steps, on deeplab-mini-sized weights in the official BN mode (model.train(),
BN affine requires_grad False: segda's bn = batch-stats).

segda runs the same iterations through `segda train` on a one-image source
and a one-image target set written here (GTA5 layout), from the same
weights (--init, and --disc-init / --disc-aux-init with FCDiscriminator
names). After 1 and after 3 iterations every parameter and running
statistic of the segmentation net and of each discriminator must equal the
reference (max error relative to the tensor's largest magnitude <= 1e-4),
and, so that a wrong term cannot hide under small updates, the change of
all its tensors since the start must agree to 1e-3 (relative L2); for the
Adam-trained discriminators 1e-2 and 1e-2 (see compare; measured: most
cases 1e-4, the worst 4e-3 on a few near-zero-gradient elements).
Each method runs at its published weights and with its adaptation weights
x100 (where the terms then shape the update), at the published learning
rates (2.5e-4, classifiers x10; D 1e-4). Prints PASS/FAIL lines.
feature-adv (FCNs in the wild, Hoffman et al. 2016) and road (ROAD-Net,
Chen et al. 2018) published no PyTorch code: their steps are written here
from the papers' equations (see step_feature_adv, step_road) in the same
frame (optimiser groups, poly decay, batch-stats BN); their discriminators
are segda's pixel-level domain classifiers (1x1 convs, ReLU), whose initial
weights are read from a segda run at learning rate 0. Not covered: FDA's
self-supervised round.
Gradient ratios (--log-grad-ratio): after one iteration the logged
grad_ratio_<term> (the term's weighted gradient norm over the segmentation
network divided by the segmentation terms') must equal the same ratio
computed here with torch.autograd.grad on the reference network (1e-3).
PARITY_ONLY=SUBSTRING runs the matching cases only."""
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_models_torch import BasicBlock, ClassifierModule, make_layer, randomize, st_read, st_write  # noqa: E402

_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SEGDA_BIN", os.path.join(os.environ.get("SEGDA_BUILD", "build"), "segda"))
if not os.path.isabs(BIN):
    BIN = os.path.join(_root, BIN)
C = 19
W, H = 64, 48
ITERS = 3
failed = 0
torch.set_num_threads(1)


def report(ok, label, detail=""):
    global failed
    print(("PASS " if ok else "FAIL ") + label + ("" if ok else ": " + detail))
    sys.stdout.flush()
    if not ok:
        failed += 1


# ---- data on disk: 8-bit PNGs (gray or RGB), written with zlib ----

def png_write(path, a):
    a = np.ascontiguousarray(a, np.uint8)
    h, w = a.shape[:2]
    ctype = 2 if a.ndim == 3 else 0
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# Cityscapes label ids and their trainIds (id 0 is ignored: 255)
IDS = np.array([7, 8, 11, 21, 23, 26, 0])
TRAIN = np.array([0, 1, 2, 8, 10, 13, 255])


def make_data(tmp, gen):
    """One source image with labels and one target image; returns them as
    the reference sees them (RGB 0..255 float64 [1,3,H,W], trainIds)."""
    out = {}
    for dom in ("src", "tgt"):
        os.makedirs(os.path.join(tmp, dom, "images"), exist_ok=True)
        os.makedirs(os.path.join(tmp, dom, "labels"), exist_ok=True)
        base = torch.rand(3, 1, 1, generator=gen) * 160 + 40
        img = (base + torch.randn(3, H, W, generator=gen) * 40).clamp(0, 255).round().to(torch.uint8).numpy()
        k = torch.randint(0, len(IDS), (H // 8, W // 8), generator=gen).numpy()
        lab = np.kron(k, np.ones((8, 8), np.int64))  # blocks, so labels and image size agree
        png_write(os.path.join(tmp, dom, "images", "00001.png"), img.transpose(1, 2, 0))
        png_write(os.path.join(tmp, dom, "labels", "00001.png"), IDS[lab])
        out[dom] = (torch.from_numpy(img.astype(np.float64))[None], torch.from_numpy(TRAIN[lab])[None].long())
    return out


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def normalize(rgb):
    m = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    s = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    return (rgb / 255.0 - m) / s


# ---- networks as the published code builds them ----

class MiniDeeplab(nn.Module):
    """deeplab-mini in the published layout: multi-level as DeeplabMulti /
    ResNetMulti (layer5 on layer3: aux, layer6 on layer4: main), single-level
    as Deeplab (layer5 on layer4). forward returns (main, aux or None)."""

    def __init__(self, multi):
        super().__init__()
        self.multi = multi
        self.inplanes = 16
        self.conv1 = nn.Conv2d(3, 16, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.layer1 = make_layer(self, BasicBlock, 16, 2, 1, 1, True)
        self.layer2 = make_layer(self, BasicBlock, 32, 2, 2, 1, True)
        self.layer3 = make_layer(self, BasicBlock, 64, 2, 1, 2, True)
        self.layer4 = make_layer(self, BasicBlock, 128, 2, 1, 4, True)
        if multi:
            self.layer5 = ClassifierModule(64, [2, 4, 6, 8], C)
            self.layer6 = ClassifierModule(128, [2, 4, 6, 8], C)
        else:
            self.layer5 = ClassifierModule(128, [2, 4, 6, 8], C)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        mid = self.layer3(self.layer2(self.layer1(x)))
        feat = self.layer4(mid)
        self.feat = feat  # the last backbone block's features (feature-adv, road)
        if self.multi:
            return self.layer6(feat), self.layer5(mid)
        return self.layer5(feat), None

    def head_names(self):
        return ("layer5", "layer6") if self.multi else ("layer5",)


class FCDiscriminator(nn.Module):
    def __init__(self, ndf=64):
        super().__init__()
        self.conv1 = nn.Conv2d(C, ndf, 4, 2, 1)
        self.conv2 = nn.Conv2d(ndf, ndf * 2, 4, 2, 1)
        self.conv3 = nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1)
        self.conv4 = nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1)
        self.classifier = nn.Conv2d(ndf * 8, 1, 4, 2, 1)
        self.leaky = nn.LeakyReLU(0.2)

    def forward(self, x):
        for c in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = self.leaky(c(x))
        return self.classifier(x)


class PixelDisc(nn.Module):
    """The pixel-level domain classifier of FCNs in the wild and ROAD's
    regions: 1x1 convs in -> width -> width -> 1, ReLU between."""

    def __init__(self, cin, width):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1)
        self.conv2 = nn.Conv2d(width, width, 1)
        self.classifier = nn.Conv2d(width, 1, 1)

    def forward(self, x):
        return self.classifier(F.relu(self.conv2(F.relu(self.conv1(x)))))


class GradReverse(torch.autograd.Function):
    """DANN's gradient reversal layer: identity forward, -coef * g backward."""

    @staticmethod
    def forward(ctx, x, coef):
        ctx.coef = coef
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.coef * g, None


def seg_optimizer(model, lr):
    """model.optim_parameters: 1x every backbone parameter that takes a
    gradient (BN affine frozen), 10x the classifiers."""
    heads = model.head_names()
    back = [p for n, p in model.named_parameters() if p.requires_grad and n.split(".")[0] not in heads]
    cls = [p for n, p in model.named_parameters() if n.split(".")[0] in heads]
    return torch.optim.SGD([{"params": back, "lr": lr}, {"params": cls, "lr": 10 * lr}], lr=lr, momentum=0.9,
                           weight_decay=5e-4)


def lr_poly(base, i, n):
    return base * ((1 - float(i) / n) ** 0.9)


def poly_lrs(ctx, i, opt, opt_main, opt_aux):
    """Poly lr of iteration i for the network (its second group, the head,
    at 10x) and the discriminators; gradients zeroed."""
    for o, base in ((opt, ctx.lr), (opt_main, ctx.lr_d), (opt_aux, ctx.lr_d)):
        if o is not None:
            o.param_groups[0]["lr"] = lr_poly(base, i, ITERS)
            if len(o.param_groups) > 1:
                o.param_groups[1]["lr"] = 10 * lr_poly(base, i, ITERS)
            o.zero_grad()


def set_requires_grad(modules, flag):
    """The discriminators frozen (False) while the network's losses run
    through them, trainable (True) for their own step."""
    for d in modules:
        for p in d.parameters():
            p.requires_grad = flag


def interp(x):
    return F.interpolate(x, size=(H, W), mode="bilinear", align_corners=True)


def prob_2_entropy(prob):
    """ADVENT's self-information map."""
    c = prob.size(1)
    return -torch.mul(prob, torch.log2(prob + 1e-30)) / np.log2(c)


def entropy_loss(v):
    n, c, h, w = v.size()
    return -torch.sum(torch.mul(v, torch.log2(v + 1e-30))) / (n * h * w * np.log2(c))


def fda_source_to_target(src, trg, L):
    """FDA's low-frequency amplitude swap on the full (two-sided) spectrum."""
    fs, ft = torch.fft.fft2(src), torch.fft.fft2(trg)
    amp, pha, amp_t = fs.abs(), fs.angle(), ft.abs()
    h, w = src.shape[-2:]
    b = int(np.floor(min(h, w) * L))
    for ys in (slice(0, b), slice(h - b, h)):
        for xs in (slice(0, b), slice(w - b, w)):
            amp[..., ys, xs] = amp_t[..., ys, xs]
    return torch.fft.ifft2(torch.polar(amp, pha)).real


def fda_robust_entropy(x, ita):
    """FDA's model: on the logits before upsampling, / 2.9444 (ln 19)."""
    P = F.softmax(x, dim=1)
    logP = F.log_softmax(x, dim=1)
    ent = -1.0 * (P * logP).sum(dim=1) / 2.9444
    ent = ent ** 2.0 + 1e-8
    return (ent ** ita).mean()


# ---- one iteration of each official script ----

def backward(ctx, name, loss):
    """loss.backward(), or in probe mode (gradient ratios) the loss kept
    under its name: the step then returns before any backward or update."""
    if ctx.probe is None:
        loss.backward()
    else:
        ctx.probe[name] = loss


def step_adaptseg(ctx, i, multi, ls, lam_main, lam_aux):
    model, opt, d_main, d_aux, opt_main, opt_aux = ctx
    (xs, ys), (xt, _) = ctx.data["src"], ctx.data["tgt"]
    gan = nn.MSELoss() if ls else nn.BCEWithLogitsLoss()
    seg = nn.CrossEntropyLoss(ignore_index=255)
    opt.zero_grad()
    poly_lrs(ctx, i, opt, opt_main, opt_aux)
    ds = [d for d in (d_main, d_aux) if d is not None]
    set_requires_grad(ds, False)
    p2, p1 = model(normalize(xs))
    p2 = interp(p2)
    loss = seg(p2, ys)
    if multi:
        p1 = interp(p1)
        loss = loss + 0.1 * seg(p1, ys)
    backward(ctx, "seg", loss)
    t2, t1 = model(normalize(xt))
    t2 = interp(t2)
    o2 = d_main(F.softmax(t2, dim=1))
    loss = lam_main * gan(o2, torch.zeros_like(o2))
    if multi:
        t1 = interp(t1)
        o1 = d_aux(F.softmax(t1, dim=1))
        loss = loss + lam_aux * gan(o1, torch.zeros_like(o1))
    backward(ctx, "adapt", loss)
    if ctx.probe is not None:
        return
    set_requires_grad(ds, True)
    pairs = [(d_main, p2, t2)] + ([(d_aux, p1, t1)] if multi else [])
    for d, ps, _ in pairs:
        o = d(F.softmax(ps.detach(), dim=1))
        (gan(o, torch.zeros_like(o)) / 2).backward()
    for d, _, pt in pairs:
        o = d(F.softmax(pt.detach(), dim=1))
        (gan(o, torch.ones_like(o)) / 2).backward()
    opt.step()
    for o in (opt_main, opt_aux):
        if o is not None:
            o.step()


def step_advent(ctx, i, multi, adv, lam_main, lam_aux):
    model, opt, d_main, d_aux, opt_main, opt_aux = ctx
    (xs, ys), (xt, _) = ctx.data["src"], ctx.data["tgt"]
    bce = nn.BCEWithLogitsLoss()
    poly_lrs(ctx, i, opt, opt_main, opt_aux)
    ds = [d for d in (d_main, d_aux) if d is not None]
    set_requires_grad(ds, False)
    ps_main, ps_aux = model(normalize(xs))
    ps_main = interp(ps_main)
    loss = F.cross_entropy(ps_main, ys, ignore_index=255)
    if multi:
        ps_aux = interp(ps_aux)
        loss = loss + 0.1 * F.cross_entropy(ps_aux, ys, ignore_index=255)
    backward(ctx, "seg", loss)
    pt_main, pt_aux = model(normalize(xt))
    pt_main = interp(pt_main)
    if multi:
        pt_aux = interp(pt_aux)
    if not adv:  # train_minent
        loss = lam_main * entropy_loss(F.softmax(pt_main, dim=1))
        if multi:
            loss = loss + lam_aux * entropy_loss(F.softmax(pt_aux, dim=1))
        backward(ctx, "adapt", loss)
        if ctx.probe is not None:
            return
        opt.step()
        return
    o = d_main(prob_2_entropy(F.softmax(pt_main, dim=1)))
    loss = lam_main * bce(o, torch.zeros_like(o))
    if multi:
        o = d_aux(prob_2_entropy(F.softmax(pt_aux, dim=1)))
        loss = loss + lam_aux * bce(o, torch.zeros_like(o))
    backward(ctx, "adapt", loss)
    if ctx.probe is not None:
        return
    set_requires_grad(ds, True)
    pairs = [(d_aux, ps_aux, pt_aux)] if multi else []
    pairs.append((d_main, ps_main, pt_main))
    for d, ps, _ in pairs:
        o = d(prob_2_entropy(F.softmax(ps.detach(), dim=1)))
        (bce(o, torch.zeros_like(o)) / 2).backward()
    for d, _, pt in pairs:
        o = d(prob_2_entropy(F.softmax(pt.detach(), dim=1)))
        (bce(o, torch.ones_like(o)) / 2).backward()
    opt.step()
    for o2 in (opt_aux, opt_main):
        if o2 is not None:
            o2.step()


def step_fda(ctx, i, beta, ent_w, ita, switch):
    model, opt = ctx[0], ctx[1]
    (xs, ys), (xt, _) = ctx.data["src"], ctx.data["tgt"]
    opt.param_groups[0]["lr"] = lr_poly(ctx.lr, i, ITERS)
    opt.param_groups[1]["lr"] = 10 * lr_poly(ctx.lr, i, ITERS)
    opt.zero_grad()
    src_in_trg = fda_source_to_target(xs, xt, beta)
    src_logits, _ = model(normalize(src_in_trg))
    loss_seg = F.cross_entropy(interp(src_logits), ys, ignore_index=255)
    trg_logits, _ = model(normalize(xt))
    loss_ent = fda_robust_entropy(trg_logits, ita)
    trigger = 1.0 if i > switch else 0.0
    (loss_seg + trigger * ent_w * loss_ent).backward()
    opt.step()


def set_lrs(ctx, i):
    """Poly decay of the segmentation optimiser (classifiers x10) and of
    every pixel-level classifier's Adam; all gradients zeroed."""
    opt = ctx[1]
    opt.param_groups[0]["lr"] = lr_poly(ctx.lr, i, ITERS)
    opt.param_groups[1]["lr"] = 10 * lr_poly(ctx.lr, i, ITERS)
    opt.zero_grad()
    for _, _, o in ctx.pix:
        o.param_groups[0]["lr"] = lr_poly(ctx.lr_d, i, ITERS)
        o.zero_grad()


def seg_source(ctx):
    """Source forward: the segmentation loss and the source features."""
    model = ctx[0]
    xs, ys = ctx.data["src"]
    ps, _ = model(normalize(xs))
    return F.cross_entropy(interp(ps), ys, ignore_index=255), model.feat


def step_feature_adv(ctx, i, lam, grl):
    """FCNs in the wild's pixel-level alignment as DANN trains it: one
    backward of L_seg + lam * 1/2 [BCE(D(R(F_s)), 0) + BCE(D(R(F_t)), 1)],
    R the gradient reversal; D (Adam) and the network step together."""
    model, opt = ctx[0], ctx[1]
    set_lrs(ctx, i)
    loss_seg, fs = seg_source(ctx)
    model(normalize(ctx.data["tgt"][0]))
    ft = model.feat
    d = ctx.pix[0][1]
    bce = nn.BCEWithLogitsLoss()
    os_, ot = d(GradReverse.apply(fs, grl)), d(GradReverse.apply(ft, grl))
    loss_dom = 0.5 * (bce(os_, torch.zeros_like(os_)) + bce(ot, torch.ones_like(ot)))
    if ctx.probe is not None:
        ctx.probe.update(seg=loss_seg, adapt=lam * loss_dom)
        return
    (loss_seg + lam * loss_dom).backward()
    opt.step()
    ctx.pix[0][2].step()


def road_regions(fh, fw, gw, gh):
    """Grid region of every feature position (centre of its receptive cell
    in the whole image, no crop): [fh, fw] ints."""
    reg = torch.zeros(fh, fw, dtype=torch.long)
    for y in range(fh):
        for x in range(fw):
            gx = min(int(np.floor((x + 0.5) / fw * gw)), gw - 1)
            gy = min(int(np.floor((y + 0.5) / fh * gh)), gh - 1)
            reg[y, x] = gy * gw + gx
    return reg


def step_road(ctx, i, l_dist, l_sa, grl, gw=3, gh=3):
    """ROAD-Net (Chen et al. 2018, Sec. 3): target-guided distillation
    L_dist = mean over positions ||F(x_t) - F0(x_t)||_2 towards the frozen
    teacher F0 (batch statistics, as the student's target pass), and
    spatial-aware adaptation: per grid region r a domain classifier D_r
    behind gradient reversal on the positions of r,
    L_sa = mean_r 1/2 [BCE_r(D_r(R(F_s)), 0) + BCE_r(D_r(R(F_t)), 1)];
    one backward of L_seg + l_dist L_dist + l_sa L_sa."""
    model, opt = ctx[0], ctx[1]
    set_lrs(ctx, i)
    loss_seg, fs = seg_source(ctx)
    xt = normalize(ctx.data["tgt"][0])
    model(xt)
    ft = model.feat
    with torch.no_grad():
        ctx.teacher(xt)
        f0 = ctx.teacher.feat
    dist = (ft - f0).pow(2).sum(1).sqrt().mean()
    rs, rt = GradReverse.apply(fs, grl), GradReverse.apply(ft, grl)
    reg = road_regions(fs.shape[2], fs.shape[3], gw, gh)
    bce = nn.BCEWithLogitsLoss()
    terms = []
    for r, (_, d, _) in enumerate(ctx.pix):
        m = reg == r
        os_, ot = d(rs)[:, 0][:, m], d(rt)[:, 0][:, m]
        terms.append(0.5 * (bce(os_, torch.zeros_like(os_)) + bce(ot, torch.ones_like(ot))))
    loss_sa = sum(terms) / len(terms)
    if ctx.probe is not None:
        ctx.probe.update(seg=loss_seg, dist=l_dist * dist, spatial=l_sa * loss_sa)
        return
    (loss_seg + l_dist * dist + l_sa * loss_sa).backward()
    opt.step()
    for _, _, o in ctx.pix:
        o.step()


class Ctx(tuple):
    pass


def setup(tmp, data, multi, with_d, seed):
    gen = torch.Generator().manual_seed(seed)
    model = MiniDeeplab(multi)
    randomize(model, gen)
    model = model.double().train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.requires_grad_(False)
            m.bias.requires_grad_(False)
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    st_write(os.path.join(tmp, "init.safetensors"), sd,
             {"model": "deeplab-mini", "classes": str(C), "aux": "1" if multi else "0", "norm": "imagenet"})
    ds = [None, None]
    for k in range(2 if (with_d and multi) else 1 if with_d else 0):
        torch.manual_seed(seed + 10 + k)  # PyTorch's default conv init, as the official D
        d = FCDiscriminator().double()
        st_write(os.path.join(tmp, "D%d.safetensors" % k), {n: v.detach().numpy() for n, v in d.state_dict().items()},
                 {})
        ds[k] = d
    lr, lr_d = 2.5e-4, 1e-4
    opt = seg_optimizer(model, lr)
    od = [torch.optim.Adam(d.parameters(), lr=lr_d, betas=(0.9, 0.99)) if d is not None else None for d in ds]
    ctx = Ctx((model, opt, ds[0], ds[1], od[0], od[1]))
    ctx.data, ctx.lr, ctx.lr_d = data, lr, lr_d
    ctx.pix, ctx.teacher, ctx.probe = [], None, None
    return ctx


def add_pixel_discs(ctx, tmp, method, args, prefixes, width):
    """Pixel-level classifiers as segda initialises them: read from a run at
    learning rate 0 (one iteration moves nothing but BN statistics)."""
    st0, err = run_segda(tmp, method, args, False, False, 1, lrs=("0", "0"), tag="lr0")
    if st0 is None:
        return err
    for pre in prefixes:
        d = PixelDisc(128, width).double()
        with torch.no_grad():
            for n, p in d.named_parameters():
                if pre + n not in st0:
                    return "segda has no tensor %s%s" % (pre, n)
                p.copy_(torch.from_numpy(st0[pre + n].astype(np.float64)))
        ctx.pix.append((pre, d, torch.optim.Adam(d.parameters(), lr=ctx.lr_d, betas=(0.9, 0.99))))
    return None


def add_teacher(ctx, tmp, gen):
    """ROAD's frozen teacher: the initial network with every weight moved by
    5% noise (so the distance is not zero at the first step, as when a
    source-trained student starts from the pretrained teacher); returns
    the --teacher arguments."""
    t = MiniDeeplab(ctx[0].multi).double().train()
    t.load_state_dict(ctx[0].state_dict())
    with torch.no_grad():
        for n, p in t.named_parameters():
            p.mul_(1 + 0.05 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    for p in t.parameters():
        p.requires_grad_(False)
    path = os.path.join(tmp, "teacher.safetensors")
    st_write(path, {k: v.detach().numpy() for k, v in t.state_dict().items() if not k.endswith("num_batches_tracked")},
             {"model": "deeplab-mini", "classes": str(C), "aux": "1" if t.multi else "0", "norm": "imagenet"})
    ctx.teacher = t
    return ["--teacher", path]


def state_of(ctx):
    """Every tensor segda saves, under segda's names."""
    model, _, d_main, d_aux = ctx[:4]
    out = {k: v.detach().numpy().copy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    for pre, d in [("disc:", d_main), ("disc_aux:", d_aux)] + [(p, d) for p, d, _ in ctx.pix]:
        if d is not None:
            out.update({pre + k: v.detach().numpy().copy() for k, v in d.state_dict().items()})
    return out


def run_segda(tmp, method, args, multi, with_d, stop, lrs=("2.5e-4", "1e-4"), tag=""):
    run = os.path.join(tmp, "run-%d%s" % (stop, tag))
    cmd = [BIN, "train", "--method", method, "--source", "gta5:" + os.path.join(tmp, "src"),
           "--target", "gta5:" + os.path.join(tmp, "tgt"), "--model", "deeplab-mini", "--out", run,
           "--init", os.path.join(tmp, "init.safetensors"), "--iters", str(ITERS), "--batch", "1,1",
           "--lr", lrs[0], "--lr-d", lrs[1], "--bn", "batch-stats", "--threads", "1", "--workers", "0",
           "--log-every", "1000", "--aux", "on" if multi else "off"]
    if with_d:
        cmd += ["--disc-init", os.path.join(tmp, "D0.safetensors")]
        if multi:
            cmd += ["--disc-aux-init", os.path.join(tmp, "D1.safetensors")]
    if stop < ITERS:
        cmd += ["--stop-after", str(stop)]
    r = subprocess.run(cmd + args, capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "exit %d" % r.returncode
    return st_read(os.path.join(run, "last.safetensors")), None


def compare(label, ours, ref, start):
    """Per network: the segmentation net (SGD) to 1e-4 per tensor and 1e-3
    on its update; a discriminator (Adam) to 1e-2 and 1e-2: Adam's first
    steps are about lr * sign(g) wherever |g| is not far above eps, so an
    element whose gradient is a near-cancellation (the source and target
    terms of D's loss) moves by whatever float32 summation noise decides."""
    groups = {}
    for k in ref:
        groups.setdefault(k.split(":")[0] + ":" if ":" in k else "", []).append(k)
    for pre, keys in sorted(groups.items()):
        tol, dtol = (1e-4, 1e-3) if pre == "" else (1e-2, 1e-2)
        worst, worst_name, dn, dd = 0.0, "", 0.0, 0.0
        bad = None
        for k in keys:
            if k not in ours:
                bad = "segda has no tensor " + k
                break
            r, o = ref[k], ours[k].astype(np.float64)
            e = float(np.max(np.abs(o - r)) / max(np.max(np.abs(r)), 1e-12))
            if e > worst:
                worst, worst_name = e, k
            dr, do = r - start[k], o - start[k]
            if np.max(np.abs(dr)) == 0 and np.max(np.abs(do)) != 0:
                bad = "%s moved in segda but not in the reference (frozen there)" % k
                break
            dn += float(np.sum((do - dr) ** 2))
            dd += float(np.sum(dr ** 2))
        what = "%s %s (%d tensors)" % (label, pre[:-1] or "segmentation net", len(keys))
        if bad:
            report(False, what, bad)
            continue
        derr = (dn / dd) ** 0.5 if dd > 0 else 0.0
        report(worst <= tol and derr <= dtol and dd > 0, what,
               "worst %s rel err %.3g; updates differ by %.3g (relative L2)" % (worst_name, worst, derr))


# the reference's probe terms -> the key segda logs (--log-grad-ratio) for it
RATIOS = {
    "adaptseg multi": {"adapt": "grad_ratio_adapt"},
    "adaptseg single": {"adapt": "grad_ratio_adv"},
    "adaptseg LS-GAN": {"adapt": "grad_ratio_adv"},
    "advent AdvEnt multi": {"adapt": "grad_ratio_adapt"},
    "advent MinEnt multi": {"adapt": "grad_ratio_adapt"},
    "advent AdvEnt single": {"adapt": "grad_ratio_adv"},
    "feature-adv": {"adapt": "grad_ratio_adapt"},
    "road": {"dist": "grad_ratio_dist", "spatial": "grad_ratio_spatial"},
}


def reference_ratios(ctx, step):
    """The first iteration's terms (probe mode), each term's gradient norm on
    the network's trainable parameters over the segmentation terms'; the
    model's BN statistics restored afterwards."""
    model = ctx[0]
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    ctx.probe = {}
    step(ctx, 0)
    terms, ctx.probe = ctx.probe, None
    params = [p for p in model.parameters() if p.requires_grad]

    def norm(loss):
        g = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return float(sum((x ** 2).sum() for x in g if x is not None)) ** 0.5

    seg = norm(terms.pop("seg"))
    out = {k: norm(v) / seg for k, v in terms.items()}
    model.load_state_dict(saved)
    return out


def check_ratios(name, tmp, method, args, multi, with_d, ref_ratios, ref1, start):
    """segda's logged grad_ratio_<term> at iteration 1 against the reference's,
    and the run's parameters against the reference's first step (the
    separate backward passes leave the update as it is)."""
    ours, err = run_segda(tmp, method, args + ["--log-grad-ratio", "1"], multi, with_d, 1, tag="gr")
    if ours is None:
        report(False, name + " gradient ratios", "segda failed: " + err)
        return
    with open(os.path.join(tmp, "run-1gr", "log.jsonl")) as f:
        logged = [json.loads(x) for x in f if '"terms"' in x][0]["terms"]
    keys = RATIOS[name.replace(" x100", "")]
    for ref_name, key in sorted(keys.items()):
        got, want = logged.get(key), ref_ratios[ref_name]
        ok = got is not None and abs(got - want) <= 1e-3 * abs(want) and want > 0
        report(ok, "%s %s = %.4g" % (name, key, want), "segda logged %s" % got)
    compare(name + " with --log-grad-ratio after 1 iteration", ours, ref1, start)


def check(name, method, args, multi, with_d, step, pix=None, teacher=False, seed=0):
    """pix: (prefixes, width) of pixel-level classifiers the method makes;
    teacher: ROAD's --teacher."""
    with tempfile.TemporaryDirectory(prefix="segda-parity-") as tmp:
        gen = torch.Generator().manual_seed(seed)
        data = make_data(tmp, gen)
        ctx = setup(tmp, data, multi, with_d, seed)
        if teacher:
            args = args + add_teacher(ctx, tmp, gen)
        if pix:
            err = add_pixel_discs(ctx, tmp, method, args, *pix)
            if err:
                report(False, name + " set-up", err)
                return
        start = state_of(ctx)
        ratios = reference_ratios(ctx, step) if name.replace(" x100", "") in RATIOS else None
        refs = {}
        for i in range(ITERS):
            step(ctx, i)
            refs[i + 1] = state_of(ctx)
        for stop in (1, ITERS):
            ours, err = run_segda(tmp, method, args, multi, with_d, stop)
            if ours is None:
                report(False, "%s after %d iteration(s)" % (name, stop), "segda failed: " + err)
                continue
            compare("%s after %d iteration(s)" % (name, stop), ours, refs[stop], start)
        if ratios is not None:
            check_ratios(name, tmp, method, args, multi, with_d, ratios, refs[1], start)


def main():
    if not os.path.exists(BIN):
        print("SKIP method parity (no %s)" % BIN)
        return 0
    cases = []
    for scale in (1, 100):
        tag = "" if scale == 1 else " x100"
        cases += [
            ("adaptseg multi" + tag, "adaptseg",
             ["--levels", "multi", "--lambda-adv", str(0.001 * scale), "--lambda-adv-aux", str(0.0002 * scale)],
             True, True, lambda c, i, s=scale: step_adaptseg(c, i, True, False, 0.001 * s, 0.0002 * s)),
            ("adaptseg single" + tag, "adaptseg", ["--levels", "single", "--lambda-adv", str(0.001 * scale)],
             False, True, lambda c, i, s=scale: step_adaptseg(c, i, False, False, 0.001 * s, 0)),
            ("adaptseg LS-GAN" + tag, "adaptseg", ["--levels", "single", "--gan", "ls", "--lambda-adv", str(0.01 * scale)],
             False, True, lambda c, i, s=scale: step_adaptseg(c, i, False, True, 0.01 * s, 0)),
            ("advent AdvEnt multi" + tag, "advent",
             ["--mode", "advent", "--lambda-adv", str(0.001 * scale), "--lambda-adv-aux", str(0.0002 * scale)],
             True, True, lambda c, i, s=scale: step_advent(c, i, True, True, 0.001 * s, 0.0002 * s)),
            ("advent MinEnt multi" + tag, "advent",
             ["--mode", "minent", "--lambda-ent", str(0.001 * scale), "--lambda-ent-aux", str(0.0002 * scale)],
             True, False, lambda c, i, s=scale: step_advent(c, i, True, False, 0.001 * s, 0.0002 * s)),
            ("advent AdvEnt single" + tag, "advent", ["--mode", "advent", "--levels", "single",
                                                      "--lambda-adv", str(0.001 * scale)],
             False, True, lambda c, i, s=scale: step_advent(c, i, False, True, 0.001 * s, 0)),
            ("fda" + tag, "fda", ["--beta", "0.05", "--lambda-ent", str(0.005 * scale), "--switch2entropy", "0"],
             False, False, lambda c, i, s=scale: step_fda(c, i, 0.05, 0.005 * s, 2.0, 0)),
            ("feature-adv" + tag, "feature-adv", ["--lambda-adv", str(0.01 * scale), "--grl", "1",
                                                  "--disc-width", "32"],
             False, False, lambda c, i, s=scale: step_feature_adv(c, i, 0.01 * s, 1.0), (["disc:"], 32), False),
            ("road" + tag, "road", ["--lambda-dist", str(0.1 * scale), "--lambda-spatial", str(0.01 * scale),
                                    "--grid", "3x3", "--disc-width", "16"],
             False, False, lambda c, i, s=scale: step_road(c, i, 0.1 * s, 0.01 * s, 1.0),
             (["region%d:" % r for r in range(9)], 16), True),
        ]
    only = os.environ.get("PARITY_ONLY")
    for k, case in enumerate(cases):
        if only and only not in case[0]:
            continue
        check(*case, seed=100 + k)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
