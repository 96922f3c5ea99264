#!/usr/bin/env bash
# Developer loop without pip: build the core into $BUILD_DIR (default build/dev) and drop _core*.so into python/ramh_rt so that
# `PYTHONPATH=python pytest` tests the working tree. Usage: tools/dev_build.sh [extra cmake -D args]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
build=${BUILD_DIR:-build/dev}
pybind_dir=$($py -c 'import pybind11; print(pybind11.get_cmake_dir())')
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -Dpybind11_DIR="$pybind_dir" \
  -DPython_EXECUTABLE="$(command -v $py)" "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
cp -f "$build"/_core*.so python/ramh_rt/
# An editable install (pip install -e .) redirects ramh_rt._core to its own build, ahead of PYTHONPATH: say so, or the
# tests would silently run that older build.
loaded=$(PYTHONPATH=python $py -c 'import ramh_rt._core as c; print(c.__file__)' 2>/dev/null || true)
case "$loaded" in
  "$PWD"/python/ramh_rt/*) ;;
  *) echo "dev_build: warning: PYTHONPATH=python imports ramh_rt._core from ${loaded:-nowhere}, not this build;" \
          "an editable install shadows it (pip uninstall ramh-rt, or pip install -e . again to rebuild that one)" >&2 ;;
esac
