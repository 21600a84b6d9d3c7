#!/usr/bin/env bash
# Installs the Debian packages segda builds and tests with, when missing.
# Runtime: oneDNN (convolutions), OpenBLAS, libpng, libjpeg-turbo, liblinear,
# libsvm.
# Test-only: python3-torch and python3-numpy (PyTorch parity checks);
# python3-pip, python3-setuptools and python3-wheel (`pip install ./python`
# offline in tests/py/test_python_pkg.py); pkg-config (tests/test_install.sh).
# `tools/deps.sh fuzz` adds what `make fuzz` needs: clang, its libFuzzer and
# sanitizer runtimes, and its OpenMP runtime (the default clang's versions).
set -eu
pkgs=(build-essential libdnnl-dev libopenblas-dev libpng-dev libjpeg62-turbo-dev liblinear-dev libsvm-dev
      python3-torch python3-numpy python3-pip python3-setuptools python3-wheel pkg-config)
for group in "$@"; do
  case $group in
    fuzz) pkgs+=(clang libclang-rt-dev libomp-dev) ;;
    *) echo "deps: unknown group '$group' (known: fuzz)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
