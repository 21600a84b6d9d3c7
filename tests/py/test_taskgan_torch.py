"""taskgan's stage-2 generator step against PyTorch: the loss of the seed,
    L_GS = (1 - alpha) * mean((D_S(G_S(x)) - 1)^2) + alpha * gamma * CE(f(G_S(x)), l)
with D_S a PatchGAN and f a deeplab-mini, both frozen, f in eval mode behind
the [-1,1] -> ImageNet normalisation, its logits upsampled bilinearly
(align_corners True) to the labels; Adam (betas 0.5, 0.999) on G_S alone,
three steps on one batch. segda runs the very function taskgan.c calls
(sd_taskgan_g_losses, via tests/shim_gan.c). Checked: both terms at every
step (rel 1e-4), that D_S and f got no gradient, G_S's output after the
steps (rel 1e-4), and every updated G_S weight. The reference is float64.
Prints PASS/FAIL lines."""
import ctypes
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_models_torch as tm  # noqa: E402
from test_gan_torch import NLayerDiscriminator, ResnetGenerator, rel  # noqa: E402
from test_models_torch import lib, report, st_read, st_write  # noqa: E402

_P = ctypes.POINTER
_f, _i = ctypes.c_float, ctypes.c_int
lib.sd_shim_taskgan_step.argtypes = [ctypes.c_char_p, ctypes.c_char_p, _i, _i, ctypes.c_char_p, _i, _i, _i, _P(_f),
                                     _P(ctypes.c_uint8), _f, _f, _f, _i, _P(_f), ctypes.c_char_p]
lib.sd_shim_taskgan_step.restype = _i

MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)


def randomize(net, rng, std):
    sd = {k: (rng.standard_normal(v.shape) * (std if v.dim() == 4 else 0.1)).astype(np.float32)
          for k, v in net.state_dict().items()}
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in sd.items()})
    return sd


def case(tmp, alpha, gamma, lr, steps, n, h, w):
    rng = np.random.default_rng(4)
    label = "alpha %g gamma %g, %d steps, batch %d %dx%d" % (alpha, gamma, steps, n, h, w)
    G = ResnetGenerator(ngf=4, n_blocks=2).double()
    D = NLayerDiscriminator(ndf=4, n_layers=3).double()
    gsd, dsd = randomize(G, rng, 0.2), randomize(D, rng, 0.2)
    f = tm.build("deeplab-mini", 19)
    tm.randomize(f, torch.Generator().manual_seed(5))
    fsd = {k: v.detach().numpy().astype(np.float32) for k, v in f.state_dict().items()
           if not k.endswith("num_batches_tracked")}
    f = f.double().eval()
    f.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in fsd.items()}, strict=False)
    for p in list(D.parameters()) + list(f.parameters()):
        p.requires_grad_(False)
    paths = [os.path.join(tmp, s + ".safetensors") for s in ("g", "d", "f", "out")]
    st_write(paths[0], gsd, {"format": "pt"})
    st_write(paths[1], dsd, {"format": "pt"})
    st_write(paths[2], fsd, {"model": "deeplab-mini", "classes": "19", "aux": "1", "norm": "imagenet"})
    x = rng.uniform(-1, 1, (n, 3, h, w)).astype(np.float32)
    lab = rng.integers(0, 19, (n, h, w)).astype(np.uint8)
    lab[:, : h // 4] = 255   # ignored pixels
    losses = np.zeros(2 * steps, np.float32)
    fp = lambda a: a.ctypes.data_as(_P(_f))  # noqa: E731
    rc = lib.sd_shim_taskgan_step(paths[0].encode(), paths[1].encode(), 4, 3, paths[2].encode(), n, h, w, fp(x),
                                  lab.ctypes.data_as(_P(ctypes.c_uint8)), alpha, gamma, lr, steps, fp(losses),
                                  paths[3].encode())
    report(rc != 2, label + ": D_S and f take no gradient", "a frozen network received a gradient")
    if rc != 0:
        report(False, label, "segda failed (%d): %s" % (rc, lib.sd_errmsg().decode()))
        return
    xt = torch.from_numpy(x.astype(np.float64))
    lt = torch.from_numpy(lab.astype(np.int64))
    opt = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    ref = []
    for _ in range(steps):
        y = G(xt)
        adv = ((D(y) - 1) ** 2).mean()
        logits, _aux = f(((y + 1) * 127.5 / 255 - MEAN) / STD)
        up = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=True)
        ce = F.cross_entropy(up, lt, ignore_index=255)
        ref += [adv.item(), ce.item()]
        opt.zero_grad()
        ((1 - alpha) * adv + alpha * gamma * ce).backward()
        opt.step()
    e = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(losses, ref))
    report(e <= 1e-4, label + ": adv and ce at every step (worst rel err %.2e)" % e,
           "segda %s vs torch %s" % (list(losses), ref))
    out = st_read(paths[3])
    G2 = ResnetGenerator(ngf=4, n_blocks=2).double()
    G2.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in out.items()})
    with torch.no_grad():
        e = rel(G2(xt).numpy(), G(xt).numpy())
    report(e <= 1e-4, label + ": G_S's output after the steps (rel err %.2e)" % e, "rel err %.3e" % e)
    # weights: the change Adam made, against lr * steps (Adam's step size);
    # biases right before instance norm have an exactly-zero gradient, so
    # their Adam steps are rounding noise on both sides and not compared
    worst, wname = 0.0, ""
    sd_ref = G.state_dict()
    for k, v in out.items():
        if k.endswith("bias") and k != "model.%d.bias" % (10 + 2 + 7):
            continue
        d = float(np.abs(v.astype(np.float64) - sd_ref[k].numpy()).max()) / (lr * steps)
        if d > worst:
            worst, wname = d, k
    report(worst <= 1e-2, label + ": updated G_S weights (worst |diff| %.2e of lr*steps, %s)" % (worst, wname),
           "worst %.3e at %s" % (worst, wname))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        case(tmp, 0.5, 1.0, 1e-3, 3, 1, 36, 44)
        case(tmp, 0.8, 2.5, 2e-4, 2, 2, 28, 32)
    sys.exit(1 if tm.failed else 0)


if __name__ == "__main__":
    main()
