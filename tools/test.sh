#!/usr/bin/env bash
# Installs ramh_rt with every extra into a fresh virtual environment and runs the test suite.
# This is the test command named in README.md; .ci/run calls it from a clean clone.
#   VENV=/path/to/venv (default .venv-test)   PYTEST_ARGS="-x -k preprocess" (extra pytest arguments)
#   SANITIZE=0 skips the sanitizer stage (run before the suite): the core's CPU kernels rebuilt under ASan + UBSan and
#   the tests that drive them run against that build
#   (tools/sanitize_cpu.sh, about 4 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_system_deps.sh  # Orthanc and dciodvfy for the DICOM tests (when missing and root/sudo allows)
venv=${VENV:-.venv-test}
python3 -m venv "$venv"
. "$venv/bin/activate"
python -m pip install -q --upgrade pip
# torch first, pinned: the CPU build lies on this machine's disk; an unpinned torch would pull a multi-GB CUDA build.
python -m pip install -q torch==2.13.0
python -m pip install -q ".[train,dicom,test,bench,ray]"
python - <<'PY'
import ramh_rt
print("ramh_rt", ramh_rt.__version__, ramh_rt.build_info())
PY
if [ "${SANITIZE:-1}" != 0 ]; then
  python -m pip install -q "pybind11>=2.12"  # the sanitized build is configured by hand, outside pip's build isolation
  BUILD_DIR="$venv/asan-build" tools/sanitize_cpu.sh
fi
# Run from tests/'s parent but import the *installed* package (python/ is not on sys.path).
python -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-} tests
