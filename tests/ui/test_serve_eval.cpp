// Evaluate through the worker pool (ServeEvalRun, EvaluateDialog): `serve` starts the real llama.cpp
// (tools/llamacpp/openai_server.mjs over node-llama-cpp) on the fixture's Q8_0 GGUF in a worker of its own, `eval`
// runs two MMLU-Pro questions against its endpoint, the server is stopped, and the result lands in the comparison
// view. Skipped (with the reason) without node or the oracle. The pool has only its CPU worker: the server must not
// hold the slot the eval needs.
#include <gtest/gtest.h>

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QProcess>
#include <QProgressBar>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include <algorithm>

#include "MainWindow.h"
#include "ResultsModel.h"
#include "EvaluateDialog.h"
#include "ServeEvalRun.h"
#include "WorkerPool.h"
#include "worker_test_util.h"

using namespace razor_test;

namespace {

const QString kOracle = QStringLiteral(RAZOR_SOURCE_DIR_T "/.oracle");

class ServeEval : public ::testing::Test {
 protected:
  void SetUp() override {
    m_node = QStandardPaths::findExecutable(QStringLiteral("node"));
    if (m_node.isEmpty()) GTEST_SKIP() << "node is not on PATH (tools/llamacpp/openai_server.mjs needs it)";
    if (!QFile::exists(kOracle + "/node_modules/node-llama-cpp/package.json"))
      GTEST_SKIP() << "the node-llama-cpp oracle is not installed in .oracle (scripts/install-oracle.sh)";
    ASSERT_TRUE(m_dir.isValid());
    QProcess pack;
    pack.start(razorCli(), {"pack", RAZOR_MODELS_DIR "/tiny-qwen3-moe", "--type", "q8_0", "--out", gguf()});
    ASSERT_TRUE(pack.waitForFinished(kJobTimeoutMs));
    ASSERT_EQ(pack.exitCode(), 0) << pack.readAllStandardError().toStdString();
    QFile q(m_dir.filePath("mmlu_pro.jsonl"));
    ASSERT_TRUE(q.open(QIODevice::WriteOnly));
    q.write(R"({"question_id":101,"question":"What is 2 + 2?","options":["3","4","5","6"],"answer_index":1,"answer":"B"})" "\n"
            R"({"question_id":102,"question":"Which planet is known as the red planet?","options":["Venus","Mars","Jupiter","Saturn"],"answer_index":1,"answer":"B"})" "\n");
  }
  QString gguf() const { return m_dir.filePath("tiny-q8.gguf"); }
  QJsonObject serveParams() const {
    // engine "command": the real llama.cpp behind an OpenAI-compatible endpoint, as llama-server would be.
    return QJsonObject{{"engine", "command"},
                       {"model", gguf()},
                       {"command", QJsonArray{m_node, RAZOR_SOURCE_DIR_T "/tools/llamacpp/openai_server.mjs", "{model}",
                                              "{port}", "--oracle", kOracle, "--ctx", "1024"}}};
  }
  QJsonObject evalParams() const {
    return QJsonObject{{"benchmarks", "mmlu_pro"}, {"data", m_dir.path()}, {"out", m_dir.filePath("result.json")}, {"n", 2}};
  }

  QString m_node;
  QTemporaryDir m_dir;
};

TEST_F(ServeEval, ServesEvaluatesStopsAndTheResultReachesTheComparison) {
  WorkerPool pool;
  pool.setProgram(razorCli(), {"worker"});
  pool.setGpuCount(0);
  pool.start();
  ServeEvalRun run(&pool);
  QSignalSpy finished(&run, &ServeEvalRun::runFinished);
  QSignalSpy failed(&run, &ServeEvalRun::runFailed);
  QSignalSpy stages(&run, &ServeEvalRun::stageChanged);
  run.start(serveParams(), evalParams());
  ASSERT_TRUE(waitUntil([&] { return finished.count() + failed.count() > 0; }, 240000));
  ASSERT_EQ(failed.count(), 0) << failed[0][0].toString().toStdString();
  EXPECT_TRUE(run.endpoint().startsWith("http://127.0.0.1:")) << run.endpoint().toStdString();
  const QString result = finished[0][0].toString();
  EXPECT_EQ(result, m_dir.filePath("result.json"));
  EXPECT_EQ(finished[0][1].toJsonObject().value("mmlu_pro_n").toInt(), 2);
  EXPECT_GE(stages.count(), 3);  // starting, evaluating, done
  // The server was stopped: its job and its worker end.
  ASSERT_TRUE(waitUntil([&] { return !pool.isJobActive(run.serveJob()); }, 30000));
  EXPECT_EQ(pool.workerCount(), 2) << "the CPU worker and the server's own";

  MainWindow w;
  ASSERT_TRUE(w.addResultFile(result));
  EXPECT_EQ(w.tabs()->currentWidget()->property("razorViewId").toString(), "comparison");
}

TEST(EvaluateDialog, BuildsTheJobsFromItsFields) {
  WorkerPool pool;
  EvaluateDialog d(&pool, "gpu-box");
  d.setSource("serve");
  d.setModel("/data/Qwen3.5-122B-A10B");
  d.setBenchmarks({"gpqa", "lcb", "mmlu_pro"});
  const QJsonObject s = d.serveParams();
  EXPECT_EQ(s.value("engine").toString(), "vllm");
  EXPECT_EQ(s.value("model").toString(), "/data/Qwen3.5-122B-A10B");
  EXPECT_FALSE(s.contains("tensor_parallel")) << "0 = every visible GPU: the worker decides";
  const QJsonObject e = d.evalParams();
  // The ticked rows of the benchmark table, in table order.
  EXPECT_EQ(e.value("benchmarks").toArray(), (QJsonArray{"mmlu_pro", "gpqa", "lcb"}));
  EXPECT_FALSE(e.contains("endpoint")) << "the endpoint comes from the server";
  // Against an existing endpoint: the eval job alone, with the URL and the served model.
  d.setSource("endpoint");
  d.setEndpoint("http://10.0.0.5:8000/v1", "q122-iq3");
  const QJsonObject f = d.evalParams();
  EXPECT_EQ(f.value("endpoint").toString(), "http://10.0.0.5:8000/v1");
  EXPECT_EQ(f.value("model").toString(), "q122-iq3");
  EXPECT_EQ(f.value("artifact").toString(), "/data/Qwen3.5-122B-A10B") << "what the endpoint serves, for the provenance";
  d.setSpeedContexts("");  // (the dialog remembers the last run's: set it either way)
  EXPECT_FALSE(d.evalParams().contains("speed_contexts"));
  d.setSpeedContexts("512, 4k,16k");
  EXPECT_EQ(d.evalParams().value("speed_contexts").toArray(), (QJsonArray{"512", "4k", "16k"}));
}

TEST_F(ServeEval, EvaluatesAnExistingEndpointWithPerQuestionProgress) {
  WorkerPool pool;
  pool.setProgram(razorCli(), {"worker"});
  pool.setGpuCount(0);
  pool.start();
  // The server, started as a user would have (here through a serve job), then evaluated as "an existing endpoint".
  QString endpoint;
  QObject::connect(&pool, &WorkerPool::jobArtifactAvailable, [&](const QString&, const QJsonObject& a) {
    if (a.value("kind").toString() == "endpoint") endpoint = a.value("path").toString();
  });
  const QString serveJob = pool.submit("serve", serveParams());
  ASSERT_TRUE(waitUntil([&] { return !endpoint.isEmpty(); }, 120000));

  EvaluateDialog d(&pool, "this machine");
  d.setSource("endpoint");
  d.setEndpoint(endpoint);
  d.setBenchmarks({"mmlu_pro"});
  d.setDataDir(m_dir.path());
  d.setResultPath(m_dir.filePath("endpoint-result.json"));
  d.setQuestions(2);
  d.setSpeedContexts("64,256");
  QSignalSpy done(&d, &EvaluateDialog::resultAvailable);
  QSignalSpy failed(d.run(), &ServeEvalRun::runFailed);
  QSignalSpy progress(d.run(), &ServeEvalRun::progressAvailable);
  d.start();
  ASSERT_TRUE(waitUntil([&] { return done.count() + failed.count() > 0; }, 240000));
  ASSERT_EQ(failed.count(), 0) << failed[0][0].toString().toStdString();
  EXPECT_EQ(done[0][0].toString(), m_dir.filePath("endpoint-result.json"));
  EXPECT_TRUE(d.run()->serveJob().isEmpty()) << "no server of its own";
  EXPECT_TRUE(pool.isJobActive(serveJob)) << "the existing server is left running";
  const QJsonObject speed = done.isEmpty() ? QJsonObject() : [&] {
    QFile f(m_dir.filePath("endpoint-result.json"));
    return f.open(QIODevice::ReadOnly) ? QJsonDocument::fromJson(f.readAll()).object().value("speed").toObject()
                                       : QJsonObject();
  }();
  EXPECT_EQ(speed.value("points").toArray().size(), 2) << "the server's speed at 64 and 256 tokens";
  // Per question: the last progress is 2 of 2 and names the benchmark and the question.
  ASSERT_GE(progress.count(), 2);
  EXPECT_EQ(progress.last()[0].toDouble(), 2.0);
  EXPECT_EQ(progress.last()[1].toDouble(), 2.0);
  EXPECT_TRUE(progress.last()[2].toString().startsWith("mmlu_pro ")) << progress.last()[2].toString().toStdString();
  auto* bar = d.findChild<QProgressBar*>();
  ASSERT_NE(bar, nullptr);
  EXPECT_EQ(bar->value(), 2);
  EXPECT_EQ(bar->maximum(), 2);
  // docs/screenshots/evaluate-dialog.png (scripts/screenshots.sh sets RAZOR_SCREENSHOT_DIR; rendered either way).
  QTemporaryDir scratch;
  d.show();
  d.adjustSize();
  d.resize(std::max(d.width(), 640), d.height());
  QTest::qWait(50);
  EXPECT_TRUE(d.grab().save(qEnvironmentVariable("RAZOR_SCREENSHOT_DIR", scratch.path()) + "/evaluate-dialog.png"));
  pool.cancel(serveJob);
  ASSERT_TRUE(waitUntil([&] { return !pool.isJobActive(serveJob); }, 30000));
  pool.shutdown();
}

}  // namespace
