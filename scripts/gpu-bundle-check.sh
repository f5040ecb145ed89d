#!/usr/bin/env bash
# The whole product on a GPU server, from the portable bundle (issue 18): the build's own GPU tests run with the
# bundle's libraries, the fixture pipeline on the GPU against the CPU, and timings of 122B-layout slices.
#
#   here:   bash scripts/gpu-bundle-check.sh prep [BUILD_DIR]    -> .gpu-run/ (bundle, test binaries, one fixture)
#   device: bash .gpu-run/gpu-bundle-check.sh run                (carry: [".gpu-run"]; logs in $OUT)
#
# The device tool sends at most 64 MiB, and the bundled fixtures alone are 64 MB: `prep` puts what the run needs
# (the --system-cuda bundle, the GPU test binaries xz-compressed, tiny-qwen3-moe and the texts) into the ignored
# folder .gpu-run/; for the call, nothing else may travel (see docs/DEVELOPING.md, "GPU work").
# RAZOR_GPU_SLICE_LAYERS (default 2): layers of the Qwen3.5-122B-A10B layout synthesised for the timings (0: none).
# RAZOR_GPU_SLICE_STEPS (default "quantize pack probe alloc"): which slice timings to run; RAZOR_GPU_ALLOC_ROWS
# (default 256): the allocations' --sample-rows, one run each; RAZOR_GPU_PROBE_TOKENS (default 32768): the
# slice probe's token counts (warm, each; then cold, the last). RAZOR_GPU_BENCH=1: also bench_engine_gpu (random 122B-shaped layers, bf16/fp32/tf32).
# RAZOR_GPU_GPTQ=1: bench_gptq on the GPU (batched GPTQ over 64 experts of the 122B's down and gate/up shapes).
set -uo pipefail
mode=${1:-}
if [ "$mode" = prep ]; then
  cd "$(dirname "$0")/.."
  B=${2:-build}
  rm -rf .gpu-run && mkdir -p .gpu-run/resources/models .gpu-run/resources/configs
  bash scripts/bundle.sh "$B" .gpu-run --system-cuda >/dev/null || exit 1
  tar -C "$B/tests" -cJf .gpu-run/tests.tar.xz test_quant test_kernels test_engine
  tar -C "$B/bench" -cJf .gpu-run/bench.tar.xz bench_engine_gpu bench_gptq
  cp -r resources/models/tiny-qwen3-moe .gpu-run/resources/models/
  cp -r resources/data .gpu-run/resources/
  cp -r tests/engine/data/families .gpu-run/families  # the family configs test_engine's GPU tests synthesise
  cp resources/configs/qwen3.5-122b-a10b.json .gpu-run/resources/configs/
  mkdir -p .gpu-run/tok35 && cp resources/models/tiny-qwen3-5-moe/tokenizer*.json .gpu-run/tok35/  # synth writes none
  cp resources/models/tiny-qwen3-5-moe/config.json .gpu-run/tok35/  # the second fixture is synthesised there
  cp scripts/gpu-bundle-check.sh .gpu-run/
  pwd >.gpu-run/source-dir.txt
  grep -E '^set\(RAZOR_GPU_TESTS_' tests/CMakeLists.txt | sed -E 's/^set\(RAZOR_GPU_TESTS_([a-z]+) "(.*)"\)$/\1 \2/' \
    >.gpu-run/gpu-tests.txt
  du -sh .gpu-run
  exit 0
fi
[ "$mode" = run ] || { echo "usage: $0 prep [BUILD_DIR] | run" >&2; exit 2; }

D=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/gpu-bundle-out}
W=${RAZOR_GPU_WORK:-/tmp/razor-gpu}
mkdir -p "$OUT" "$W"
rc=0
# Peak GPU memory over the whole run: sampled every 0.5 s.
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >"$OUT/gpu-memory.txt" 2>/dev/null &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null' EXIT
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  echo "cpus: $(nproc)"; grep -m1 "model name" /proc/cpuinfo
  ldd --version | head -1
  df -h "$W" | tail -1
} 2>&1 | tee "$OUT/env.txt"

rm -rf "$W/r" && mkdir -p "$W/r" && tar -C "$W/r" -xzf "$D"/razor-*-linux-x86_64.tar.gz
R=$(ls -d "$W"/r/razor-*)
RZ="$R/bin/razor"
CUDA_LIB=$(dirname "$(ls /usr/local/cuda/lib64/libcublas.so.* 2>/dev/null | head -1)" 2>/dev/null)
export LD_LIBRARY_PATH=${CUDA_LIB:-/usr/local/cuda/lib64}
export RAZOR_DATA="$D/resources"
echo "bundle: $R"; "$RZ" --version || rc=1
if ldd "$RZ" | grep -q "not found"; then ldd "$RZ" | grep "not found"; rc=1; fi

# 1. The build's GPU tests, each against its CPU reference, with the bundle's libraries.
mkdir -p "$W/t" && tar -C "$W/t" -xJf "$D/tests.tar.xz"
# The test binaries name the fixtures by the build machine's source folder (RAZOR_MODELS_DIR): link it there.
SRC=$(cat "$D/source-dir.txt")
# tiny-qwen3-5-moe does not travel (64 MiB): the same config synthesised here (random weights: the GPU tests
# compare GPU with CPU on whatever weights).
if [ ! -e "$W/tiny35/config.json" ]; then
  "$RZ" synth --config "$D/tok35/config.json" --out "$W/tiny35" >"$OUT/synth-tiny35.log" 2>&1 || rc=1
  cp "$D"/tok35/tokenizer*.json "$W/tiny35/"
fi
link_fixture() {  # name, folder
  local F="$SRC/resources/models/$1"
  if [ ! -e "$F/config.json" ]; then  # (on the device tool's copy, an empty folder of the untracked fixture)
    [ -d "$F" ] && [ ! -L "$F" ] && mv "$F" "$F.empty-$$"
    mkdir -p "$(dirname "$F")" && ln -sfn "$2" "$F"
  fi
}
link_fixture tiny-qwen3-moe "$D/resources/models/tiny-qwen3-moe"
link_fixture tiny-qwen3-5-moe "$W/tiny35"
# test_engine reads the family configs from the source folder (RAZOR_SOURCE_DIR_T) as well
FAM="$SRC/tests/engine/data/families"
if [ ! -e "$FAM/deepseek_v3.json" ]; then
  [ -d "$FAM" ] && [ ! -L "$FAM" ] && mv "$FAM" "$FAM.empty-$$"
  mkdir -p "$(dirname "$FAM")" && ln -sfn "$D/families" "$FAM"
fi
while read -r module filter; do
  echo "== test_$module --gtest_filter=$filter"
  LD_LIBRARY_PATH="$R/lib:$LD_LIBRARY_PATH" timeout 300 "$W/t/test_$module" --gtest_filter="$filter" \
    >"$OUT/test_$module.log" 2>&1
  t=$?
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests ran" "$OUT/test_$module.log"
  [ $t -eq 0 ] || { echo "test_$module exit $t"; tail -20 "$OUT/test_$module.log"; rc=1; }
done <"$D/gpu-tests.txt"

# 2. The fixture pipeline with the bundle's razor: GPU against CPU, bytes compared.
M="$D/resources/models/tiny-qwen3-moe"
IQ3="$R/share/razor/recipes/gguf/instinct-iq3.txt"  # the seed's IQ3_XXS-expert recipe
run() {
  echo "\$ $*" | tee -a "$OUT/pipeline.log"
  local s e
  s=$(date +%s.%N)
  "$@" >>"$OUT/pipeline.log" 2>&1 || { echo "  FAILED"; tail -5 "$OUT/pipeline.log"; rc=1; }
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "  %.2f s wall\n", e - s }' | tee -a "$OUT/pipeline.log"
}
rm -rf "$W/p" && mkdir -p "$W/p"
run "$RZ" inspect "$M"
run "$RZ" quantize "$M" --recipe seed-default --out "$W/p/q-gpu"
run "$RZ" quantize "$M" --recipe seed-default --out "$W/p/q-cpu" --cpu
for f in $(cd "$W/p/q-cpu" && ls *.safetensors); do
  cmp -s "$W/p/q-cpu/$f" "$W/p/q-gpu/$f" && echo "  quantize $f: GPU bytes == CPU bytes" || { echo "  quantize $f: GPU != CPU"; rc=1; }
done
run "$RZ" probe "$M" --tokens 4096 --out "$W/p/probe.h5" --imatrix "$W/p/imatrix.gguf"
run "$RZ" probe "$M" --tokens 4096 --out "$W/p/probe-gpu.h5" --device cuda
run "$RZ" pack "$M" --recipe "$IQ3" --imatrix "$W/p/imatrix.gguf" --out "$W/p/gpu.gguf"
run "$RZ" pack "$M" --recipe "$IQ3" --imatrix "$W/p/imatrix.gguf" --out "$W/p/cpu.gguf" --cpu
cmp -s "$W/p/gpu.gguf" "$W/p/cpu.gguf" && echo "  pack: GPU bytes == CPU bytes" || { echo "  pack: GPU != CPU"; rc=1; }
for dev in cuda cpu; do
  echo "\$ razor eval-ppl --device $dev --windows 8"
  "$RZ" eval-ppl "$M" --device $dev --windows 8 --json >"$OUT/ppl-$dev.json" 2>>"$OUT/pipeline.log" || rc=1
  cat "$OUT/ppl-$dev.json"
done

if [ "${RAZOR_GPU_BENCH:-0}" = 1 ]; then
  mkdir -p "$W/b" && tar -C "$W/b" -xJf "$D/bench.tar.xz"
  for seqs in 8 32; do
    echo "\$ bench_engine_gpu --seqs $seqs --no-cpu" | tee -a "$OUT/bench.log"
    LD_LIBRARY_PATH="$R/lib:$LD_LIBRARY_PATH" timeout 240 "$W/b/bench_engine_gpu" \
      --config "$D/resources/configs/qwen3.5-122b-a10b.json" --seqs $seqs --no-cpu >>"$OUT/bench.log" 2>&1 || rc=1
  done
  tail -30 "$OUT/bench.log"
fi

if [ "${RAZOR_GPU_GPTQ:-0}" = 1 ]; then
  mkdir -p "$W/b" && tar -C "$W/b" -xJf "$D/bench.tar.xz"
  for shape in "--rows 1024 --cols 3072" "--rows 3072 --cols 1024"; do
    echo "\$ bench_gptq --device cuda --experts 64 $shape" | tee -a "$OUT/bench-gptq.log"
    LD_LIBRARY_PATH="$R/lib:$LD_LIBRARY_PATH" timeout 240 "$W/b/bench_gptq" --device cuda --experts 64 $shape \
      >>"$OUT/bench-gptq.log" 2>&1 || rc=1
  done
  tail -40 "$OUT/bench-gptq.log"
fi

if [ "${RAZOR_GPU_SLICE_LAYERS:-2}" = 0 ]; then  # no slices: the tests and the fixture pipeline only
  echo "peak GPU memory: $(sort -n "$OUT/gpu-memory.txt" | tail -1) MiB"
  echo "gpu-bundle-check: exit $rc"
  exit $rc
fi

# 3. Slices of the Qwen3.5-122B-A10B layout: synthesise N layers, time quantize (seed fake int3 clip) and pack
# (the IQ3_XXS-expert recipe) on the GPU; the disk-read floor measured on the same files.
N=${RAZOR_GPU_SLICE_LAYERS:-2}
python3 - "$D/resources/configs/qwen3.5-122b-a10b.json" "$W/slice.json" "$N" "${RAZOR_GPU_SLICE_HEAVY:-1}" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1])); n = int(sys.argv[3])
c["razor_slice_heavy_tails"] = sys.argv[4]  # a warm machine's slice is reused only if this matches too
t = c.get("text_config", c)
t["num_hidden_layers"] = n
if "layer_types" in t: t["layer_types"] = t["layer_types"][:n]
json.dump(c, open(sys.argv[2], "w"), indent=1)
EOF
if ! cmp -s "$W/slice.json" "$W/s/slice.json"; then  # a warm machine keeps the last slice
  rm -rf "$W/s"
  # Heavy tails and outlier columns (synth --heavy-tails) unless RAZOR_GPU_SLICE_HEAVY=0.
  HEAVY=--heavy-tails; [ "${RAZOR_GPU_SLICE_HEAVY:-1}" = 0 ] && HEAVY=
  run "$RZ" synth --config "$W/slice.json" --out "$W/s/src" $HEAVY
  cp "$D"/tok35/tokenizer*.json "$W/s/src/"
  cp "$W/slice.json" "$W/s/slice.json"
fi
rm -rf "$W/s/q" "$W/s/iq3.gguf" "$W/s/probe.h5" "$W/s/alloc"*
du -sb "$W/s/src" | tee -a "$OUT/pipeline.log"
sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null && echo "  page cache dropped" || echo "  page cache NOT dropped (no root): read floor is a warm-cache figure"
STEPS=" ${RAZOR_GPU_SLICE_STEPS:-quantize pack probe alloc} "
# The whole-file allocation first (a cold page cache: it reads only the sampled rows): weights-only damage on the
# default 256 rows per tensor, every type of the ladder (those needing an imatrix allowed without one: the same
# work as with one), the 47 GB budget of the 122B as bits per weight (47e9 x 8 / 122e9).
for rows in ${RAZOR_GPU_ALLOC_ROWS:-256}; do
  [[ $STEPS == *" alloc "* ]] || break
  run "$RZ" allocate "$W/s/src" --mode gguf --sensitivity weights --sample-rows "$rows" --target 3.08bits \
    --allow-missing-imatrix --out "$W/s/alloc-$rows.txt"
  grep -E "whole-file|sensitivities" "$OUT/pipeline.log" | tail -2
  python3 - "$W/s/alloc-$rows.sensitivity.json" "$N" <<'EOF2' | tee -a "$OUT/pipeline.log"
import json, re, sys
j = json.load(open(sys.argv[1])); n = int(sys.argv[2])
layer = sum(i["seconds"] for i in j["items"] if re.match(r"blk\.\d+\.", i["tensor"]))
other = sum(i["seconds"] for i in j["items"]) - layer
print(f"  allocation: {len(j['items'])} tensors, thread time {layer:.1f} s in {n} layers + {other:.1f} s outside; "
      f"48 layers: {other + layer * 48 / n:.1f} s thread time ({(other + layer * 48 / n) / (other + layer):.2f}x this slice)")
EOF2
done
run sh -c "cat $W/s/src/*.safetensors >/dev/null"  # the disk-read floor
[[ $STEPS == *" quantize "* ]] && run "$RZ" quantize "$W/s/src" --recipe seed-default --out "$W/s/q"
# No imatrix for the slice here (the CPU probe below is the slow step): the packer's work is the same.
if [[ $STEPS == *" pack "* ]]; then
  run "$RZ" pack "$W/s/src" --recipe "$IQ3" --allow-missing-imatrix --out "$W/s/iq3.gguf"
  ls -l "$W/s/iq3.gguf" | tee -a "$OUT/pipeline.log"
  grep -E "time: waited" "$OUT/pipeline.log" | tail -1
fi
# The same pack in two parts (the Slurm split, docs/slurm.md): the N layers alone and the rest (embedding, head,
# final norm), so 48 layers project as rest + 48 / N x layers.
if [[ $STEPS == *" packparts "* ]]; then
  for part in "0:$N" rest; do
    rm -rf "$W/s/part-${part/:/-}"
    run "$RZ" pack "$W/s/src" --recipe "$IQ3" --allow-missing-imatrix --layers "$part" --out "$W/s/part-${part/:/-}"
    grep -E "time: waited" "$OUT/pipeline.log" | tail -1
  done
fi
# The probe on the GPU: warm (the slice in the page cache: "host-resident") and cold (streamed from disk).
if [[ $STEPS == *" probe "* ]]; then
  for PT in ${RAZOR_GPU_PROBE_TOKENS:-32768}; do
    run timeout 300 "$RZ" probe "$W/s/src" --device cuda --tokens "$PT" --seqlen 256 --out "$W/s/probe.h5"
    grep -E "tokens \[|GPU memory plan|GPU path" "$OUT/pipeline.log" | tail -4
  done
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null && {
    run timeout 300 "$RZ" probe "$W/s/src" --device cuda --tokens "$PT" --seqlen 256 --out "$W/s/probe-cold.h5"
    grep -E "tokens \[|GPU path" "$OUT/pipeline.log" | tail -3
  }
fi
echo "peak GPU memory: $(sort -n "$OUT/gpu-memory.txt" | tail -1) MiB"
echo "gpu-bundle-check: exit $rc"
exit $rc
