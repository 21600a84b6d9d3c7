"""The op registry (src/core/ops.def) against the test registry and the
parity scripts: every op the library lists must be runnable by name through
the shim (tests/shim_ops.c), and checked against PyTorch by one of
tests/py/test_ops_*.py (a call naming it first). An op added
to the list without a parity test fails here."""
import ctypes
import glob
import os
import re
import sys

from segda_ct import lib, report, summary

lib.sdt_op_count.restype = ctypes.c_int
lib.sdt_op_name.argtypes = [ctypes.c_int]
lib.sdt_op_name.restype = ctypes.c_char_p
names = [lib.sdt_op_name(i).decode() for i in range(lib.sdt_op_count())]
report("registry has ops", len(names) > 30, "%d ops" % len(names))

here = os.path.dirname(os.path.abspath(__file__))
called = set()
for path in glob.glob(os.path.join(here, "test_ops_*.py")):
    src = open(path).read()
    # check_op("relu", ...), run("relu", ...), or a case helper such as
    # pool_case("avg_pool2d", ...) or `for kind in ("max_pool2d", ...)`
    called |= set(re.findall(r'\(\s*"(\w+)"', src))

for n in names:
    # an op the shim does not know fails with "unknown op"; any other outcome
    # (here: an argument error for the missing inputs) means it dispatches
    no_inputs = lib.sdt_forward(n.encode(), 0, None, None, None, None, None, 0, None, 0,
                                (ctypes.c_int * 1)(), (ctypes.c_int * 4)())
    msg = lib.sdt_errmsg().decode()
    report("shim runs %s" % n, "unknown op" not in msg, msg)
    report("parity test covers %s" % n, n in called, "no check_op(\"%s\", ...) in tests/py/test_ops_*.py" % n)

bogus = lib.sdt_forward(b"no_such_op", 0, None, None, None, None, None, 0, None, 0,
                        (ctypes.c_int * 1)(), (ctypes.c_int * 4)())
report("unknown op is an error", bogus != 0 and "unknown op" in lib.sdt_errmsg().decode())
sys.exit(summary())
