#!/usr/bin/env bash
# Copies the header-only libraries, GoogleTest and PCRE2 (headers + static libraries) that the lent GPU machine
# lacks into .gpu-deps/ (git-ignored), to be named in the device tool's `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-deps && mkdir -p .gpu-deps/include .gpu-deps/lib
cp -r /usr/include/nlohmann /usr/include/CLI /usr/include/gtest /usr/include/gmock /usr/include/pcre2.h .gpu-deps/include/
for l in gtest gtest_main gmock pcre2-8; do cp /usr/lib/x86_64-linux-gnu/lib$l.a .gpu-deps/lib/; done
du -sh .gpu-deps
