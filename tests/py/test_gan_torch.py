"""Translation-network parity with PyTorch: CycleGAN's ResnetGenerator and
NLayerDiscriminator (junyanz/pytorch-CycleGAN-and-pix2pix, norm 'instance',
no dropout) written here as the repository defines them, given random
weights, saved as safetensors under their state-dict names, loaded by segda
through tests/shim_gan.c (the generator by sd_gen_load, which infers its
shape from the names), and run on odd-sized inputs: same outputs and every
parameter gradient of sum(y * dy), within 1e-4 relative to the largest
reference magnitude. References in float64. Prints PASS/FAIL lines."""
import ctypes
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_models_torch import lib, report, st_write, st_read  # noqa: E402

_P = ctypes.POINTER
_f, _i = ctypes.c_float, ctypes.c_int
lib.sd_shim_gan_run.argtypes = [ctypes.c_char_p, _i, _i, _i, _i, _i, _i, _P(_f), _P(_f), _P(_f), _i, _P(_i),
                                ctypes.c_char_p]
lib.sd_shim_gan_run.restype = _i


class ResnetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=True), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=True), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc=3, output_nc=3, ngf=64, n_blocks=9):
        super().__init__()
        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, padding=0, bias=True), nn.InstanceNorm2d(ngf),
                 nn.ReLU(True)]
        for i in range(2):
            mult = 2 ** i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                      nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
        for i in range(n_blocks):
            model += [ResnetBlock(ngf * 4)]
        for i in range(2):
            mult = 2 ** (2 - i)
            model += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1,
                                         bias=True), nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc=3, ndf=64, n_layers=3):
        super().__init__()
        kw, padw = 4, 1
        seq = [nn.Conv2d(input_nc, ndf, kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_prev, nf_mult = nf_mult, min(2 ** n, 8)
            seq += [nn.Conv2d(ndf * nf_prev, ndf * nf_mult, kw, stride=2, padding=padw, bias=True),
                    nn.InstanceNorm2d(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        nf_prev, nf_mult = nf_mult, min(2 ** n_layers, 8)
        seq += [nn.Conv2d(ndf * nf_prev, ndf * nf_mult, kw, stride=1, padding=padw, bias=True),
                nn.InstanceNorm2d(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        seq += [nn.Conv2d(ndf * nf_mult, 1, kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


def rel(a, b, floor=1e-12):
    s = max(float(np.abs(b).max()), floor)
    return float(np.abs(np.asarray(a, np.float64) - b).max()) / s


def check(label, net, kind, ndf, n_layers, n, h, w, rng, tmp):
    sd = {}
    for k, v in net.state_dict().items():
        # random weights, rounded to f32 so both sides start from the same values
        a = (rng.standard_normal(v.shape) * (0.2 if v.dim() == 4 else 0.1)).astype(np.float32)
        sd[k] = a
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in sd.items()})
    path = os.path.join(tmp, label + ".safetensors")
    gpath = os.path.join(tmp, label + "-grads.safetensors")
    st_write(path, sd, {"format": "pt"})
    x = rng.uniform(-1, 1, (n, 3, h, w)).astype(np.float32)
    xt = torch.from_numpy(x.astype(np.float64))
    y_ref = net(xt)
    dy = rng.standard_normal(tuple(y_ref.shape)).astype(np.float32)
    (y_ref * torch.from_numpy(dy.astype(np.float64))).sum().backward()
    y = np.zeros(y_ref.numel() + 16, np.float32)
    shape = (ctypes.c_int * 4)()
    fp = lambda a: a.ctypes.data_as(_P(_f))  # noqa: E731
    rc = lib.sd_shim_gan_run(path.encode(), kind, ndf, n_layers, n, h, w, fp(x), fp(dy), fp(y), y.size, shape,
                             gpath.encode())
    if rc != 0:
        report(False, label, lib.sd_errmsg().decode())
        return
    report(list(shape) == list(y_ref.shape), label + " output shape", "%s vs %s" % (list(shape), list(y_ref.shape)))
    yr = y_ref.detach().numpy()
    e = rel(y[:yr.size].reshape(yr.shape), yr)
    report(e <= 1e-4, label + " output (rel err %.2e)" % e, "rel err %.3e" % e)
    grads = st_read(gpath)
    worst, wname, n_checked = 0.0, "", 0
    # a bias right before instance norm has a gradient of exactly 0 in exact
    # arithmetic (the norm removes any per-channel constant): its rounding
    # noise is measured against the largest gradient of the network instead
    gmax = max(float(p.grad.abs().max()) for p in net.parameters())
    for k, p in net.named_parameters():
        g = grads.get("grad:" + k)
        if g is None:
            report(False, label + " gradient " + k, "missing")
            continue
        ref = p.grad.numpy()
        zero = float(np.abs(ref).max()) <= 1e-9 * gmax
        e = rel(g, ref, 1e-2 * gmax if zero else 1e-12)
        n_checked += 1
        if e > worst:
            worst, wname = e, k
    report(n_checked == len(list(net.parameters())) and worst <= 1e-4,
           label + " %d parameter gradients (worst %.2e, %s)" % (n_checked, worst, wname), "worst %.3e at %s" % (worst, wname))


def main():
    torch.set_grad_enabled(True)
    rng = np.random.default_rng(19)
    with tempfile.TemporaryDirectory() as tmp:
        check("resnet generator ngf 4, 2 blocks, 13x11", ResnetGenerator(ngf=4, n_blocks=2).double(), 0, 0, 0, 1, 13,
              11, rng, tmp)
        check("resnet generator ngf 3, 3 blocks, batch 2, 9x15", ResnetGenerator(ngf=3, n_blocks=3).double(), 0, 0, 0,
              2, 9, 15, rng, tmp)
        check("patchgan ndf 4, 3 layers, 37x29", NLayerDiscriminator(ndf=4, n_layers=3).double(), 1, 4, 3, 2, 37, 29,
              rng, tmp)
        check("patchgan ndf 3, 2 layers, 23x27", NLayerDiscriminator(ndf=3, n_layers=2).double(), 1, 3, 2, 1, 23, 27,
              rng, tmp)
    # the published 9-block layout's names (model.26.weight is the last conv)
    names = [k for k in ResnetGenerator(ngf=2, n_blocks=9).state_dict()]
    report(names[-2:] == ["model.26.weight", "model.26.bias"] and "model.19.weight" in names,
           "9-block generator state-dict names as CycleGAN's", str(names[-4:]))
    sys.exit(1 if __import__("test_models_torch").failed else 0)


if __name__ == "__main__":
    main()
