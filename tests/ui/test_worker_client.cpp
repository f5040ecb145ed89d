// WorkerClient against the scripted fake worker: each misbehaviour is reported with the right message and
// the client neither blocks nor crashes.
#include <gtest/gtest.h>

#include <QElapsedTimer>
#include <QSignalSpy>
#include <QTimer>

#include "WorkerClient.h"
#include "jobs/protocol_version.h"
#include "worker_test_util.h"

using namespace razor_test;

namespace {

struct Fixture {
  WorkerClient client;
  QSignalSpy hello{&client, &WorkerClient::helloAvailable};
  QSignalSpy progress{&client, &WorkerClient::progressAvailable};
  QSignalSpy log{&client, &WorkerClient::logAvailable};
  QSignalSpy artifact{&client, &WorkerClient::artifactAvailable};
  QSignalSpy finished{&client, &WorkerClient::jobFinished};
  QSignalSpy failed{&client, &WorkerClient::jobFailed};
  QSignalSpy protocolError{&client, &WorkerClient::protocolErrorAvailable};
  QSignalSpy workerFailed{&client, &WorkerClient::workerFailed};
  QSignalSpy workerFinished{&client, &WorkerClient::workerFinished};
  QSignalSpy stderrLines{&client, &WorkerClient::stderrAvailable};

  explicit Fixture(const QString& scenario) { client.setProgram(fakeWorker(), {scenario}); }
  bool startAndHello() {
    client.start();
    return waitUntil([&] { return hello.count() > 0 || workerFailed.count() > 0; }, kStartTimeoutMs) &&
           hello.count() == 1;
  }
};

}  // namespace

TEST(WorkerClient, NormalRunDeliversEveryEventInOrder) {
  Fixture f("normal");
  ASSERT_TRUE(f.startAndHello());
  EXPECT_EQ(f.client.hello().value("proto").toInt(), razor::jobs::kProtocolVersion);
  EXPECT_GT(f.client.processId(), 0);
  const qint64 id = f.client.sendRequest("echo", QJsonObject{{"x", 1}});
  EXPECT_GT(id, 0);
  ASSERT_TRUE(waitUntil([&] { return f.finished.count() == 1; }));
  EXPECT_EQ(f.finished[0][0].toLongLong(), id);
  EXPECT_EQ(f.finished[0][1].toJsonObject().value("method").toString(), "echo");
  // Progress of one read may be coalesced (last value wins), but the last value is always delivered.
  ASSERT_GE(f.progress.count(), 1);
  EXPECT_EQ(f.progress.last()[1].toDouble(), 3.0);
  ASSERT_EQ(f.log.count(), 1);
  EXPECT_EQ(f.log[0][2].toString(), "echo log");
  ASSERT_EQ(f.artifact.count(), 1);
  EXPECT_EQ(f.artifact[0][1].toJsonObject().value("kind").toString(), "file");
  EXPECT_EQ(f.protocolError.count(), 0);
  EXPECT_TRUE(f.client.pendingRequests().isEmpty());
  f.client.shutdown();
  ASSERT_TRUE(waitUntil([&] { return f.workerFinished.count() == 1; }, kStartTimeoutMs));
  EXPECT_EQ(f.failed.count(), 0);
  EXPECT_FALSE(f.workerFinished[0][1].toBool());  // a clean exit, not a crash
}

TEST(WorkerClient, RequestsSentBeforeTheHelloAreDeliveredAfterIt) {
  Fixture f("normal");
  f.client.start();
  const qint64 id = f.client.sendRequest("echo", {});
  ASSERT_TRUE(waitUntil([&] { return f.finished.count() == 1; }));
  EXPECT_EQ(f.finished[0][0].toLongLong(), id);
}

TEST(WorkerClient, ProgressFloodNeitherBlocksTheEventLoopNorLosesTheResult) {
  Fixture f("normal");
  ASSERT_TRUE(f.startAndHello());
  // A timer on the same event loop must keep firing while 200000 progress lines arrive.
  int ticks = 0;
  QTimer ticker;
  QObject::connect(&ticker, &QTimer::timeout, [&] { ++ticks; });
  ticker.start(5);
  constexpr int kFlood = 200000;
  f.client.sendRequest("flood", QJsonObject{{"n", kFlood}});
  QElapsedTimer clock;
  clock.start();
  ASSERT_TRUE(waitUntil([&] { return f.finished.count() == 1; }));
  EXPECT_EQ(f.finished[0][1].toJsonObject().value("flooded").toInt(), kFlood);
  ASSERT_GE(f.progress.count(), 1);
  EXPECT_EQ(f.progress.last()[1].toDouble(), double(kFlood));  // last value wins
  EXPECT_LT(f.progress.count(), kFlood);                        // coalesced, not one signal per line
  EXPECT_GT(ticks, 0);
  EXPECT_EQ(f.protocolError.count(), 0);
}

TEST(WorkerClient, GarbageAndOverlongLinesAreReportedAndReadingGoesOn) {
  Fixture f("normal");
  f.client.setMaxLineBytes(1 << 20);
  ASSERT_TRUE(f.startAndHello());
  f.client.sendRequest("garbage", QJsonObject{{"long_bytes", 3 << 20}});
  ASSERT_TRUE(waitUntil([&] { return f.finished.count() == 1; }));
  EXPECT_TRUE(f.finished[0][1].toJsonObject().value("survived").toBool());
  QStringList messages;
  for (const auto& args : f.protocolError) messages << args[0].toString();
  const QString all = messages.join("\n");
  EXPECT_EQ(messages.size(), 6) << all.toStdString();  // 4 bad lines, 1 over-long, 1 refusal without id
  EXPECT_TRUE(all.contains("not a JSON object")) << all.toStdString();
  EXPECT_TRUE(all.contains("without a message type")) << all.toStdString();
  EXPECT_TRUE(all.contains("longer than the limit of 1048576 bytes")) << all.toStdString();
  EXPECT_TRUE(all.contains("fake refusal")) << all.toStdString();
  EXPECT_EQ(f.workerFailed.count(), 0);
  EXPECT_TRUE(f.client.isReady());
  // And the client still works.
  f.client.sendRequest("echo", {});
  ASSERT_TRUE(waitUntil([&] { return f.finished.count() == 2; }));
}

TEST(WorkerClient, VersionMismatchIsAClearPermanentFailure) {
  Fixture f("version");
  f.client.start();
  const qint64 id = f.client.sendRequest("echo", {});
  ASSERT_TRUE(waitUntil([&] { return f.workerFailed.count() == 1; }, kStartTimeoutMs));
  const QString msg = f.workerFailed[0][0].toString();
  EXPECT_TRUE(msg.contains("Version mismatch")) << msg.toStdString();
  EXPECT_TRUE(msg.contains("protocol version 99")) << msg.toStdString();
  EXPECT_TRUE(msg.contains(QStringLiteral("speaks version %1").arg(razor::jobs::kProtocolVersion)))
      << msg.toStdString();
  EXPECT_TRUE(msg.contains("fake-0")) << msg.toStdString();  // the worker's version, to tell the user what met
  EXPECT_TRUE(f.client.failureIsPermanent());
  EXPECT_EQ(f.hello.count(), 0);
  // The process is stopped and the request that waited for the hello fails instead of hanging.
  ASSERT_TRUE(waitUntil([&] { return f.workerFinished.count() == 1; }, kStartTimeoutMs));
  ASSERT_EQ(f.failed.count(), 1);
  EXPECT_EQ(f.failed[0][0].toLongLong(), id);
  EXPECT_EQ(f.client.sendRequest("echo", {}), -1);
}

TEST(WorkerClient, WorkerKilledMidJobFailsThatJobWithAClearMessage) {
  Fixture f("normal");
  ASSERT_TRUE(f.startAndHello());
  const qint64 pid = f.client.processId();
  const qint64 id = f.client.sendRequest("crash", {});
  ASSERT_TRUE(waitUntil([&] { return f.failed.count() == 1; }));
  EXPECT_EQ(f.failed[0][0].toLongLong(), id);
  EXPECT_EQ(f.failed[0][1].toString(), "worker_crashed");
  const QString msg = f.failed[0][2].toString();
  EXPECT_TRUE(msg.contains(QString::number(pid))) << msg.toStdString();
  EXPECT_TRUE(msg.contains("crashed or was killed")) << msg.toStdString();
  EXPECT_TRUE(msg.contains("\"crash\"")) << msg.toStdString();
  EXPECT_TRUE(msg.contains("about to die")) << msg.toStdString();  // its last stderr line
  ASSERT_TRUE(waitUntil([&] { return f.workerFinished.count() == 1; }));
  EXPECT_TRUE(f.workerFinished[0][1].toBool());
}

TEST(WorkerClient, ProgramThatIsNotAWorkerIsRefused) {
  Fixture f("notworker");
  f.client.start();
  ASSERT_TRUE(waitUntil([&] { return f.workerFailed.count() == 1; }, kStartTimeoutMs));
  EXPECT_TRUE(f.workerFailed[0][0].toString().contains("not a razor worker")) << f.workerFailed[0][0].toString().toStdString();
  EXPECT_GE(f.protocolError.count(), 1);  // "Hello, world!" was reported, not fatal on its own
}

TEST(WorkerClient, ExitBeforeHelloQuotesStderr) {
  Fixture f("exit");
  f.client.start();
  ASSERT_TRUE(waitUntil([&] { return f.workerFailed.count() == 1; }, kStartTimeoutMs));
  const QString msg = f.workerFailed[0][0].toString();
  EXPECT_TRUE(msg.contains("exited with code 3")) << msg.toStdString();
  EXPECT_TRUE(msg.contains("cannot initialise")) << msg.toStdString();
  EXPECT_FALSE(f.client.failureIsPermanent());  // may be transient: the pool retries
}

TEST(WorkerClient, MissingHelloTimesOut) {
  Fixture f("nohello");
  f.client.setHelloTimeout(500);
  f.client.start();
  ASSERT_TRUE(waitUntil([&] { return f.workerFailed.count() == 1; }, kStartTimeoutMs));
  EXPECT_TRUE(f.workerFailed[0][0].toString().contains("did not say hello")) << f.workerFailed[0][0].toString().toStdString();
  ASSERT_TRUE(waitUntil([&] { return f.workerFinished.count() == 1; }, kStartTimeoutMs));
}

TEST(WorkerClient, MissingProgramFailsToStart) {
  WorkerClient c;
  QSignalSpy failed(&c, &WorkerClient::workerFailed);
  c.setProgram("/nonexistent/razor", {"worker"});
  c.start();
  ASSERT_TRUE(waitUntil([&] { return failed.count() == 1; }, kStartTimeoutMs));
  EXPECT_TRUE(failed[0][0].toString().contains("could not be started")) << failed[0][0].toString().toStdString();
}

TEST(WorkerClient, CooperativeCancel) {
  Fixture f("normal");
  ASSERT_TRUE(f.startAndHello());
  const qint64 id = f.client.sendRequest("slow", QJsonObject{{"ms", 60000}});
  ASSERT_TRUE(waitUntil([&] { return f.progress.count() > 0; }));
  f.client.cancel(id);
  ASSERT_TRUE(waitUntil([&] { return f.failed.count() == 1; }));
  EXPECT_EQ(f.failed[0][1].toString(), "cancelled");
}
