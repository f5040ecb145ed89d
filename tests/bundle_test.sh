#!/usr/bin/env bash
# The portable bundle (scripts/bundle.sh, docs/bundle.md): built from this build, unpacked into a scratch folder,
# checked with ldd and readelf, and run under `env -i` with only the bundle's bin/ on the PATH, from a folder
# outside the source tree: inspect, quantize (recipe by name: share/razor/recipes), pack (the bundled GGUF
# recipe), eval-ppl (the bundled evaluation text), and the same with the glibc compatibility library forced in
# front of glibc (LD_PRELOAD), as the loader of glibc 2.34 uses it.
# usage: bundle_test.sh BUILD_DIR MODELS_DIR
# cuBLAS is left to the system (--system-cuda) to keep the test short: the bundled variant only adds the copy of
# libcublas / libcublasLt (600 MB), which carry RUNPATH $ORIGIN themselves.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
model="$2/tiny-qwen3-moe"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "bundle test: $*" >&2; exit 1; }

bash "$src/scripts/bundle.sh" "$build" "$work/out" --system-cuda
version=$("$build/razor" --version | awk '{print $2}')
archive="$work/out/razor-$version-linux-x86_64.tar.gz"
[ -f "$archive" ] || fail "no $archive"
[ -z "$(find "$work/out" -name '.bundle-stage.*' -o -name '*.partial')" ] || fail "a temporary was left in $work/out"
mkdir "$work/unpack"
tar -C "$work/unpack" -xzf "$archive"
b="$work/unpack/razor-$version"
for f in bin/razor lib/libstdc++.so.6 lib/libgcc_s.so.1 lib/librazor-glibc-compat.so share/razor/recipes/seed-default.json \
         share/razor/recipes/gguf/instinct-q3.txt share/razor/data/kernel-docs-eval.txt BUNDLE.txt; do
  [ -e "$b/$f" ] || fail "missing $f in the bundle"
done
# Nothing of glibc or the NVIDIA driver is bundled.
for f in "$b"/lib/*; do
  case "$(basename "$f")" in libc.so*|libm.so*|ld-linux*|libpthread.so*|libdl.so*|libcuda.so*|libnvidia*) fail "bundled $f";; esac
done

# Every ELF file: nothing missing for the loader, no glibc version newer than 2.34 required (weak ones are not).
n=0
for f in "$b"/bin/* "$b"/lib/*; do
  out=$(env -i ldd "$f" 2>&1) || fail "ldd $f: $out"
  if grep -q "not found" <<< "$out"; then fail "ldd $f: $(grep 'not found' <<< "$out")"; fi
  newer=$(readelf -V "$f" | grep -E 'Name: GLIBC_2\.(3[5-9]|[4-9][0-9])' | grep -v 'Flags: WEAK' || true)
  [ -z "$newer" ] || fail "$f requires a glibc newer than 2.34: $newer"
  n=$((n + 1))
done
echo "bundle test: $n ELF files, all resolved"
# razor and the bundled libraries it loads come from the bundle.
loaded=$(env -i ldd "$b/bin/razor")
for l in libstdc++.so.6 libgcc_s.so.1 libpcre2-8.so.0; do
  grep -q "$l => $b/bin/../lib/$l" <<< "$loaded" || fail "$l not loaded from the bundle: $(grep "$l" <<< "$loaded")"
done

cd "$work"   # nothing relative to the source tree
run() { env -i PATH="$b/bin" "$@"; }
run razor --version | grep -q "razor $version" || fail "razor --version"
out=$(run razor inspect "$model")
grep -q "15485696" <<< "$out" || fail "inspect: $out"
run razor quantize "$model" --recipe uniform-int3 --out "$work/q" > "$work/quantize.log" 2>&1 || { cat "$work/quantize.log"; fail "quantize"; }
[ -f "$work/q/model.safetensors" ] || fail "quantize wrote no model.safetensors"
run razor pack "$model" -t q4_K -r "$b/share/razor/recipes/gguf/instinct-q3.txt" -o "$work/p.gguf" > "$work/pack.log" 2>&1 ||
  { cat "$work/pack.log"; fail "pack"; }
[ "$(head -c 4 "$work/p.gguf")" = "GGUF" ] || fail "pack wrote no GGUF"
out=$(run razor eval-ppl "$model" --windows 1 2>&1)
grep -q "$b/share/razor/data/kernel-docs-eval.txt" <<< "$out" || fail "eval-ppl did not read the bundled text: $out"

# The compatibility library's arc4random / _dl_find_object in front of glibc's: CLI11's --help and an error
# path throw and catch C++ exceptions (the unwinder calls _dl_find_object).
pre="$b/lib/librazor-glibc-compat.so"
env -i LD_PRELOAD="$pre" PATH="$b/bin" razor --help | grep -q "Usage:" || fail "--help with the compat library"
out=$(env -i LD_PRELOAD="$pre" PATH="$b/bin" razor inspect "$model")
grep -q "15485696" <<< "$out" || fail "inspect with the compat library: $out"
env -i LD_PRELOAD="$pre" PATH="$b/bin" razor pack "$model" -t q4_K -o "$work/p2.gguf" > /dev/null 2>&1 || fail "pack with the compat library"
echo "bundle test: OK ($(du -h "$archive" | cut -f1))"
