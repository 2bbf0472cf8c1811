#!/usr/bin/env bash
# install-deps.sh — installs the Debian packages kiln needs that are missing.
# As root it installs them; as another user it re-runs itself through sudo when sudo exists.
# Needed: a C compiler, make, CMake, OpenBLAS (OpenMP flavour), oneDNN (its sgemm), BLIS (loaded at run time
# for narrow dense-layer GEMMs; optional), zlib, libpng, and the
# Fashion-MNIST data set (dataset-fashion-mnist, at /usr/share/datasets/fashion-mnist).
# The CUDA toolkit is optional: with nvcc at /usr/local/cuda/bin the CUDA backend is built.
set -euo pipefail

packages=(build-essential cmake pkg-config libopenblas-openmp-dev libdnnl-dev libblis4-openmp zlib1g-dev libpng-dev dataset-fashion-mnist
          clang libclang-rt-14-dev libomp-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all packages present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo "$0" "$@"
    fi
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: run as root: $0" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
