#!/usr/bin/env bash
# Installs what Razor Workbench needs on Debian 12, only what is missing: the Debian packages, and the
# prebuilt llama.cpp from npm (node-llama-cpp 3.21.1) used as the oracle in tests, into .oracle/.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake ninja-build pkg-config git clang libclang-rt-14-dev
      qt6-base-dev libqt6opengl6-dev qt6-charts-dev qt6-svg-dev qt6-qpa-plugins libhdf5-dev libimgui-dev
      nlohmann-json3-dev libcli11-dev libpcre2-dev libgtest-dev libgmock-dev libcurl4-openssl-dev zlib1g-dev
      xvfb xauth x11-apps x11-utils xdotool imagemagick fonts-dejavu-core mesa-utils libgl1-mesa-dri
      nodejs file dpkg-dev openssh-client openssh-server
      patchelf python3  # scripts/bundle.sh: the portable bundle
      python3-torch libopenblas0-pthread  # tools/opd: the OPD trainer (docs/recovery.md), run by /usr/bin/python3; OpenBLAS: torch's BLAS (the reference libblas is ~25x slower)
      slurmctld slurmd slurm-client munge)  # tests/slurm_test.sh: a single-node Slurm on loopback
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: Debian's package only where no npm is on the PATH (some images ship a newer npm outside dpkg, which
# Debian's npm package conflicts with).
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The llama.cpp oracle: prebuilt binaries only (never a source build: NODE_LLAMA_CPP_SKIP_DOWNLOAD).
if [ ! -f .oracle/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so ]; then
  echo "setup: installing node-llama-cpp 3.21.1 (prebuilt llama.cpp) into .oracle/"
  mkdir -p .oracle
  (cd .oracle && [ -f package.json ] || echo '{"name":"razor-oracle","private":true}' > package.json
   NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm i -E --omit=optional --no-audit --no-fund --loglevel=error \
     node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1 >/dev/null)
fi
