// The jobs dock: JobsModel under QAbstractItemModelTester, fed the way WorkerPool's signals feed it, with
// rate / time left from an injected clock; cancel, log view, outputs; and the pool wiring with a real pool.
#include <gtest/gtest.h>

#include <QTemporaryDir>
#include <QAbstractItemModelTester>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSignalSpy>
#include <QTableView>
#include <memory>

#include "JobsDock.h"
#include "JobsModel.h"
#include "WorkerPool.h"

namespace {
// Counts QAbstractItemModelTester complaints (Warning mode) so a broken model fails the test, not the binary.
struct JobsModelTesterWarnings {
  static inline int count = 0;
  static inline QtMessageHandler previous = nullptr;
  JobsModelTesterWarnings() {
    count = 0;
    previous = qInstallMessageHandler([](QtMsgType t, const QMessageLogContext& c, const QString& m) {
      if (QByteArray(c.category ? c.category : "").contains("modeltest") || m.contains(QLatin1String("FAIL"))) ++count;
      if (previous) previous(t, c, m);
    });
  }
  ~JobsModelTesterWarnings() { qInstallMessageHandler(previous); }
};
}  // namespace

TEST(JobsModel, LifecycleRateAndTimeLeft) {
  JobsModelTesterWarnings warnings;
  JobsModel m;
  QAbstractItemModelTester tester(&m, QAbstractItemModelTester::FailureReportingMode::Warning);
  qint64 now = 10'000;
  m.setClock([&now] { return now; });
  m.addJob(QStringLiteral("j1"), QStringLiteral("pack"), {{"out", "/tmp/x/model.gguf"}});
  m.addJob(QStringLiteral("j2"), QStringLiteral("inspect"), {{"model", "/m/tiny"}});
  ASSERT_EQ(m.rowCount(), 2);
  EXPECT_EQ(m.data(m.index(0, JobsModel::JobColumn)).toString(), QStringLiteral("pack model.gguf"));
  EXPECT_EQ(m.data(m.index(0, JobsModel::StateColumn)).toString(), QStringLiteral("queued"));

  m.markStarted(QStringLiteral("j1"), 1);
  EXPECT_EQ(m.data(m.index(0, JobsModel::WorkerColumn)).toString(), QStringLiteral("GPU 0"));
  // 100 MB per second, steadily.
  for (int i = 1; i <= 5; ++i) {
    now += 1000;
    m.updateProgress(QStringLiteral("j1"), i * 100e6, 1000e6, QStringLiteral("blk.%1").arg(i));
  }
  EXPECT_NEAR(m.data(m.index(0, 0), JobsModel::ProgressRole).toDouble(), 0.5, 1e-12);
  EXPECT_NEAR(m.data(m.index(0, 0), JobsModel::RateRole).toDouble(), 100e6, 1.0);
  EXPECT_NEAR(m.data(m.index(0, 0), JobsModel::EtaRole).toDouble(), 5.0, 1e-6);
  EXPECT_EQ(m.data(m.index(0, JobsModel::RateColumn)).toString(), QStringLiteral("100 MB/s"));
  EXPECT_EQ(m.data(m.index(0, JobsModel::EtaColumn)).toString(), QStringLiteral("5 s"));
  EXPECT_TRUE(m.data(m.index(0, JobsModel::ProgressColumn)).toString().startsWith(QStringLiteral("50.0%")));

  QSignalSpy logs(&m, &JobsModel::logLineAvailable);
  m.appendLog(QStringLiteral("j1"), QStringLiteral("warn"), QStringLiteral("fallback"));
  EXPECT_EQ(logs.count(), 1);
  m.addArtifact(QStringLiteral("j1"), {{"path", "/tmp/x/model.gguf"}, {"kind", "gguf"}});
  m.markFinished(QStringLiteral("j1"), {{"out", "/tmp/x/model.gguf"}});
  EXPECT_EQ(m.data(m.index(0, 0), JobsModel::StateRole).toInt(), int(JobsModel::State::Finished));
  EXPECT_EQ(m.job(QStringLiteral("j1"))->outputs, QStringList{QStringLiteral("/tmp/x/model.gguf")});
  EXPECT_FALSE(m.data(m.index(0, 0), JobsModel::EtaRole).isValid());

  m.markFailed(QStringLiteral("j2"), QStringLiteral("cancelled"), QStringLiteral("Cancelled before it started."));
  EXPECT_EQ(m.job(QStringLiteral("j2"))->state, JobsModel::State::Cancelled);
  // A job the model never saw submitted (another window's) appears on its first event.
  m.updateProgress(QStringLiteral("j3"), 1, 4, QStringLiteral("layer 1"));
  EXPECT_EQ(m.rowCount(), 3);
  m.markFailed(QStringLiteral("j3"), QStringLiteral("worker_crashed"), QStringLiteral("pid 42 killed by signal 9"));
  EXPECT_EQ(m.job(QStringLiteral("j3"))->state, JobsModel::State::Failed);
  m.removeEnded();
  EXPECT_EQ(m.rowCount(), 0);
  for (int c = 0; c < m.columnCount(); ++c) m.headerData(c, Qt::Horizontal);
  EXPECT_EQ(warnings.count, 0);
}

TEST(JobsModel, DurationFormat) {
  EXPECT_EQ(JobsModel::formatDuration(42.4), QStringLiteral("42 s"));
  EXPECT_EQ(JobsModel::formatDuration(185), QStringLiteral("3 min 05 s"));
  EXPECT_EQ(JobsModel::formatDuration(4320), QStringLiteral("1 h 12 min"));
  EXPECT_EQ(JobsModel::formatDuration(-1), QString());
}

TEST(JobsDock, CancelLogAndOutput) {
  JobsDock d;
  d.show();
  JobsModel* m = d.model();
  m->addJob(QStringLiteral("a"), QStringLiteral("quantize"), {});
  m->markStarted(QStringLiteral("a"), 0);
  m->appendLog(QStringLiteral("a"), QStringLiteral("info"), QStringLiteral("layer 0"));
  d.selectJob(QStringLiteral("a"));
  EXPECT_EQ(d.selectedJobId(), QStringLiteral("a"));
  EXPECT_TRUE(d.cancelButton()->isEnabled());
  EXPECT_FALSE(d.openOutputButton()->isEnabled());
  EXPECT_EQ(d.logView()->toPlainText(), QStringLiteral("layer 0"));
  m->appendLog(QStringLiteral("a"), QStringLiteral("info"), QStringLiteral("layer 1"));
  EXPECT_EQ(d.logView()->toPlainText(), QStringLiteral("layer 0\nlayer 1"));

  QSignalSpy cancels(&d, &JobsDock::cancelRequested);
  d.cancelButton()->click();
  ASSERT_EQ(cancels.count(), 1);
  EXPECT_EQ(cancels[0][0].toString(), QStringLiteral("a"));

  m->addArtifact(QStringLiteral("a"), {{"path", "/tmp/out/ckpt"}});
  m->markFinished(QStringLiteral("a"), {});
  EXPECT_FALSE(d.cancelButton()->isEnabled());
  EXPECT_TRUE(d.openOutputButton()->isEnabled());
  QSignalSpy opens(&d, &JobsDock::outputOpenRequested);
  d.openOutputButton()->click();
  ASSERT_EQ(opens.count(), 1);
  EXPECT_EQ(opens[0][0].toString(), QStringLiteral("/tmp/out/ckpt"));
}

TEST(JobsDock, FedByARealWorkerPool) {
  // The real `razor worker`: a "sleep" job reports progress, then finishes; the dock follows the pool's signals.
  WorkerPool pool;
  pool.setProgram(QStringLiteral(RAZOR_CLI_EXE));
  pool.setGpuCount(0);
  JobsDock d;
  d.attachPool(&pool);
  pool.start();
  const QString id = pool.submit(QStringLiteral("sleep"), {{"ms", 600}, {"step_ms", 50}});
  d.model()->addJob(id, QStringLiteral("sleep"), {{"ms", 600}});
  QSignalSpy finished(&pool, &WorkerPool::jobFinished);
  QSignalSpy failed(&pool, &WorkerPool::jobFailed);
  ASSERT_TRUE(finished.wait(30000) || !failed.isEmpty()) << "no result from the worker";
  ASSERT_TRUE(failed.isEmpty()) << failed[0][2].toString().toStdString();
  const JobsModel::Job* j = d.model()->job(id);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, JobsModel::State::Finished);
  EXPECT_EQ(j->slot, 0);
  EXPECT_GT(j->total, 0.0);
  pool.shutdown();
}

TEST(JobsDock, DemoFactory) {
  std::unique_ptr<JobsDock> d(JobsDock::createDemo());
  EXPECT_EQ(d->model()->rowCount(), 4);
  const JobsModel::Job* pack = d->model()->job(QStringLiteral("demo-2"));
  ASSERT_NE(pack, nullptr);
  EXPECT_GT(pack->rate, 0.0);
  EXPECT_EQ(d->selectedJobId(), QStringLiteral("demo-2"));
}

// docs/screenshots/: written when RAZOR_SCREENSHOT_DIR is set (otherwise into a scratch folder).
TEST(JobsDock, Screenshot) {
  QTemporaryDir scratch;  // the pictures are rendered and saved either way; kept only under RAZOR_SCREENSHOT_DIR
  const QString dir = qEnvironmentVariable("RAZOR_SCREENSHOT_DIR", scratch.path());
  std::unique_ptr<JobsDock> d(JobsDock::createDemo());
  d->resize(1000, 460);
  d->show();
  EXPECT_TRUE(d->grab().save(dir + QStringLiteral("/jobs-dock.png")));
}
