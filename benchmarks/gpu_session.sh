#!/usr/bin/env bash
# Everything a session with a GPU has to run, in as few calls as possible:
#
#   bash benchmarks/gpu_session.sh tests   # device tests on CuPy + CUDA kernels vs the CPU
#   bash benchmarks/gpu_session.sh bench   # benchmarks/test_gpu.py (kernels, norms, DCGAN steps)
#   bash benchmarks/gpu_session.sh all     # both (about 10 minutes on an H100)
#
# It expects a Python that already has the dependencies, CuPy, numba-cuda, PyTorch (CUDA),
# pytest, hypothesis and pytest-benchmark (as the device machines of this workplace do: nothing
# is downloaded), installs minigan itself without dependencies, and writes its logs, the
# device description and the benchmark results (JSON, markdown, PNG) to $OUT (default:
# benchmarks/results). Commit what it wrote to benchmarks/results/ with the command you ran.
set -uo pipefail
stage="${1:-all}"
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1

if ! "$py" -m pip install -q --no-deps --no-build-isolation --no-index -e . >"$out/install.log" 2>&1
then
    cat "$out/install.log"
    exit 1
fi
{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    "$py" - <<'EOF'
import platform, cupy, numba, numba_cuda, torch
print("python", platform.python_version(), "| cupy", cupy.__version__, "| numba", numba.__version__,
      "| numba-cuda", numba_cuda.__version__, "| torch", torch.__version__)
EOF
} | tee "$out/device.txt"

status=0
if [[ "$stage" == tests || "$stage" == all ]]; then
    MINIGAN_TEST_CUDA=gpu timeout 480 "$py" -m pytest -q -p no:cacheprovider -x \
        tests/test_cuda_device.py tests/cuda_sim 2>&1 | tee "$out/gpu-tests.log"
    status=$((status | ${PIPESTATUS[0]}))
fi
if [[ "$stage" == bench || "$stage" == all ]]; then
    MINIGAN_BENCH_RESULTS="$out" timeout 540 "$py" -m pytest -q -p no:cacheprovider \
        benchmarks/test_gpu.py --benchmark 2>&1 | tee "$out/gpu-bench.log"
    status=$((status | ${PIPESTATUS[0]}))
fi
exit "$status"
