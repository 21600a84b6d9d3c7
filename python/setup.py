"""Builds libsegda's clean shared library and ships it inside the package.

`pip install ./python` (from a checkout) runs `make build/lib/libsegda.so`
in the repository above this folder, unless $SEGDA_LIB names an existing
libsegda.so (then that file is copied); the copy lands in segda/ as
libsegda.so.0, where segda/_lib.py looks first. The wheel is platform
specific because of it."""
import os
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _library():
    lib = os.environ.get("SEGDA_LIB")
    if lib:
        if not os.path.exists(lib):
            raise SystemExit("segda: SEGDA_LIB=%s does not exist" % lib)
        return lib
    if not os.path.exists(os.path.join(ROOT, "Makefile")):
        raise SystemExit("segda: no libsegda to package: build from the repository checkout (pip install ./python "
                         "from its root) or set SEGDA_LIB to a built libsegda.so")
    build = os.environ.get("SEGDA_BUILD", "build")
    jobs = os.environ.get("SEGDA_JOBS", "2")
    subprocess.run(["make", "-C", ROOT, "-j" + jobs, "BUILD=" + build, build + "/lib/libsegda.so"], check=True)
    return os.path.join(ROOT if not os.path.isabs(build) else "", build, "lib", "libsegda.so")


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        src = os.path.realpath(_library())
        dst = os.path.join(self.build_lib, "segda", "libsegda.so.0")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
