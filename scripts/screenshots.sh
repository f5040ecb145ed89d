#!/usr/bin/env bash
# Regenerates docs/screenshots/*.png: every view of the workbench on the bundled tiny Qwen3.5 MoE with a probe
# file, rendered under Xvfb with the xcb platform (so the OpenGL heatmap and its Dear ImGui HUD render too; the
# offscreen platform cannot host a QOpenGLWidget). Also the allocation view of the synthetic 122B layout.
# The Connect-to-GPU-server dialog after a check against a fake ssh (one H100) comes from test_ui's
# RemoteDialogTest.Screenshot when BUILD_DIR holds tests/ui/test_ui.
#   bash scripts/screenshots.sh [BUILD_DIR]   (default build; BUILD_DIR must hold razor and ui/razor-workbench;
#   RAZOR=path/to/razor picks another command-line program)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=docs/screenshots
model=resources/models/tiny-qwen3-5-moe
text=resources/data/kernel-docs-calib.txt   # the probe calibrates (resources/data/README.md)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
razor=${RAZOR:-$build/razor}
for exe in "$razor" "$build/ui/razor-workbench"; do
  [ -x "$exe" ] || { echo "missing $exe: build first (ninja -C $build razor razor-workbench)" >&2; exit 1; }
done
"$razor" probe "$model" --text "$text" --tokens 2048 --out "$work/tiny-probe.h5" >/dev/null
export XDG_RUNTIME_DIR=$work/xdg && mkdir -m 700 -p "$XDG_RUNTIME_DIR"
run() { QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" "$build/ui/razor-workbench" --razor "$razor" "$@"; }
run --model "$model" --stats "$work/tiny-probe.h5" --screenshot "$out"
rm -f "$out/methods.png"  # the Methods tab with no result yet: method-compare.png (below) shows it with one
# The real 122B layout (48 layers x 256 experts), shapes only: the allocation editor at full size.
"$razor" synth --config resources/configs/qwen3.5-122b-a10b.json --out "$work/q122" --sparse >/dev/null
# An illustrative hand edit (not a solver result): outer layers at 4 bits, every 5th expert at 2, a few kept at 8.
python3 - "$work/q122-edit.json" <<'PY'
import json, sys
r = json.load(open("recipes/seed-default.json"))
r["name"] = "q122-hand-edit"
eb = {}
for l in range(48):
    row = [4 if l < 4 or l >= 44 else 3 for _ in range(256)]
    for e in range(0, 256, 5):
        if 4 <= l < 44: row[e] = 2
    for e in (17, 101, 202):
        row[(e + 7 * l) % 256] = 8
    eb[str(l)] = row
r["expert_bits"] = eb
json.dump(r, open(sys.argv[1], "w"))
PY
run --model "$work/q122" --recipe "$work/q122-edit.json" --view allocation --screenshot "$work/q122-shots" >/dev/null
cp "$work/q122-shots/allocation.png" "$out/allocation-122b.png"
cp "$work/q122-shots/model.png" "$out/model-122b.png"
# Zoom and flags at the largest layout the heatmap is benchmarked at (synthetic statistics, titled as such).
run --synthetic-stats 94x512 --view salience --screenshot "$work/synth-shots" >/dev/null
cp "$work/synth-shots/salience.png" "$out/salience-94x512-synthetic.png"
# The remote dialog after a successful check (a fake ssh answering like a server with one H100), and each step
# of the tuning loop (issue 17: calibrate, fit, measure, runs compared, export, validated) on the tiny Qwen3 MoE
# through the real worker pool (loop-*.png), and the Evaluate dialog after a run against an existing endpoint (the
# real llama.cpp behind it; evaluate-dialog.png), the Recover dialog after a real `recover` job on the fixture
# (recover-job.png), the comparison's Speed tab (comparison-speed.png) and the Methods view on the recorded real method
# comparison tests/ui/data/method-compare-tiny-qwen3-moe.json (method-compare.png).
if [ -x "$build/tests/ui/test_ui" ]; then
  RAZOR_SCREENSHOT_DIR=$PWD/$out QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
    "$build/tests/ui/test_ui" --gtest_filter='RemoteDialogTest.Screenshot:TuningLoop.*:ServeEval.EvaluatesAnExistingEndpoint*:ComparisonView.PairedScreenshot:ComparisonView.SpeedPerRunAndContext:MethodCompareView.RecordedRealResultAndScreenshot:RecoverDialog.RunsEveryPhaseOnTheFixture*' >/dev/null
else
  echo "no $build/tests/ui/test_ui: $out/remote-dialog.png and $out/loop-*.png not regenerated (ninja -C $build test_ui)" >&2
fi
ls -l "$out"
