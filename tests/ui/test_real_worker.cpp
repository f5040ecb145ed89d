// The real `razor worker` through WorkerPool: quantize (and pack) the tiny fixture through the protocol; a
// cancel mid-way and a kill mid-way leave nothing under the final name and no partial output behind.
#include <gtest/gtest.h>
#include <signal.h>

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QSignalSpy>
#include <QTemporaryDir>

#include "WorkerPool.h"
#include "worker_test_util.h"

using namespace razor_test;

namespace {

const QString kModel = QStringLiteral(RAZOR_MODELS_DIR "/tiny-qwen3-moe");

struct RealPool {
  WorkerPool pool;
  QSignalSpy available{&pool, &WorkerPool::workerAvailable};
  QSignalSpy finished{&pool, &WorkerPool::jobFinished};
  QSignalSpy failed{&pool, &WorkerPool::jobFailed};
  QSignalSpy progress{&pool, &WorkerPool::jobProgressAvailable};
  QSignalSpy artifacts{&pool, &WorkerPool::jobArtifactAvailable};
  QSignalSpy logs{&pool, &WorkerPool::jobLogAvailable};

  RealPool() {
    pool.setProgram(razorCli(), {"worker"});
    pool.setGpuCount(0);
    pool.setWorkingDirectory(QStringLiteral(RAZOR_SOURCE_DIR_T));
  }
  bool ended() const { return finished.count() + failed.count() > 0; }
};

// A cancel or kill must reach the job while it runs; on a fast machine the job can end first, which proves
// nothing either way: the scenario is run again, at most this many times, and fails if it never raced.
constexpr int kRaceAttempts = 3;

QJsonObject quantizeParams(const QString& out) {
  // cpu: the CPU path is the one every machine has; the GPU path is tested in test_quant.
  return QJsonObject{{"model", kModel}, {"recipe", "seed-default"}, {"out", out}, {"cpu", true}};
}

}  // namespace

TEST(RealWorker, QuantizesTheTinyFixtureThroughTheProtocol) {
  QTemporaryDir tmp;
  ASSERT_TRUE(tmp.isValid());
  RealPool p;
  p.pool.start();
  const QString out = tmp.filePath("q");
  p.pool.submit("quantize", quantizeParams(out));
  ASSERT_TRUE(waitUntil([&] { return p.ended(); }, 300000));
  ASSERT_EQ(p.failed.count(), 0) << p.failed[0][2].toString().toStdString();
  const QJsonObject r = p.finished[0][1].toJsonObject();
  EXPECT_EQ(r.value("out").toString(), out);
  EXPECT_GT(r.value("totals").toObject().value("seed_effective_bits").toDouble(), 2.0);
  EXPECT_TRUE(QFile::exists(out + "/config.json"));
  EXPECT_TRUE(QFile::exists(out + "/razor_quant_summary.json"));
  EXPECT_GE(p.progress.count(), 1);
  bool checkpointArtifact = false;
  for (const auto& a : p.artifacts)
    if (a[1].toJsonObject().value("kind").toString() == "checkpoint") checkpointArtifact = true;
  EXPECT_TRUE(checkpointArtifact);
  EXPECT_TRUE(partialEntries(tmp.path()).isEmpty());
}

TEST(RealWorker, PacksTheTinyFixtureToGguf) {
  QTemporaryDir tmp;
  ASSERT_TRUE(tmp.isValid());
  RealPool p;
  p.pool.start();
  ASSERT_TRUE(waitUntil([&] { return p.available.count() == 1; }, kStartTimeoutMs));
  const QJsonObject hello = p.available[0][1].toJsonObject();
  ASSERT_TRUE(hello.value("methods").toArray().contains(QJsonValue("pack")));
  const QString out = tmp.filePath("tiny.gguf");
  p.pool.submit("pack", QJsonObject{{"model", kModel}, {"type", "q8_0"}, {"out", out}});
  ASSERT_TRUE(waitUntil([&] { return p.ended(); }, 300000));
  ASSERT_EQ(p.failed.count(), 0) << p.failed[0][2].toString().toStdString();
  EXPECT_TRUE(QFile::exists(out));
  QFile f(out);
  ASSERT_TRUE(f.open(QIODevice::ReadOnly));
  EXPECT_EQ(f.read(4), QByteArray("GGUF"));
  // The result is `razor pack --json`'s: every tensor listed, and their count.
  const QJsonObject res = p.finished[0][1].toJsonObject();
  EXPECT_GT(res.value("n_tensors").toInt(), 0);
  EXPECT_EQ(res.value("tensors").toArray().size(), res.value("n_tensors").toInt());
  EXPECT_TRUE(partialEntries(tmp.path()).isEmpty());
}

TEST(RealWorker, CancelMidwayLeavesNoOutput) {
  for (int attempt = 1; attempt <= kRaceAttempts; ++attempt) {
    QTemporaryDir tmp;
    ASSERT_TRUE(tmp.isValid());
    RealPool p;
    p.pool.start();
    const QString out = tmp.filePath("q");
    const QString id = p.pool.submit("quantize", quantizeParams(out));
    // Cancel at the first progress report: the quantizer checks between tensors.
    ASSERT_TRUE(waitUntil([&] { return p.progress.count() > 0 || p.ended(); }, 300000));
    if (p.ended()) continue;  // finished before a progress report: nothing to cancel
    p.pool.cancel(id);
    ASSERT_TRUE(waitUntil([&] { return p.ended(); }, 300000));
    if (p.finished.count() == 1) continue;  // finished before the cancel reached it
    ASSERT_EQ(p.failed.count(), 1);
    EXPECT_EQ(p.failed[0][1].toString(), "cancelled") << p.failed[0][2].toString().toStdString();
    EXPECT_FALSE(QFileInfo::exists(out));
    EXPECT_TRUE(partialEntries(tmp.path()).isEmpty()) << partialEntries(tmp.path()).join(",").toStdString();
    return;
  }
  FAIL() << "the job finished before the cancel reached it in each of " << kRaceAttempts << " attempts";
}

TEST(RealWorker, KillMidwayLeavesNothingUnderTheFinalNameAndThePoolRemovesThePartial) {
  for (int attempt = 1; attempt <= kRaceAttempts; ++attempt) {
    QTemporaryDir tmp;
    ASSERT_TRUE(tmp.isValid());
    RealPool p;
    p.pool.start();
    const QString out = tmp.filePath("q");
    p.pool.submit("quantize", quantizeParams(out));
    ASSERT_TRUE(waitUntil([&] { return p.progress.count() > 0 || p.ended(); }, 300000));
    if (p.ended()) continue;  // finished before a progress report
    const qint64 pid = p.pool.workerPid(0);
    ASSERT_GT(pid, 0);
    // The partial directory exists while the worker writes.
    const QString partial = out + ".partial-" + QString::number(pid);
    const bool partialBeforeKill = QFileInfo::exists(partial);
    RecordProperty("partial_before_kill", partialBeforeKill ? "yes" : "no");
    ::kill(pid_t(pid), SIGKILL);
    ASSERT_TRUE(waitUntil([&] { return p.ended(); }, 300000));
    if (p.finished.count() == 1) continue;  // finished before the kill reached it
    ASSERT_EQ(p.failed.count(), 1);
    EXPECT_EQ(p.failed[0][1].toString(), "worker_crashed");
    EXPECT_TRUE(p.failed[0][2].toString().contains(QString::number(pid))) << p.failed[0][2].toString().toStdString();
    EXPECT_FALSE(QFileInfo::exists(out));
    EXPECT_FALSE(QFileInfo::exists(partial));
    if (partialBeforeKill) {  // the worker had started writing: the pool removed what it left
      bool removedLogged = false;
      for (const auto& l : p.logs)
        if (l[2].toString().contains("removed the partial output")) removedLogged = true;
      EXPECT_TRUE(removedLogged);
    }
    EXPECT_TRUE(partialEntries(tmp.path()).isEmpty()) << partialEntries(tmp.path()).join(",").toStdString();
    // The pool restarted the worker and it works.
    ASSERT_TRUE(waitUntil([&] { return p.available.count() == 2; }, kStartTimeoutMs));
    p.pool.submit("inspect", QJsonObject{{"model", kModel}});
    ASSERT_TRUE(waitUntil([&] { return p.finished.count() == 1; }, 300000));
    EXPECT_EQ(p.finished[0][1].toJsonObject().value("model_type").toString(), "qwen3_moe");
    return;
  }
  FAIL() << "the job finished before the kill reached it in each of " << kRaceAttempts << " attempts";
}
