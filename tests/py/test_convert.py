"""tools/pth2safetensors.py on PyTorch state dicts as published checkpoints
store them: a DataParallel 'module.' prefix nested under 'state_dict', and a
torchvision ImageNet VGG-16 (conv5 renumbered for DeepLab-v2's layout).
The converted file is read back byte for byte. Prints PASS/FAIL lines."""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_build = os.environ.get("SEGDA_BUILD", "build")
SEGDA = os.path.join(_root if not os.path.isabs(_build) else "", _build, "segda")
TOOL = os.path.join(_root, "tools", "pth2safetensors.py")
failed = 0


def report(ok, name, detail=""):
    global failed
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else " " + detail))
    failed += not ok


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    meta = head.pop("__metadata__", {})
    out = {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype=np.float32).reshape(v["shape"])
           for k, v in head.items()}
    return out, meta


def convert(src, dst, *args):
    return subprocess.run([sys.executable, TOOL, src, dst, "--segda", SEGDA] + list(args),
                          capture_output=True, text=True)


def test_vgg_torchvision(tmp):
    cfg = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
           (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512)]
    g = torch.Generator().manual_seed(0)
    sd = {}
    for i, ci, co in cfg:
        sd["features.%d.weight" % i] = torch.randn(co, ci, 3, 3, generator=g)
        sd["features.%d.bias" % i] = torch.randn(co, generator=g)
    sd["classifier.0.weight"] = torch.randn(8, 16, generator=g)
    torch.save(sd, os.path.join(tmp, "vgg.pth"))
    r = convert(os.path.join(tmp, "vgg.pth"), os.path.join(tmp, "vgg.st"), "--model", "deeplabv2-vgg16", "--partial",
                "--normalize", "imagenet")
    report(r.returncode == 0, "vgg_converts", r.stderr[-400:])
    if r.returncode:
        return
    out, meta = read_safetensors(os.path.join(tmp, "vgg.st"))
    report(np.array_equal(out["features.23.weight"], sd["features.24.weight"].numpy()) and
           np.array_equal(out["features.27.bias"], sd["features.28.bias"].numpy()) and
           np.array_equal(out["features.21.weight"], sd["features.21.weight"].numpy()),
           "vgg_conv5_renumbered")
    report("classifier.0.weight" not in out and meta.get("norm") == "imagenet", "vgg_fc_dropped_norm_kept")


def test_nested_module_prefix(tmp):
    r = subprocess.run([SEGDA, "models", "--names", "deeplab-mini"], capture_output=True, text=True)
    shapes = {}
    for line in r.stdout.splitlines():
        name, shape = line.split()
        shapes[name] = tuple(int(s) for s in shape.split(","))
    g = torch.Generator().manual_seed(1)
    sd = {"module." + k: torch.randn(*s, generator=g) for k, s in shapes.items()}
    torch.save({"state_dict": sd, "iter": 5}, os.path.join(tmp, "mini.pth"))
    r = convert(os.path.join(tmp, "mini.pth"), os.path.join(tmp, "mini.st"), "--model", "deeplab-mini")
    report(r.returncode == 0, "nested_converts", r.stderr[-400:])
    if r.returncode == 0:
        out, _ = read_safetensors(os.path.join(tmp, "mini.st"))
        report(set(out) == set(shapes) and all(np.array_equal(out[k], sd["module." + k].numpy()) for k in shapes),
               "nested_values_exact")
    # a wrong class count is refused with the tensor named
    r = convert(os.path.join(tmp, "mini.pth"), os.path.join(tmp, "bad.st"), "--model", "deeplab-mini",
                "--classes", "7")
    report(r.returncode != 0 and "expects" in r.stderr and not os.path.exists(os.path.join(tmp, "bad.st")),
           "wrong_classes_refused", r.stderr[-300:])


def model_names(*args):
    r = subprocess.run([SEGDA, "models", "--names"] + list(args), capture_output=True, text=True)
    shapes = {}
    for line in r.stdout.splitlines():
        name, shape = line.split()
        shapes[name] = tuple(int(s) for s in shape.split(","))
    return shapes


def test_published_multi_level(tmp):
    """AdaptSegNet's DeeplabMulti / ADVENT's ResNetMulti: layer5 is the
    classifier on layer3 (fewer input channels), layer6 the one on layer4."""
    shapes = model_names("deeplab-mini", "--aux")
    report(shapes.get("layer5.conv2d_list.0.weight", (0, 0))[1] < shapes.get("layer6.conv2d_list.0.weight", (0, 0))[1],
           "multi_level_layer5_on_layer3", str({k: v for k, v in shapes.items() if k.startswith("layer")})[:300])
    g = torch.Generator().manual_seed(2)
    sd = {k: torch.randn(*s, generator=g) for k, s in shapes.items()}
    torch.save(sd, os.path.join(tmp, "multi.pth"))
    r = convert(os.path.join(tmp, "multi.pth"), os.path.join(tmp, "multi.st"), "--model", "deeplab-mini")
    report(r.returncode == 0, "multi_level_converts", r.stderr[-400:])
    if r.returncode == 0:
        out, meta = read_safetensors(os.path.join(tmp, "multi.st"))
        report(meta.get("aux") == "1" and all(np.array_equal(out[k], sd[k].numpy()) for k in shapes),
               "multi_level_names_kept")
    # ADVENT single-level: the one classifier is layer6 -> segda's layer5
    single = model_names("deeplab-mini")
    sd1 = {("layer6." + k[7:] if k.startswith("layer5.") else k): torch.randn(*s, generator=g)
           for k, s in single.items()}
    torch.save(sd1, os.path.join(tmp, "advent.pth"))
    r = convert(os.path.join(tmp, "advent.pth"), os.path.join(tmp, "advent.st"), "--model", "deeplab-mini")
    report(r.returncode == 0, "advent_single_converts", r.stderr[-400:])
    if r.returncode == 0:
        out, meta = read_safetensors(os.path.join(tmp, "advent.st"))
        report(meta.get("aux") == "0" and np.array_equal(out["layer5.conv2d_list.1.weight"],
                                                        sd1["layer6.conv2d_list.1.weight"].numpy()),
               "advent_single_layer6_to_layer5")
    # the two-branch ASPP of the published code cannot be seen in a state dict: a flag says it
    r = convert(os.path.join(tmp, "multi.pth"), os.path.join(tmp, "two.st"), "--model", "deeplab-mini",
                "--aspp-branches", "2")
    report(r.returncode == 0, "aspp_two_branch_converts", r.stderr[-400:])
    if r.returncode == 0:
        out, meta = read_safetensors(os.path.join(tmp, "two.st"))
        report(meta.get("aspp_two_branch") == "1" and "layer6.conv2d_list.2.weight" not in out and
               "layer6.conv2d_list.1.weight" in out, "aspp_two_branch_flag")


with tempfile.TemporaryDirectory() as tmp:
    test_vgg_torchvision(tmp)
    test_nested_module_prefix(tmp)
    test_published_multi_level(tmp)
sys.exit(1 if failed else 0)
