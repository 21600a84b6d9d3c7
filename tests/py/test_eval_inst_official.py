#!/usr/bin/env python3
"""`segda eval` iIoU and instance-level AP / AP50 against cityscapesScripts
itself (evalPixelLevelSemanticLabeling.evaluateImgLists with instance-level
scores; evalInstanceLevelSemanticLabeling's matchGtWithPreds,
evaluateMatches and computeAverages) on random Cityscapes-layout fixtures:
thing instances of all 8 classes, caravans (not evaluated), crowd regions,
void, instances under 100 pixels, jittered, duplicate, empty and false
instance predictions, predictions on crowds and void.

Needs cityscapesscripts (and the numpy and Pillow it brings). Without it in
this interpreter the script re-runs itself with $SEGDA_CS_VENV (default
/tmp/csvenv)/bin/python, the venv `make test` fills (tools/deps.sh
cityscapes: python3 -m venv /tmp/csvenv && /tmp/csvenv/bin/pip install
cityscapesscripts); without that either, it skips with a line saying so.
The average instance sizes of iIoU are scaled to the fixture's size on both
sides, as segda does (eval_inst.h)."""
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, os.environ.get("SEGDA_BIN", "build/segda"))

try:
    import numpy as np
    from PIL import Image
    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as EI
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as EP
    from cityscapesscripts.evaluation.instances2dict import instances2dict
except Exception as e:  # noqa: BLE001 - any import problem means "not installed here"
    venv_python = os.path.join(os.environ.get("SEGDA_CS_VENV", "/tmp/csvenv"), "bin", "python")
    if os.path.exists(venv_python) and not os.environ.get("SEGDA_CS_REEXEC"):
        sys.stdout.flush()
        os.environ["SEGDA_CS_REEXEC"] = "1"
        os.execv(venv_python, [venv_python] + sys.argv)
    print("SKIP eval_inst_official (no cityscapesscripts for %s: %s)" % (sys.executable, e))
    sys.exit(0)

if not hasattr(np, "in1d"):  # removed in numpy 2.4; the official scripts still call it
    np.in1d = lambda a, b, invert=False: np.isin(np.ravel(a), b, invert=invert)

W, H = 256, 128
THING_IDS = [24, 25, 26, 27, 28, 31, 32, 33]
TRAIN = {7: 0, 8: 1, 11: 2, 21: 8, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
failed = False


def report(name, ok, why=""):
    global failed
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + why))
    sys.stdout.flush()
    failed |= not ok


def make_image(rng):
    gt = np.full((H, W), 7, np.uint16)
    gt[: H // 3] = 23
    gt[H // 3: H // 2, : W // 2] = 11
    gt[H // 3: H // 2, W // 2:] = 21
    gt[rng.integers(0, H - 10), :] = 0                                  # a void stripe
    gt[H - 8:, : W // 4] = 4                                            # void "static"
    k = {}
    objs = []
    for _ in range(rng.integers(4, 12)):
        lid = int(rng.choice(THING_IDS + [29, 26]))
        w, h = int(rng.integers(4, 50)), int(rng.integers(4, 40))
        x, y = int(rng.integers(0, W - w)), int(rng.integers(0, H - h))
        if rng.random() < 0.15:
            v = lid if lid != 29 else 26                                # a crowd region
        else:
            v = lid * 1000 + k.get(lid, 0)
            k[lid] = k.get(lid, 0) + 1
        gt[y:y + h, x:x + w] = v
        objs.append((v, x, y, w, h))
    return gt, objs


def make_preds(rng, gt, objs):
    """Instance predictions (labelId, score, mask) and a semantic labelId map."""
    preds = []
    for v, x, y, w, h in objs:
        lid = v // 1000 if v >= 1000 else v
        if lid == 29 or rng.random() < 0.15:
            continue
        for _ in range(1 + (rng.random() < 0.3)):                        # sometimes a duplicate
            m = np.zeros((H, W), np.uint8)
            dx, dy = rng.integers(-4, 5, 2)
            m[max(0, y + dy): y + dy + h, max(0, x + dx): x + dx + w] = 255
            plid = lid if rng.random() < 0.85 else int(rng.choice(THING_IDS))
            preds.append((plid, round(float(rng.random()), 4), m))
    for _ in range(rng.integers(0, 4)):                                  # false ones
        m = np.zeros((H, W), np.uint8)
        x, y = rng.integers(0, W - 20), rng.integers(0, H - 20)
        m[y:y + rng.integers(3, 20), x:x + rng.integers(3, 20)] = 255
        preds.append((int(rng.choice(THING_IDS)), round(float(rng.random()), 4), m))
    m = np.zeros((H, W), np.uint8)
    m[H - 8:, : W // 4 + 3] = 255                                        # mostly on void
    preds.append((26, 0.5, m))
    preds.append((26, 0.7, np.zeros((H, W), np.uint8)))                  # empty: passed over
    sem = np.where(gt >= 1000, gt // 1000, gt).astype(np.uint8)
    sem[sem == 29] = 26
    noise = rng.random((H, W)) < 0.1
    sem[noise] = rng.choice([7, 26, 24, 27, 0], size=int(noise.sum()))
    sem[:, : int(rng.integers(0, 30))] = 26                              # a band of false car
    return preds, sem


def main():
    if not os.path.exists(BIN):
        print("SKIP eval_inst_official (no %s)" % BIN)
        return 0
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as tmp:
        cs = os.path.join(tmp, "cs")
        os.makedirs(os.path.join(cs, "leftImg8bit/val/zz"))
        os.makedirs(os.path.join(cs, "gtFine/val/zz"))
        inst_dir, sem_dir = os.path.join(tmp, "inst"), os.path.join(tmp, "sem")
        os.makedirs(inst_dir)
        os.makedirs(sem_dir)
        gt_inst_files, gt_lab_files, pred_txts, sem_files = [], [], [], []
        for i in range(6):
            stem = "zz_000000_%06d" % i
            gt, objs = make_image(rng)
            lab = np.where(gt >= 1000, gt // 1000, gt).astype(np.uint8)
            Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(
                os.path.join(cs, "leftImg8bit/val/zz/%s_leftImg8bit.png" % stem))
            Image.fromarray(lab).save(os.path.join(cs, "gtFine/val/zz/%s_gtFine_labelIds.png" % stem))
            ip = os.path.join(cs, "gtFine/val/zz/%s_gtFine_instanceIds.png" % stem)
            Image.fromarray(gt.astype(np.uint16)).save(ip)
            gt_inst_files.append(ip)
            gt_lab_files.append(ip.replace("instanceIds", "labelIds"))
            preds, sem = make_preds(rng, gt, objs)
            txt = os.path.join(inst_dir, stem + ".txt")
            with open(txt, "w") as f:
                for j, (plid, score, m) in enumerate(preds):
                    name = "%s_%d.png" % (stem, j)
                    Image.fromarray(m).save(os.path.join(inst_dir, name))
                    f.write("%s %d %s\n" % (name, plid, score))
            pred_txts.append(txt)
            sp = os.path.join(sem_dir, stem + "_labelIds.png")
            Image.fromarray(sem).save(sp)
            sem_files.append(sp)
        # check that the 16-bit ids survived the round trip
        back = np.array(Image.open(gt_inst_files[0]))
        report("fixture_16bit", back.max() >= 24000, "max id %d" % back.max())

        out = subprocess.run([BIN, "eval", "--data", "cityscapes:%s:val" % cs, "--instances", inst_dir,
                              "--pred", sem_dir, "--labelids", "--quiet"], capture_output=True, text=True)
        report("segda_eval_runs", out.returncode == 0, out.stderr + out.stdout)
        text = out.stdout

        # official AP
        args = EI.args
        args.quiet = True
        args.JSONOutput = False
        args.predictionPath = os.path.abspath(inst_dir)
        args.gtInstancesFile = os.path.join(tmp, "gtInstances.json")
        EI.setInstanceLabels(args)
        gt_instances = instances2dict(gt_inst_files, False)
        matches = EI.matchGtWithPreds(pred_txts, gt_inst_files, gt_instances, args)
        ap = EI.evaluateMatches(matches, args)
        avg = EI.computeAverages(ap, args)
        for name in args.instLabels:
            m = re.search(r"^%-12s\s+(\S+)\s+(\S+)" % name, text, re.M)
            ref_ap, ref_50 = avg["classes"][name]["ap"], avg["classes"][name]["ap50%"]
            got = (float("nan") if m is None or m.group(1) == "-" else float(m.group(1)),
                   float("nan") if m is None or m.group(2) == "-" else float(m.group(2)))
            ok = all((np.isnan(r) and np.isnan(g)) or abs(r - g) <= 5e-4 for r, g in zip((ref_ap, ref_50), got))
            report("ap_%s (%.4f / %.4f)" % (name, ref_ap, ref_50), ok, "official %.4f / %.4f, segda %s" % (ref_ap, ref_50, got))
        m = re.search(r"^average\s+(\S+)\s+(\S+)", text, re.M)
        ok = m is not None and abs(float(m.group(1)) - avg["allAp"]) <= 5e-4 and \
            abs(float(m.group(2)) - avg["allAp50%"]) <= 5e-4
        report("ap_average", ok, "official %.4f / %.4f, segda %s" % (avg["allAp"], avg["allAp50%"],
                                                                     m.groups() if m else None))

        # official iIoU, average sizes scaled to the fixture as segda does
        pargs = EP.args
        pargs.quiet = True
        pargs.JSONOutput = False
        pargs.evalInstLevelScore = True
        scale = W * H / (2048.0 * 1024.0)
        pargs.avgClassSize = {k: v * scale for k, v in pargs.avgClassSize.items()}
        res = EP.evaluateImgLists(sem_files, gt_lab_files, pargs)
        m = re.search(r"^iIoU \(instance-weighted.*\n.*\n(.*)$", text, re.M)
        row = m.group(1).split()[1:] if m else []
        names = ["person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]
        for k, name in enumerate(names):
            ref = res["classInstScores"][name]
            got = float("nan") if k >= len(row) or row[k] == "-" else float(row[k]) / 100
            ok = (np.isnan(ref) and np.isnan(got)) or abs(ref - got) <= 5.1e-4
            report("iiou_%s (%.4f)" % (name, ref), ok, "official %.4f, segda %s" % (ref, got))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
