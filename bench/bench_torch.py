"""The workloads of `segda bench` (include/segda/bench.h) in PyTorch, for the
side-by-side table of `make bench`. Modules come from the parity test
(tests/py/test_models_torch.py), so both sides run the architectures the tests
prove equal. Each workload runs in a subprocess of its own for its peak RSS.

Run with /usr/bin/python3 (Debian's python3-torch); it needs the built
libsegda.so only because the parity module loads it on import.
  bench_torch.py [WORKLOAD ...] [--threads N] [--iters N] [--warmup N]
                 [--precision f32,bf16] [--json FILE]
Prints the JSON (also written to --json)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = ["vgg321", "r101", "adaptseg", "r101-infer", "r101-infer-2k", "mini"]
_here = os.path.dirname(os.path.abspath(__file__))
_root = os.path.dirname(_here)


def rss_mb(key):
    """VmHWM (peak) or VmRSS (now) of this process, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def run_one(name, precision, threads, warmup, iters, seed=1):
    """Times one workload in this process; returns its result dict."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    sys.path.insert(0, os.path.join(_root, "tests", "py"))
    os.environ.setdefault("SEGDA_BUILD", os.path.join(_root, "build"))
    import test_models_torch as tm  # the parity test's modules (loads libsegda.so)

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    base_rss = rss_mb("VmRSS")
    bf16 = precision == "bf16"

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def resnet_fwd(m, x, aux=False):
        """DeepLabV2ResNet.forward without the aux head unless asked (segda
        builds it only with aux)."""
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        mid = m.layer3(m.layer2(m.layer1(x)))
        # the published multi-level layout: layer6 on layer4 (main), layer5 on layer3
        out = m.layer6(m.layer4(mid))
        return out, (m.layer5(mid) if aux else None)

    def vgg_fwd(m, x, aux=False):
        mid = m.features[:23](x)
        return m.classifier(m.features[23:](mid)), (m.aux_classifier(mid) if aux else None)

    def freeze_bn(m):
        """DeepLab-v2's frozen BN: running statistics, no affine update."""
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.eval()
                for p in mod.parameters():
                    p.requires_grad_(False)

    def seg_loss(logits, label, h, w):
        up = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=True)
        return F.cross_entropy(up.float(), label, ignore_index=255)

    def batch(h, w):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(1, 3, h, w, generator=g)
        label = torch.randint(0, 19, (1, h, w), generator=g)
        label[torch.rand(1, h, w, generator=g) < 0.1] = 255
        return x, label

    def sgd(params):
        return torch.optim.SGD([p for p in params if p.requires_grad], lr=2.5e-4, momentum=0.9, weight_decay=5e-4)

    if name in ("vgg321", "r101", "mini"):
        if name == "vgg321":
            m, fwd, (w, h) = tm.build("deeplabv2-vgg16", 19), vgg_fwd, (321, 321)
        elif name == "r101":
            m, fwd, (w, h) = tm.build("deeplabv2-resnet101", 19), resnet_fwd, (512, 256)
        else:
            m, fwd, (w, h) = tm.build("deeplab-mini", 19), resnet_fwd, (256, 128)
        m.train()
        if name == "r101":
            freeze_bn(m)
        opt = sgd(m.parameters())
        x, label = batch(h, w)

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = seg_loss(fwd(m, x)[0], label, h, w)
            loss.backward()
            opt.step()
            return loss.item()
    elif name == "adaptseg":
        w, h = 512, 256
        m = tm.build("deeplabv2-resnet101", 19)
        m.train()
        freeze_bn(m)

        def fc_disc():
            """AdaptSegNet's FCDiscriminator (ndf 64, LeakyReLU 0.2, no sigmoid)."""
            layers, cin = [], 19
            for cout in (64, 128, 256, 512):
                layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2)]
                cin = cout
            return nn.Sequential(*layers, nn.Conv2d(512, 1, 4, 2, 1))

        ds = [fc_disc(), fc_disc()]
        opt = sgd(m.parameters())
        opt_d = [torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.9, 0.99)) for d in ds]
        xs, label = batch(h, w)
        xt, _ = batch(h, w)
        xt = xt.flip(3)   # another image

        def up(t):
            return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=True)

        def bce(out, target):
            out = out.float()
            return F.binary_cross_entropy_with_logits(out, torch.full_like(out, target))

        def step():
            opt.zero_grad(set_to_none=True)
            for o in opt_d:
                o.zero_grad(set_to_none=True)
            for d in ds:
                for p in d.parameters():
                    p.requires_grad_(False)
            with autocast():
                os_, os_aux = resnet_fwd(m, xs, aux=True)
                loss_seg = seg_loss(os_, label, h, w) + 0.1 * seg_loss(os_aux, label, h, w)
                ot, ot_aux = resnet_fwd(m, xt, aux=True)
                pt, pt_aux = F.softmax(up(ot).float(), dim=1), F.softmax(up(ot_aux).float(), dim=1)
                loss_adv = 0.001 * bce(ds[0](pt), 0.0) + 0.0002 * bce(ds[1](pt_aux), 0.0)
            (loss_seg + loss_adv).backward()
            for d in ds:
                for p in d.parameters():
                    p.requires_grad_(True)
            with autocast():
                loss_d = 0
                for d, s_out, t_prob in ((ds[0], os_, pt), (ds[1], os_aux, pt_aux)):
                    ps = F.softmax(up(s_out.detach()).float(), dim=1)
                    loss_d = loss_d + 0.5 * bce(d(ps), 0.0) + 0.5 * bce(d(t_prob.detach()), 1.0)
            loss_d.backward()
            opt.step()
            for o in opt_d:
                o.step()
            return loss_seg.item()
    elif name in ("r101-infer", "r101-infer-2k"):
        w, h = (1024, 512) if name == "r101-infer" else (2048, 1024)
        m = tm.build("deeplabv2-resnet101", 19)
        m.eval()
        g = torch.Generator().manual_seed(seed)
        px = torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, generator=g)
        mean = torch.tensor([104.00698793, 116.66876762, 122.67891434]).view(1, 3, 1, 1)  # Caffe BGR means

        def step():
            # as segda predict: normalise, forward, upsample to full size, softmax, argmax
            with torch.no_grad(), autocast():
                x = px.permute(2, 0, 1).unsqueeze(0).float().flip(1) - mean
                logits = resnet_fwd(m, x)[0]
                probs = F.softmax(F.interpolate(logits.float(), size=(h, w), mode="bilinear",
                                                align_corners=False), dim=1)
                probs.argmax(1)
            return 0.0
    else:
        raise SystemExit("bench_torch.py: unknown workload '%s'" % name)

    times, loss = [], 0.0
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        loss = step()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    return {"workload": name, "precision": precision, "w": w, "h": h, "batch": 1, "iters": iters,
            "median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
            "peak_rss_mb": rss_mb("VmHWM"), "base_rss_mb": base_rss, "loss": loss}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workloads", nargs="*", help="default: " + " ".join(WORKLOADS))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--precision", default="f32,bf16", help="comma-separated: f32, bf16")
    ap.add_argument("--json", help="also write the JSON here")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one workload, one precision
    a = ap.parse_args()
    precisions = a.precision.split(",")
    # segda's loader workload has no PyTorch side; make bench passes one list to both
    asked = [w for w in a.workloads if w != "loader"]
    bad = [w for w in asked if w not in WORKLOADS]
    bad += [p for p in precisions if p not in ("f32", "bf16")]
    if bad or a.threads < 1 or a.iters < 1 or a.warmup < 0:
        ap.error("unknown workload/precision %s or bad --threads/--iters/--warmup" % bad)
    if a.one:
        print(json.dumps(run_one(a.workloads[0], precisions[0], a.threads, a.warmup, a.iters)))
        return 0
    import torch
    # which kernels this build can reach: Debian's links a generic BLAS and
    # may dispatch below the CPU's best ISA, which the table should say
    cfg, build = torch.__config__.show(), {}
    for key, marker in (("blas", "BLAS_INFO="), ("cpu_capability", "CPU capability usage: ")):
        build[key] = cfg.split(marker, 1)[1].split(",")[0].split("\n")[0].strip() if marker in cfg else "?"
    out = {"tool": "torch", "version": torch.__version__, "threads": a.threads, "warmup": a.warmup,
           "iters": a.iters, "mkldnn": torch.backends.mkldnn.is_available(), "build": build,
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(libgomp default)"), "results": []}
    for name in asked if a.workloads else WORKLOADS:
        for prec in precisions:
            print("bench_torch: %s %s (%d threads)" % (name, prec, a.threads), file=sys.stderr, flush=True)
            cmd = [sys.executable, os.path.abspath(__file__), "--one", name, "--precision", prec,
                   "--threads", str(a.threads), "--iters", str(a.iters), "--warmup", str(a.warmup)]
            r = subprocess.run(cmd, stdout=subprocess.PIPE, check=False)
            if r.returncode != 0:
                print("bench_torch: %s %s failed (exit %d)" % (name, prec, r.returncode), file=sys.stderr)
                return 1
            out["results"].append(json.loads(r.stdout.decode().strip().splitlines()[-1]))
    text = json.dumps(out, indent=1)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
