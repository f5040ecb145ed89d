#!/usr/bin/env bash
# The dependency order of core/'s libraries (docs/DEVELOPING.md, "Dependency order"): no file under core/<m>/
# includes a folder that comes after <m>, and every folder of core/ has its place in the order.
set -euo pipefail
cd "$(dirname "$0")/.."
order=(util model results ggml kernels quant gguf engine eval alloc recover jobs)
rank() {
  local i
  for i in "${!order[@]}"; do
    if [ "${order[$i]}" = "$1" ]; then echo "$i"; return; fi
  done
  echo -1
}
bad=0
for dir in core/*/; do
  m=$(basename "$dir")
  mine=$(rank "$m")
  if [ "$mine" -lt 0 ]; then
    echo "core/$m: not in the dependency order (docs/DEVELOPING.md and this script)"
    bad=1
    continue
  fi
  while IFS= read -r hit; do
    file=${hit%%:*}
    rest=${hit#*:}
    line=${rest%%:*}
    inc=${rest#*\"}
    d=${inc%%/*}
    theirs=$(rank "$d")
    if [ "$theirs" -gt "$mine" ]; then
      echo "$file:$line: includes $d/, which comes after $m/ in the dependency order"
      bad=1
    fi
  done < <(grep -Hn '^#include "[a-z_]*/' "$dir"* || true)
done
[ "$bad" = 0 ] && echo "core/: every include follows the dependency order"
exit "$bad"
