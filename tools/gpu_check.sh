#!/usr/bin/env bash
# The device checks of issues 2 and 5 as one prepared script, for a lent CUDA GPU machine (docs/gpu_session.md says
# how to run it inside the 15-minute device budget). Every stage logs to $LOGS and a failing stage does not stop the
# next. Usage: tools/gpu_check.sh STAGE...
#   stash          copy the carried .whl/ort-gpu.tar.xz.part* (+ .sha256) to /tmp/ort-parts (kept while warm)
#   build          editable install with the CUDA kernels for sm_90 (RAMH_CUDA=ON), build_info -> $LOGS
#   tests          pytest tests/gpu (kernel parity + pipeline parity) -> $LOGS/gpu_tests.{log,xml}
#   sanitize       compute-sanitizer memcheck/racecheck/synccheck/initcheck (or $SANITIZE_TOOLS) on
#                  tools/sanitize_kernels.py
#   kernels        benchmarks/kernels.py --device cuda (CuPy / cupyx.scipy.ndimage alternatives) -> $LOGS
#   ort-gpu        join the stashed parts, check the sha256, unpack to /tmp/site, check CUDAExecutionProvider loads
#   ort-tests      with ort-gpu unpacked: the ORT-CUDA backend tests and the pipeline parity tests
#   pipeline       benchmarks/pipeline.py on every available backend + the PyTorch-eager baseline on CUDA
# Logs and results gather in $LOGS (kept while the machine stays warm); at the end they are packed into
# $OUT/gpu_check_logs.tar.gz and the result JSONs copied to $OUT (the device tool returns at most 8 files).
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${LOGS:-/tmp/ramh-gpu-logs}
mkdir -p "$LOGS"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
[ -d /tmp/site/onnxruntime ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
status=0

stage() {  # stage NAME TIMEOUT_S CMD...: run, tee to $LOGS/NAME.log, record the exit code
  local name=$1 limit=$2
  shift 2
  echo "=== $name ($(date +%T))"
  timeout "$limit" "$@" > >(tee "$LOGS/$name.log") 2>&1
  local rc=$?
  echo "=== $name rc=$rc"
  echo "$name $rc" >> "$LOGS/stages.txt"
  [ $rc -eq 0 ] || status=1
}

for s in "$@"; do
  case $s in
    stash)
      mkdir -p /tmp/ort-parts && cp -v .whl/ort-gpu.tar.xz.part* .whl/ort-gpu.sha256 /tmp/ort-parts/ 2>&1
      ls -l /tmp/ort-parts ;;
    build)
      nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv > "$LOGS/gpu.txt" 2>&1
      stage build 420 env RAMH_CUDA=ON RAMH_CUDA_ARCHITECTURES=90 \
        $py -m pip install --no-build-isolation --no-deps -v -e .
      $py -c 'import json, ramh_rt; print(json.dumps({"build": ramh_rt.build_info(), "cuda": ramh_rt.cuda_available()}))' \
        | tee "$LOGS/build_info.json" ;;
    tests)
      stage gpu_tests 300 $py -m pytest -q -p no:cacheprovider tests/gpu --junitxml="$LOGS/gpu_tests.xml" -rs ;;
    sanitize)
      for tool in ${SANITIZE_TOOLS:-memcheck racecheck synccheck initcheck}; do
        stage "sanitize_$tool" 150 compute-sanitizer --tool "$tool" --error-exitcode 9 --print-limit 20 \
          $py tools/sanitize_kernels.py
      done ;;
    kernels)
      stage kernels 300 $py benchmarks/kernels.py --device cuda --out "$LOGS" ;;
    ort-gpu)
      (cd /tmp/ort-parts && cat ort-gpu.tar.xz.part? > ort-gpu.tar.xz && sha256sum -c ort-gpu.sha256) 2>&1 \
        | tee "$LOGS/ort_gpu.log" && mkdir -p /tmp/site && xz -dc /tmp/ort-parts/ort-gpu.tar.xz | tar -C /tmp/site -xf -
      export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
      stage ort_gpu_providers 120 $py -c '
import onnxruntime as ort
print(ort.__version__, ort.__file__)
if hasattr(ort, "preload_dlls"):
    ort.preload_dlls()  # CUDA/cuDNN libraries from the nvidia-* wheels
print(ort.get_available_providers())
from ramh_rt import backends
print({n: backends.get_backend(n).available() for n in backends.backend_names()})' ;;
    ort-tests)
      stage ort_tests 300 $py -m pytest -q -p no:cacheprovider -rs tests/test_backends.py tests/gpu/test_pipeline_gpu.py \
        --junitxml="$LOGS/ort_tests.xml" ;;
    pipeline)
      torch_runs=()
      [ -d .device/torch-runs/bones ] && torch_runs=(--torch-runs .device/torch-runs --torch-device cuda)
      stage pipeline 400 $py benchmarks/pipeline.py --backend all --runs 30 "${torch_runs[@]}" --out "$LOGS" ;;
    *) echo "unknown stage $s" >&2; status=2 ;;
  esac
done
cat "$LOGS/stages.txt" 2>/dev/null
if [ -n "${OUT:-}" ]; then
  tar -C "$LOGS" -czf "$OUT/gpu_check_logs.tar.gz" .
  cp "$LOGS"/kernels_cuda.json "$LOGS"/pipeline_*.json "$LOGS"/stages.txt "$OUT"/ 2>/dev/null
fi
exit $status
