#!/usr/bin/env bash
# Headless pipeline on one model: inventory, footprint of the seed recipe, fake-quant checkpoint, GGUF
# export, validation in the real llama.cpp, perplexity. Steps whose command is not built yet are skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
model=${1:-resources/models/tiny-qwen3-5-moe}
out=${2:-out/$(basename "$model")}
razor=./build/razor
mkdir -p "$out"
has() { "$razor" "$1" --help >/dev/null 2>&1; }
step() { printf '\n== %s\n' "$*"; }

step "inspect $model"; "$razor" inspect "$model" || exit 1
step "footprint: seed-default recipe (int3 experts, int4 backbone)"; "$razor" footprint "$model" --recipe seed-default || exit 1
if has quantize; then
  step "quantize (seed clip recipe) -> $out/fakequant"
  "$razor" quantize "$model" --recipe seed-default --out "$out/fakequant" || exit 1
fi
text=resources/data/kernel-docs-eval.txt   # held out from calibration (resources/data/README.md)
if has eval-ppl; then
  step "perplexity of the source model (16 windows of 256)"
  "$razor" eval-ppl "$model" --text "$text" --windows 16 || exit 1
  if [ -d "$out/fakequant" ]; then
    step "perplexity and KL of the fake-quant model against the source"
    "$razor" eval-ppl "$out/fakequant" --ref "$model" --text "$text" --windows 16 || exit 1
  fi
fi
if has pack; then
  step "GGUF export (Q8_0) -> $out/model-q8_0.gguf"
  "$razor" pack "$model" --type q8_0 --out "$out/model-q8_0.gguf" || exit 1
  if has validate-gguf; then
    step "load and measure in the real llama.cpp"
    "$razor" validate-gguf "$out/model-q8_0.gguf" --text "$text" --windows 16 || exit 1
  fi
fi
printf '\nall steps done; outputs in %s\n' "$out"
