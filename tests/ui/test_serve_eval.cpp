// Serve and evaluate through the worker pool (ServeEvalRun, ServeEvalDialog): `serve` starts the real llama.cpp
// (tools/llamacpp/openai_server.mjs over node-llama-cpp) on the fixture's Q8_0 GGUF in a worker of its own, `eval`
// runs two MMLU-Pro questions against its endpoint, the server is stopped, and the result lands in the comparison
// view. Skipped (with the reason) without node or the oracle. The pool has only its CPU worker: the server must not
// hold the slot the eval needs.
#include <gtest/gtest.h>

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QProcess>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>

#include "MainWindow.h"
#include "ResultsModel.h"
#include "ServeEvalDialog.h"
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

TEST(ServeEvalDialog, BuildsTheJobsFromItsFields) {
  WorkerPool pool;
  ServeEvalDialog d(&pool, "gpu-box");
  d.setModel("/data/Qwen3.5-122B-A10B");
  const QJsonObject s = d.serveParams();
  EXPECT_EQ(s.value("engine").toString(), "vllm");
  EXPECT_EQ(s.value("model").toString(), "/data/Qwen3.5-122B-A10B");
  EXPECT_FALSE(s.contains("tensor_parallel")) << "0 = every visible GPU: the worker decides";
  const QJsonObject e = d.evalParams();
  EXPECT_EQ(e.value("benchmarks").toString(), "mmlu_pro,gpqa");
  EXPECT_FALSE(e.contains("endpoint")) << "the endpoint comes from the server";
}

}  // namespace
