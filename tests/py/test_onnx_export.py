"""`segda export --onnx` against ONNX Runtime: for each model kind
(deeplab-mini, DeepLab-v2 ResNet-18 and VGG-16, DeepLab-v3 ResNet-50,
PSPNet ResNet-50) a checkpoint with random weights and random BN running
statistics is exported at 96x96, passes onnx.checker (full check, with
shape inference), and ONNX Runtime's logits on a random input equal segda's
(sd_shim_model_run in eval mode) within max|diff| <= 1e-4 * max|segda|.
PSPNet at 64x64 (an 8x8 feature map, pooled to 3x3 and 6x6 with unequal
windows) fails naming adaptive_avg_pool2d and writes nothing.

ONNX Runtime comes from PyPI in a venv: $SEGDA_ORT_PYTHON, else
$SEGDA_ORT_VENV (default /tmp/ortvenv)/bin/python, created with python3 -m venv
and pip install onnxruntime numpy when missing (`make test` does it first,
through tools/deps.sh onnxruntime); where it cannot be installed (offline) the ORT
comparison prints one SKIP line and the rest still runs. Prints PASS/FAIL."""
import ctypes
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import onnx

_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_build = os.environ.get("SEGDA_BUILD", "build")
_build = _build if os.path.isabs(_build) else os.path.join(_root, _build)
SEGDA = os.path.join(_build, "segda")
lib = ctypes.CDLL(os.path.join(_build, "libsegda.so"))
VENV = os.environ.get("SEGDA_ORT_VENV", "/tmp/ortvenv")
failed = 0


class Opts(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("classes", ctypes.c_int), ("bn", ctypes.c_int),
                ("bn_keep_running", ctypes.c_bool), ("aux", ctypes.c_bool), ("aspp_two_branch", ctypes.c_bool),
                ("output_stride", ctypes.c_int)]


_P = ctypes.POINTER
_f = ctypes.c_float
_i = ctypes.c_int
lib.sd_model_opts_default.restype = Opts
lib.sd_model_opts_default.argtypes = [ctypes.c_char_p]
lib.sd_model_create.argtypes = [_P(Opts), _P(ctypes.c_void_p)]
lib.sd_model_init_weights.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
lib.sd_model_save.argtypes = [ctypes.c_void_p, _i, ctypes.c_char_p]
lib.sd_model_free.argtypes = [ctypes.c_void_p]
lib.sd_model_default_norm.argtypes = [ctypes.c_char_p]
lib.sd_errmsg.restype = ctypes.c_char_p
lib.sd_shim_model_run.argtypes = [ctypes.c_char_p, _i, _i, _i, _P(_f), _i, _P(ctypes.c_uint8), ctypes.c_char_p,
                                  _P(_f), _i, _P(_i), _P(_f), _i, _P(_f)]
lib.sd_shim_model_run.restype = _i


def report(ok, label, detail=""):
    global failed
    print(("PASS " if ok else "FAIL ") + label + (" " + detail if detail else ""))
    sys.stdout.flush()
    failed += not ok


def save_random(name, path, seed):
    bname = name.encode()   # (o.name points into it)
    o = lib.sd_model_opts_default(bname)
    m = ctypes.c_void_p()
    if lib.sd_model_create(ctypes.byref(o), ctypes.byref(m)):
        raise RuntimeError(lib.sd_errmsg().decode())
    lib.sd_model_init_weights(m, seed)
    st = lib.sd_model_save(m, lib.sd_model_default_norm(bname), path.encode())
    lib.sd_model_free(m)
    if st:
        raise RuntimeError(lib.sd_errmsg().decode())
    # random running statistics, so BatchNormalization's mean and variance matter
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = bytearray(f.read())
    rng = np.random.default_rng(seed)
    for k, v in head.items():
        if k == "__metadata__" or v["dtype"] != "F32" or not k.endswith(("running_mean", "running_var")):
            continue
        a, b = v["data_offsets"]
        cnt = (b - a) // 4
        vals = rng.uniform(0.5, 2.0, cnt) if k.endswith("var") else rng.normal(0, 0.2, cnt)
        data[a:b] = vals.astype("<f4").tobytes()
    with open(path, "r+b") as f:
        f.seek(8 + n)
        f.write(data)


def segda_logits(path, x):
    n, _, h, w = x.shape
    cap = 64 * 1024 * 1024
    out = np.zeros(cap // 64, np.float32)
    shape = (_i * 8)()
    loss = _f()
    rc = lib.sd_shim_model_run(path.encode(), n, h, w, np.ascontiguousarray(x).ctypes.data_as(_P(_f)), 0, None,
                               None, out.ctypes.data_as(_P(_f)), out.size, shape, None, 0, ctypes.byref(loss))
    if rc:
        raise RuntimeError(lib.sd_errmsg().decode())
    s = tuple(shape[:4])
    return out[:int(np.prod(s))].reshape(s)


def ort_python():
    """A python with onnxruntime, or (None, why)."""
    cands = [os.environ.get("SEGDA_ORT_PYTHON"), os.path.join(VENV, "bin", "python")]
    for py in cands:
        if py and os.path.exists(py) and subprocess.run([py, "-c", "import onnxruntime, numpy"],
                                                        capture_output=True).returncode == 0:
            return py, None
    try:
        if not os.path.exists(os.path.join(VENV, "bin", "python")):
            r = subprocess.run([sys.executable, "-m", "venv", VENV], capture_output=True, text=True, timeout=300)
            if r.returncode:
                return None, "python3 -m venv failed: " + r.stderr.strip()[-200:]
        r = subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", "onnxruntime", "numpy"],
                           capture_output=True, text=True, timeout=600)
        if r.returncode:
            return None, "pip install onnxruntime failed: " + r.stderr.strip().splitlines()[-1][-200:]
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    return os.path.join(VENV, "bin", "python"), None


ORT_RUN = """
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions()
so.intra_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
np.save(sys.argv[3], s.run(["logits"], {"input": np.load(sys.argv[2])})[0])
"""


def main():
    py, why = ort_python()
    if not py:
        print("SKIP onnx export vs ONNX Runtime: onnxruntime cannot be installed (%s)" % why)
    tmp = tempfile.mkdtemp(prefix="segda-onnx-")
    rng = np.random.default_rng(3)
    models = ["deeplab-mini", "deeplabv2-resnet18", "deeplabv2-vgg16", "deeplabv3-resnet50", "pspnet-resnet50"]
    for k, name in enumerate(models):
        ck = os.path.join(tmp, name + ".safetensors")
        ox = os.path.join(tmp, name + ".onnx")
        save_random(name, ck, 10 + k)
        r = subprocess.run([SEGDA, "export", "--onnx", ox, ck, "--size", "96x96"], capture_output=True, text=True)
        if r.returncode:
            report(False, "export " + name, r.stderr.strip())
            continue
        try:
            onnx.checker.check_model(onnx.load(ox), full_check=True)
            report(True, "onnx.checker " + name)
        except Exception as e:  # noqa: BLE001 (any checker complaint is a failure)
            report(False, "onnx.checker " + name, str(e)[:300])
        if not py:
            continue
        x = rng.normal(0, 1, (1, 3, 96, 96)).astype(np.float32)
        ref = segda_logits(ck, x)
        np.save(os.path.join(tmp, "x.npy"), x)
        r = subprocess.run([py, "-c", ORT_RUN, ox, os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")],
                           capture_output=True, text=True)
        if r.returncode:
            report(False, "onnxruntime " + name, r.stderr.strip()[-400:])
            continue
        y = np.load(os.path.join(tmp, "y.npy"))
        err = float(np.max(np.abs(y - ref)) / max(np.max(np.abs(ref)), 1e-12)) if y.shape == ref.shape else np.inf
        report(err <= 1e-4, "onnxruntime logits %s %s" % (name, "x".join(map(str, ref.shape))),
               "(max|diff| / max|segda| = %.1e, tol 1e-4; shapes %s %s)" % (err, y.shape, ref.shape))
        os.remove(ck)
        os.remove(ox)
    # PSPNet's 3x3 and 6x6 bins of an 8x8 map: unequal windows, no ONNX op
    ck = os.path.join(tmp, "psp.safetensors")
    ox = os.path.join(tmp, "psp64.onnx")
    save_random("pspnet-resnet50", ck, 99)
    r = subprocess.run([SEGDA, "export", "--onnx", ox, ck, "--size", "64x64"], capture_output=True, text=True)
    report(r.returncode == 1 and "adaptive_avg_pool2d" in r.stderr and not os.path.exists(ox)
           and not [f for f in os.listdir(tmp) if f.startswith("psp64")],
           "export pspnet at 64x64 fails naming adaptive_avg_pool2d, nothing written", r.stderr.strip())
    subprocess.run(["rm", "-rf", tmp])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
