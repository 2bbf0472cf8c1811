#!/usr/bin/env bash
# fetch-gpu-debs.sh — downloads (here, where the Debian archive is reachable) the .deb files
# of the libraries kiln links that the GPU machines may lack (OpenBLAS with OpenMP, oneDNN,
# libpng, zlib headers, libgfortran), into .debs/ (ignored by git: .gitignore).
# scripts/gpu-check.sh unpacks them with `dpkg -x` into a private prefix there (no root
# install, nothing outside the build) and points CMake and the loader at it. It also copies
# Fashion-MNIST (when this machine has it) into .data/fashion-mnist for the GPU training
# check. Carry both folders with the GPU run (the device tool's `carry: [".debs", ".data"]`,
# about 52 MB together). Nothing is installed here.
#   scripts/fetch-gpu-debs.sh [DIR]     (default .debs)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.debs}
mkdir -p "$dir"
packages=(libopenblas0-openmp libopenblas-openmp-dev libpng-dev libpng16-16 zlib1g-dev libdnnl2 libdnnl-dev libgfortran5
          ocl-icd-libopencl1)
cd "$dir"
for p in "${packages[@]}"; do
    if ls "${p}"_*.deb >/dev/null 2>&1; then
        continue
    fi
    apt-get download "$p" >/dev/null || { echo "fetch-gpu-debs: could not download $p" >&2; exit 1; }
done
ls -1 *.deb
du -sh . | sed 's/^/fetch-gpu-debs: total /'
cd - >/dev/null
if [ -d /usr/share/datasets/fashion-mnist ] && ! [ -d .data/fashion-mnist ]; then
    mkdir -p .data && cp -r /usr/share/datasets/fashion-mnist .data/
fi
[ -d .data/fashion-mnist ] && du -sh .data | sed 's/^/fetch-gpu-debs: data set /'
