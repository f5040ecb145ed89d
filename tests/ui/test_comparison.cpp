// The benchmark comparison: the importer (every schema variant of the seed's result files and ours, and
// clear rejections), the statistics (Wilson, two-proportion test, verdicts), the validation gate, the
// ResultsModel under QAbstractItemModelTester, the seed's headline table reproduced from the result files,
// and the view's CSV / PNG export.
#include <gtest/gtest.h>

#include <QAbstractItemModelTester>
#include <QBarSeries>
#include <QBarSet>
#include <QChart>
#include <QCryptographicHash>
#include <QDir>
#include <QDirIterator>
#include <QFile>
#include <QImage>
#include <QSet>
#include <QTemporaryDir>
#include <cmath>
#include <memory>

#include "results/bench_result.h"
#include "ComparisonView.h"
#include "ResultsModel.h"

using namespace razor::results;

using nlohmann::json;

namespace {

const QString kResults = QStringLiteral(RAZOR_SOURCE_DIR_T "/resources/results");
const std::string kSeed = RAZOR_SOURCE_DIR_T "/resources/results/seed";

// Published numbers carry one decimal: compare rounded to 0.05.
constexpr double kOneDecimal = 0.05;

// Counts QAbstractItemModelTester complaints (Warning mode), so a broken model fails the gtest instead of
// aborting the whole binary.
struct ModelTesterWarnings {
  static inline int count = 0;
  static inline QtMessageHandler previous = nullptr;
  ModelTesterWarnings() {
    count = 0;
    previous = qInstallMessageHandler([](QtMsgType t, const QMessageLogContext& c, const QString& m) {
      if (QByteArray(c.category ? c.category : "").contains("modeltest") || m.contains(QLatin1String("FAIL"))) ++count;
      if (previous) previous(t, c, m);
    });
  }
  ~ModelTesterWarnings() { qInstallMessageHandler(previous); }
};


}  // namespace

TEST(ComparisonImport, EveryBundledSeedFileImports) {
  QStringList errors;
  ResultsModel m;
  int n = m.loadDirectory(kResults + QStringLiteral("/seed"), &errors);
  EXPECT_TRUE(errors.isEmpty()) << errors.join(QLatin1Char('\n')).toStdString();
  EXPECT_EQ(n, 39 + 3 + 2);  // vllm_eval (without _dbg), mm, quant_compare
}

// The bundled copies are the seed's files byte for byte: resources/results/seed/SHA256SUMS holds the digests of
// the originals (shared/reference/seed-results, recorded when they were copied), and every bundled file is listed.
TEST(ComparisonImport, BundledCopiesAreTheSeedFiles) {
  QFile sums(QString::fromStdString(kSeed + "/SHA256SUMS"));
  ASSERT_TRUE(sums.open(QIODevice::ReadOnly | QIODevice::Text));
  QSet<QString> listed;
  while (!sums.atEnd()) {
    const QString line = QString::fromUtf8(sums.readLine()).trimmed();
    if (line.isEmpty()) continue;
    const QString digest = line.section(QLatin1Char(' '), 0, 0), rel = line.section(QLatin1Char(' '), 2);
    listed.insert(rel);
    QFile f(QString::fromStdString(kSeed) + QLatin1Char('/') + rel);
    ASSERT_TRUE(f.open(QIODevice::ReadOnly)) << rel.toStdString();
    EXPECT_EQ(QString::fromLatin1(QCryptographicHash::hash(f.readAll(), QCryptographicHash::Sha256).toHex()), digest)
        << rel.toStdString();
  }
  EXPECT_EQ(listed.size(), 44);  // 39 vllm_eval (no _dbg dumps), 3 mm, 2 quant_compare
  QDirIterator it(QString::fromStdString(kSeed), QDir::Files, QDirIterator::Subdirectories);
  while (it.hasNext()) {
    const QString rel = QDir(QString::fromStdString(kSeed)).relativeFilePath(it.next());
    if (rel != QLatin1String("SHA256SUMS")) EXPECT_TRUE(listed.contains(rel)) << rel.toStdString() << " is not in SHA256SUMS";
  }
}

// ---- importer: rejections ----------------------------------------------------------------------------------
TEST(ComparisonImport, RejectsUnreadableAndInvalidJson) {
  QTemporaryDir dir;
  ASSERT_TRUE(dir.isValid());
  QString p = dir.filePath(QStringLiteral("broken.json"));
  QFile f(p);
  ASSERT_TRUE(f.open(QIODevice::WriteOnly));
  f.write("{\"tag\": \"x\", \"gpqa_acc\": 8");
  f.close();
  import_result r = import_result_file(p.toStdString());
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error.find("not valid JSON"), std::string::npos) << r.error;
  import_result missing = import_result_file(dir.filePath(QStringLiteral("nope.json")).toStdString());
  EXPECT_NE(missing.error.find("cannot be opened"), std::string::npos);
  // The model reports it, and keeps what it had.
  ResultsModel m;
  QString err;
  EXPECT_FALSE(m.loadFile(p, &err));
  EXPECT_TRUE(err.contains(QLatin1String("broken.json")));
  EXPECT_TRUE(m.allResults().empty());
}

TEST(ComparisonGate, OfficialTargetsAndGateOnTheSeedResults) {
  ResultsModel m;
  QStringList errors;
  m.loadCatalog(kResults, &errors);
  ASSERT_TRUE(errors.isEmpty()) << errors.join(QLatin1Char('\n')).toStdString();
  const official_targets& t = m.officialTargets();
  EXPECT_NEAR(t.gate_points, 2.0, 1e-12);
  ASSERT_NE(t.for_model("Qwen/Qwen3.5-122B-A10B"), nullptr);
  EXPECT_NEAR(t.for_model("qwen/qwen3.5-122b-a10b")->target("mmlu_pro").value_or(0), 86.7, 1e-12);
  EXPECT_NEAR(t.for_model("google/gemma-4-26b-a4b-it")->target("mmmu_pro").value_or(0), 73.8, 1e-12);
  EXPECT_NEAR(t.for_model("Qwen/Qwen3.6-35B-A3B")->target("aime2026").value_or(0), 92.7, 1e-12);

  // MMLU-Pro, GPQA, MMMLU are gated (seed-reference §4.5); LCB v6 reads 8+ points low for every model.
  for (const char* b : {"mmlu_pro", "gpqa", "mmmlu"}) {
    gate_status g = gate_for(b, m.allResults(), t);
    EXPECT_EQ(g.state, gate_state::gated) << b << ": " << g.evidence;
    EXPECT_LE(std::abs(g.off_by.value_or(99)), 2.0) << b;
  }
  gate_status lcb = gate_for("lcb", m.allResults(), t);
  EXPECT_EQ(lcb.state, gate_state::not_gated) << lcb.evidence;
  EXPECT_EQ(gate_for("medxpert", m.allResults(), t).state, gate_state::no_target);

  std::string err;
  parse_official_targets(json{{"targets", {{{"model", "m"}, {"benchmarks", {{"gpqa", "x"}}}}}}}, &err);
  EXPECT_NE(err.find("targets[0].benchmarks.gpqa: expected a number"), std::string::npos) << err;
}

// ---- the model and the headline table -------------------------------------------------------------------------
TEST(ComparisonModel, PassesTheItemModelTesterThroughEveryChange) {
  ModelTesterWarnings warnings;
  ResultsModel m;
  QAbstractItemModelTester tester(&m, QAbstractItemModelTester::FailureReportingMode::Warning);
  m.loadCatalog(kResults);
  for (int i = 0; i < m.presets().size(); ++i) m.applyPreset(i);
  m.applyPreset(0);
  m.addRunColumn(QStringLiteral("gguf_iq3xxs"));
  m.setBaseline(1);
  m.removeRunColumn(0);
  m.addRunColumn(QStringLiteral("quant_compare_q36:awq"));
  m.loadFile(kResults + QStringLiteral("/seed/vllm_eval/q36_teacher.json"));
  for (int r = 0; r < m.rowCount(); ++r)
    for (int c = 0; c < m.columnCount(); ++c)
      for (int role : {int(Qt::DisplayRole), int(Qt::ToolTipRole), int(Qt::BackgroundRole), int(ResultsModel::AccRole),
                       int(ResultsModel::VerdictRole), int(ResultsModel::GateRole)})
        m.data(m.index(r, c), role);
  EXPECT_EQ(warnings.count, 0);
}

TEST(ComparisonModel, ReproducesTheSeedHeadlineTable) {
  // README / RESULTS.md: teacher / clip / A4B = MMLU-Pro 87.6 / 88.5 / 85.6, GPQA 83.8 / 84.8 / 79.3,
  // MMMLU 88.8 / 87.2 / 85.4; per seed-reference §4.7 these come from q122_bf16_ladder_32k,
  // q122_ptq3b_clip_think (MMLU-Pro, GPQA) + q122clip_ladder_mmmlu (MMMLU), and gemma4_a4b_ladder_32k.
  ResultsModel m;
  m.loadCatalog(kResults);
  m.applyPreset(0);
  ASSERT_EQ(m.runColumnCount(), 3);
  EXPECT_EQ(m.runColumn(0).label, QStringLiteral("teacher"));
  EXPECT_EQ(m.runColumn(1).label, QStringLiteral("clip"));
  EXPECT_EQ(m.runColumn(2).label, QStringLiteral("A4B"));
  ASSERT_EQ(m.benchmarkKeys(), (QStringList{"mmlu_pro", "gpqa", "mmmlu"}));
  const double expected[3][3] = {{87.6, 88.5, 85.6}, {83.8, 84.8, 79.3}, {88.8, 87.2, 85.4}};
  const char* sources[3][3] = {{"q122_bf16_ladder_32k", "q122_ptq3b_clip_think", "gemma4_a4b_ladder_32k"},
                               {"q122_bf16_ladder_32k", "q122_ptq3b_clip_think", "gemma4_a4b_ladder_32k"},
                               {"q122_bf16_ladder_32k", "q122clip_ladder_mmmlu", "gemma4_a4b_ladder_32k"}};
  for (int b = 0; b < 3; ++b)
    for (int c = 0; c < 3; ++c) {
      const bench_result* r = m.result(b, c);
      ASSERT_NE(r, nullptr) << b << "," << c;
      EXPECT_NEAR(std::round(r->acc * 10) / 10, expected[b][c], 1e-9) << b << "," << c;
      EXPECT_EQ(r->run, sources[b][c]);
    }
  // The same numbers as the table shows them (acc column of each run).
  int clipAcc = -1;
  for (int col = 0; col < m.columnCount(); ++col) {
    int run = -1;
    if (m.cellKind(col, &run) == ResultsModel::CellKind::Acc && run == 1) clipAcc = col;
  }
  ASSERT_GE(clipAcc, 0);
  EXPECT_TRUE(m.data(m.index(0, clipAcc)).toString().startsWith(QStringLiteral("88.5 [")));
  EXPECT_TRUE(m.headerData(2, Qt::Horizontal).toString().contains(QLatin1String("baseline")));
  // The clip's n is mixed (200 vs 500), as the audit says; its MMLU-Pro edge over the teacher is within noise.
  EXPECT_EQ(m.result(0, 1)->n, 200);
  EXPECT_EQ(m.result(0, 0)->n, 500);
  EXPECT_EQ(m.comparison(0, 1).verdict, verdict_kind::within_noise);
  // In fact every difference of the headline table is within noise at 95% (largest |z|: A4B's MMMLU, 1.6):
  // the seed's "win preserved" rows are not significant wins.
  for (int b = 0; b < 3; ++b)
    for (int c = 1; c < 3; ++c) EXPECT_EQ(m.comparison(b, c).verdict, verdict_kind::within_noise) << b << "," << c;
  // Gate column.
  for (int b = 0; b < 3; ++b) EXPECT_EQ(m.data(m.index(b, 1)).toString(), QStringLiteral("gated"));
  // Footprints for the Pareto chart.
  EXPECT_NEAR(m.footprint(0).value_or(0), 245, 1e-9);
  EXPECT_NEAR(m.footprint(1).value_or(0), 46.7, 1e-9);
  EXPECT_NEAR(m.footprint(2).value_or(0), 52, 1e-9);
}

TEST(ComparisonModel, RecoverableGapOnTheQwen36Runs) {
  // q36 clip vs teacher (64k): GPQA 73.2 vs 84.3 overall (43 truncated) but 86.5 vs 88.8 among finished.
  ResultsModel m;
  m.loadCatalog(kResults);
  int preset = -1;
  for (int i = 0; i < m.presets().size(); ++i)
    if (m.presets()[i].name.startsWith(QStringLiteral("Qwen3.6-35B-A3B: teacher vs"))) preset = i;
  ASSERT_GE(preset, 0);
  m.applyPreset(preset);
  int gpqa = int(m.benchmarkKeys().indexOf(QStringLiteral("gpqa")));
  ASSERT_GE(gpqa, 0);
  bench_comparison c = m.comparison(gpqa, 1);
  EXPECT_EQ(c.verdict, verdict_kind::recoverable_gap) << c.why;
  EXPECT_NEAR(c.delta, -11.1, kOneDecimal);
  int lcb = int(m.benchmarkKeys().indexOf(QStringLiteral("lcb")));
  EXPECT_EQ(m.comparison(lcb, 1).verdict, verdict_kind::recoverable_gap) << m.comparison(lcb, 1).why;
}

TEST(ComparisonModel, CsvExport) {
  ResultsModel m;
  m.loadCatalog(kResults);
  m.applyPreset(0);
  const QStringList lines = m.toCsv().trimmed().split(QLatin1Char('\n'));
  ASSERT_EQ(lines.size(), 1 + 3 * 3);
  const QStringList header = lines[0].split(QLatin1Char(','));
  EXPECT_EQ(header.size(), 21);
  EXPECT_TRUE(header.contains(QStringLiteral("ci95_lo")));
  EXPECT_TRUE(header.contains(QStringLiteral("verdict")));
  // GPQA, clip: 84.848..., n 198, trunc 6, vs teacher.
  QString gpqaClip;
  for (const QString& l : lines)
    if (l.startsWith(QStringLiteral("GPQA-Diamond,gpqa,clip,"))) gpqaClip = l;
  ASSERT_FALSE(gpqaClip.isEmpty());
  const QStringList f = gpqaClip.split(QLatin1Char(','));
  ASSERT_EQ(f.size(), header.size());
  EXPECT_NEAR(f[header.indexOf(QStringLiteral("acc"))].toDouble(), 84.8485, 1e-3);
  EXPECT_EQ(f[header.indexOf(QStringLiteral("n"))], QStringLiteral("198"));
  EXPECT_EQ(f[header.indexOf(QStringLiteral("trunc"))], QStringLiteral("6"));
  EXPECT_EQ(f[header.indexOf(QStringLiteral("verdict"))], QStringLiteral("within noise"));
  EXPECT_EQ(f[header.indexOf(QStringLiteral("gate"))], QStringLiteral("gated"));
}

// ---- the view ---------------------------------------------------------------------------------------------------
TEST(ComparisonView, ChartsAndExports) {
  std::unique_ptr<ComparisonView> v(ComparisonView::createDemo());
  v->show();
  ASSERT_EQ(v->model()->runColumnCount(), 3);
  // Bar chart: one set per run, one bar per benchmark, NoAnimation for deterministic images.
  ASSERT_EQ(v->barChart()->series().size(), 1);
  auto* bars = qobject_cast<QBarSeries*>(v->barChart()->series().first());
  ASSERT_NE(bars, nullptr);
  ASSERT_EQ(bars->count(), 3);
  EXPECT_EQ(bars->barSets()[1]->label(), QStringLiteral("clip"));
  EXPECT_NEAR(bars->barSets()[1]->at(0), 88.5, 1e-9);
  EXPECT_EQ(v->barChart()->animationOptions(), QChart::NoAnimation);
  EXPECT_EQ(v->paretoChart()->animationOptions(), QChart::NoAnimation);
  // Pareto: one point per run + the frontier (clip 46.7 GB dominates A4B at 52 GB on the mean of 3 axes).
  EXPECT_EQ(v->paretoChart()->series().size(), 4);
  QTemporaryDir dir;
  ASSERT_TRUE(dir.isValid());
  QString err;
  ASSERT_TRUE(v->exportCsv(dir.filePath(QStringLiteral("c.csv")), &err)) << err.toStdString();
  QFile csv(dir.filePath(QStringLiteral("c.csv")));
  ASSERT_TRUE(csv.open(QIODevice::ReadOnly));
  EXPECT_TRUE(csv.readAll().startsWith("benchmark,key,run_column"));
  for (auto what : {ComparisonView::Snapshot::Whole, ComparisonView::Snapshot::Bars, ComparisonView::Snapshot::Pareto}) {
    QString png = dir.filePath(QStringLiteral("c%1.png").arg(int(what)));
    ASSERT_TRUE(v->exportPng(png, what, &err)) << err.toStdString();
    QImage img(png);
    EXPECT_FALSE(img.isNull());
    EXPECT_GT(img.width(), 200);
  }
  EXPECT_FALSE(v->exportCsv(dir.filePath(QStringLiteral("no/such/dir/c.csv")), &err));
  EXPECT_FALSE(err.isEmpty());
}

TEST(ComparisonView, QuantComparePresetHasNoProportionStatistics) {
  ResultsModel m;
  m.loadCatalog(kResults);
  QVector<ResultsModel::RunColumn> cols;
  for (const char* method : {"ours_clip", "awq", "gptq"})
    cols << ResultsModel::RunColumn{QString::fromLatin1(method), {{QStringLiteral("quant_compare_q36:") + QLatin1String(method), {}}}, {}};
  m.setComparison(cols, 0);
  ASSERT_EQ(m.benchmarkKeys(), QStringList{QStringLiteral("expert_nmse")});
  EXPECT_EQ(m.comparison(0, 1).verdict, verdict_kind::no_test);
  EXPECT_LT(m.comparison(0, 1).delta, 0.0);  // AWQ's NMSE is lower than ours_clip's on Qwen3.6
}

// docs/screenshots/: written when RAZOR_SCREENSHOT_DIR is set (scripts/screenshots.sh or by hand), otherwise into a
// scratch folder.
TEST(ComparisonView, Screenshot) {
  QTemporaryDir scratch;  // the pictures are rendered and saved either way; kept only under RAZOR_SCREENSHOT_DIR
  const QString dir = qEnvironmentVariable("RAZOR_SCREENSHOT_DIR", scratch.path());
  std::unique_ptr<ComparisonView> v(ComparisonView::createDemo());
  v->resize(1280, 860);
  v->show();
  QString err;
  EXPECT_TRUE(v->exportPng(dir + QStringLiteral("/comparison.png"), ComparisonView::Snapshot::Whole, &err)) << err.toStdString();
  EXPECT_TRUE(v->exportPng(dir + QStringLiteral("/comparison-pareto.png"), ComparisonView::Snapshot::Pareto, &err));
}

// `text` as the file `path` (result and side files the comparison loads).
static void write_file(const QString& path, const std::string& text) {
  QFile f(path);
  ASSERT_TRUE(f.open(QIODevice::WriteOnly)) << path.toStdString();
  f.write(text.data(), qint64(text.size()));
}

// Two of our results with per-sample side files and provenance records that differ in the budget: the verdict
// cell carries the paired test and the warning; its tooltip says what differs.
TEST(ComparisonModel, PairedTestAndProvenanceWarningInTheVerdictCell) {
  QTemporaryDir d;
  ASSERT_TRUE(d.isValid());
  auto write = [&](const QString& name, const std::string& text) { write_file(d.filePath(name), text); };
  auto result = [](const std::string& tag, double acc, int budget) {
    return R"({"format":"razor-bench/1","run":")" + tag +
           R"(","model":"m","backend":"razor","results":[{"bench":"gpqa","acc":)" + std::to_string(acc) +
           R"(,"n":10}],"provenance":{"razor_version":"0.1.0","budget":)" + std::to_string(budget) + "}}";
  };
  auto samples = [](const std::string& pattern) {
    std::string out;
    for (size_t i = 0; i < pattern.size(); ++i)
      out += R"({"bench":"gpqa","id":"q)" + std::to_string(i) + R"(","correct":)" + (pattern[i] == '1' ? "true" : "false") + "}\n";
    return out;
  };
  write(QStringLiteral("base.json"), result("base", 40.0, 32768));
  write(QStringLiteral("base.samples.jsonl"), samples("1111000000"));
  write(QStringLiteral("cand.json"), result("cand", 90.0, 16384));
  write(QStringLiteral("cand.samples.jsonl"), samples("1011111111"));
  ResultsModel m;
  ASSERT_TRUE(m.loadFile(d.filePath(QStringLiteral("base.json"))));
  ASSERT_TRUE(m.loadFile(d.filePath(QStringLiteral("cand.json"))));
  m.addRunColumn(QStringLiteral("base"));
  m.addRunColumn(QStringLiteral("cand"));
  m.setBaseline(0);
  bool seen = false;
  for (int row = 0; row < m.rowCount(); ++row)
    for (int col = 0; col < m.columnCount(); ++col) {
      const QString text = m.data(m.index(row, col), Qt::DisplayRole).toString();
      if (!text.contains(QStringLiteral("McNemar p"))) continue;
      seen = true;
      EXPECT_TRUE(text.startsWith(QStringLiteral("⚠ "))) << text.toStdString();
      EXPECT_TRUE(text.contains(QStringLiteral("p 0.12"))) << text.toStdString();  // 2 x 8/128
      EXPECT_TRUE(m.data(m.index(row, col), Qt::ToolTipRole).toString().contains(QStringLiteral("measured differently: budget")));
    }
  EXPECT_TRUE(seen);
}

// docs/screenshots/comparison-paired.png: three of our runs with per-sample side files over the same questions.
// "ours" against the baseline: each verdict cell carries McNemar's p on the discordant pairs; "ours-16k" was measured
// with another token budget, so its cells carry the warning mark (the tooltip says what differs).
TEST(ComparisonView, PairedScreenshot) {
  QTemporaryDir d;
  ASSERT_TRUE(d.isValid());
  auto write = [&](const QString& name, const std::string& text) { write_file(d.filePath(name), text); };
  struct bench {
    const char* key;
    int n;
  };
  const std::vector<bench> benches = {{"mmlu_pro", 150}, {"gpqa", 198}, {"math500", 120}, {"lcb", 200}};
  // Per run and benchmark the share correct and how it differs from the baseline item by item (deterministic).
  auto run = [&](const std::string& tag, const std::vector<double>& acc, int budget, int shift) {
    std::string results, samples;
    for (size_t b = 0; b < benches.size(); ++b) {
      int correct = 0;
      for (int i = 0; i < benches[b].n; ++i) {
        const bool ok = ((i * 37 + shift * (i % 7)) % 100) < int(acc[b] * 100);
        correct += ok;
        samples += R"({"bench":")" + std::string(benches[b].key) + R"(","id":"q)" + std::to_string(i) +
                   R"(","correct":)" + (ok ? "true" : "false") + "}\n";
      }
      results += std::string(b ? "," : "") + R"({"bench":")" + benches[b].key + R"(","acc":)" +
                 std::to_string(100.0 * correct / benches[b].n) + R"(,"n":)" + std::to_string(benches[b].n) + "}";
    }
    write(QString::fromStdString(tag + ".json"),
          R"({"format":"razor-bench/1","run":")" + tag + R"(","model":")" + tag +
              R"(","backend":"razor","results":[)" + results + R"(],"provenance":{"razor_version":"0.1.0","budget":)" +
              std::to_string(budget) + "}}");
    write(QString::fromStdString(tag + ".samples.jsonl"), samples);
  };
  run("bf16", {0.86, 0.84, 0.90, 0.70}, 32768, 0);
  run("ours-iq3", {0.83, 0.80, 0.87, 0.64}, 32768, 3);
  run("ours-iq3-16k", {0.80, 0.74, 0.81, 0.55}, 16384, 5);
  ComparisonView v;
  for (const char* tag : {"bf16", "ours-iq3", "ours-iq3-16k"}) {
    ASSERT_TRUE(v.model()->loadFile(d.filePath(QString::fromLatin1(tag) + ".json")));
    v.model()->addRunColumn(QString::fromLatin1(tag));
  }
  v.model()->setBaseline(0);
  v.resize(1600, 560);
  v.show();
  QTemporaryDir scratch;
  QString err;
  EXPECT_TRUE(v.exportPng(qEnvironmentVariable("RAZOR_SCREENSHOT_DIR", scratch.path()) + "/comparison-paired.png",
                          ComparisonView::Snapshot::Whole, &err))
      << err.toStdString();
}
