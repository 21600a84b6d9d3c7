"""segda from Python: checkpoints, prediction on numpy arrays, evaluation
of prediction arrays, datasets by spec, and training and the demo
in-process, over
libsegda's flat C API (include/segda/api.h) through ctypes.

    import segda
    m = segda.load("runs/src/best.safetensors")
    ids = m.predict(rgb)                 # HxWx3 uint8 -> HxW uint8 trainIds
    probs = m.probabilities(rgb)         # -> 19xHxW float32
    ds = segda.Dataset("cityscapes:bench-data/real:val")
    img, label = ds[0]
    print(segda.evaluate([ids], [label])["miou_19"])

Every failure of the library raises segda.SegdaError carrying segda's own
message (the file, the value, the reason); bad arrays raise TypeError
(dtype) or ValueError (shape) before the library is called.
"""
import ctypes
import json
import math
import os

import numpy as np

from ._lib import DEMO_FN, PROGRESS_FN, SegdaError, check, enc, lib

__all__ = ["SegdaError", "Model", "load", "read_image", "Confusion", "evaluate", "evaluate_folder", "Dataset", "train", "demo",
           "set_threads", "threads", "set_precision", "precision", "version", "CLASS_NAMES"]

CLASS_NAMES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
               "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
               "bicycle")
NUM_CLASSES = 19
_EVAL_COLS = NUM_CLASSES + 1

_u8p = ctypes.POINTER(ctypes.c_uint8)
_f32p = ctypes.POINTER(ctypes.c_float)


def version():
    """The version of the libsegda that was loaded."""
    return lib.sd_version().decode()


__version__ = version()


def set_threads(n):
    """CPU threads of later calls (0 = all cores), as --threads."""
    lib.sd_set_threads(int(n))


def threads():
    return lib.sd_threads()


def set_precision(p):
    """Compute precision of later predictions and runs: "f32", "bf16" or
    "bf16-emulated" (as --precision). bf16 on a CPU without native support
    raises SegdaError (unsupported) and the precision stays f32."""
    check(lib.sd_api_set_precision(enc(p)))


def precision():
    return lib.sd_api_precision().decode()


def _image_array(image, what="image"):
    """A C-contiguous HxWxC uint8 array (C 1, 3 or 4; HxW grey allowed)."""
    if not isinstance(image, np.ndarray):
        raise TypeError("%s: expected a numpy array of dtype uint8 (HxWx3 RGB), got %s"
                        % (what, type(image).__name__))
    if image.dtype != np.uint8:
        raise TypeError("%s: expected dtype uint8 (HxWx3 RGB, 0..255), got %s" % (what, image.dtype))
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError("%s: expected shape HxWx3 (or HxW, HxWx1, HxWx4), got %s" % (what, image.shape))
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ValueError("%s: %dx%d pixels, at least 8x8 needed" % (what, image.shape[1], image.shape[0]))
    return np.ascontiguousarray(image)


def _size(v, what):
    """None, (W, H) or "WxH" -> (w, h); 0, 0 for None."""
    if v is None:
        return 0, 0
    if isinstance(v, str):
        parts = v.lower().split("x")
        if len(parts) != 2:
            raise ValueError("%s '%s': expected 'WxH' or (W, H)" % (what, v))
        v = parts
    try:
        w, h = (int(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError("%s %r: expected 'WxH' or (W, H)" % (what, v)) from None
    return w, h


class Model:
    """A checkpoint loaded for prediction (the model, classes and input
    normalisation come from its metadata). Options are those of `segda
    predict`: size (W, H) or "WxH" the network input, flip, scales, window
    (W, H) for sliding windows, overlap, align_corners, precision."""

    def __init__(self, path, strict=False):
        h = ctypes.c_void_p()
        check(lib.sd_predictor_open(enc(str(path)), bool(strict), ctypes.byref(h)))
        self._h = h
        self.path = str(path)
        self.classes = lib.sd_predictor_classes(h)
        self.name = lib.sd_predictor_model_name(h).decode()

    def close(self):
        # also runs from __del__, possibly while the interpreter shuts down
        h, self._h = getattr(self, "_h", None), None
        if h and lib is not None:
            lib.sd_predictor_free(h)

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "segda.Model(%r, model=%s, classes=%d)" % (self.path, self.name, self.classes)

    def _run(self, image, want_probs, want_ids, size=None, flip=False, scales=None, window=None,
             overlap=1.0 / 3.0, align_corners=True, precision=None):
        if not self._h:
            raise ValueError("segda.Model: closed")
        img = _image_array(image)
        nw, nh = _size(size, "size")
        ww, wh = _size(window, "window")
        sc = [float(s) for s in (scales or [])]
        scarr = (ctypes.c_float * max(1, len(sc)))(*sc)
        check(lib.sd_predictor_set_options(self._h, nw, nh, len(sc), scarr, bool(flip), ww, wh,
                                           float(overlap), bool(align_corners)))
        h, w, c = img.shape
        probs = np.empty((self.classes, h, w), np.float32) if want_probs else None
        ids = np.empty((h, w), np.uint8) if want_ids else None
        old = None
        if precision is not None:
            old = lib.sd_api_precision()
            set_precision(precision)
        try:
            check(lib.sd_predictor_run(self._h, img.ctypes.data_as(_u8p), w, h, c,
                                       probs.ctypes.data_as(_f32p) if want_probs else None,
                                       ids.ctypes.data_as(_u8p) if want_ids else None))
        finally:
            if old is not None:
                lib.sd_api_set_precision(old)
        return ids, probs

    def predict(self, image, **opts):
        """HxWx3 uint8 RGB -> HxW uint8 trainIds (0..18), as `segda
        predict` writes NAME_trainIds.png."""
        return self._run(image, False, True, **opts)[0]

    def probabilities(self, image, **opts):
        """HxWx3 uint8 RGB -> classes x H x W float32 softmax probabilities
        at the image's resolution (averaged over flips and scales)."""
        return self._run(image, True, False, **opts)[1]

    def predict_with_probabilities(self, image, **opts):
        """(trainIds HxW uint8, probabilities CxHxW float32) in one pass."""
        return self._run(image, True, True, **opts)


def load(path, strict=False):
    """Loads a checkpoint (.safetensors written by segda or converted)."""
    return Model(path, strict)


def _take(ptr, shape):
    """Copies a malloc'd buffer from the library into numpy and frees it."""
    n = int(np.prod(shape))
    try:
        return np.ctypeslib.as_array(ptr, shape=(n,)).copy().reshape(shape)
    finally:
        lib.sd_api_free(ptr)


def read_image(path, keep_palette=False):
    """A PNG/JPEG as HxWxC uint8 (16-bit samples keep their high byte, as
    segda predict reads them; palette PNGs as indices with keep_palette)."""
    px, w, h, c = _u8p(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    check(lib.sd_api_image_read(enc(str(path)), bool(keep_palette), ctypes.byref(px), ctypes.byref(w),
                                ctypes.byref(h), ctypes.byref(c)))
    a = _take(px, (h.value, w.value, c.value))
    return a


def _label_array(a, what):
    if not isinstance(a, np.ndarray):
        raise TypeError("%s: expected a numpy array of dtype uint8, got %s" % (what, type(a).__name__))
    if a.dtype != np.uint8:
        raise TypeError("%s: expected dtype uint8 (trainIds 0..18, 255), got %s" % (what, a.dtype))
    if a.ndim != 2:
        raise ValueError("%s: expected shape HxW, got %s" % (what, a.shape))
    return np.ascontiguousarray(a)


class Confusion:
    """The official Cityscapes evaluator's confusion matrix (eval.h): rows
    are ground-truth trainIds, columns predicted trainIds plus one column
    for predictions of a class that is not evaluated."""

    def __init__(self):
        self.counts = np.zeros((NUM_CLASSES, _EVAL_COLS), np.uint64)
        self.ignored = ctypes.c_uint64(0)
        self.images = 0

    def add(self, pred, gt, label_ids=False, name=None):
        """pred: HxW uint8 trainIds (255 = no class), or Cityscapes label
        ids with label_ids; gt: HxW uint8 trainIds (255 ignored)."""
        pred = _label_array(pred, "prediction")
        gt = _label_array(gt, "ground truth")
        if pred.shape != gt.shape:
            raise ValueError("prediction %s and ground truth %s differ in shape%s"
                             % (pred.shape, gt.shape, " (%s)" % name if name else ""))
        h, w = gt.shape
        check(lib.sd_api_confusion_add(self.counts.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64)),
                                       ctypes.byref(self.ignored), gt.ctypes.data_as(_u8p),
                                       pred.ctypes.data_as(_u8p), w, h, bool(label_ids),
                                       enc(name or "prediction %d" % self.images)))
        self.images += 1
        return self

    def result(self):
        """{"class_iou": {name: IoU}, "miou_19", "miou_16", "miou_13",
        "pixel_accuracy", "mean_accuracy", "images"}: fractions, None for
        an absent class (as the official tool's NaN)."""
        iou = np.zeros(NUM_CLASSES, np.float64)
        miou = np.zeros(lib.sd_api_protocol_count(), np.float64)   # one per protocol, as the library has them
        pa, ma = ctypes.c_double(), ctypes.c_double()
        d = ctypes.POINTER(ctypes.c_double)
        lib.sd_api_eval_compute(self.counts.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64)), self.ignored.value,
                                iou.ctypes.data_as(d), miou.ctypes.data_as(d), ctypes.byref(pa), ctypes.byref(ma))

        def num(x):
            return None if math.isnan(x) else float(x)
        return {"class_iou": {n: num(v) for n, v in zip(CLASS_NAMES, iou)},
                "miou_19": num(miou[0]), "miou_16": num(miou[1]), "miou_13": num(miou[2]),
                "pixel_accuracy": num(pa.value), "mean_accuracy": num(ma.value), "images": self.images}


def evaluate(preds, gts, label_ids=False):
    """Scores prediction arrays against ground-truth arrays (pairs of HxW
    uint8) with one confusion matrix over all of them, as `segda eval`."""
    cm = Confusion()
    preds, gts = list(preds), list(gts)
    if len(preds) != len(gts):
        raise ValueError("%d predictions for %d ground-truth arrays" % (len(preds), len(gts)))
    for i, (p, g) in enumerate(zip(preds, gts)):
        cm.add(p, g, label_ids, name="pair %d" % i)
    r = cm.result()
    r["confusion"] = cm.counts.copy()
    return r


def evaluate_folder(pred_dir, spec, split=None, label_ids=False, skip_missing=False):
    """Scores the prediction PNGs under pred_dir (as `segda predict` writes
    them, or the Cityscapes test server takes them with label_ids) against
    the dataset `spec`, as `segda eval --pred DIR --data SPEC` does."""
    with Dataset(spec, split) as ds:
        cm = Confusion()
        n, skipped = ctypes.c_int64(), ctypes.c_int64()
        check(lib.sd_api_eval_folder(ds._h, enc(str(pred_dir)), bool(label_ids), bool(skip_missing),
                                     cm.counts.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64)),
                                     ctypes.byref(cm.ignored), ctypes.byref(n), ctypes.byref(skipped)))
        cm.images = n.value
        r = cm.result()
        r["confusion"] = cm.counts.copy()
        r["skipped"] = skipped.value
        return r


class Dataset:
    """A dataset by spec as segda reads it (gta5:ROOT, synthia:ROOT,
    cityscapes:ROOT[:SPLIT], folder:ROOT): ds[i] is (image HxWx3 uint8 RGB,
    label HxW uint8 trainIds or None), each at its stored size."""

    def __init__(self, spec, split=None):
        h = ctypes.c_void_p()
        check(lib.sd_api_dataset_open(enc(spec), enc(split), ctypes.byref(h)))
        self._h = h
        self.spec = spec
        self.has_labels = lib.sd_api_dataset_has_labels(h)

    def close(self):
        h, self._h = getattr(self, "_h", None), None
        if h and lib is not None:
            lib.sd_api_dataset_free(h)

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self):
        return lib.sd_api_dataset_size(self._h)

    def _index(self, i):
        n = len(self)
        if not isinstance(i, (int, np.integer)):
            raise TypeError("dataset index must be an integer, got %s" % type(i).__name__)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("%s: sample %d out of range (%d samples)" % (self.spec, i, n))
        return int(i)

    def stem(self, i):
        return lib.sd_api_dataset_stem(self._h, self._index(i)).decode()

    def image_path(self, i):
        return lib.sd_api_dataset_image_path(self._h, self._index(i)).decode()

    def __getitem__(self, i):
        i = self._index(i)
        img, lab = _u8p(), _u8p()
        w, h, lw, lh = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        check(lib.sd_api_dataset_read(self._h, i, ctypes.byref(img), ctypes.byref(w), ctypes.byref(h),
                                      ctypes.byref(lab), ctypes.byref(lw), ctypes.byref(lh)))
        image = _take(img, (h.value, w.value, 3))
        label = _take(lab, (lh.value, lw.value)) if lab else None
        return image, label

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


def _config_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


def train(config, progress=None):
    """Runs `segda train` in this process. config: {"method": "source-only",
    "source": "gta5:...", "target": "cityscapes:...", "model":
    "deeplab-mini", "out": RUNDIR, "iters": 100, "crop": "256x128", ...}:
    the options of `segda train --help` without dashes (True/False for
    flags, lists for pairs such as batch). progress(it, iters, losses) is
    called after every iteration (losses a dict of this iteration's terms);
    returning True stops the run cleanly (state saved, SegdaError
    "interrupted"). An exception in progress (Ctrl-C included) stops the
    run the same way and is raised again. {"resume": True, "out": RUNDIR}
    continues a stopped run from RUNDIR/config.txt. Returns {"best_miou",
    "final_miou", "out"} (None where the run did not evaluate)."""
    keys = [str(k).replace("_", "-") for k in config]
    vals = [_config_value(config[k]) for k in config]
    ck = (ctypes.c_char_p * max(1, len(keys)))(*[k.encode() for k in keys])
    cv = (ctypes.c_char_p * max(1, len(vals)))(*[v.encode() for v in vals])
    raised = []

    def hook(ctx, it, iters, n, names, values):
        try:
            losses = {names[i].decode(): values[i] for i in range(n)}
            return 1 if progress(int(it), int(iters), losses) else 0
        except BaseException as e:  # noqa: B902 -- carried across the C frames, raised below
            raised.append(e)
            return 1

    cb = PROGRESS_FN(hook) if progress else PROGRESS_FN()
    best, final = ctypes.c_double(), ctypes.c_double()
    st = lib.sd_api_train(len(keys), ck, cv, cb, None, ctypes.byref(best), ctypes.byref(final))
    if raised:
        lib.sd_error_clear()
        raise raised[0]
    check(st)

    def num(x):
        return None if math.isnan(x) else float(x)
    return {"best_miou": num(best.value), "final_miou": num(final.value), "out": config.get("out")}


DEMO_EVENTS = ("note", "start", "done", "kept", "failed", "skipped", "iter", "table")


def demo(options=None, progress=None, **kw):
    """Runs `segda demo` in this process (the library's sd_demo_run with its
    in-process runner: one run after another, each on `threads` threads),
    from a dict and/or keyword options: the flags of `segda demo --help`
    without dashes ("out", "full", "methods", "rows", "seeds", "iters",
    "adapt_iters", "pretrain_iters", "lr", "adapt_lr", "jobs", "threads",
    "no_gap", "resume", "precision", "device", "det_iters",
    "simple_scenes"); True/False for flags, lists
    for methods/rows. progress(event) is called with a dict per event:
    "kind" (note, start, done, kept, failed, skipped, iter, table), "text"
    (the line segda demo prints), "name", "seed", "miou" and "seconds"
    (finished training runs), and for "iter" the "it", "iters" and
    "losses" of an iteration; returning True stops the demo (SegdaError
    "interrupted"), an exception in it stops it and is raised again.
    Returns the rows of OUT/results.json (a list of dicts). A bad option
    raises SegdaError naming it; a failed run raises SegdaError after the
    report was written without it."""
    opts = dict(options or {})
    opts.update(kw)
    keys = [str(k).replace("_", "-") for k in opts]
    vals = [_config_value(opts[k]) for k in opts]
    ck = (ctypes.c_char_p * max(1, len(keys)))(*[k.encode() for k in keys])
    cv = (ctypes.c_char_p * max(1, len(vals)))(*[os.fsencode(v) for v in vals])
    raised = []

    def hook(ctx, kind, text, name, seed, miou, seconds, it, iters, n, names, values):
        try:
            ev = {"kind": DEMO_EVENTS[kind] if 0 <= kind < len(DEMO_EVENTS) else str(kind),
                  "text": text.decode("utf-8", "replace") if text else "",
                  "name": name.decode() if name else None, "seed": int(seed),
                  "miou": None if math.isnan(miou) else float(miou),
                  "seconds": None if math.isnan(seconds) else float(seconds)}
            if ev["kind"] == "iter":
                ev.update(it=int(it), iters=int(iters), losses={names[i].decode(): values[i] for i in range(n)})
            return 1 if progress(ev) else 0
        except BaseException as e:  # noqa: B902 -- carried across the C frames, raised below
            raised.append(e)
            return 1

    cb = DEMO_FN(hook) if progress else DEMO_FN()
    st = lib.sd_api_demo(len(keys), ck, cv, cb, None)
    if raised:
        lib.sd_error_clear()
        raise raised[0]
    check(st)
    with open(os.path.join(opts.get("out", "demo-out"), "results.json")) as f:
        return json.load(f)
