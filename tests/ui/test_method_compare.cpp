// The Methods view (MethodCompareView, MethodCompareResult): a razor.method_compare/1 result (tests/ui/data/
// method-compare-tiny.json, hand-made by make_method_compare_tiny.py: gptq best in layers 0, 1, 3, clip in layer 2,
// layer 3 expert 5 unscored) as a table per method, one heatmap per method on one colour range and the best method
// per layer; bad files refused naming the file; and a real `compare-methods` job on the tiny fixture through the
// worker pool, its form built from the hello, its result opened in the view. docs/screenshots/method-compare.png (the
// recorded real result of every method on the fixture) is written when RAZOR_SCREENSHOT_DIR is set (scripts/screenshots.sh).
#include <gtest/gtest.h>

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QSignalSpy>
#include <QTableWidget>
#include <QTemporaryDir>
#include <cmath>

#include "HeatmapWidget.h"
#include "MainWindow.h"
#include "MethodCompareData.h"
#include "MethodCompareView.h"
#include "ParamForm.h"
#include "WorkerPool.h"
#include "worker_test_util.h"

using namespace razor_test;

namespace {
const QString kData = QStringLiteral(RAZOR_SOURCE_DIR_T "/tests/ui/data/method-compare-tiny.json");

QJsonObject readJson(const QString& path) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) return {};
  return QJsonDocument::fromJson(f.readAll()).object();
}
void writeJson(const QString& path, const QJsonObject& o) {
  QFile f(path);
  ASSERT_TRUE(f.open(QIODevice::WriteOnly));
  f.write(QJsonDocument(o).toJson());
}
}  // namespace

TEST(MethodCompare, ParsesTheRecordedResult) {
  const MethodCompareResult r = MethodCompareResult::load(kData);
  ASSERT_TRUE(r.ok()) << r.error.toStdString();
  EXPECT_EQ(r.methods, (QStringList{"clip", "absmax", "rtn-asym", "gptq"}));
  EXPECT_EQ(r.layers, 4);
  EXPECT_EQ(r.experts, 8);
  EXPECT_EQ(r.scored, 31);
  EXPECT_DOUBLE_EQ(r.bits, 3.0);
  EXPECT_EQ(r.group, 128);
  EXPECT_DOUBLE_EQ(r.refPpl, 11.5);
  EXPECT_EQ(r.bestMethod(0), "gptq");
  EXPECT_EQ(r.bestMethod(1), "gptq");
  EXPECT_EQ(r.bestMethod(2), "clip");
  EXPECT_EQ(r.bestMethod(3), "gptq");
  EXPECT_EQ(r.bestMethod(4), "");
  EXPECT_EQ(r.bestOverall(), "gptq");
  EXPECT_EQ(r.summary["gptq"].fallbacks, 1);
  EXPECT_EQ(r.summary["clip"].fallbacks, 0);
  EXPECT_EQ(r.summary["clip"].nExperts, 31);
  // Layer 0 expert 0: base 0.02; absmax 1.9 x, down 1.1 x the expert metric.
  const HeatmapGrid g = r.grid("absmax", "down");
  EXPECT_EQ(g.rows, 4);
  EXPECT_EQ(g.cols, 8);
  EXPECT_NEAR(g.at(0, 0), 0.02 * 1.9 * 1.1, 1e-6);
  EXPECT_TRUE(std::isnan(g.at(3, 5)));  // not scored
  // per_layer is the mean of the layer's expert NMSE.
  double sum = 0;
  for (int e = 0; e < 8; ++e) sum += r.grid("clip").at(1, e);
  EXPECT_NEAR(r.perLayer["clip"][1], sum / 8, 1e-9);
}

TEST(MethodCompare, RefusesBadFilesNamingThem) {
  QTemporaryDir d;
  ASSERT_TRUE(d.isValid());
  const MethodCompareResult missing = MethodCompareResult::load(d.filePath("none.json"));
  EXPECT_FALSE(missing.ok());
  EXPECT_TRUE(missing.error.contains("none.json")) << missing.error.toStdString();

  QFile junk(d.filePath("junk.json"));
  ASSERT_TRUE(junk.open(QIODevice::WriteOnly));
  junk.write("{ not json");
  junk.close();
  const MethodCompareResult notJson = MethodCompareResult::load(junk.fileName());
  EXPECT_FALSE(notJson.ok());
  EXPECT_TRUE(notJson.error.contains("junk.json"));

  writeJson(d.filePath("other.json"), QJsonObject{{"format", "razor.inventory/1"}});
  const MethodCompareResult other = MethodCompareResult::load(d.filePath("other.json"));
  EXPECT_FALSE(other.ok());
  EXPECT_TRUE(other.error.contains("razor.method_compare/1"));

  // An expert index no checkpoint has: refused before a grid is allocated for it.
  QJsonObject o = readJson(kData);
  QJsonArray ex = o.value("experts").toArray();
  QJsonObject e0 = ex[0].toObject();
  e0["expert"] = 1 << 30;
  ex[0] = e0;
  o["experts"] = ex;
  writeJson(d.filePath("huge.json"), o);
  const MethodCompareResult huge = MethodCompareResult::load(d.filePath("huge.json"));
  EXPECT_FALSE(huge.ok());
  EXPECT_TRUE(huge.error.contains("huge.json"));
}

TEST(MethodCompareView, ShowsTableHeatmapsAndBestPerLayer) {
  MethodCompareView v;
  QSignalSpy loaded(&v, &MethodCompareView::resultLoaded);
  v.loadFile(kData);
  ASSERT_TRUE(waitUntil([&] { return loaded.count() == 1; }));
  QTableWidget* t = v.summaryTable();
  ASSERT_EQ(t->rowCount(), 4);
  EXPECT_EQ(t->item(3, 0)->text(), "gptq");
  EXPECT_EQ(t->horizontalHeaderItem(2)->text(), QString::fromUtf8("\u00d7 clip"));
  EXPECT_EQ(t->item(0, 2)->text(), "1");                  // clip against itself
  const MethodCompareResult& r = v.result();
  EXPECT_EQ(t->item(3, 2)->text(), QString::number(r.summary["gptq"].meanNmse / r.summary["clip"].meanNmse, 'g', 3));
  EXPECT_EQ(t->item(3, 12)->text(), "1");                 // fallbacks
  EXPECT_EQ(t->item(0, 11)->text(), "13");                // ppl 12 + 1
  QTableWidget* l = v.layerTable();
  ASSERT_EQ(l->rowCount(), 4);
  EXPECT_EQ(l->item(0, 0)->text(), "gptq");
  EXPECT_EQ(l->item(2, 0)->text(), "clip");
  EXPECT_EQ(l->item(3, 0)->text(), "gptq");
  ASSERT_EQ(v.heatmaps().size(), 4);
  // One colour range for all methods: the lowest cell of any method to the highest.
  const double lo = v.heatmaps()[0]->canvas()->minValue(), hi = v.heatmaps()[0]->canvas()->maxValue();
  for (HeatmapWidget* w : v.heatmaps()) {
    EXPECT_DOUBLE_EQ(w->canvas()->minValue(), lo);
    EXPECT_DOUBLE_EQ(w->canvas()->maxValue(), hi);
  }
  EXPECT_NEAR(lo, 0.02 * 0.7, 1e-9);  // gptq, layer 0 expert 0
  EXPECT_NEAR(v.heatmaps()[1]->canvas()->grid().at(0, 0), 0.02 * 1.9, 1e-6);
  v.setMetric("gate");
  EXPECT_NEAR(v.heatmaps()[1]->canvas()->grid().at(0, 0), 0.02 * 1.9 * 0.8, 1e-6);
  v.setLogScale(false);
  EXPECT_EQ(v.heatmaps()[0]->canvas()->scale(), HeatmapCanvas::Scale::Linear);
  v.setMetric("expert");
  v.setLogScale(true);

  // A bad file keeps what is shown and says why.
  QSignalSpy failed(&v, &MethodCompareView::loadFailed);
  v.loadFile(kData + ".missing");
  ASSERT_TRUE(waitUntil([&] { return failed.count() == 1; }));
  EXPECT_EQ(v.summaryTable()->rowCount(), 4);

}

// The recorded real result of every method on the tiny fixture (tests/ui/data/README.md): parsed whole, and the
// screenshot docs/screenshots/method-compare.png.
TEST(MethodCompareView, RecordedRealResultAndScreenshot) {
  MethodCompareView v;
  QSignalSpy loaded(&v, &MethodCompareView::resultLoaded);
  v.loadFile(QStringLiteral(RAZOR_SOURCE_DIR_T "/tests/ui/data/method-compare-tiny-qwen3-moe.json"));
  ASSERT_TRUE(waitUntil([&] { return loaded.count() == 1; }));
  const MethodCompareResult& r = v.result();
  EXPECT_EQ(r.methods, (QStringList{"clip", "absmax", "rtn-asym", "awq", "gptq", "hqq"}));
  EXPECT_EQ(r.layers, 4);
  EXPECT_EQ(r.experts, 16);
  EXPECT_EQ(r.scored, 64);
  EXPECT_EQ(r.summary["clip"].nExperts, 64);
  EXPECT_FALSE(std::isnan(r.refPpl));
  for (const QString& m : r.methods) {
    EXPECT_FALSE(std::isnan(r.summary[m].ppl)) << m.toStdString();
    EXPECT_FALSE(std::isnan(r.summary[m].klMean)) << m.toStdString();
    EXPECT_GT(r.summary[m].meanNmse, 0.0) << m.toStdString();
  }
  for (int l = 0; l < r.layers; ++l) EXPECT_FALSE(r.bestMethod(l).isEmpty());
  EXPECT_EQ(v.heatmaps().size(), 6);
  EXPECT_EQ(v.layerTable()->rowCount(), 4);
  v.resize(1500, 900);
  v.show();
  QTest::qWait(50);
  QTemporaryDir scratch;  // rendered either way; kept only under RAZOR_SCREENSHOT_DIR
  EXPECT_TRUE(v.grab().save(qEnvironmentVariable("RAZOR_SCREENSHOT_DIR", scratch.path()) + "/method-compare.png"));
}

TEST(MethodCompareView, StateRoundTrip) {
  MethodCompareView v;
  QSignalSpy loaded(&v, &MethodCompareView::resultLoaded);
  v.loadFile(kData);
  ASSERT_TRUE(waitUntil([&] { return loaded.count() == 1; }));
  v.setMetric("down");
  v.setLogScale(false);
  const QJsonObject st = v.saveState();
  EXPECT_EQ(st.value("file").toString(), kData);
  MethodCompareView w;
  QSignalSpy loaded2(&w, &MethodCompareView::resultLoaded);
  w.restoreState(st);
  ASSERT_TRUE(waitUntil([&] { return loaded2.count() == 1; }));
  EXPECT_EQ(w.metric(), "down");
  EXPECT_EQ(w.heatmaps()[0]->canvas()->scale(), HeatmapCanvas::Scale::Linear);
  EXPECT_EQ(w.summaryTable()->rowCount(), 4);
  w.restoreState(QJsonObject());  // a new workspace: empty
  EXPECT_EQ(w.summaryTable()->rowCount(), 0);
  EXPECT_TRUE(w.heatmaps().isEmpty());
  EXPECT_FALSE(w.saveState().contains("file"));
}

TEST(MethodCompareView, IsATabOfTheMainWindow) {
  MainWindow w;
  EXPECT_TRUE(w.viewIds().contains("methods"));
  ASSERT_NE(w.methodCompareView(), nullptr);
  EXPECT_TRUE(w.showView("methods"));
}

// The real worker: the form comes from the hello, the job runs on the tiny fixture (NMSE only, two fast methods,
// few tokens) and its result opens in the view.
TEST(MethodCompareView, RunsCompareMethodsThroughTheWorker) {
  QTemporaryDir tmp;
  ASSERT_TRUE(tmp.isValid());
  WorkerPool pool;
  pool.setProgram(razorCli(), {"worker"});
  pool.setGpuCount(0);
  pool.setWorkingDirectory(QStringLiteral(RAZOR_SOURCE_DIR_T));
  MethodCompareView v;
  v.setWorkerPool(&pool);
  v.setModelPath(QStringLiteral(RAZOR_MODELS_DIR "/tiny-qwen3-moe"));
  v.setOutputFolder(tmp.path());
  QSignalSpy loaded(&v, &MethodCompareView::resultLoaded);
  QSignalSpy failed(&pool, &WorkerPool::jobFailed);
  pool.start();
  ASSERT_TRUE(waitUntil([&] { return !pool.lastHello().isEmpty(); }, kStartTimeoutMs));
  ParamForm* form = v.runForm();
  ASSERT_NE(form, nullptr);
  EXPECT_EQ(form->value("model").toString(), QStringLiteral(RAZOR_MODELS_DIR "/tiny-qwen3-moe"));
  ASSERT_TRUE(form->hasField("methods"));
  ASSERT_TRUE(form->setValue("methods", QStringLiteral("absmax,rtn-asym")));
  ASSERT_TRUE(form->setValue("no_kl", true));
  ASSERT_TRUE(form->setValue("calib_tokens", 512));
  ASSERT_TRUE(form->setValue("seqlen", 128));
  ASSERT_TRUE(form->setValue("tokens_per_expert", 32));
  QString err;
  const QString job = v.runJob(&err);
  ASSERT_FALSE(job.isEmpty()) << err.toStdString();
  EXPECT_FALSE(v.runJob(&err).size());  // one at a time
  ASSERT_TRUE(waitUntil([&] { return loaded.count() == 1 || failed.count() > 0; }, 300000));
  ASSERT_EQ(failed.count(), 0) << failed[0][2].toString().toStdString();
  EXPECT_TRUE(loaded[0][0].toString().startsWith(tmp.path()));
  EXPECT_EQ(v.result().methods, (QStringList{"absmax", "rtn-asym"}));
  EXPECT_EQ(v.result().layers, 4);
  EXPECT_GT(v.result().scored, 0);
  EXPECT_EQ(v.summaryTable()->rowCount(), 2);
  EXPECT_TRUE(v.currentJob().isEmpty());
  pool.shutdown();
}
