#!/usr/bin/python3
"""Convert a PyTorch checkpoint (.pth state dict) to a safetensors file that
`segda predict/eval/train` load directly.

    tools/pth2safetensors.py IN.pth OUT.safetensors --model NAME --classes N \
        [--normalize caffe|imagenet] [--partial] [--segda PATH]
    tools/pth2safetensors.py maskrcnn_resnet50_fpn_coco.pth OUT.safetensors   (the detector)

Installed by `make install` as the command `segda-pth2safetensors`; it finds
the segda command (for the expected names) as --segda, else $SEGDA_BIN, else
`segda` beside this script (the installed bin/), else build/segda of the
checkout holding this script, else `segda` on PATH: so it works from any
directory.

Accepts a plain state dict, one nested under 'state_dict', 'model' or
'model_state_dict', and DataParallel 'module.' prefixes; drops
num_batches_tracked. The names and shapes are checked against what segda
expects for NAME (`segda models --names NAME --classes N [--aux]`): missing or
mis-shaped tensors fail the conversion unless --partial (e.g. an ImageNet
backbone without the segmentation head); tensors segda does not know are
dropped with a warning. The metadata records the model, classes, aux head,
two-branch ASPP and input normalisation (caffe: BGR minus the Caffe mean, as
the DeepLab-v2 checkpoints of AdaptSegNet/ADVENT expect; imagenet:
torchvision's RGB mean/std). Needs python3 with torch (Debian's python3-torch);
writes the file with numpy + json, no safetensors package needed.
"""
import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys

import numpy as np
import torch

DETECTOR = "maskrcnn-r50-fpn"
DEFAULT_NORM = {"deeplabv2-resnet101": "caffe", "deeplabv2-resnet50": "caffe", "deeplabv2-vgg16": "caffe"}


def find_state_dict(obj):
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                return find_state_dict(obj[key])
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    if hasattr(obj, "state_dict"):
        return obj.state_dict()
    raise SystemExit("pth2safetensors: no state dict found (expected a dict of tensors, or one under "
                     "'state_dict' or 'model')")


def expected_names(segda, model, classes, aux, two):
    cmd = [segda, "models", "--names", model, "--classes", str(classes)]
    if aux:
        cmd.append("--aux")
    if two:
        cmd.append("--aspp-two-branch")
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        msg = getattr(e, "stderr", "") or str(e)
        raise SystemExit("pth2safetensors: running %s failed: %s" % (" ".join(cmd), msg.strip()))
    names = {}
    for line in out.splitlines():
        name, shape = line.split(" ")
        names[name] = tuple(int(s) for s in shape.split(",") if s)
    return names


def write_safetensors(path, tensors, meta):
    header, off, blobs = {"__metadata__": meta}, 0, []
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def torchvision_vgg_to_deeplab(sd):
    """torchvision's VGG-16 numbers conv5_1..3 features.24/26/28; DeepLab-v2 VGG
    (AdaptSegNet) removes pool4 (index 23) and so numbers them 23/25/27. An
    ImageNet state dict (conv5_1 at 24, no 23) is renumbered; its fc layers
    (classifier.0/3/6) are not DeepLab's fc6/fc7 convolutions and are dropped
    by the name check below."""
    if "features.24.weight" not in sd or "features.23.weight" in sd:
        return sd
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if parts[0] == "features" and parts[1].isdigit() and int(parts[1]) >= 24:
            parts[1] = str(int(parts[1]) - 1)
        out[".".join(parts)] = v
    print("pth2safetensors: torchvision VGG-16 layout: conv5 renumbered 24/26/28 -> 23/25/27", file=sys.stderr)
    return out


def torchvision_detector_names(sd):
    """torchvision's maskrcnn_resnet50_fpn state dicts, published COCO weights
    included, to the current (0.13+) names segda uses: the published file
    predates the Conv2dNormActivation wrappers (fpn.inner_blocks.N.weight,
    rpn.head.conv.weight, mask_head.mask_fcnK.weight), which torchvision
    renames on load (its _load_from_state_dict hooks); so do we."""
    out = {}
    for k, v in sd.items():
        k = re.sub(r"^(backbone\.fpn\.(inner|layer)_blocks\.\d+)\.(weight|bias)$", r"\1.0.\3", k)
        k = re.sub(r"^rpn\.head\.conv\.(weight|bias)$", r"rpn.head.conv.0.0.\1", k)
        m = re.match(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$", k)
        if m:
            k = "roi_heads.mask_head.%d.0.%s" % (int(m.group(1)) - 1, m.group(2))
        out[k] = v
    return out


def find_segda():
    """The segda binary, wherever this script is run from (see the top)."""
    env = os.environ.get("SEGDA_BIN")
    if env:
        return env
    here = os.path.dirname(os.path.realpath(__file__))
    for cand in (os.path.join(here, "segda"), os.path.join(os.path.dirname(here), "build", "segda")):
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    found = shutil.which("segda")
    if found:
        return found
    raise SystemExit("pth2safetensors: segda command not found: not beside %s, not in %s, not on PATH; "
                     "pass --segda PATH or set SEGDA_BIN" % (here, os.path.join(os.path.dirname(here), "build")))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--model", help="segda's model name (segda models); default: %s when the state dict is "
                    "torchvision's Mask R-CNN, else required" % DETECTOR)
    ap.add_argument("--classes", type=int, help="output classes (default 19; the detector: from the state dict, "
                    "background included)")
    ap.add_argument("--normalize", choices=["caffe", "imagenet"])
    ap.add_argument("--partial", action="store_true", help="allow missing tensors (e.g. backbone-only weights)")
    ap.add_argument("--aspp-branches", type=int, choices=[2, 4],
                    help="ASPP branches the network USES (AdaptSegNet's Classifier_Module returns after two "
                         "branches although its state dict holds four; a state dict cannot tell). Default: the "
                         "branches the state dict holds")
    ap.add_argument("--segda", help="path of the segda binary (default: $SEGDA_BIN, beside this script, "
                    "the checkout's build/segda, PATH)")
    a = ap.parse_args()
    if not a.segda:
        a.segda = find_segda()

    obj = torch.load(a.input, map_location="cpu")
    sd = find_state_dict(obj)
    clean = {}
    for k, v in sd.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if k.endswith("num_batches_tracked"):
            continue
        clean[k] = v.detach().float().cpu().numpy()
    if "roi_heads.box_predictor.cls_score.weight" in clean:
        clean = torchvision_detector_names(clean)
        if a.model is None:
            a.model = DETECTOR
        if a.classes is None:
            a.classes = clean["roi_heads.box_predictor.cls_score.weight"].shape[0]
    elif a.model == DETECTOR:
        raise SystemExit("pth2safetensors: %s has no roi_heads.box_predictor.cls_score.weight: not torchvision's "
                         "maskrcnn_resnet50_fpn state dict, which --model %s expects" % (a.input, DETECTOR))
    if a.model is None:
        raise SystemExit("pth2safetensors: --model NAME is required for a segmentation network (segda models lists "
                         "the names)")
    if a.classes is None:
        a.classes = 19
    if a.model.endswith("vgg16"):
        clean = torchvision_vgg_to_deeplab(clean)
    has5 = any(k.startswith("layer5.") for k in clean)
    has6 = any(k.startswith("layer6.") for k in clean)
    if has6 and not has5:
        # ADVENT's single-level ResNetMulti names its one classifier layer6;
        # segda's single-level DeepLab-v2 calls it layer5 (AdaptSegNet's Deeplab)
        clean = {("layer5." + k[len("layer6."):] if k.startswith("layer6.") else k): v for k, v in clean.items()}
    # multi-level (AdaptSegNet DeeplabMulti, ADVENT ResNetMulti): layer5 on layer3, layer6 on layer4
    aux = (has5 and has6) or any(k.startswith(("aux_classifier.", "aux.")) for k in clean)
    head = "layer6" if aux and has6 else "layer5"
    two = (("%s.conv2d_list.0.weight" % head in clean and "%s.conv2d_list.2.weight" % head not in clean) or
           ("classifier.conv2d_list.0.weight" in clean and "classifier.conv2d_list.2.weight" not in clean))
    if a.aspp_branches:
        two = a.aspp_branches == 2
        if two:  # the unused branches of a four-branch state dict
            clean = {k: v for k, v in clean.items()
                     if not re.match(r"(layer5|layer6|classifier|aux_classifier)\.conv2d_list\.[23]\.", k)}
    want = expected_names(a.segda, a.model, a.classes, aux, two)
    missing = [n for n in want if n not in clean]
    unexpected = [n for n in clean if n not in want]
    bad = [(n, clean[n].shape, want[n]) for n in want if n in clean and tuple(clean[n].shape) != want[n]]
    for n in unexpected:
        print("pth2safetensors: warning: dropping '%s' %s (not part of %s)" % (n, tuple(clean[n].shape), a.model),
              file=sys.stderr)
    for n, got, exp in bad:
        print("pth2safetensors: '%s' has shape %s, %s expects %s" % (n, tuple(got), a.model, exp), file=sys.stderr)
    for n in missing:
        print("pth2safetensors: %s: missing '%s'" % ("warning" if a.partial else "error", n), file=sys.stderr)
    if bad or (missing and not a.partial):
        raise SystemExit("pth2safetensors: %s does not fit %s with %d classes (%d missing, %d mis-shaped); "
                         "check --model/--classes, or --partial for backbone-only weights"
                         % (a.input, a.model, a.classes, len(missing), len(bad)))
    out = {n: clean[n] for n in want if n in clean}
    norm = a.normalize or DEFAULT_NORM.get(a.model, "imagenet")
    meta = {"model": a.model, "classes": str(a.classes), "norm": norm, "aux": "1" if aux else "0",
            "aspp_two_branch": "1" if two else "0", "format": "pt", "source": os.path.basename(a.input)}
    write_safetensors(a.output, out, meta)
    print("pth2safetensors: wrote %s: %d tensors, %s, %d classes, norm %s%s" %
          (a.output, len(out), a.model, a.classes, norm, ", aux head" if aux else ""))


if __name__ == "__main__":
    main()
