// The served model's speed in the comparison view (issue 22): `razor eval --speed-contexts` writes a "speed" block
// (core/eval/speed.h) beside the benchmarks, or alone; the Speed tab lists prefill / decode tokens/s, GPU memory and
// the expert offload (--n-cpu-moe from the provenance's server argv) per run column and context, and draws both
// rates by prompt length. docs/screenshots/comparison-speed.png (scripts/screenshots.sh sets RAZOR_SCREENSHOT_DIR).
#include <gtest/gtest.h>

#include <QBarSeries>
#include <QBarSet>
#include <QChart>
#include <QFile>
#include <QJsonArray>
#include <algorithm>
#include <QTabWidget>
#include <QTableWidget>
#include <QTemporaryDir>

#include "ComparisonView.h"
#include "ResultsModel.h"

namespace {

void writeFile(const QString& path, const QByteArray& text) {
  QFile f(path);
  ASSERT_TRUE(f.open(QIODevice::WriteOnly));
  f.write(text);
}

// A `razor eval` result: the benchmarks (optional) and the speed points {context, prompt, prefill, decode, memory}.
QByteArray evalResult(const char* tag, const char* scores, const QList<QList<double>>& points, const char* argv) {
  QByteArray pts;
  double peak = 0;
  for (const auto& p : points) {
    pts += QByteArray(pts.isEmpty() ? "" : ",") +
           QStringLiteral(R"({"context":%1,"prompt_tokens":%2,"generated":128,"prefill_tok_s":%3,"decode_tok_s":%4,)"
                          R"("method":"server timings","gpu_memory_used_bytes":%5})")
               .arg(p[0]).arg(p[1]).arg(p[2]).arg(p[3]).arg(qint64(p[4])).toUtf8();
    peak = std::max(peak, p[4]);
  }
  return QByteArray(R"({"tag":")") + tag + R"(","model":")" + tag + R"(","think":true,"budget":32768,)" +
         R"("backend":"openai-compatible",)" + scores + R"("speed":{"gen_tokens":128,"points":[)" + pts +
         R"(],"peak_gpu_memory_used_bytes":)" + QByteArray::number(qint64(peak)) +
         R"(},"provenance":{"razor_version":"0.1.0","budget":32768,"server_command":)" + argv + "}}";
}

}  // namespace

TEST(ComparisonView, SpeedPerRunAndContext) {
  QTemporaryDir d;
  ASSERT_TRUE(d.isValid());
  // The seed's deployment figures on one H100 (seed-reference §7): all on the GPU, then the experts offloaded.
  writeFile(d.filePath("iq3.json"),
            evalResult("q122-iq3", R"("gpqa_acc":80.3,"gpqa_acc_finished":82.0,"gpqa_n":198,"gpqa_n_finished":190,"gpqa_trunc":8,)",
                       {{512, 517, 2541.0, 115.9, 53.7e9}, {4096, 4101, 2410.5, 109.2, 54.1e9}, {16384, 16390, 2050.8, 98.4, 55.0e9}},
                       R"(["llama-server","-m","/m/q122-iq3.gguf","--port","8080","-ngl","999"])"));
  // Speed only (no benchmark): still a run.
  writeFile(d.filePath("iq3-offload.json"),
            evalResult("q122-iq3-offload", "", {{512, 517, 690.2, 45.7, 7.5 * 1073741824.0}, {4096, 4101, 655.0, 43.1, 7.9 * 1073741824.0}},
                       R"(["llama-server","-m","/m/q122-iq3.gguf","--port","8081","-ngl","999","--n-cpu-moe","40"])"));
  ComparisonView v;
  for (const char* f : {"iq3.json", "iq3-offload.json"}) {
    QString err;
    ASSERT_TRUE(v.model()->loadFile(d.filePath(f), &err)) << err.toStdString();
  }
  EXPECT_TRUE(v.model()->runs().contains("q122-iq3-offload")) << "a speed-only file is a run";
  v.model()->addRunColumn("q122-iq3");
  v.model()->addRunColumn("q122-iq3-offload");
  EXPECT_EQ(v.model()->speed("q122-iq3").value("n_cpu_moe").toInt(), 0);
  EXPECT_EQ(v.model()->speed("q122-iq3-offload").value("n_cpu_moe").toInt(), 40);
  EXPECT_EQ(v.model()->speedOfColumn(1).value("points").toArray().size(), 2);

  QTableWidget* t = v.speedTable();
  ASSERT_EQ(t->rowCount(), 5);
  EXPECT_EQ(t->item(0, 0)->text(), "q122-iq3");
  EXPECT_EQ(t->item(0, 1)->text(), "none");
  EXPECT_EQ(t->item(0, 2)->text(), "512");
  EXPECT_EQ(t->item(0, 4)->text(), "2541.0");
  EXPECT_EQ(t->item(0, 5)->text(), "115.9");
  EXPECT_EQ(t->item(0, 6)->text(), "53.7 GB");
  EXPECT_EQ(t->item(3, 1)->text(), "--n-cpu-moe 40");
  EXPECT_EQ(t->item(3, 5)->text(), "45.7");
  EXPECT_EQ(t->item(3, 7)->text(), "server timings");
  // Grouped bars: the contexts every column has or not (missing = 0), a set per column.
  for (QChart* c : {v.prefillChart(), v.decodeChart()}) {
    ASSERT_EQ(c->series().size(), 1);
    auto* bars = static_cast<QBarSeries*>(c->series().first());
    ASSERT_EQ(bars->count(), 2);
    EXPECT_EQ(bars->barSets()[0]->count(), 3);
    EXPECT_TRUE(bars->barSets()[1]->label().contains("--n-cpu-moe 40")) << bars->barSets()[1]->label().toStdString();
  }
  auto* decode = static_cast<QBarSeries*>(v.decodeChart()->series().first());
  EXPECT_DOUBLE_EQ(decode->barSets()[0]->at(0), 115.9);
  EXPECT_DOUBLE_EQ(decode->barSets()[1]->at(1), 43.1);
  EXPECT_DOUBLE_EQ(decode->barSets()[1]->at(2), 0.0) << "not measured at 16k";
  // Removing a column takes its rows away; a file without speed shows none.
  v.model()->removeRunColumn(1);
  EXPECT_EQ(v.speedTable()->rowCount(), 3);

  v.model()->addRunColumn("q122-iq3-offload");
  v.resize(1600, 900);
  v.chartTabs()->setCurrentIndex(v.chartTabs()->count() - 1);
  v.show();
  QTemporaryDir scratch;
  QString err;
  EXPECT_TRUE(v.exportPng(qEnvironmentVariable("RAZOR_SCREENSHOT_DIR", scratch.path()) + "/comparison-speed.png",
                          ComparisonView::Snapshot::Whole, &err))
      << err.toStdString();
}

TEST(ComparisonView, AFileWithoutScoresOrSpeedIsStillRefused) {
  QTemporaryDir d;
  ASSERT_TRUE(d.isValid());
  writeFile(d.filePath("empty.json"), R"({"tag":"x","model":"x","think":true})");
  ResultsModel m;
  QString err;
  EXPECT_FALSE(m.loadFile(d.filePath("empty.json"), &err));
  EXPECT_TRUE(err.contains("no benchmark score found")) << err.toStdString();
}
