// GUI benchmark: heatmap repaint at the real layouts (48 x 256: Qwen3.5-122B, 94 x 512: a 94-layer 512-expert
// model) and the allocation editor's footprint recompute after an edit on the synthetic 122B inventory.
//
//   ./build/razor synth --config resources/configs/qwen3.5-122b-a10b.json --out /tmp/q122 --sparse
//   ./build/ui/bench_gui --model /tmp/q122 [--razor ./build/razor] [--repeat 200]
//
// Prints the median (and p90) in ms. Goal: well under 16 ms (one 60 Hz frame).
//
// Built by ui/CMakeLists.txt (target bench_gui, in build/ui/: needs Qt). Compiled without RAZOR_BENCH_GUI_QT (a
// core-only build of bench/*.cpp) it is a stub that says where the real one is.
#ifndef RAZOR_BENCH_GUI_QT
#include <cstdio>
int main() {
  std::puts("bench_gui needs Qt: run build/ui/bench_gui (built from this file by ui/CMakeLists.txt)");
  return 0;
}
#else
#include <QApplication>
#include <QCommandLineParser>
#include <QElapsedTimer>
#include <QImage>
#include <QPainter>
#include <QProcess>
#include <algorithm>
#include <cstdio>
#include <vector>

#include "FootprintModel.h"
#include "HeatmapCanvas.h"
#include "HeatmapData.h"
#include "ModelInventory.h"
#include "RazorCommand.h"

namespace {

struct Stats {
  double median = 0, p90 = 0;
};

template <typename F>
Stats measure(int repeat, F&& f) {
  std::vector<double> ms;
  ms.reserve(size_t(repeat));
  for (int i = 0; i < repeat; ++i) {
    QElapsedTimer t;
    t.start();
    f(i);
    ms.push_back(double(t.nsecsElapsed()) / 1e6);
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 9 / 10)]};
}

void heatmap(int rows, int cols, int repeat) {
  const QSize size(1280, 720);
  const HeatmapSource src = syntheticHeatmapSource(rows, cols);
  HeatmapCanvas c;
  c.setSize(size);
  c.setCounts(src.counts);
  c.setEntropy(src.entropy);
  c.setGrid(src.grids[0]);
  QImage target(size, QImage::Format_ARGB32_Premultiplied);  // what a raster backing store paints into
  auto paint = [&] {
    QPainter p(&target);
    c.paint(p);
  };
  paint();  // warm-up
  const Stats full = measure(repeat, [&](int) { paint(); });
  // Zoom + pan while repainting (the interactive case).
  const Stats zoom = measure(repeat, [&](int i) {
    const double f = (i % 20) < 10 ? 1.1 : 1 / 1.1;
    c.zoomAt(QPointF(640, 360), f, f);
    paint();
  });
  // Data / scale change: rebuild the cell image, then repaint.
  const Stats rebuild = measure(repeat, [&](int i) {
    c.setScale(i % 2 ? HeatmapCanvas::Scale::Log : HeatmapCanvas::Scale::Linear);
    paint();
  });
  std::printf("heatmap %3d x %3d  repaint (1280x720)      median %7.3f ms  p90 %7.3f ms\n", rows, cols, full.median, full.p90);
  std::printf("heatmap %3d x %3d  zoom step + repaint     median %7.3f ms  p90 %7.3f ms\n", rows, cols, zoom.median, zoom.p90);
  std::printf("heatmap %3d x %3d  scale change + repaint  median %7.3f ms  p90 %7.3f ms\n", rows, cols, rebuild.median, rebuild.p90);
}

}  // namespace

int main(int argc, char** argv) {
  if (!qEnvironmentVariableIsSet("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  QCommandLineParser cli;
  cli.addHelpOption();
  QCommandLineOption model(QStringLiteral("model"), QStringLiteral("checkpoint for the footprint benchmark"), QStringLiteral("DIR"),
                           QStringLiteral("/tmp/q122"));
  QCommandLineOption razor(QStringLiteral("razor"), QStringLiteral("the razor program"), QStringLiteral("PATH"),
                           RazorCommand::defaultProgram());
  QCommandLineOption repeat(QStringLiteral("repeat"), QStringLiteral("iterations per figure"), QStringLiteral("N"),
                            QStringLiteral("200"));
  cli.addOptions({model, razor, repeat});
  cli.process(app);
  const int n = std::max(5, cli.value(repeat).toInt());

  heatmap(48, 256, n);
  heatmap(94, 512, n);

  QProcess p;
  p.start(cli.value(razor), {QStringLiteral("inspect"), cli.value(model), QStringLiteral("--json")});
  if (!p.waitForFinished(300000) || p.exitCode() != 0) {
    std::fprintf(stderr, "razor inspect %s failed (create it with razor synth ... --sparse): %s\n",
                 qPrintable(cli.value(model)), p.readAllStandardError().constData());
    return 1;
  }
  QString err;
  QElapsedTimer t;
  t.start();
  const ModelInventory inv = ModelInventory::fromJson(p.readAllStandardOutput(), &err);
  const double parseMs = double(t.nsecsElapsed()) / 1e6;
  if (!err.isEmpty()) {
    std::fprintf(stderr, "%s\n", qPrintable(err));
    return 1;
  }
  auto seed = razor::load_recipe("seed-default");
  if (!seed.ok()) return 1;
  FootprintModel fp;
  fp.setRecipe(*seed);
  t.restart();
  fp.setInventory(inv);
  const double compileMs = double(t.nsecsElapsed()) / 1e6;
  const auto base = fp.result();
  const Stats edit = measure(n, [&](int i) {
    fp.setExpertBits(i % fp.layers(), (i * 7) % fp.experts(), (i % 2) ? 2.0 : 4.0);
    volatile double gb = fp.result().packed_bytes();
    (void)gb;
  });
  const Stats layer = measure(n, [&](int i) {
    fp.setLayerBits(i % fp.layers(), (i % 2) ? 2.0 : 3.0);
    volatile double gb = fp.result().packed_bytes();
    (void)gb;
  });
  std::printf("footprint %s: %d layers x %d experts, %lld tensors, %.2f B params, seed-default %.3f bits, %.2f GB packed\n",
              qPrintable(inv.path), fp.layers(), fp.experts(), (long long)inv.tensors.size(), double(inv.paramsTotal) / 1e9,
              base.seed_effective_bits(), base.packed_bytes() / 1e9);
  std::printf("footprint  inventory parse %.1f ms, compile (per recipe) %.1f ms\n", parseMs, compileMs);
  std::printf("footprint  one expert edit + recompute   median %7.3f ms  p90 %7.3f ms\n", edit.median, edit.p90);
  std::printf("footprint  one layer edit + recompute    median %7.3f ms  p90 %7.3f ms\n", layer.median, layer.p90);
  return 0;
}
#endif
