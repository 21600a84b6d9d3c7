"""Finding and loading libsegda's clean shared library (the flat API of
include/segda/api.h) with ctypes, the argument types of every entry point,
and the exception that carries segda's message (sd_errmsg)."""
import ctypes
import ctypes.util
import glob
import os

_P = ctypes.POINTER
_u8p = _P(ctypes.c_uint8)
_u64p = _P(ctypes.c_uint64)
_f32p = _P(ctypes.c_float)
_f64p = _P(ctypes.c_double)
_i = ctypes.c_int
_b = ctypes.c_bool
_s = ctypes.c_char_p
_vp = ctypes.c_void_p

_STATUS = ["ok", "bad argument", "shape", "i/o", "format", "data", "out of memory", "numeric",
           "unsupported", "interrupted"]


class SegdaError(RuntimeError):
    """A failed libsegda call. str(e) is segda's message (the file, the
    value, the reason); e.status is the sd_status code, e.kind its name."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.kind = _STATUS[status] if 0 <= status < len(_STATUS) else str(status)


PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, _vp, ctypes.c_int64, ctypes.c_int64, _i, _P(_s), _f64p)
# sd_api_demo_fn: ctx, kind, text, name, seed, miou, seconds, it, iters, n_terms, names, values
DEMO_FN = ctypes.CFUNCTYPE(ctypes.c_int, _vp, _i, _s, _s, _i, ctypes.c_double, ctypes.c_double, ctypes.c_int64,
                           ctypes.c_int64, _i, _P(_s), _f64p)


def _candidates():
    """Where the library may be, in order: $SEGDA_LIB (a file), the copy
    `pip install` put beside this package, the repository's build tree
    ($SEGDA_BUILD, default build) when the package runs from python/ in a
    checkout, then the system's (make install)."""
    env = os.environ.get("SEGDA_LIB")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield from sorted(glob.glob(os.path.join(here, "libsegda.so*")))
    root = os.path.dirname(os.path.dirname(here))
    build = os.environ.get("SEGDA_BUILD", "build")
    if not os.path.isabs(build):
        build = os.path.join(root, build)
    yield os.path.join(build, "lib", "libsegda.so")
    found = ctypes.util.find_library("segda")
    if found:
        yield found


def _load():
    # libgomp reads the wait policy once, when it loads: spinning workers
    # stall everything else on a shared machine (the CLI sets the same).
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    tried = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            tried.append(path + " (absent)")
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError("segda: libsegda not found; build it (make) or set SEGDA_LIB to libsegda.so. Tried: "
                      + "; ".join(tried))


lib = _load()


def _sig(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


_sig("sd_errmsg", _s)
_sig("sd_error_clear", None)
_sig("sd_version", _s)
_sig("sd_api_free", None, _vp)
_sig("sd_set_threads", None, _i)
_sig("sd_threads", _i)
_sig("sd_api_set_precision", _i, _s)
_sig("sd_api_precision", _s)
_sig("sd_predictor_open", _i, _s, _b, _P(_vp))
_sig("sd_predictor_free", None, _vp)
_sig("sd_predictor_classes", _i, _vp)
_sig("sd_predictor_model_name", _s, _vp)
_sig("sd_predictor_set_options", _i, _vp, _i, _i, _i, _f32p, _b, _i, _i, ctypes.c_float, _b)
_sig("sd_predictor_run", _i, _vp, _u8p, _i, _i, _i, _f32p, _u8p)
_sig("sd_api_image_read", _i, _s, _b, _P(_u8p), _P(_i), _P(_i), _P(_i))
_sig("sd_api_confusion_add", _i, _u64p, _u64p, _u8p, _u8p, _i, _i, _b, _s)
_sig("sd_api_protocol_count", ctypes.c_int)
_sig("sd_api_eval_compute", None, _u64p, ctypes.c_uint64, _f64p, _f64p, _f64p, _f64p)
_sig("sd_api_dataset_open", _i, _s, _s, _P(_vp))
_sig("sd_api_dataset_free", None, _vp)
_sig("sd_api_dataset_size", _i, _vp)
_sig("sd_api_dataset_has_labels", _b, _vp)
_sig("sd_api_dataset_stem", _s, _vp, _i)
_sig("sd_api_dataset_image_path", _s, _vp, _i)
_sig("sd_api_dataset_read", _i, _vp, _i, _P(_u8p), _P(_i), _P(_i), _P(_u8p), _P(_i), _P(_i))
_sig("sd_api_eval_folder", _i, _vp, _s, _b, _b, _u64p, _u64p, _P(ctypes.c_int64), _P(ctypes.c_int64))
_sig("sd_api_train", _i, _i, _P(_s), _P(_s), PROGRESS_FN, _vp, _f64p, _f64p)
_sig("sd_api_demo", _i, _i, _P(_s), _P(_s), DEMO_FN, _vp)


def check(status):
    """Raises SegdaError with segda's message for a nonzero sd_status."""
    if status:
        msg = lib.sd_errmsg().decode("utf-8", "replace") or "failed"
        lib.sd_error_clear()
        raise SegdaError(status, msg)


def enc(s):
    return None if s is None else os.fsencode(s)
