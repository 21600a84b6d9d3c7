#!/usr/bin/env bash
# Installs the Debian packages segda builds and tests with, when missing.
# Runtime: oneDNN (convolutions), OpenBLAS, libpng, libjpeg-turbo, liblinear,
# libsvm, FFTW3 (FDA's spectra), LAPACKE (the gap tool's PCA, over
# OpenBLAS's LAPACK), FFmpeg's libavformat/libavcodec/libswscale/libavutil
# (video in `segda predict`; optional at build time).
# Test-only: python3-torch, python3-torchvision and python3-numpy (PyTorch and
# torchvision parity checks);
# python3-pip, python3-setuptools and python3-wheel (`pip install ./python`
# offline in tests/py/test_python_pkg.py); pkg-config (tests/test_install.sh).
# `tools/deps.sh fuzz` adds what `make fuzz` needs: clang, its libFuzzer and
# sanitizer runtimes, and its OpenMP runtime (the default clang's versions).
# `tools/deps.sh onnxruntime` adds python3-venv and python3-onnx, and PyPI's
# onnxruntime + numpy in a venv ($SEGDA_ORT_VENV, default /tmp/ortvenv) for
# tests/py/test_onnx_export.py (test-only; `make test` asks for it; offline,
# the test skips its ONNX Runtime comparison with a line saying so).
# `tools/deps.sh cityscapes` adds python3-venv and PyPI's cityscapesscripts
# (with its numpy and Pillow) in a venv ($SEGDA_CS_VENV, default /tmp/csvenv)
# for tests/py/test_eval_inst_official.py, which scores iIoU and instance AP
# with the official scripts themselves (test-only; `make test` asks for it;
# offline, that test skips with a line saying so).
# `tools/deps.sh mpi` adds Open MPI (data-parallel training under mpirun;
# `make test` asks for it so that tests/test_dist.c runs).
# `tools/deps.sh cuda` adds what the CUDA backend builds with (never in the
# default path): Debian's nvidia-cuda-toolkit (non-free) and nvidia-cudnn
# (contrib; it downloads cuDNN from NVIDIA), both needing those components in
# the apt sources. Nothing is installed when CUDA_HOME (default /usr/local/cuda)
# already has nvcc and cudnn.h. NVIDIA's own apt repository names them
# cuda-toolkit-13 (or cuda-toolkit-12-x) and cudnn9-cuda-13 (cudnn9-cuda-12);
# on PyPI the runtime libraries are nvidia-cuda-runtime, nvidia-cublas and
# nvidia-cudnn-cu13 (nvidia-cudnn-cu12), without nvcc. A GPU and its driver
# are the user's. NCCL (data-parallel runs on GPUs; built when nccl.h and
# libnccl are found and MPI is) is NVIDIA's libnccl-dev + libnccl2 (apt),
# Debian's libnccl-dev (non-free), or PyPI's nvidia-nccl-cu12/-cu13 (library
# and header); `tools/deps.sh cuda` does not install it.
set -eu
pkgs=(build-essential libdnnl-dev libopenblas-dev libpng-dev libjpeg62-turbo-dev liblinear-dev libsvm-dev
      libfftw3-dev liblapacke-dev libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
      python3-torch python3-torchvision python3-numpy python3-pip python3-setuptools python3-wheel pkg-config)
for group in "$@"; do
  case $group in
    fuzz) pkgs+=(clang libclang-rt-dev libomp-dev) ;;
    mpi) pkgs+=(libopenmpi-dev openmpi-bin) ;;
    onnxruntime) pkgs+=(python3-venv python3-onnx); ort_venv=${SEGDA_ORT_VENV:-/tmp/ortvenv} ;;
    cityscapes) pkgs+=(python3-venv); cs_venv=${SEGDA_CS_VENV:-/tmp/csvenv} ;;
    cuda)
      cuda_home=${CUDA_HOME:-/usr/local/cuda}
      if [ -x "$cuda_home/bin/nvcc" ] && [ -f "$cuda_home/include/cudnn.h" ]; then
        echo "deps: cuda: $cuda_home has nvcc and cudnn.h"
      else
        pkgs+=(nvidia-cuda-toolkit nvidia-cudnn)
      fi ;;
    *) echo "deps: unknown group '$group' (known: fuzz, mpi, cuda, onnxruntime, cityscapes)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
echo "deps: installing ${missing[*]}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ -n "${ort_venv:-}" ] && ! "$ort_venv/bin/python" -c "import onnxruntime, numpy" 2>/dev/null; then
  echo "deps: onnxruntime and numpy from PyPI into the venv $ort_venv (test-only)"
  { python3 -m venv "$ort_venv" && "$ort_venv/bin/pip" install -q onnxruntime numpy; } ||
    echo "deps: onnxruntime could not be installed; tests/py/test_onnx_export.py will skip its ONNX Runtime comparison" >&2
fi
if [ -n "${cs_venv:-}" ] && ! "$cs_venv/bin/python" -c "import cityscapesscripts, numpy, PIL" 2>/dev/null; then
  echo "deps: cityscapesscripts from PyPI into the venv $cs_venv (test-only)"
  { python3 -m venv "$cs_venv" && "$cs_venv/bin/pip" install -q cityscapesscripts; } ||
    echo "deps: cityscapesscripts could not be installed; tests/py/test_eval_inst_official.py will skip" >&2
fi
