#!/usr/bin/env bash
# Fails when ctest reported a skipped test that is not a GPU test. A skip means the test did not run; on the CI
# machine (root, every package scripts/setup-deps.sh installs, the bundled data) every test can run except those
# that need CUDA hardware, which carry the ctest label `gpu` (tests/CMakeLists.txt names them).
#   bash scripts/check-skips.sh BUILD_DIR CTEST_OUTPUT_FILE
# RAZOR_TEST_ALLOW_SKIP=REGEX (extended regex on the test name) excuses more, for local runs only (e.g.
# 'slurm\.array' as a non-root user); CI sets nothing.
set -euo pipefail
build=${1:?usage: check-skips.sh BUILD_DIR CTEST_OUTPUT_FILE}
log=${2:?usage: check-skips.sh BUILD_DIR CTEST_OUTPUT_FILE}
# ctest's summary: "The following tests did not run:" then "<tab><n> - <name> (Skipped)" per test.
skipped=$(sed -n '/^The following tests did not run:/,/^$/p' "$log" | sed -nE 's/^[[:space:]]*[0-9]+ - (.*) \(Skipped\)$/\1/p')
[ -n "$skipped" ] || { echo "check-skips: no test skipped"; exit 0; }
gpu=$(cd "$build" && ctest -N -L '^gpu$' 2>/dev/null | sed -nE 's/^[[:space:]]*Test[[:space:]]+#[0-9]+: (.*)$/\1/p')
bad=()
while IFS= read -r t; do
  [ -n "$t" ] || continue
  if grep -qxF -- "$t" <<<"$gpu"; then echo "check-skips: $t skipped (gpu: needs CUDA hardware)"; continue; fi
  if [ -n "${RAZOR_TEST_ALLOW_SKIP:-}" ] && [[ "$t" =~ ${RAZOR_TEST_ALLOW_SKIP} ]]; then
    echo "check-skips: $t skipped (allowed by RAZOR_TEST_ALLOW_SKIP)"; continue
  fi
  bad+=("$t")
done <<<"$skipped"
if [ ${#bad[@]} -gt 0 ]; then
  echo "check-skips: FAILED: ${#bad[@]} non-GPU test(s) skipped (their output above says why):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
