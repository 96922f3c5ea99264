#!/usr/bin/env bash
# Developer loop without pip: build the core into build/dev and drop _core*.so into python/ramh_rt so that
# `PYTHONPATH=python pytest` tests the working tree. Usage: tools/dev_build.sh [extra cmake -D args]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
pybind_dir=$($py -c 'import pybind11; print(pybind11.get_cmake_dir())')
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release -Dpybind11_DIR="$pybind_dir" \
  -DPython_EXECUTABLE="$(command -v $py)" "$@" >/dev/null
cmake --build build/dev -j"$(nproc)"
cp -f build/dev/_core*.so python/ramh_rt/
