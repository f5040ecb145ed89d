#!/usr/bin/env bash
# Build, test and benchmark the GPU ggml packer (kernels/ggml_quant.cu) in one call on the lent GPU machine.
# That machine has CUDA, CMake and ninja but not the project's Debian packages, so this builds the small
# standalone project tests/gpu-standalone/ (razor_util + razor_ggml + the kernels + GoogleTest from the
# tarball in .gpu-deps-ggml/, carried with the call). Logs go to $OUT (or /tmp/gpu-ggml-out).
#   run: bash scripts/gpu-ggml-check.sh            (carry: .gpu-deps-ggml)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-ggml-out}
mkdir -p "$OUT"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv
  nvcc --version | tail -2
  cmake --version | head -1
  c++ --version | head -1
  echo "cpus: $(nproc)"
} 2>&1 | tee "$OUT/env.txt"

gen=Ninja
command -v ninja >/dev/null || gen="Unix Makefiles"
B=build-gpu-ggml
cmake -S tests/gpu-standalone -B $B -G "$gen" -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DGTEST_TARBALL="$PWD/.gpu-deps-ggml/googletest.tar.xz" >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
cmake --build $B -j "$(nproc)" --target test_ggml_cuda bench_ggml_cuda >>"$OUT/build.log" 2>&1 ||
  { grep -E "error|Error" "$OUT/build.log" | head -40; tail -20 "$OUT/build.log"; exit 1; }
echo "build ok"

timeout 150 ./$B/test_ggml_cuda 2>&1 | tee "$OUT/test.log" | grep -E "^\[  (PASSED|FAILED|SKIPPED) |FAILED|Failure|differ|error" | head -60
echo "test exit: ${PIPESTATUS[0]}"

timeout 330 ./$B/bench_ggml_cuda "$@" 2>&1 | tee "$OUT/bench.log"
echo "bench exit: ${PIPESTATUS[0]}"
if [ -z "${GGML_BENCH_MAIN_ONLY:-}" ]; then
  timeout 90 ./$B/bench_ggml_cuda --types q8_0,q2_K,q5_K,q6_K --experts 32 2>&1 | tee "$OUT/bench_other.log" | tail -8
fi
