#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (build-fuzz/) and runs each on a copy of its seed corpus
# (tests/fuzz/corpus/<name>/) for an equal share of a bounded total time:
#   bash scripts/fuzz.sh [TOTAL_SECONDS]     (default 90; at least 5 s per target)
# A crash, a sanitizer report, an input that runs longer than 10 s (a hang) or more than 2 GB of memory fails
# the target; every target runs, the exit status is non-zero when any failed, and the input that failed is kept
# in build-fuzz/artifacts/ (replay: ./build-fuzz/tests/fuzz/<target> <file>).
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-90}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAZOR_BUILD_FUZZ=ON \
  -DRAZOR_BUILD_GUI=OFF -DRAZOR_WITH_CUDA=OFF -DRAZOR_BUILD_BENCH=OFF >/dev/null
targets=$(cd tests/fuzz && ls fuzz_*.cpp | sed 's/\.cpp$//')
n=$(echo $targets | wc -w)
secs=$(( total / n )); [ "$secs" -ge 5 ] || secs=5
cmake --build build-fuzz -j "$(nproc)" --target $targets
mkdir -p build-fuzz/artifacts
failed=()
for t in $targets; do
  corpus=tests/fuzz/corpus/${t#fuzz_}
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
  echo "fuzz: $t for ${secs}s"
  if ./build-fuzz/tests/fuzz/$t -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
       -artifact_prefix="build-fuzz/artifacts/$t-" "$work" >"$work.log" 2>&1; then
    tail -2 "$work.log"
  else
    failed+=("$t")
    tail -40 "$work.log"
  fi
  rm -rf "$work" "$work.log"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in build-fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: $n targets ran clean"
