#!/usr/bin/env bash
# Pack onnxruntime-gpu for a lent GPU machine that has no package index: one call of the device tool carries at most
# 64 MiB (the ~23 MB working tree included), and the cp312 wheel is ~256 MB. This writes .whl/ort-gpu.tar.xz.part0..4
# (~40.5 MB each, xz: the wheel's zip is larger) and .whl/ort-gpu.sha256; tools/gpu_check.sh stash / ort-gpu use them.
# Runs here, where PyPI is reachable. Usage: tools/pack_ort_gpu.sh [VERSION]   (default 1.31.1, CUDA 13 build)
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-1.31.1}
py=${PYTHON:-python3}
mkdir -p .whl
$py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 -d .whl "onnxruntime-gpu==$version"
wheel=$(ls .whl/onnxruntime_gpu-"$version"-cp312-*.whl)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unzip -q "$wheel" -d "$tmp"
# A wheel installed with --target is its unpacked tree; the TensorRT provider is dropped (no TensorRT there).
tar -C "$tmp" -cf - --exclude='libonnxruntime_providers_tensorrt.so' . | xz -T0 -9 > .whl/ort-gpu.tar.xz
rm -f .whl/ort-gpu.tar.xz.part*
split -n 5 -d -a 1 .whl/ort-gpu.tar.xz .whl/ort-gpu.tar.xz.part
(cd .whl && sha256sum ort-gpu.tar.xz > ort-gpu.sha256)
ls -l .whl/ort-gpu.tar.xz.part* && cat .whl/ort-gpu.sha256
