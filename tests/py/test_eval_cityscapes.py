#!/usr/bin/env python3
"""`segda eval` against an independent numpy re-implementation of the
official cityscapesScripts formulas (evalPixelLevelSemanticLabeling: a 34 x 34
label-id confusion matrix, getIouScoreForLabel, getIouScoreForCategory,
getScoreAverage), on random Cityscapes-layout fixtures with ignored ground
truth, predicted ignored ids and absent classes; both prediction codings
(label ids, trainIds incl. a palette PNG); the JSON shape; CLI exit codes and
messages; and sd_upsample_argmax against torch's bilinear interpolate+argmax.
Needs only numpy (and torch for the upsampling check, skipped without it)."""
import ctypes
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("SEGDA_BUILD", "build"))  # an absolute value stays as it is
BIN = os.path.join(ROOT, os.environ.get("SEGDA_BIN", os.path.join(BUILD, "segda")))
failed = False

# The official label table, typed from cityscapesScripts' labels.py (FIELD.md):
# id -> (name, trainId, category). ignoreInEval is exactly trainId == 255.
LABELS = [
    (0, "unlabeled", 255, "void"), (1, "ego vehicle", 255, "void"),
    (2, "rectification border", 255, "void"), (3, "out of roi", 255, "void"),
    (4, "static", 255, "void"), (5, "dynamic", 255, "void"), (6, "ground", 255, "void"),
    (7, "road", 0, "flat"), (8, "sidewalk", 1, "flat"), (9, "parking", 255, "flat"),
    (10, "rail track", 255, "flat"), (11, "building", 2, "construction"),
    (12, "wall", 3, "construction"), (13, "fence", 4, "construction"),
    (14, "guard rail", 255, "construction"), (15, "bridge", 255, "construction"),
    (16, "tunnel", 255, "construction"), (17, "pole", 5, "object"),
    (18, "polegroup", 255, "object"), (19, "traffic light", 6, "object"),
    (20, "traffic sign", 7, "object"), (21, "vegetation", 8, "nature"),
    (22, "terrain", 9, "nature"), (23, "sky", 10, "sky"), (24, "person", 11, "human"),
    (25, "rider", 12, "human"), (26, "car", 13, "vehicle"), (27, "truck", 14, "vehicle"),
    (28, "bus", 15, "vehicle"), (29, "caravan", 255, "vehicle"),
    (30, "trailer", 255, "vehicle"), (31, "train", 16, "vehicle"),
    (32, "motorcycle", 17, "vehicle"), (33, "bicycle", 18, "vehicle"),
]
IGNORE = {i: t == 255 for i, _, t, _ in LABELS}
TRAIN = np.array([t for _, _, t, _ in LABELS] + [255] * (256 - 34), np.uint8)
CLASS_IDS = [i for i, _, t, _ in LABELS if t != 255]          # in trainId order
CLASS_NAMES = [n for _, n, t, _ in LABELS if t != 255]
CATEGORIES = ["flat", "construction", "object", "nature", "sky", "human", "vehicle"]
P16 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18]
P13 = [0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18]


def report(name, ok, why=""):
    global failed
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + why))
    sys.stdout.flush()
    failed |= not ok


def official(pairs):
    """The official evaluator's numbers from (gt label ids, pred label ids) pairs."""
    m = np.zeros((34, 34), np.int64)
    for g, p in pairs:
        m += np.bincount(g.astype(np.int64).ravel() * 34 + p.ravel(), minlength=34 * 34).reshape(34, 34)
    ids = range(34)
    cls = {}
    for lid, name in zip(CLASS_IDS, CLASS_NAMES):
        tp = m[lid, lid]
        fn = m[lid, :].sum() - tp
        fp = m[[l for l in ids if not IGNORE[l] and l != lid], lid].sum()
        cls[name] = float(tp) / (tp + fp + fn) if tp + fp + fn else None
    cat = {}
    for c in CATEGORIES:
        s = [i for i, _, t, k in LABELS if k == c and t != 255]
        tp = m[np.ix_(s, s)].sum()
        fn = m[s, :].sum() - tp
        rows = [i for i, _, t, k in LABELS if t != 255 and k != c]
        fp = m[np.ix_(rows, s)].sum()
        cat[c] = float(tp) / (tp + fp + fn) if tp + fp + fn else None

    def mean(idx):
        v = [cls[CLASS_NAMES[i]] for i in idx if cls[CLASS_NAMES[i]] is not None]
        return sum(v) / len(v) if v else None

    gt = np.concatenate([TRAIN[g].ravel() for g, _ in pairs])
    pr = np.concatenate([TRAIN[p].ravel() for _, p in pairs])
    valid = gt != 255
    accs = [float(np.mean(pr[gt == c] == c)) for c in range(19) if np.any(gt == c)]
    return {"class_iou": cls, "category_iou": cat, "miou_19": mean(range(19)), "miou_16": mean(P16),
            "miou_13": mean(P13), "pixel_accuracy": float(np.mean(pr[valid] == gt[valid])),
            "mean_accuracy": sum(accs) / len(accs)}


def png_write(path, arr, palette=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arr = np.ascontiguousarray(arr, np.uint8)
    h, w = arr.shape[:2]
    ctype = 2 if arr.ndim == 3 else (3 if palette is not None else 0)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(h))
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
    if palette is not None:
        data += chunk(b"PLTE", bytes(palette))
    data += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def make_fixture(root, rng):
    """Six val images of two sizes; truck only ever predicted on ignored
    ground truth and train never present, so both are absent."""
    samples = []
    sizes = [(48, 64), (30, 50)]
    for k in range(6):
        city = ["aachen", "bonn"][k % 2]
        stem = "%s_%06d_%06d" % (city, k, 19)
        h, w = sizes[k % 2]
        allowed = np.array([i for i in range(34) if i not in (27, 31)])
        gt = rng.choice(allowed, size=(h, w)).astype(np.uint8)
        gt[: h // 4] = rng.choice([0, 1, 4, 9], size=(h // 4, w))   # a band of ignored ground truth
        pred = np.where(rng.random((h, w)) < 0.55, gt, rng.choice(allowed, size=(h, w))).astype(np.uint8)
        pred[(TRAIN[gt] == 255) & (rng.random((h, w)) < 0.3)] = 27
        png_write(os.path.join(root, "cs/leftImg8bit/val", city, stem + "_leftImg8bit.png"),
                  np.full((h, w, 3), 100, np.uint8))
        png_write(os.path.join(root, "cs/gtFine/val", city, stem + "_gtFine_labelIds.png"), gt)
        png_write(os.path.join(root, "predl", city, stem + "_leftImg8bit.png"), pred)
        trainp = TRAIN[pred]
        if k == 0:  # a palette PNG whose indices are trainIds, as colour-coded outputs are saved
            png_write(os.path.join(root, "predt/x", "res_" + stem + ".png"), trainp,
                      palette=[v for i in range(256) for v in (i, 255 - i, 7)])
        else:
            png_write(os.path.join(root, "predt/x/y", stem + "_pred.png"), trainp)
        samples.append((stem, gt, pred))
    return samples


def run(*args):
    p = subprocess.run([BIN, "eval", *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def close(a, b, tol=1e-6):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol


def compare(got, want, what):
    bad = []
    for key in ("miou_19", "miou_16", "miou_13", "pixel_accuracy", "mean_accuracy"):
        if not close(got[key], want[key]):
            bad.append("%s %r vs %r" % (key, got[key], want[key]))
    for group in ("class_iou", "category_iou"):
        for k, v in want[group].items():
            if not close(got[group][k], v):
                bad.append("%s[%s] %r vs %r" % (group, k, got[group][k], v))
    report(what, not bad, "; ".join(bad[:5]))


def check_shape(doc):
    ok = set(doc) == {"protocol", "images", "models"} and isinstance(doc["images"], int)
    keys = {"name", "miou_19", "miou_16", "miou_13", "miou_camvid", "pixel_accuracy", "mean_accuracy",
            "class_iou", "category_iou", "iiou", "class_iiou"}
    for m in doc.get("models", []):
        ok &= set(m) == keys
        ok &= list(m["class_iou"]) == CLASS_NAMES and list(m["category_iou"]) == CATEGORIES
        # no instance files in this fixture: the iIoU fields are null
        ok &= m["iiou"] is None and m["class_iiou"] is None
        vals = [m[k] for k in keys - {"name", "class_iou", "category_iou", "class_iiou"}]
        vals += list(m["class_iou"].values()) + list(m["category_iou"].values())
        ok &= all(v is None or (isinstance(v, float) or isinstance(v, int)) and 0 <= v <= 1 for v in vals)
    ok &= isinstance(doc["protocol"], dict) and doc["protocol"].get("name") == "mIoU-19"
    return bool(ok)


def test_cli(tmp):
    rng = np.random.default_rng(1234)
    samples = make_fixture(tmp, rng)
    want = official([(g, p) for _, g, p in samples])
    if want["class_iou"]["truck"] is not None or want["class_iou"]["train"] is not None:
        report("fixture_has_absent_classes", False, "truck/train should be absent")
    data = "cityscapes:" + os.path.join(tmp, "cs")
    jl, jt, csv = (os.path.join(tmp, n) for n in ("l.json", "t.json", "t.csv"))
    rc, out, err = run("--pred", os.path.join(tmp, "predl"), "--data", data, "--labelids",
                       "--json", jl, "--quiet")
    report("cli_labelids_runs", rc == 0, "rc %d: %s" % (rc, err))
    if rc == 0:
        doc = json.load(open(jl))
        report("json_shape", check_shape(doc), json.dumps(doc)[:300])
        report("json_images_and_absent", doc["images"] == 6 and doc["models"][0]["class_iou"]["train"] is None
               and doc["models"][0]["class_iou"]["truck"] is None, json.dumps(doc["models"][0])[:300])
        compare(doc["models"][0], want, "labelids_match_official_formulas")
        report("protocol_block", "align_corners" in doc["protocol"] and "mIoU-19" in out and "images:     6" in out,
               out[:400])
    rc, out, err = run("--pred", os.path.join(tmp, "predt"), "--pred", os.path.join(tmp, "predt"),
                       "--name", "A", "--name", "B", "--data", data, "--split", "val",
                       "--json", jt, "--csv", csv, "--protocol", "16", "--quiet")
    report("cli_trainids_runs", rc == 0, "rc %d: %s" % (rc, err))
    if rc == 0:
        doc = json.load(open(jt))
        report("json_two_rows", [m["name"] for m in doc["models"]] == ["A", "B"], str(doc["models"])[:200])
        compare(doc["models"][1], want, "trainids_match_official_formulas")
        lines = open(csv).read().splitlines()
        report("csv_rows", len(lines) == 3 and lines[0].startswith("name,road,sidewalk")
               and lines[1].startswith("A,"), "\n".join(lines)[:300])
        hdr = [l for l in out.splitlines() if "mIoU-16" in l and "road" in l]
        report("table_16_layout", len(hdr) == 1 and hdr[0].rstrip().endswith("mIoU-16 mIoU-13")
               and "terr." not in hdr[0] and "truck" not in hdr[0], out[:600])
    return samples


def test_cli_errors(tmp, samples):
    data = "cityscapes:" + os.path.join(tmp, "cs")
    stem0, gt0, p0 = samples[0]
    d = os.path.join(tmp, "part")
    for stem, g, p in samples[1:]:
        png_write(os.path.join(d, stem + ".png"), TRAIN[p])
    rc, out, err = run("--pred", d, "--data", data, "--quiet")
    report("cli_missing_prediction", rc == 1 and "no prediction for " + stem0 in err, "rc %d: %s" % (rc, err))
    rc, out, err = run("--pred", d, "--data", data, "--skip-missing", "--json", os.path.join(tmp, "s.json"),
                       "--quiet")
    doc = json.load(open(os.path.join(tmp, "s.json"))) if rc == 0 else {}
    report("cli_skip_missing", rc == 0 and "1 sample skipped" in err and doc.get("images") == 5
           and doc["protocol"]["skipped"] == 1, "rc %d: %s" % (rc, err))
    png_write(os.path.join(d, "again", "v2_" + samples[1][0] + ".png"), TRAIN[samples[1][2]])
    rc, out, err = run("--pred", d, "--data", data, "--skip-missing", "--quiet")
    report("cli_duplicate_stem", rc == 1 and "two predictions for " + samples[1][0] in err, "rc %d: %s" % (rc, err))
    rc, out, err = run("--data", data)
    report("cli_usage_exit_2", rc == 2 and "usage" in err, "rc %d" % rc)
    rc, out, err = run("--help")
    report("cli_help_exit_0", rc == 0 and "--labelids" in out, "rc %d" % rc)
    rc, out, err = run("--model", "x.safetensors", "--data", data)
    report("cli_model_missing_file", rc == 1 and "x.safetensors" in err, "rc %d: %s" % (rc, err))


def test_upsample_vs_torch():
    lib_path = os.path.join(BUILD, "libsegda.so")
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("SKIP upsample_argmax_vs_torch (no torch)")
        return
    if not os.path.exists(lib_path):
        print("SKIP upsample_argmax_vs_torch (no %s)" % lib_path)
        return
    lib = ctypes.CDLL(os.path.abspath(lib_path))
    f = lib.sd_upsample_argmax
    f.restype = ctypes.c_int
    f.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                  ctypes.c_bool, ctypes.c_void_p]
    rng = np.random.default_rng(5)
    for (c, h, w, oh, ow) in [(19, 13, 17, 64, 100), (19, 65, 129, 512, 1024), (3, 7, 5, 7, 5),
                              (5, 9, 11, 4, 6), (19, 1, 3, 5, 8)]:
        x = rng.standard_normal((c, h, w)).astype(np.float32)
        for ac in (True, False):
            ref = F.interpolate(torch.from_numpy(x)[None], size=(oh, ow), mode="bilinear",
                                align_corners=ac)[0].argmax(0).numpy().astype(np.uint8)
            out = np.zeros((oh, ow), np.uint8)
            st = f(x.ctypes.data, c, h, w, oh, ow, ac, out.ctypes.data)
            diff = int(np.count_nonzero(out != ref))
            report("upsample_argmax_vs_torch_%dx%dx%d_to_%dx%d_ac%d" % (c, h, w, oh, ow, ac),
                   st == 0 and diff == 0, "status %d, %d of %d pixels differ" % (st, diff, oh * ow))


def main():
    if not os.path.exists(BIN):
        print("SKIP eval_cli (no %s)" % BIN)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            samples = test_cli(tmp)
            test_cli_errors(tmp, samples)
    test_upsample_vs_torch()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
