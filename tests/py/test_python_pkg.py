"""The Python package (python/segda) against the command: predictions on
numpy arrays equal `segda predict` byte for byte (plain, flip + scales,
window), evaluation equals `segda eval`, datasets read as the CLI reads
them, train runs in-process with a progress callback, and bad input raises
clear exceptions. Uses $SEGDA_BUILD/lib/libsegda.so (the clean library, no
test shims) and $SEGDA_BIN. Prints PASS/FAIL lines for tests/run.sh."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
BIN = os.environ.get("SEGDA_BIN", "build/segda")
if not os.path.isabs(BIN):
    BIN = os.path.join(ROOT, BIN)

import segda  # noqa: E402

failed = 0


def report(ok, label, why=""):
    global failed
    print(("PASS %s" % label) if ok else ("FAIL %s: %s" % (label, why)))
    failed += not ok


def raises(exc, fn, *words):
    """fn() raises exc whose message contains every word."""
    try:
        fn()
    except exc as e:
        missing = [w for w in words if w not in str(e)]
        return (not missing, "message %r lacks %s" % (str(e), missing))
    except Exception as e:  # noqa: BLE001 -- the wrong exception is the failure reported
        return (False, "raised %s: %s" % (type(e).__name__, e))
    return (False, "nothing raised")


def check_raises(label, exc, fn, *words):
    ok, why = raises(exc, fn, *words)
    report(ok, label, why)


def sh(*args):
    return subprocess.run([BIN] + [str(a) for a in args], check=True, capture_output=True, text=True)


def main():
    tmp = tempfile.mkdtemp(prefix="segda-py-")
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


def run(tmp):
    b = os.path.join(tmp, "b")
    sh("synth", "--out", b, "--n-sim", 2, "--n-real", 2, "--n-real-val", 3, "--size", "64x32")
    out = os.path.join(tmp, "run")
    seen = []
    res = segda.train({"method": "source-only", "source": "gta5:" + b + "/sim",
                       "target": "cityscapes:" + b + "/real", "model": "deeplab-mini", "out": out,
                       "iters": 3, "crop": "64x32", "eval_every": 3},
                      progress=lambda it, iters, losses: seen.append((it, iters, sorted(losses))))
    report([s[:2] for s in seen] == [(1, 3), (2, 3), (3, 3)] and all("seg" in s[2] for s in seen),
           "train in-process calls progress once per iteration with the loss terms", repr(seen))
    ckpt = os.path.join(out, "best.safetensors")
    report(os.path.exists(ckpt) and res["best_miou"] is not None and 0 <= res["best_miou"] <= 1,
           "train in-process writes best.safetensors and returns its mIoU", repr(res))

    calls = []

    def stop_at_2(it, iters, losses):
        calls.append(it)
        return it == 2
    ok, why = raises(segda.SegdaError, lambda: segda.train(
        {"method": "source-only", "source": "gta5:" + b + "/sim", "target": "cityscapes:" + b + "/real",
         "model": "deeplab-mini", "out": os.path.join(tmp, "run2"), "iters": 5, "crop": "64x32"},
        progress=stop_at_2), "interrupted")
    report(ok and calls == [1, 2], "a progress callback returning True stops the run", why + repr(calls))
    calls.clear()
    segda.train({"resume": True, "out": os.path.join(tmp, "run2")}, progress=lambda it, iters, l: calls.append(it))
    report(calls == [3, 4, 5], "train resumes a stopped run from its directory alone", repr(calls))
    check_raises("an unknown config key raises naming it",
                 segda.SegdaError, lambda: segda.train({"method": "source-only", "lamda": 1}), "lamda")

    m = segda.load(ckpt)
    report(m.classes == 19 and m.name == "deeplab-mini", "load reads model and classes", repr(m))
    ds = segda.Dataset("cityscapes:" + b + "/real:val")
    report(len(ds) == 3, "dataset by spec has its samples", str(len(ds)))
    img, lab = ds[0]
    report(img.dtype == np.uint8 and img.shape == (32, 64, 3) and lab.shape == (32, 64) and lab.dtype == np.uint8,
           "dataset samples are (HxWx3 uint8, HxW uint8)", "%s %s" % (img.shape, lab.shape))
    report(np.array_equal(img, segda.read_image(ds.image_path(0))), "dataset image equals the file read")

    cases = [("plain", [], {}),
             ("flip + scales", ["--flip", "--scales", "0.75,1.25"], {"flip": True, "scales": [0.75, 1.25]}),
             ("size + window", ["--size", "96x48", "--window", "48x32", "--overlap", "0.5"],
              {"size": (96, 48), "window": "48x32", "overlap": 0.5})]
    imgdir = os.path.join(b, "real", "leftImg8bit", "val")
    for name, flags, kw in cases:
        pdir = os.path.join(tmp, "pred-" + name.replace(" ", ""))
        sh("predict", "--model", ckpt, "--input", imgdir, "--out", pdir, "--quiet", *flags)
        same, why = True, ""
        preds = []
        for i in range(len(ds)):
            image, _ = ds[i]
            ids = m.predict(image, **kw)
            preds.append(ids)
            rel = os.path.relpath(ds.image_path(i), imgdir)
            cli = segda.read_image(os.path.join(pdir, rel.replace(".png", "_trainIds.png")))[:, :, 0]
            if not np.array_equal(ids, cli):
                same, why = False, "%s: %d pixels differ" % (rel, int((ids != cli).sum()))
        report(same, "Python predict equals segda predict byte for byte (%s)" % name, why)
        probs = m.probabilities(ds[0][0], **kw)
        report(probs.dtype == np.float32 and probs.shape == (19, 32, 64)
               and np.allclose(probs.sum(0), 1, atol=1e-4) and np.array_equal(probs.argmax(0), preds[0]),
               "probabilities are 19xHxW float32 summing to 1, argmax = predict (%s)" % name)
        if name == "plain":
            js = os.path.join(tmp, "scores.json")
            sh("eval", "--pred", pdir, "--data", "cityscapes:" + b + "/real:val", "--json", js)
            cli_miou = json.load(open(js))["models"][0]["miou_19"]
            r = segda.evaluate(preds, [ds[i][1] for i in range(len(ds))])
            report(r["miou_19"] is not None and abs(r["miou_19"] - cli_miou) < 1e-12
                   and r["confusion"].sum() + 0 >= 0,
                   "evaluate on arrays equals segda eval on the PNGs", "%s vs %s" % (r["miou_19"], cli_miou))
            rf = segda.evaluate_folder(pdir, "cityscapes:" + b + "/real:val")
            report(rf["images"] == 3 and np.array_equal(rf["confusion"], r["confusion"])
                   and rf["miou_19"] == r["miou_19"], "evaluate_folder equals evaluate on the arrays", repr(rf["images"]))
            check_raises("evaluate_folder on a folder without predictions raises naming the missing one",
                         segda.SegdaError, lambda: segda.evaluate_folder(tmp + "/run", "cityscapes:" + b + "/real:val"),
                         "no prediction")

    # bad input: clear exceptions, nothing reaches the library
    check_raises("a float32 image raises TypeError naming the dtype",
                 TypeError, lambda: m.predict(img.astype(np.float32)), "uint8", "float32")
    check_raises("a 2-channel image raises ValueError naming the shape",
                 ValueError, lambda: m.predict(np.zeros((32, 64, 2), np.uint8)), "shape", "(32, 64, 2)")
    check_raises("a too small image raises ValueError",
                 ValueError, lambda: m.predict(np.zeros((4, 64, 3), np.uint8)), "8x8")
    check_raises("a list raises TypeError", TypeError, lambda: m.predict([[1, 2]]), "numpy")
    check_raises("a bad option raises SegdaError with segda's message",
                 segda.SegdaError, lambda: m.predict(img, scales=[9]), "scale 9")
    check_raises("evaluate with mismatched shapes raises",
                 ValueError, lambda: segda.evaluate([preds[0]], [lab[:16]]), "shape")
    check_raises("evaluate with an out-of-range trainId raises naming the value",
                 segda.SegdaError, lambda: segda.evaluate([np.full((32, 64), 40, np.uint8)], [lab]), "40")
    missing = os.path.join(tmp, "nope", "missing.safetensors")
    ok, why = raises(segda.SegdaError, lambda: segda.load(missing), missing)
    report(ok, "a missing checkpoint raises SegdaError naming the file", why)
    check_raises("a missing dataset raises naming the folder",
                 segda.SegdaError, lambda: segda.Dataset("gta5:" + os.path.join(tmp, "none")), "none")
    report(segda.version() == sh("--version").stdout.split()[1], "version equals segda --version")
    report(not hasattr(segda._lib.lib, "sdt_forward") and not hasattr(segda._lib.lib, "sdt_errmsg"),
           "the package's library carries no test shims", segda._lib.lib._name)
    pip_install(tmp)


def pip_install(tmp):
    """pip install ./python (offline: Debian's setuptools and wheel) into a
    folder, then use it from another directory without SEGDA_LIB/SEGDA_BUILD."""
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode:
        print("SKIP pip install ./python: no pip for %s (Debian python3-pip)" % sys.executable)
        return
    target = os.path.join(tmp, "site")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index",
                        "--disable-pip-version-check", "--target", target, os.path.join(ROOT, "python")],
                       capture_output=True, text=True)
    report(r.returncode == 0, "pip install ./python builds and installs the package", r.stderr[-2000:])
    env = {k: v for k, v in os.environ.items() if k not in ("SEGDA_LIB", "SEGDA_BUILD")}
    env["PYTHONPATH"] = target
    code = ("import segda, segda._lib as l, numpy as np; m = segda.load(%r); "
            "print(l.lib._name); print(m.predict(np.zeros((16, 16, 3), np.uint8)).shape)"
            % os.path.join(tmp, "run", "best.safetensors"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp, env=env)
    lines = r.stdout.split("\n")
    report(r.returncode == 0 and lines[0].startswith(target) and lines[1] == "(16, 16)",
           "the installed package loads its own library and predicts", r.stdout + r.stderr[-2000:])


if __name__ == "__main__":
    sys.exit(main())
