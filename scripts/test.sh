#!/usr/bin/env bash
# Installs what is missing, builds everything, runs every test (GUI tests offscreen and under Xvfb),
# then the libFuzzer targets for a bounded time. Exit status is non-zero if anything fails, and when a test
# other than a GPU one was skipped (scripts/check-skips.sh): a skipped test is a test that did not run.
# RAZOR_FUZZ_SECONDS: the fuzzing budget for all targets together (default 90).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
bash scripts/build.sh
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
chmod 700 "$XDG_RUNTIME_DIR"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
(cd build && xvfb-run -a -s "-screen 0 1280x1024x24" ctest --output-on-failure -j "$(nproc)" --timeout 1200) 2>&1 |
  tee "$log" || rc=1
bash scripts/check-skips.sh build "$log" || rc=1
[ "$rc" -eq 0 ] || exit "$rc"
bash scripts/fuzz.sh "${RAZOR_FUZZ_SECONDS:-90}"
