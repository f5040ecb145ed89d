#!/usr/bin/env bash
# The main job on the bundled tiny MoE: install what is missing, build, then open the workbench on it when
# a display exists; otherwise run the headless pipeline with readable output.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
bash scripts/build.sh
model=resources/models/tiny-qwen3-5-moe
if [ -n "${DISPLAY:-}" ] && [ -z "${RAZOR_HEADLESS:-}" ]; then
  exec ./build/ui/razor-workbench --model "$model"
fi
bash scripts/pipeline.sh "$model"
