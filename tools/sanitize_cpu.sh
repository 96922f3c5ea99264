#!/usr/bin/env bash
# The CPU kernels under AddressSanitizer + UndefinedBehaviorSanitizer: builds the core with both into $BUILD_DIR
# (default build/asan, CUDA off), puts that _core next to a copy of python/ramh_rt in a scratch folder, and runs the
# tests that drive the core (the kernels' property-based suites, the pipeline, I/O and geometry) against it.
# Any out-of-bounds access, use after free, signed overflow, misaligned load or bad shift stops the run.
#
#   tools/sanitize_cpu.sh                  # in a venv with the test extras and pybind11 (tools/test.sh runs it)
#   PYTEST_ARGS="-x -k roi" tools/sanitize_cpu.sh
#
# Leak checking is off: CPython and NumPy keep allocations alive until exit by design. libasan must be loaded first,
# hence LD_PRELOAD (the interpreter itself is not instrumented).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
build=${BUILD_DIR:-build/asan}
# float-cast-overflow is not part of GCC's "undefined" group: a NaN or huge float converted to int is UB too.
flags="-fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=all"
pybind_dir=$($py -c 'import pybind11; print(pybind11.get_cmake_dir())')
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAMH_CUDA=OFF -Dpybind11_DIR="$pybind_dir" \
  -DPython_EXECUTABLE="$(command -v "$py")" -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" >/dev/null
cmake --build "$build" -j"$(nproc)"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r python/ramh_rt python/ramh_train "$scratch"/
rm -f "$scratch"/ramh_rt/_core*.so
cp "$build"/_core*.so "$scratch"/ramh_rt/
ln -s "$PWD/models" "$scratch"/ramh_rt/models  # the default bundle, where an installed package has it
preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# An editable install (pip install -e .) maps ramh_rt._core to its own build through a meta-path finder that wins over
# PYTHONPATH: drop that finder so the scratch copy is what gets imported, and prove it before testing.
rc=0
LD_PRELOAD="$preload" PYTHONPATH="$scratch" $py - ${PYTEST_ARGS:-} <<'PY' || rc=$?
import sys
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "ScikitBuildRedirectingFinder"]
import ramh_rt._core as core
if b"__asan_report" not in open(core.__file__, "rb").read():
    sys.exit(f"sanitize_cpu: {core.__file__} is not instrumented")
print("sanitize_cpu: instrumented core", core.__file__, flush=True)
import pytest
tests = ["tests/test_preprocess.py", "tests/test_postprocess.py", "tests/test_roi.py", "tests/test_quantify.py",
         "tests/test_build.py", "tests/test_pipeline.py", "tests/test_io.py", "tests/test_geometry.py"]
# --capture=sys: pytest's default fd capture would swallow the report of a sanitizer that stops the process.
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--capture=sys", *sys.argv[1:], *tests]))
PY
exit "$rc"
