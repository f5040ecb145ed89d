#!/usr/bin/env bash
# Packages an existing build as a portable bundle for a Linux x86-64 GPU server without root or a package manager
# (docs/bundle.md): writes OUT_DIR/razor-<version>-linux-x86_64.tar.gz holding
#   razor-<version>/bin/razor                 the build's razor (CLI and worker), RPATH $ORIGIN/../lib
#   razor-<version>/lib/                      every shared library it needs beyond glibc and the NVIDIA driver
#                                             (libstdc++ and libgcc_s included; cuBLAS when the build links it)
#   razor-<version>/share/razor/              recipes, the bundled texts, configs, the llama.cpp validation script
#   razor-<version>/BUNDLE.txt                what is in it, what it assumes of the system
# usage: scripts/bundle.sh [BUILD_DIR] [OUT_DIR] [--system-cuda]
#   BUILD_DIR      the build to package (default build); it must hold razor and librazor-glibc-compat.so
#   OUT_DIR        where the archive goes (default BUILD_DIR)
#   --system-cuda  leave cuBLAS / the CUDA runtime out: they are found from the server's CUDA (ld.so.conf,
#                  LD_LIBRARY_PATH or /usr/local/cuda/lib64); the archive is ~400 MB smaller
# Needs patchelf and python3 (scripts/setup-deps.sh installs patchelf). The archive is written to a temporary
# name and renamed when complete.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
system_cuda=0
args=()
for a in "$@"; do
  case "$a" in
    --system-cuda) system_cuda=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "bundle: unknown option $a" >&2; exit 2 ;;
    *) args+=("$a") ;;
  esac
done
build=${args[0]:-build}
out=${args[1]:-$build}
[ -x "$build/razor" ] || { echo "bundle: $build/razor: no razor executable (build it first: cmake --build $build --target razor)" >&2; exit 1; }
compat="$build/librazor-glibc-compat.so"
[ -f "$compat" ] || { echo "bundle: $compat missing (cmake --build $build --target razor_glibc_compat)" >&2; exit 1; }
command -v patchelf >/dev/null || { echo "bundle: patchelf not found (scripts/setup-deps.sh installs it)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "bundle: python3 not found" >&2; exit 1; }
mkdir -p "$out"

# The oldest glibc the bundle supports (RHEL 9: 2.34; Ubuntu 22.04: 2.35; Debian 12: 2.36), and the symbols
# newer than it that librazor-glibc-compat.so provides (packaging/glibc_compat.c).
glibc_floor=2.34
compat_symbols=arc4random,_dl_find_object
# Assumed from the system, never bundled: glibc (its libraries must match its loader) and the NVIDIA driver
# (must match the kernel module). Everything else ldd resolves is copied.
is_system_lib() {
  case "$1" in
    linux-vdso.so.*|ld-linux-x86-64.so.*|libc.so.*|libm.so.*|libmvec.so.*|libpthread.so.*|libdl.so.*|librt.so.*) return 0 ;;
    libresolv.so.*|libutil.so.*|libanl.so.*|libnss_*|libBrokenLocale.so.*|libthread_db.so.*) return 0 ;;
    libcuda.so.*|libnvidia-*|libnvcuvid.so.*) return 0 ;;
  esac
  return 1
}
is_cuda_lib() { case "$1" in libcublas*|libcudart*|libcublasLt*) return 0 ;; esac; return 1; }

version=$("$build/razor" --version | awk '{print $2}')
[ -n "$version" ] || { echo "bundle: $build/razor --version printed no version" >&2; exit 1; }
name="razor-$version"
archive="$out/$name-linux-x86_64.tar.gz"
stage=$(mktemp -d "$out/.bundle-stage.XXXXXX")
trap 'rm -rf "$stage" "$archive.partial"' EXIT
root="$stage/$name"
mkdir -p "$root/bin" "$root/lib" "$root/share/razor"

cp "$build/razor" "$root/bin/razor"
# ldd lists the whole closure (what the libraries need too), resolved as on this machine.
deps=$(ldd "$build/razor")
missing=$(awk '/not found/{print $1}' <<< "$deps")
[ -z "$missing" ] || { echo "bundle: $build/razor needs libraries this machine lacks: $missing" >&2; exit 1; }
bundled=()
skipped_cuda=()
while read -r soname path; do
  is_system_lib "$soname" && continue
  if [ "$system_cuda" = 1 ] && is_cuda_lib "$soname"; then skipped_cuda+=("$soname"); continue; fi
  cp -L "$path" "$root/lib/$soname"
  chmod u+w "$root/lib/$soname"
  bundled+=("$soname")
done < <(awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' <<< "$deps")
cp -L "$compat" "$root/lib/librazor-glibc-compat.so"

# Lower what the build machine's libraries ask of glibc to the floor, then give the files that call the compat
# symbols the compat library, and every file the bundle's own directories as search path (DT_RPATH: it also
# applies to the libraries' own dependencies and comes before LD_LIBRARY_PATH).
elfs=("$root/bin/razor" "$root/lib/librazor-glibc-compat.so")
for s in "${bundled[@]}"; do elfs+=("$root/lib/$s"); done
python3 "$src/scripts/elf_glibc_floor.py" "$glibc_floor" "$compat_symbols" "${elfs[@]}" > "$stage/floor.txt"
while IFS= read -r line; do
  f=${line%%: *}
  patchelf --add-needed librazor-glibc-compat.so "$f"
  echo "bundle: glibc $glibc_floor compatibility: $(basename "$f"): ${line#*: }"
done < "$stage/floor.txt"
rm -f "$stage/floor.txt"
patchelf --force-rpath --set-rpath '$ORIGIN/../lib' "$root/bin/razor"
for s in "${bundled[@]}"; do
  # cuBLAS already carries RUNPATH $ORIGIN (rewriting 600 MB is skipped).
  [ "$(patchelf --print-rpath "$root/lib/$s")" = '$ORIGIN' ] || patchelf --force-rpath --set-rpath '$ORIGIN' "$root/lib/$s"
done

# What razor reads at run time, found through <exe>/../share/razor (core/util/paths.h). The tiny models are
# not bundled (tests and demos only).
cp -r "$src/recipes" "$root/share/razor/recipes"
cp -r "$src/resources/data" "$root/share/razor/data"
cp -r "$src/resources/configs" "$root/share/razor/configs"
[ -d "$src/tools/llamacpp" ] && cp -r "$src/tools/llamacpp" "$root/share/razor/llamacpp"
# razor recover's trainer (PyTorch; the server's own python runs it: core/recover/trainer.h)
if [ -d "$src/tools/opd" ]; then
  mkdir -p "$root/share/razor/tools"
  cp -r "$src/tools/opd" "$root/share/razor/tools/opd"
  find "$root/share/razor/tools/opd" -name __pycache__ -type d -prune -exec rm -rf {} +
fi

cuda_line="none (this build has no CUDA kernels)"
if grep -q libcublas <<< "$deps"; then
  if [ "$system_cuda" = 1 ]; then
    cuda_line="CUDA runtime linked statically; cuBLAS from the server's CUDA (${skipped_cuda[*]}): ld.so.conf, LD_LIBRARY_PATH"
  else
    cuda_line="CUDA runtime linked statically; cuBLAS bundled in lib/"
  fi
fi
cat > "$root/BUNDLE.txt" <<EOF
razor $version for Linux x86-64, built on $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") ($(ldd --version | head -1))

Run: $name/bin/razor --help   (no installation: unpack anywhere; docs/bundle.md)
Needs from the system: glibc >= $glibc_floor (ld-linux, libc, libm, libpthread, libdl, librt, libresolv) and,
for the GPU, the NVIDIA driver (libcuda.so.1, libnvidia-ml.so.1).
CUDA: $cuda_line
Bundled libraries (lib/): ${bundled[*]} librazor-glibc-compat.so
Data (share/razor/): recipes, data (the bundled calibration and evaluation texts), configs, llamacpp, tools/opd (razor recover's trainer)
EOF

tar -C "$stage" -czf "$archive.partial" "$name"
mv -f "$archive.partial" "$archive"
echo "bundle: $archive ($(du -h "$archive" | cut -f1); ${#bundled[@]} libraries; CUDA: $cuda_line)"
