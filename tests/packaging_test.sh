#!/usr/bin/env bash
# Builds the .deb (CPU-only configuration, as a Debian package must not depend on a non-Debian CUDA),
# checks its control file and contents, unpacks it into a scratch root and runs the installed razor on the
# installed fixture from there.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRAZOR_WITH_CUDA=OFF -DRAZOR_BUILD_TESTS=OFF \
  -DRAZOR_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build "$work/build" -j "$(nproc)" > "$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
(cd "$work/build" && cpack -G DEB > "$work/cpack.log" 2>&1) || { tail -40 "$work/cpack.log"; exit 1; }
deb=$(ls "$work"/build/razor-workbench_*.deb)
echo "package: $(basename "$deb")"
ctrl=$(dpkg-deb -f "$deb")
echo "$ctrl" | grep -q '^Package: razor-workbench$'
echo "$ctrl" | grep -Eq '^Depends: .*libqt6(core|widgets)6' || { echo "missing Qt dependency"; echo "$ctrl"; exit 1; }
echo "$ctrl" | grep -Eq '^Depends: .*libhdf5' || { echo "missing HDF5 dependency"; echo "$ctrl"; exit 1; }
echo "$ctrl" | grep -Eq '^(Recommends|Suggests): .*cuda' || { echo "missing CUDA recommendation"; exit 1; }
files=$(dpkg-deb -c "$deb")
for f in ./usr/bin/razor ./usr/bin/razor-workbench ./usr/share/applications/razor-workbench.desktop \
         ./usr/share/icons/hicolor/scalable/apps/razor-workbench.svg ./usr/share/razor/recipes/seed-default.json \
         ./usr/share/razor/models/tiny-qwen3-moe/model.safetensors ./usr/share/razor/models/README.md \
         ./usr/share/razor/data/kernel-docs-eval.txt ./usr/share/razor/data/kernel-docs-calib.txt; do
  echo "$files" | grep -q " $f\$" || { echo "missing $f in the package"; exit 1; }
done
root="$work/root"
dpkg-deb -x "$deb" "$root"
# Run from the scratch root with the source tree out of reach (RAZOR_DATA points at the installed share).
"$root/usr/bin/razor" --version
out=$(cd / && "$root/usr/bin/razor" inspect "$root/usr/share/razor/models/tiny-qwen3-moe")
echo "$out" | grep -q "15485696" || { echo "inspect of the installed fixture failed"; echo "$out"; exit 1; }
(cd / && "$root/usr/bin/razor" footprint "$root/usr/share/razor/models/tiny-qwen3-moe" --recipe seed-default | grep -q "effective weight bits")
# eval-ppl without --text reads the installed held-out text (share/razor/data), not the source tree's.
out=$(cd / && "$root/usr/bin/razor" eval-ppl "$root/usr/share/razor/models/tiny-qwen3-moe" --windows 1 2>&1)
echo "$out" | grep -q "$root/usr/share/razor/data/kernel-docs-eval.txt: 69195 tokens" ||
  { echo "eval-ppl did not read the installed evaluation text"; echo "$out"; exit 1; }
echo "packaging: OK"
