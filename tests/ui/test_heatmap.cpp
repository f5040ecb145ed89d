// Heatmap data loaders, cold flags, rendering at the real layouts' sizes (48 x 256, 94 x 512), zoom / pan /
// tooltips, and the tensor browser's item models under QAbstractItemModelTester.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <QAbstractItemModelTester>
#include <QFile>
#include <QGuiApplication>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMouseEvent>
#include <QPainter>
#include <QProcess>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>
#include <QWheelEvent>
#include <cmath>

#include "HeatmapCanvas.h"
#include "HeatmapData.h"
#include "HeatmapGLWidget.h"
#include "HeatmapView.h"
#include "HeatmapWidget.h"
#include "ModelInventory.h"
#include "TensorTableModel.h"
#include "gguf/imatrix.h"
#include "worker_test_util.h"

namespace {

QByteArray runRazor(const QStringList& args, int* exitCode = nullptr) {
  QProcess p;
  p.start(razor_test::razorCli(), args);
  p.waitForFinished(razor_test::kJobTimeoutMs);
  if (exitCode) *exitCode = p.exitCode();
  return p.readAllStandardOutput();
}

QString modelDir(const char* name) { return QStringLiteral(RAZOR_MODELS_DIR "/") + QLatin1String(name); }

// The pixel at the centre of cell (layer, expert) of a rendered widget.
QRgb cellPixel(HeatmapCanvas* c, const QImage& img, int layer, int expert) {
  const QRect pr = c->plotRect();
  const QRectF v = c->viewRect();
  const double x = pr.x() + (expert + 0.5 - v.x()) / v.width() * pr.width();
  const double y = pr.y() + (layer + 0.5 - v.y()) / v.height() * pr.height();
  return img.pixel(int(x), int(y));
}

}  // namespace

TEST(HeatmapData, ColdFlagsAndEntropy) {
  // One layer of 4 experts: mean 25.25; 1 < 2.525 is cold, 0 is a hole (and cold).
  const QVector<double> counts{50, 50, 1, 0};
  const ColdFlags f = ColdFlags::fromCounts(counts, 1, 4);
  EXPECT_EQ(f.flags[0], ColdFlags::None);
  EXPECT_EQ(f.flags[2], ColdFlags::Cold);
  EXPECT_EQ(f.flags[3], ColdFlags::Cold | ColdFlags::Hole);
  EXPECT_EQ(f.coldPerLayer[0], 2);
  EXPECT_EQ(f.holesPerLayer[0], 1);
  const QVector<double> uniform(8, 10.0);
  const auto h = layerEntropyFromCounts(uniform, 1, 8);
  constexpr double kExactish = 1e-12;  // uniform counts: entropy is exactly log E / log E up to rounding
  EXPECT_NEAR(h[0], 1.0, kExactish);
}

TEST(HeatmapData, ProbeFileFromRazorProbe) {
  QTemporaryDir tmp;
  ASSERT_TRUE(tmp.isValid());
  const QString text = tmp.filePath(QStringLiteral("calib.txt"));
  {
    QFile f(text);
    ASSERT_TRUE(f.open(QIODevice::WriteOnly));
    for (int i = 0; i < 200; ++i) f.write("The quick brown fox jumps over the lazy dog while the kernel schedules work. ");
  }
  const QString out = tmp.filePath(QStringLiteral("probe.h5"));
  int code = -1;
  runRazor({QStringLiteral("probe"), modelDir("tiny-qwen3-5-moe"), QStringLiteral("--text"), text, QStringLiteral("--tokens"),
            QStringLiteral("256"), QStringLiteral("--seqlen"), QStringLiteral("128"), QStringLiteral("--out"), out},
           &code);
  ASSERT_EQ(code, 0);
  const HeatmapSource s = loadProbeHeatmaps(out);
  ASSERT_TRUE(s.ok()) << s.error.toStdString();
  EXPECT_EQ(s.rows, 4);
  EXPECT_EQ(s.cols, 16);
  ASSERT_NE(s.grid(QStringLiteral("routing count")), nullptr);
  ASSERT_NE(s.grid(QStringLiteral("gate mass")), nullptr);
  ASSERT_NE(s.grid(QStringLiteral("activation salience")), nullptr);
  ASSERT_NE(s.grid(QStringLiteral("weight norm (gate+up)")), nullptr);
  // Every token fills top_k (= 4) slots per layer, so each layer's counts sum to tokens x 4.
  const HeatmapGrid* freq = s.grid(QStringLiteral("routing count"));
  for (int l = 0; l < 4; ++l) {
    double sum = 0;
    for (int e = 0; e < 16; ++e) sum += freq->at(l, e);
    EXPECT_DOUBLE_EQ(sum, 256.0 * 4.0) << "layer " << l;
  }
  ASSERT_EQ(s.entropy.size(), 4);
  for (double h : s.entropy) {
    EXPECT_GT(h, 0.0);
    EXPECT_LE(h, 1.0);
  }
  // Gate mass: renormalised top-k weights sum to 1 per token.
  const HeatmapGrid* mass = s.grid(QStringLiteral("gate mass"));
  constexpr double kMassTol = 1e-6;  // float32 router probabilities summed over 256 tokens
  double m0 = 0;
  for (int e = 0; e < 16; ++e) m0 += mass->at(0, e);
  EXPECT_NEAR(m0, 256.0, 256.0 * kMassTol);
}

TEST(HeatmapData, ErrorsAreMessages) {
  QTemporaryDir tmp;
  const QString junk = tmp.filePath(QStringLiteral("junk.h5"));
  QFile f(junk);
  ASSERT_TRUE(f.open(QIODevice::WriteOnly));
  f.write("not hdf5");
  f.close();
  const HeatmapSource s = loadHeatmapSource(junk);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.error.contains(QStringLiteral("not an HDF5 file")));
  EXPECT_FALSE(loadHeatmapSource(tmp.filePath(QStringLiteral("missing.gguf"))).ok());
}

TEST(HeatmapData, ImatrixCountsAndHoles) {
  QTemporaryDir tmp;
  razor::gguf::imatrix im;
  im.chunk_count = 3;
  im.chunk_size = 512;
  for (int l = 0; l < 2; ++l)
    for (const char* p : {"down", "gate", "up"}) {
      razor::gguf::imatrix_entry e;
      e.name = "blk." + std::to_string(l) + ".ffn_" + p + "_exps.weight";
      e.n_per_row = 8;
      e.n_mat = 4;
      e.in_sum2.assign(32, 2.0f);
      e.counts = {100.0f, 50.0f, float(l == 1 ? 0 : 5), 1.0f};
      im.entries.push_back(e);
    }
  std::sort(im.entries.begin(), im.entries.end(), [](auto& a, auto& b) { return a.name < b.name; });
  const QString path = tmp.filePath(QStringLiteral("imatrix.gguf"));
  ASSERT_TRUE(razor::gguf::write_imatrix_gguf(im, path.toStdString()).ok());
  const HeatmapSource s = loadHeatmapSource(path);
  ASSERT_TRUE(s.ok()) << s.error.toStdString();
  EXPECT_EQ(s.kind, HeatmapSource::Kind::Imatrix);
  EXPECT_EQ(s.rows, 2);
  EXPECT_EQ(s.cols, 4);
  const HeatmapGrid* c = s.grid(QStringLiteral("routing count"));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->at(0, 0), 100.0);
  EXPECT_EQ(c->at(1, 2), 0.0);
  const ColdFlags f = ColdFlags::fromCounts(s.counts, s.rows, s.cols);
  EXPECT_EQ(f.holesPerLayer[1], 1);  // the coverage hole
  EXPECT_EQ(f.holesPerLayer[0], 0);
  EXPECT_TRUE(f.flags[0 * 4 + 3] & ColdFlags::Cold);  // 1 < 0.1 x 39
  const HeatmapGrid* en = s.grid(QStringLiteral("input energy"));
  ASSERT_NE(en, nullptr);
  EXPECT_FLOAT_EQ(float(en->at(0, 0)), 2.0f / 100.0f);
  EXPECT_TRUE(std::isnan(en->at(1, 2)));
}

TEST(HeatmapData, QuantSummary) {
  QTemporaryDir tmp;
  QJsonArray experts;
  for (int l = 0; l < 2; ++l)
    for (int e = 0; e < 3; ++e)
      for (const char* p : {"gate", "up", "down"})
        experts.append(QJsonObject{{"layer", l}, {"expert", e}, {"proj", p}, {"bits", 3}, {"rel_error", 0.1 * (e + 1)}});
  QJsonObject root{{"format", "razor.quant_summary/1"}, {"experts", experts},
                   {"totals", QJsonObject{{"rel_error", 0.2}, {"seed_effective_bits", 3.05}}}};
  const QString path = tmp.filePath(QStringLiteral("razor_quant_summary.json"));
  QFile f(path);
  ASSERT_TRUE(f.open(QIODevice::WriteOnly));
  f.write(QJsonDocument(root).toJson());
  f.close();
  const HeatmapSource s = loadHeatmapSource(path);
  ASSERT_TRUE(s.ok()) << s.error.toStdString();
  EXPECT_EQ(s.rows, 2);
  EXPECT_EQ(s.cols, 3);
  EXPECT_DOUBLE_EQ(s.grid(QStringLiteral("quant error"))->at(1, 2), 0.3);
  EXPECT_DOUBLE_EQ(s.grid(QStringLiteral("quantized bits"))->at(0, 0), 3.0);
}

class HeatmapRender : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(HeatmapRender, RendersZoomsAndTooltips) {
  const auto [rows, cols] = GetParam();
  const HeatmapSource src = syntheticHeatmapSource(rows, cols);
  HeatmapWidget w;
  w.resize(1100, 640);
  HeatmapCanvas* c = w.canvas();
  c->setCounts(src.counts);
  c->setEntropy(src.entropy);
  c->setGrid(src.grids[0]);
  EXPECT_EQ(c->image().size(), QSize(cols, rows));
  w.show();
  ASSERT_TRUE(QTest::qWaitForWindowExposed(&w));
  QImage img = w.grab().toImage();
  ASSERT_FALSE(img.isNull());
  // A cell that is neither a hole: its pixel is the colour map of its value.
  int layer = rows / 2, expert = 0;
  while (src.counts[qsizetype(layer) * cols + expert] == 0) ++expert;
  const double v = src.grids[0].at(layer, expert);
  const double t = (v - c->minValue()) / (c->maxValue() - c->minValue());
  EXPECT_EQ(QColor(cellPixel(c, img, layer, expert)), QColor(HeatmapCanvas::colormap(t)));

  // Log scale rebuilds the image with another mapping.
  c->setScale(HeatmapCanvas::Scale::Log);
  EXPECT_GT(c->minValue(), 0.0);
  img = w.grab().toImage();
  const double tl = (std::log10(v) - std::log10(c->minValue())) / (std::log10(c->maxValue()) - std::log10(c->minValue()));
  EXPECT_EQ(QColor(cellPixel(c, img, layer, expert)), QColor(HeatmapCanvas::colormap(tl)));

  // Zoom in with the wheel around the centre of the plot, then pan by dragging.
  const QPointF centre = QRectF(c->plotRect()).center();
  QWheelEvent wheel(centre, w.mapToGlobal(centre), QPoint(), QPoint(0, 120 * 4), Qt::NoButton, Qt::NoModifier,
                    Qt::NoScrollPhase, false);
  QApplication::sendEvent(&w, &wheel);
  EXPECT_LT(c->viewRect().width(), double(cols));
  EXPECT_LT(c->viewRect().height(), double(rows));
  const QRectF zoomed = c->viewRect();
  QTest::mousePress(&w, Qt::LeftButton, Qt::NoModifier, centre.toPoint());
  QMouseEvent move(QEvent::MouseMove, centre + QPointF(100, 0), w.mapToGlobal(centre + QPointF(100, 0)), Qt::NoButton,
                   Qt::LeftButton, Qt::NoModifier);
  QApplication::sendEvent(&w, &move);
  QTest::mouseRelease(&w, Qt::LeftButton, Qt::NoModifier, (centre + QPointF(100, 0)).toPoint());
  EXPECT_LT(c->viewRect().x(), zoomed.x());  // content moved right: the view went left
  EXPECT_DOUBLE_EQ(c->viewRect().width(), zoomed.width());

  // The tooltip names the cell and its exact value.
  const QPoint cell = c->cellAt(centre);
  ASSERT_GE(cell.x(), 0);
  const QString tip = c->toolTipAt(centre);
  EXPECT_TRUE(tip.contains(QStringLiteral("layer %1, expert %2").arg(cell.y()).arg(cell.x()))) << tip.toStdString();
  EXPECT_TRUE(tip.contains(QString::number(qint64(src.grids[0].at(cell.y(), cell.x()))))) << tip.toStdString();
  c->resetView();
  EXPECT_EQ(c->viewRect(), QRectF(0, 0, cols, rows));
}

INSTANTIATE_TEST_SUITE_P(Layouts, HeatmapRender,
                         ::testing::Values(std::make_pair(48, 256), std::make_pair(94, 512), std::make_pair(4, 16)));

TEST(HeatmapRender, HolesAreMarked) {
  HeatmapWidget w;
  w.resize(600, 300);
  HeatmapGrid g = HeatmapGrid::filled(QStringLiteral("routing count"), 2, 4, 10.0);
  g.values[5] = 0;
  w.canvas()->setCounts(g.values);
  w.canvas()->setGrid(g);
  const QImage& img = w.canvas()->image();
  EXPECT_EQ(img.pixel(1, 1), 0xffff00ffu);  // zero-count expert drawn in the hole colour
  w.canvas()->setShowFlags(false);
  EXPECT_NE(w.canvas()->image().pixel(1, 1), 0xffff00ffu);
}

TEST(HeatmapView, LoadsAsynchronously) {
  HeatmapView v;
  QSignalSpy failed(&v, &HeatmapView::loadFailed);
  QSignalSpy done(&v, &HeatmapView::loadsFinished);
  v.loadFile(QStringLiteral("/nonexistent/probe.h5"));
  EXPECT_EQ(v.pendingLoads(), 1);  // returned before the load ran
  ASSERT_TRUE(razor_test::waitUntil([&] { return done.count() > 0; }, 30000));
  EXPECT_EQ(failed.count(), 1);
  v.addSource(syntheticHeatmapSource(48, 256));
  EXPECT_EQ(v.canvas()->grid().rows, 48);
  EXPECT_FALSE(v.usingOpenGL());  // offscreen: GL is never constructed
}

TEST(TensorModels, InventoryCarriesTheStalePartialsBesideTheModel) {
  int code = -1;
  const QByteArray json =
      runRazor({QStringLiteral("inspect"), modelDir("tiny-qwen3-moe"), QStringLiteral("--json")}, &code);
  ASSERT_EQ(code, 0);
  auto j = nlohmann::json::parse(json.toStdString());
  ASSERT_TRUE(j.contains("stale_partials"));
  j["stale_partials"] = {{{"path", "/m/.model.gguf.partial-12"}, {"pid", 12}, {"dir", false}, {"bytes", 3}}};
  QString err;
  const ModelInventory inv = ModelInventory::fromJson(QByteArray::fromStdString(j.dump()), &err);
  ASSERT_TRUE(err.isEmpty()) << err.toStdString();
  EXPECT_EQ(inv.stalePartials, QStringList{QStringLiteral("/m/.model.gguf.partial-12")});
}

TEST(TensorModels, InventoryUnderModelTester) {
  int code = -1;
  const QByteArray json =
      runRazor({QStringLiteral("inspect"), modelDir("tiny-qwen3-5-moe"), QStringLiteral("--json")}, &code);
  ASSERT_EQ(code, 0);
  QString err;
  const ModelInventory inv = ModelInventory::fromJson(json, &err);
  ASSERT_TRUE(err.isEmpty()) << err.toStdString();
  EXPECT_EQ(inv.layers, 4);
  EXPECT_EQ(inv.expertsTotal, 16);
  EXPECT_EQ(inv.expertsActive, 4);
  EXPECT_EQ(inv.expertsShared, 1);
  qint64 sum = 0;
  for (const auto& t : inv.tensors) sum += t.params();
  EXPECT_EQ(sum, inv.paramsTotal);

  TensorTableModel model;
  QAbstractItemModelTester t1(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  TensorFilterProxy proxy;
  QAbstractItemModelTester t2(&proxy, QAbstractItemModelTester::FailureReportingMode::Fatal);
  proxy.setSourceModel(&model);
  model.setTensors(inv.tensors);
  EXPECT_EQ(model.rowCount(), inv.tensors.size());
  EXPECT_EQ(model.columnCount(), int(TensorTableModel::ColumnCount));

  proxy.setRoleFilter(QStringLiteral("routed_expert"));
  EXPECT_EQ(proxy.rowCount(), inv.byRole.value(QStringLiteral("routed_expert")).tensors);
  proxy.setRoleFilter(QString());
  proxy.setNameFilter(QStringLiteral("layers.2.mlp.experts.7."), false);
  EXPECT_EQ(proxy.rowCount(), 3);  // gate, up, down of one expert
  proxy.setNameFilter(QStringLiteral("experts\\.(3|11)\\.down_proj"), true);
  EXPECT_EQ(proxy.rowCount(), 8);  // 2 experts x 4 layers
  proxy.setNameFilter(QStringLiteral("experts\\.(("), true);
  EXPECT_FALSE(proxy.nameFilterValid());
  EXPECT_EQ(proxy.rowCount(), 0);
  proxy.setNameFilter(QString(), false);

  // Numeric sort on bytes, descending: the largest tensor first.
  proxy.sort(TensorTableModel::Bytes, Qt::DescendingOrder);
  qint64 maxBytes = 0;
  for (const auto& t : inv.tensors) maxBytes = std::max(maxBytes, t.bytes);
  const int src = proxy.mapToSource(proxy.index(0, 0)).row();
  EXPECT_EQ(model.tensor(src).bytes, maxBytes);
  proxy.sort(TensorTableModel::Layer, Qt::AscendingOrder);
  EXPECT_EQ(model.tensor(proxy.mapToSource(proxy.index(0, 0)).row()).layer, -1);
  model.setTensors({});
  EXPECT_EQ(proxy.rowCount(), 0);
}

TEST(HeatmapGL, RendersWithImGuiHudUnderXvfb) {
  // Never construct a QOpenGLWidget under offscreen (Qt crashes in rhiFlush): run under xvfb-run with
  // QT_QPA_PLATFORM=xcb to exercise this path.
  if (!HeatmapGLWidget::openGLUsable()) GTEST_SKIP() << "OpenGL is not usable on platform " << qPrintable(QGuiApplication::platformName());
  const HeatmapSource src = syntheticHeatmapSource(48, 256);
  HeatmapGLWidget w;
  w.resize(1000, 600);
  w.canvas()->setCounts(src.counts);
  w.canvas()->setGrid(src.grids[0]);
  w.show();
  ASSERT_TRUE(QTest::qWaitForWindowExposed(&w));
  const QImage img = w.grabFramebuffer();
  ASSERT_FALSE(img.isNull());
  EXPECT_TRUE(w.hudActive());  // ImGui's OpenGL 3 backend initialised on this context
  int layer = 40, expert = 0;  // bottom left: clear of the HUD (top right)
  while (src.counts[qsizetype(layer) * 256 + expert] == 0) ++expert;
  HeatmapCanvas* c = w.canvas();
  const double t = (src.grids[0].at(layer, expert) - c->minValue()) / (c->maxValue() - c->minValue());
  const QColor want(HeatmapCanvas::colormap(t)), got(cellPixel(c, img, layer, expert));
  constexpr int kGlColourTol = 2;  // GL paint engine may round differently from the raster engine
  EXPECT_LE(std::abs(want.red() - got.red()), kGlColourTol);
  EXPECT_LE(std::abs(want.green() - got.green()), kGlColourTol);
  EXPECT_LE(std::abs(want.blue() - got.blue()), kGlColourTol);
}
