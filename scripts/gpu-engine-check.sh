#!/usr/bin/env bash
# Build, test and benchmark the GPU reference engine (kernels/engine_cuda.cu) in one call on the lent GPU
# machine. That machine has CUDA, CMake and ninja but not the project's Debian packages, so this builds the
# standalone project tests/gpu-standalone/engine/ (core/util + core/model + the engine's forward files + the
# kernels + GoogleTest), with nlohmann-json from .gpu-eng/nlohmann.tar.xz and GoogleTest from
# .gpu-deps-ggml/googletest.tar.xz (both git-ignored, carried with the call). Logs go to $OUT.
#   run: bash scripts/gpu-engine-check.sh [bench args]     (carry: .gpu-eng .gpu-deps-ggml)
# Phases are time-boxed so that the whole call stays under 5 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-engine-out}
mkdir -p "$OUT"
T0=$(date +%s)
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv
  nvcc --version | tail -2
  cmake --version | head -1
  c++ --version | head -1
  echo "cpus: $(nproc)"
  free -g | head -2
} 2>&1 | tee "$OUT/env.txt"

DEPS=/tmp/razor-eng-deps
mkdir -p $DEPS && tar -C $DEPS -xJf .gpu-eng/nlohmann.tar.xz || { echo "no nlohmann tarball"; exit 1; }
gen=Ninja
command -v ninja >/dev/null || gen="Unix Makefiles"
B=build-gpu-engine
cmake -S tests/gpu-standalone/engine -B $B -G "$gen" -DCMAKE_CUDA_ARCHITECTURES=90 -DDEPS_INCLUDE=$DEPS \
  -DGTEST_TARBALL="$PWD/.gpu-deps-ggml/googletest.tar.xz" >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
timeout 200 cmake --build $B -j "$(nproc)" --target test_engine_cuda bench_engine_gpu >>"$OUT/build.log" 2>&1 ||
  { grep -E "error|Error" "$OUT/build.log" | head -40; tail -20 "$OUT/build.log"; exit 1; }
echo "build ok after $(( $(date +%s) - T0 )) s"

timeout 90 ./$B/test_engine_cuda 2>&1 | tee "$OUT/test.log" | grep -E "^\[  (PASSED|FAILED|SKIPPED|      OK) |FAILED|Failure|rel L2|error|Expected|Which is|actual" | head -40
echo "test exit: ${PIPESTATUS[0]} after $(( $(date +%s) - T0 )) s"

left=$(( 270 - ($(date +%s) - T0) ))
[ $left -gt 20 ] || { echo "no time left for the benchmark"; exit 0; }
timeout $left ./$B/bench_engine_gpu "$@" 2>&1 | tee "$OUT/bench.log"
echo "bench exit: ${PIPESTATUS[0]} after $(( $(date +%s) - T0 )) s"

# Scaling: twice the batch, GPU only.
left=$(( 250 - ($(date +%s) - T0) ))
if [ $left -gt 20 ]; then
  timeout $left ./$B/bench_engine_gpu --seqs 16 --no-cpu 2>&1 | tee "$OUT/bench16.log" | grep -E "^\| stack|^memory fp32|^card"
fi

# Sanitizers on the Qwen3.5 fixture test (memcheck: out-of-bounds; racecheck: shared-memory races).
for tool in memcheck racecheck; do
  left=$(( 290 - ($(date +%s) - T0) ))
  if [ $left -gt 15 ] && command -v compute-sanitizer >/dev/null; then
    timeout $left compute-sanitizer --tool $tool --print-limit 5 ./$B/test_engine_cuda \
      --gtest_filter='*qwen3_5*' >"$OUT/$tool.log" 2>&1
    echo "$tool exit: $? ($(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/$tool.log" | tail -1))"
  fi
done
