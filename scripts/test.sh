#!/usr/bin/env bash
# Installs what is missing, builds everything, runs every test (GUI tests offscreen and under Xvfb),
# then the libFuzzer targets for a bounded time. Exit status is non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
bash scripts/build.sh
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
chmod 700 "$XDG_RUNTIME_DIR"
(cd build && xvfb-run -a -s "-screen 0 1280x1024x24" ctest --output-on-failure -j "$(nproc)" --timeout 1200)
bash scripts/fuzz.sh "${RAZOR_FUZZ_SECONDS:-20}"
