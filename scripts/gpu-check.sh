#!/usr/bin/env bash
# Fake-quant on the GPU: builds test_quant and bench_fake_quant for sm_90 and checks that the CUDA kernel is
# bit-identical to the CPU reference, then times one layer of Qwen3.5-122B routed experts against the
# device-to-device copy floor. Run from the repository root on a machine with an H100 (or H200) and nvcc:
#
#   bash scripts/gpu-check.sh            # logs under build-gpu/logs, or under $OUT when it is set
#
# RAZOR_GPU_CHECK_MINI=1 forces the standalone build; BENCH_ARGS replaces the benchmark's arguments.
# RAZOR_GPU_CHECK_PROFILE=1 also writes profile.log: register/smem use, the SASS of the hot kernel and an
# Nsight Compute summary (--clock-control none) of the shipped and the legacy kernel on 8 experts.
# Logs are at most 8 files (what the lent machine sends back): summary, env, build (configure + build),
# test_quant_gpu, test_quant_cpu, gpu_check, bench_fake_quant, profile.
#
# If the full project cannot be configured there (the GPU image may lack HDF5, nlohmann-json, CLI11, PCRE2 or
# GoogleTest), it builds the fake-quant files alone (build-gpu-mini); without GoogleTest the test binary is
# skipped and `bench_fake_quant --gpu-check` (the same GPU == reference matrix, no GoogleTest) stands in.
# Exit status: non-zero if any check fails.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOG=${OUT:-$ROOT/build-gpu/logs}
mkdir -p "$LOG"
[ -d /usr/local/cuda/bin ] && export PATH=/usr/local/cuda/bin:$PATH
JOBS=$(nproc)
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
status=0
: >"$LOG/summary.txt"
say() { echo "== $*" | tee -a "$LOG/summary.txt"; }

{
  date -u
  nvidia-smi || true
  nvcc --version || true
  cmake --version | head -1
  lscpu | grep -E 'Model name|^CPU\(s\)' || true
} >"$LOG/env.log" 2>&1
say "GPU: $(nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1)"

TEST="" BENCH=""
if [ -z "${RAZOR_GPU_CHECK_MINI:-}" ] &&
   cmake -S . -B build-gpu "${GEN[@]}" -DRAZOR_BUILD_GUI=OFF -DRAZOR_BUILD_TESTS=ON -DRAZOR_BUILD_BENCH=ON \
     -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >"$LOG/build.log" 2>&1 &&
   cmake --build build-gpu -j "$JOBS" --target test_quant bench_fake_quant >>"$LOG/build.log" 2>&1; then
  TEST=build-gpu/tests/test_quant
  BENCH=build-gpu/bench/bench_fake_quant
  say "built the full project (build-gpu)"
else
  if [ -n "${RAZOR_GPU_CHECK_MINI:-}" ]; then
    say "RAZOR_GPU_CHECK_MINI set: building the fake-quant files alone"
  else
    say "full project configure/build failed (tail of the logs below); building the fake-quant files alone"
    tail -5 "$LOG/build.log" 2>/dev/null | tee -a "$LOG/summary.txt"
  fi
  M=build-gpu-mini
  mkdir -p "$M"
  cat >"$M/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.25)
project(razor_fq LANGUAGES C CXX CUDA)
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CUDA_STANDARD 20)
if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
endif()
find_package(Threads REQUIRED)
find_package(CUDAToolkit REQUIRED)
set(S $ROOT)
add_library(fq STATIC \${S}/core/util/status.cpp \${S}/core/util/parallel.cpp \${S}/core/util/numeric.cpp
            \${S}/core/quant/fake_quant.cpp \${S}/core/quant/fake_quant_ref.cpp \${S}/kernels/cuda_info.cu
            \${S}/kernels/fake_quant.cu)
target_include_directories(fq PUBLIC \${S}/core \${S}/kernels/include)
target_compile_definitions(fq PUBLIC RAZOR_HAVE_CUDA=1 RAZOR_VERSION="0" RAZOR_SOURCE_DIR="\${S}")
set_source_files_properties(\${S}/core/quant/fake_quant.cpp \${S}/core/quant/fake_quant_ref.cpp
                            PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")
set_source_files_properties(\${S}/kernels/fake_quant.cu PROPERTIES COMPILE_OPTIONS "--fmad=false")
target_link_libraries(fq PUBLIC Threads::Threads PRIVATE CUDA::cudart_static)
add_executable(bench_fake_quant \${S}/bench/bench_fake_quant.cpp)
target_link_libraries(bench_fake_quant PRIVATE fq)
find_package(GTest QUIET)
if(GTest_FOUND)
  add_executable(test_quant \${S}/tests/quant/test_fake_quant.cpp)
  target_link_libraries(test_quant PRIVATE fq GTest::gtest GTest::gtest_main)
endif()
EOF
  if cmake -S "$M" -B "$M/build" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
       >"$LOG/configure-mini.log" 2>&1 &&
     cmake --build "$M/build" -j "$JOBS" >"$LOG/build-mini.log" 2>&1; then
    BENCH=$M/build/bench_fake_quant
    [ -x "$M/build/test_quant" ] && TEST=$M/build/test_quant
    say "built the fake-quant files alone ($M); GoogleTest: $([ -n "$TEST" ] && echo found || echo missing)"
  else
    say "FAILED to build; see $LOG/build-mini.log"
    tail -30 "$LOG/build-mini.log" "$LOG/configure-mini.log"
    exit 1
  fi
fi

if [ -n "$TEST" ]; then
  "$TEST" --gtest_filter='*Gpu*:*Cuda*' 2>&1 | tee "$LOG/test_quant_gpu.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  say "test_quant --gtest_filter='*Gpu*:*Cuda*': $(grep -E '^\[  (PASSED|FAILED) ' "$LOG/test_quant_gpu.log" | tr '\n' ' ')"
  grep -q 'SKIPPED' "$LOG/test_quant_gpu.log" && say "WARNING: GPU tests were skipped: $(grep -m1 -A0 'no GPU' "$LOG/test_quant_gpu.log")"
  # the CPU suite on this machine's CPU as well (another ISA than the dev machine's)
  "$TEST" --gtest_filter='FakeQuant*:-*Gpu*' >"$LOG/test_quant_cpu.log" 2>&1 || status=1
  say "test_quant FakeQuant* (CPU, $(grep -m1 'fast path ISA' "$LOG/test_quant_cpu.log")): $(grep -E '^\[  (PASSED|FAILED) ' "$LOG/test_quant_cpu.log" | tr '\n' ' ')"
fi

"$BENCH" --gpu-check 2>&1 | tee "$LOG/gpu_check.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
say "$(tail -1 "$LOG/gpu_check.log")"

# shellcheck disable=SC2086
"$BENCH" ${BENCH_ARGS:---gpu --scale 0.125 --iters 10 --all-isa} 2>&1 | tee "$LOG/bench_fake_quant.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
grep -E '^GPU layer|^GPU == CPU|exact_div|rcp_check|legacy_rcp|^  total' "$LOG/bench_fake_quant.log" | tee -a "$LOG/summary.txt" >/dev/null

if [ -n "${RAZOR_GPU_CHECK_PROFILE:-}" ]; then
  P="$LOG/profile.log"
  : >"$P"
  OBJ=$(find build-gpu build-gpu-mini -name 'fake_quant.cu.o' 2>/dev/null | head -1)
  if [ -n "$OBJ" ] && command -v cuobjdump >/dev/null; then
    echo "== resource usage ($OBJ)" >>"$P"
    cuobjdump -res-usage "$OBJ" 2>&1 | grep -A1 -E 'k_int8|k_intILi8ELb1ELb0' >>"$P"
    echo "== SASS of k_int8<8, false> (group 128, no stats)" >>"$P"
    cuobjdump -sass "$OBJ" 2>&1 | awk '/Function : .*k_int8ILi8ELb0E/{f=1} f&&/Function : /&&!/k_int8ILi8ELb0E/{f=0} f' >>"$P"
  fi
  if command -v ncu >/dev/null; then
    NCU=(ncu --clock-control none --section SpeedOfLight --section ComputeWorkloadAnalysis --section Occupancy
         --section WarpStateStats --section InstructionStats
         --metrics smsp__inst_executed.sum,smsp__thread_inst_executed.sum)
    PB=(--gpu --gpu-experts 8 --scale 0.004 --iters 1 --reps 1)
    echo "== ncu: shipped kernel, rcp_check (gate_up of 8 experts)" >>"$P"
    timeout 120 "${NCU[@]}" -k regex:k_int8 --launch-skip 3 -c 1 "$BENCH" "${PB[@]}" >>"$P" 2>&1
    echo "== ncu: legacy kernel, rcp_check" >>"$P"
    timeout 120 "${NCU[@]}" -k regex:^k_int$ -c 1 "$BENCH" "${PB[@]}" >>"$P" 2>&1
  fi
  say "profile written to $P ($(wc -l <"$P") lines)"
fi

echo
echo "================ summary ================"
cat "$LOG/summary.txt"
echo "exit status $status (logs in $LOG)"
exit $status
