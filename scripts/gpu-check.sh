#!/usr/bin/env bash
# Fake-quant on the GPU: builds test_quant and bench_fake_quant for sm_90 and checks that the CUDA kernel is
# bit-identical to the CPU reference, then times one layer of Qwen3.5-122B routed experts against the
# device-to-device copy floor. Run from the repository root on a machine with an H100 (or H200) and nvcc:
#
#   bash scripts/gpu-check.sh            # logs under build-gpu/logs, or under $OUT when it is set
#
# BENCH_ARGS replaces the benchmark's arguments.
# RAZOR_GPU_CHECK_PROFILE=1 also writes profile.log: register/smem use, the SASS of the hot kernel and an
# Nsight Compute summary (--clock-control none) of the shipped and the legacy kernel on 8 experts.
# Logs are at most 8 files (what the lent machine sends back): summary, env, build (configure + build),
# test_quant_gpu, test_quant_cpu, gpu_check, bench_fake_quant, profile.
#
# The project must configure there (HDF5, nlohmann-json, CLI11, PCRE2, GoogleTest); where it cannot, the
# portable bundle's check (scripts/gpu-bundle-check.sh) runs the same GPU tests.
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
if cmake -S . -B build-gpu "${GEN[@]}" -DRAZOR_BUILD_GUI=OFF -DRAZOR_BUILD_TESTS=ON -DRAZOR_BUILD_BENCH=ON \
     -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >"$LOG/build.log" 2>&1 &&
   cmake --build build-gpu -j "$JOBS" --target test_quant bench_fake_quant >>"$LOG/build.log" 2>&1; then
  TEST=build-gpu/tests/test_quant
  BENCH=build-gpu/bench/bench_fake_quant
  say "built the full project (build-gpu)"
else
  # No second, hand-written build of the kernels: where the project's dependencies are missing, use the
  # portable bundle (scripts/gpu-bundle-check.sh), whose test binaries are built here from the main CMake.
  say "FAILED to configure/build the project (tail of $LOG/build.log below); use scripts/gpu-bundle-check.sh"
  tail -30 "$LOG/build.log"
  exit 1
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
  OBJ=$(find build-gpu -path '*fake_quant/kernels.cu.o' 2>/dev/null | head -1)
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
