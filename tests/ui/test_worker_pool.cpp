// WorkerPool and JobStore against the scripted fake worker: queueing, superseding, a worker killed mid-job,
// a hung worker that ignores cancel, per-GPU workers, a version mismatch, durable job records.
#include <gtest/gtest.h>

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QSignalSpy>
#include <QTemporaryDir>

#include "JobStore.h"
#include "WorkerPool.h"
#include "worker_test_util.h"

using namespace razor_test;

namespace {

struct PoolFixture {
  WorkerPool pool;
  QSignalSpy available{&pool, &WorkerPool::workerAvailable};
  QSignalSpy workerFailed{&pool, &WorkerPool::workerFailed};
  QSignalSpy started{&pool, &WorkerPool::jobStarted};
  QSignalSpy finished{&pool, &WorkerPool::jobFinished};
  QSignalSpy failed{&pool, &WorkerPool::jobFailed};
  QSignalSpy progress{&pool, &WorkerPool::jobProgressAvailable};

  explicit PoolFixture(const QString& scenario, int gpus = 0) {
    pool.setProgram(fakeWorker(), {scenario});
    pool.setGpuCount(gpus);
  }
  int finishedIndex(const QString& id) const {
    for (int i = 0; i < finished.count(); ++i)
      if (finished[i][0].toString() == id) return i;
    return -1;
  }
  int failedIndex(const QString& id) const {
    for (int i = 0; i < failed.count(); ++i)
      if (failed[i][0].toString() == id) return i;
    return -1;
  }
  bool ended(const QString& id) const { return finishedIndex(id) >= 0 || failedIndex(id) >= 0; }
};

}  // namespace

TEST(WorkerPool, QueuesJobsOnOneWorkerAndRunsThemInOrder) {
  PoolFixture f("normal");
  f.pool.start();
  QStringList ids;
  for (int i = 0; i < 5; ++i) ids << f.pool.submit("echo", QJsonObject{{"i", i}});
  ASSERT_TRUE(waitUntil([&] { return f.finished.count() == 5; }));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(f.finished[i][0].toString(), ids[i]);
  EXPECT_EQ(f.failed.count(), 0);
  EXPECT_EQ(f.pool.workerCount(), 1);
  // The CPU worker is started with --cpu.
  EXPECT_TRUE(f.finished[0][1].toJsonObject().value("args").toString().contains("--cpu"));
}

TEST(WorkerPool, StartsOneWorkerPerGpuWithItsDevice) {
  PoolFixture f("normal", 2);
  f.pool.start();
  ASSERT_TRUE(waitUntil([&] { return f.pool.readyWorkerCount() == 3; }, kStartTimeoutMs));
  WorkerPool::JobOptions gpu;
  gpu.target = WorkerPool::Target::Gpu;
  const QString a = f.pool.submit("slow", QJsonObject{{"ms", 300}}, gpu);
  const QString b = f.pool.submit("slow", QJsonObject{{"ms", 300}}, gpu);
  ASSERT_TRUE(waitUntil([&] { return f.started.count() == 2; }));
  QSet<int> busySlots{f.started[0][1].toInt(), f.started[1][1].toInt()};
  EXPECT_EQ(busySlots, (QSet<int>{1, 2}));  // both GPU workers busy at once, the CPU worker untouched
  ASSERT_TRUE(waitUntil([&] { return f.ended(a) && f.ended(b); }));
  WorkerPool::JobOptions g2;
  g2.target = WorkerPool::Target::Gpu;
  const QString e1 = f.pool.submit("echo", {}, g2);
  const QString e2 = f.pool.submit("echo", {}, g2);
  ASSERT_TRUE(waitUntil([&] { return f.ended(e1) && f.ended(e2); }));
  QSet<QString> devices;
  for (const QString& id : {e1, e2}) {
    const int i = f.finishedIndex(id);
    ASSERT_GE(i, 0);
    devices << f.finished[i][1].toJsonObject().value("cuda_visible").toString();
  }
  // e1 and e2 may land on the same GPU worker; each device seen is one of ours.
  for (const QString& d : devices) EXPECT_TRUE(d == "0" || d == "1") << d.toStdString();
}

TEST(WorkerPool, GpuJobWithoutGpusFailsWithNoWorker) {
  PoolFixture f("normal", 0);
  f.pool.start();
  WorkerPool::JobOptions gpu;
  gpu.target = WorkerPool::Target::Gpu;
  const QString id = f.pool.submit("echo", {}, gpu);
  ASSERT_TRUE(waitUntil([&] { return f.ended(id); }));
  ASSERT_GE(f.failedIndex(id), 0);
  EXPECT_EQ(f.failed[f.failedIndex(id)][1].toString(), "no_worker");
}

TEST(WorkerPool, SupersededRequestsAreDroppedAndCancelled) {
  PoolFixture f("normal");
  f.pool.start();
  WorkerPool::JobOptions keyed;
  keyed.key = "footprint-view";
  const QString first = f.pool.submit("slow", QJsonObject{{"ms", 60000}}, keyed);
  ASSERT_TRUE(waitUntil([&] { return f.started.count() == 1; }));
  const QString queued = f.pool.submit("echo", QJsonObject{{"n", 1}}, keyed);  // waits behind `first`
  const QString latest = f.pool.submit("echo", QJsonObject{{"n", 2}}, keyed);
  ASSERT_TRUE(waitUntil([&] { return f.ended(latest); }));
  ASSERT_GE(f.finishedIndex(latest), 0);
  for (const QString& old : {first, queued}) {
    const int i = f.failedIndex(old);
    ASSERT_GE(i, 0);
    EXPECT_EQ(f.failed[i][1].toString(), "superseded");
    EXPECT_LT(f.finishedIndex(old), 0);  // never a result
  }
  // The superseded running job was cancelled on the worker (it answers "cancelled", which is dropped).
  EXPECT_EQ(f.failed.count(), 2);
  QTest::qWait(200);
  EXPECT_EQ(f.failed.count(), 2);
  EXPECT_EQ(f.finished.count(), 1);
}

TEST(WorkerPool, CancelOfAQueuedJobIsImmediate) {
  PoolFixture f("normal");
  f.pool.start();
  const QString running = f.pool.submit("slow", QJsonObject{{"ms", 60000}});
  const QString waiting = f.pool.submit("echo", {});
  ASSERT_TRUE(waitUntil([&] { return f.started.count() == 1; }));
  EXPECT_TRUE(f.pool.cancel(waiting));
  ASSERT_GE(f.failedIndex(waiting), 0);
  EXPECT_EQ(f.failed[f.failedIndex(waiting)][1].toString(), "cancelled");
  EXPECT_TRUE(f.pool.cancel(running));
  ASSERT_TRUE(waitUntil([&] { return f.ended(running); }));
  EXPECT_EQ(f.failed[f.failedIndex(running)][1].toString(), "cancelled");
  EXPECT_FALSE(f.pool.cancel(running));  // already ended
}

TEST(WorkerPool, WorkerKilledMidJobFailsOnlyThatJobCleansUpAndRestarts) {
  QTemporaryDir tmp;
  ASSERT_TRUE(tmp.isValid());
  PoolFixture f("normal");
  f.pool.start();
  ASSERT_TRUE(waitUntil([&] { return f.available.count() == 1; }, kStartTimeoutMs));
  const qint64 firstPid = f.pool.workerPid(0);
  const QString out = tmp.filePath("model-out");
  const QString crash = f.pool.submit("crash", QJsonObject{{"out", out}});
  const QString after = f.pool.submit("echo", {});  // queued behind it: must survive the crash
  ASSERT_TRUE(waitUntil([&] { return f.ended(crash) && f.ended(after); }));
  const int i = f.failedIndex(crash);
  ASSERT_GE(i, 0);
  EXPECT_EQ(f.failed[i][1].toString(), "worker_crashed");
  EXPECT_TRUE(f.failed[i][2].toString().contains(QString::number(firstPid))) << f.failed[i][2].toString().toStdString();
  ASSERT_GE(f.finishedIndex(after), 0);
  EXPECT_NE(f.pool.workerPid(0), firstPid);  // restarted
  EXPECT_EQ(f.available.count(), 2);
  // The dead worker's "<out>.partial-<pid>" was removed before the failure was reported; no final output.
  EXPECT_TRUE(partialEntries(tmp.path()).isEmpty()) << partialEntries(tmp.path()).join(",").toStdString();
  EXPECT_FALSE(QFileInfo::exists(out));
}

TEST(WorkerPool, HungWorkerIgnoringCancelIsKilledAfterTheGraceAndRestarted) {
  PoolFixture f("normal");
  f.pool.setCancelGrace(300);
  f.pool.start();
  const QString hung = f.pool.submit("hang", {});
  ASSERT_TRUE(waitUntil([&] { return f.progress.count() >= 1; }));
  const qint64 pid = f.pool.workerPid(0);
  QElapsedTimer clock;
  clock.start();
  EXPECT_TRUE(f.pool.cancel(hung));
  ASSERT_TRUE(waitUntil([&] { return f.ended(hung); }));
  EXPECT_GE(clock.elapsed(), 250);  // cooperative first: the grace period was honoured
  const int i = f.failedIndex(hung);
  ASSERT_GE(i, 0);
  EXPECT_EQ(f.failed[i][1].toString(), "cancelled");
  const QString msg = f.failed[i][2].toString();
  EXPECT_TRUE(msg.contains("did not stop within 0.3 s")) << msg.toStdString();
  EXPECT_TRUE(msg.contains("killed")) << msg.toStdString();
  // The next job runs on a fresh worker.
  const QString next = f.pool.submit("echo", {});
  ASSERT_TRUE(waitUntil([&] { return f.ended(next); }));
  EXPECT_GE(f.finishedIndex(next), 0);
  EXPECT_NE(f.pool.workerPid(0), pid);
}

TEST(WorkerPool, VersionMismatchIsShownAndNotRetried) {
  PoolFixture f("version");
  f.pool.start();
  const QString id = f.pool.submit("echo", {});
  ASSERT_TRUE(waitUntil([&] { return f.ended(id); }, kStartTimeoutMs));
  ASSERT_GE(f.workerFailed.count(), 1);
  EXPECT_TRUE(f.workerFailed[0][1].toString().contains("Version mismatch"));
  ASSERT_GE(f.failedIndex(id), 0);
  EXPECT_EQ(f.failed[f.failedIndex(id)][1].toString(), "no_worker");
  QTest::qWait(300);
  EXPECT_EQ(f.workerFailed.count(), 1);  // given up, not restarted in a loop
}

TEST(WorkerPool, WorkerThatCannotStartIsGivenUpAfterRetries) {
  PoolFixture f("exit");
  f.pool.setMaxRestarts(2);
  f.pool.start();
  const QString id = f.pool.submit("echo", {});
  ASSERT_TRUE(waitUntil([&] { return f.ended(id); }, kStartTimeoutMs));
  EXPECT_EQ(f.failed[f.failedIndex(id)][1].toString(), "no_worker");
  ASSERT_GE(f.workerFailed.count(), 1);
  EXPECT_TRUE(f.workerFailed.last()[1].toString().contains("failed to start 2 times"))
      << f.workerFailed.last()[1].toString().toStdString();
}

TEST(JobStore, RecordsWhatRanWithWhatAndHowItEndedAcrossARestart) {
  QTemporaryDir ws;
  ASSERT_TRUE(ws.isValid());
  QString okId, crashId, cancelId;
  {
    JobStore store(ws.path());
    PoolFixture f("normal");
    f.pool.setJobStore(&store);
    f.pool.start();
    okId = f.pool.submit("echo", QJsonObject{{"x", 42}});
    crashId = f.pool.submit("crash", {});
    cancelId = f.pool.submit("slow", QJsonObject{{"ms", 60000}});
    ASSERT_TRUE(waitUntil([&] { return f.ended(okId) && f.ended(crashId) && f.pool.jobSlot(cancelId) >= 0; }));
    f.pool.cancel(cancelId);
    ASSERT_TRUE(waitUntil([&] { return f.ended(cancelId); }));
    // A job the previous session left running (the workbench died): simulated by a record never ended.
    store.recordSubmitted("19990101-000000-000-1", "quantize", QJsonObject{{"model", "m"}}, QString());
    store.recordStarted("19990101-000000-000-1", 1, 4242);
  }
  JobStore reopened(ws.path());
  reopened.load();
  const QStringList ids = reopened.jobIds();
  ASSERT_EQ(ids.size(), 4);
  EXPECT_EQ(ids.first(), "19990101-000000-000-1");  // ids sort by time
  const QJsonObject ok = reopened.job(okId);
  EXPECT_EQ(ok.value("method").toString(), "echo");
  EXPECT_EQ(ok.value("params").toObject().value("x").toInt(), 42);
  EXPECT_EQ(ok.value("state").toString(), "finished");
  EXPECT_EQ(ok.value("result").toObject().value("method").toString(), "echo");
  EXPECT_EQ(ok.value("artifacts").toArray().size(), 1);
  EXPECT_FALSE(ok.value("started").toString().isEmpty());
  EXPECT_FALSE(ok.value("ended").toString().isEmpty());
  EXPECT_TRUE(reopened.logText(okId).contains("echo log"));
  const QJsonObject crashed = reopened.job(crashId);
  EXPECT_EQ(crashed.value("state").toString(), "failed");
  EXPECT_EQ(crashed.value("error").toObject().value("code").toString(), "worker_crashed");
  EXPECT_TRUE(reopened.logText(crashId).contains("about to die"));  // the worker's stderr while it ran
  EXPECT_EQ(reopened.job(cancelId).value("state").toString(), "cancelled");
  const QJsonObject interrupted = reopened.job("19990101-000000-000-1");
  EXPECT_EQ(interrupted.value("state").toString(), "interrupted");
  EXPECT_EQ(interrupted.value("error").toObject().value("code").toString(), "interrupted");
  // The files are there for a person too.
  EXPECT_TRUE(QFile::exists(reopened.jobDir(okId) + "/job.json"));
  EXPECT_TRUE(QFile::exists(reopened.jobDir(okId) + "/log.txt"));
}
