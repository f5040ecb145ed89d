// The workbench's remote path end to end through a real OpenSSH server on loopback (loopback_sshd.h): the
// pool's workers are `ssh razor-loopback razor worker --connect ...` session workers; a fixture job runs through
// them, the link is cut mid-job (and held down for a while), the pool reconnects and re-attaches the job by id,
// and its result arrives; artifacts are fetched into the content-addressed cache, weights are refused.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QProcess>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>

#include <QAbstractButton>

#include "ExportWizard.h"
#include "RemoteFiles.h"
#include "ServeEvalRun.h"
#include "WorkerPool.h"
#include "loopback_sshd.h"
#include "worker_test_util.h"

using namespace razor_test;

namespace {

const QString kModel = QStringLiteral(RAZOR_MODELS_DIR "/tiny-qwen3-moe");

class RemoteSsh : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(m_ws.isValid());
    QString why;
    if (!m_sshd.start(&why)) GTEST_SKIP() << why.toStdString();
  }
  void TearDown() override {
    // No session worker outlives the test.
    const QDir sessions(m_ws.filePath(".razor/sessions"));
    for (const QString& lock : sessions.entryList({"*.lock"})) {
      QFile f(sessions.filePath(lock));
      if (!f.open(QIODevice::ReadOnly)) continue;
      const int pid = f.readAll().trimmed().toInt();
      if (pid > 0 && lockHeld(sessions.filePath(lock))) ::kill(pid, SIGKILL);
    }
  }
  static bool lockHeld(const QString& path) {
    int fd = ::open(QFile::encodeName(path).constData(), O_RDONLY);
    if (fd < 0) return false;
    bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0;
    ::close(fd);
    return held;
  }
  RemoteHost host() const { return m_sshd.host(razorCli(), m_ws.path()); }
  QString sshdLog() const { return m_sshd.log(); }

  QTemporaryDir m_ws;  // the "server's" workspace
  LoopbackSshd m_sshd;
};

TEST_F(RemoteSsh, AFixtureJobSurvivesADroppedLinkAndIsReattached) {
  WorkerPool pool;
  pool.setRemote(host());
  pool.setGpuCount(0);
  pool.setReconnectDelay(200);
  pool.setMaxRestarts(20);
  QSignalSpy available(&pool, &WorkerPool::workerAvailable);
  QSignalSpy lost(&pool, &WorkerPool::workerConnectionLost);
  QSignalSpy back(&pool, &WorkerPool::workerReconnected);
  QSignalSpy finished(&pool, &WorkerPool::jobFinished);
  QSignalSpy failed(&pool, &WorkerPool::jobFailed);
  QSignalSpy progress(&pool, &WorkerPool::jobProgressAvailable);
  QSignalSpy artifacts(&pool, &WorkerPool::jobArtifactAvailable);
  QSignalSpy workerFailed(&pool, &WorkerPool::workerFailed);
  pool.start();
  ASSERT_TRUE(waitUntil([&] { return available.count() >= 1; }, kStartTimeoutMs))
      << (workerFailed.isEmpty() ? std::string("no hello") : workerFailed[0][1].toString().toStdString()) << "\n"
      << sshdLog().toStdString();
  const QJsonObject hello = available[0][1].toJsonObject();
  ASSERT_TRUE(hello.contains("session")) << "a remote slot talks to a session worker";
  EXPECT_EQ(hello.value("session").toObject().value("workspace").toString(), QDir(m_ws.path()).canonicalPath());
  const qint64 workerPid = hello.value("pid").toInteger();

  // 1. A job that is running when the link dies: it goes on on the server and reports again after re-attach.
  const QString sleepJob = pool.submit("sleep", QJsonObject{{"ms", 3000}, {"step_ms", 10}});
  ASSERT_TRUE(waitUntil([&] { return progress.count() >= 1; }));
  m_sshd.link().setDown(true);
  m_sshd.link().cut();
  ASSERT_TRUE(waitUntil([&] { return lost.count() >= 1; })) << "ssh notices the cut link";
  EXPECT_TRUE(finished.isEmpty() && failed.isEmpty()) << "the job is not failed while the link is down";
  QTest::qWait(1000);  // a few reconnects are refused meanwhile
  m_sshd.link().setDown(false);
  ASSERT_TRUE(waitUntil([&] { return back.count() >= 1; })) << sshdLog().toStdString();
  ASSERT_TRUE(waitUntil([&] { return finished.count() + failed.count() >= 1; }));
  ASSERT_EQ(failed.count(), 0) << failed[0][2].toString().toStdString();
  EXPECT_EQ(finished[0][0].toString(), sleepJob);
  EXPECT_EQ(finished[0][1].toJsonObject().value("slept_ms").toInt(), 3000);
  EXPECT_EQ(pool.workerPid(0), workerPid) << "the same session worker ran it across the drop";

  // 2. Quantize the fixture on the server; cut the link at its first progress; the result (and its artifacts,
  // replayed when the job ended while the link was down) arrive after re-attaching.
  const QString out = m_ws.filePath("q");
  progress.clear();
  const QString qJob = pool.submit(
      "quantize", QJsonObject{{"model", kModel}, {"recipe", "seed-default"}, {"out", out}, {"cpu", true}});
  ASSERT_TRUE(waitUntil([&] { return progress.count() >= 1 || finished.count() >= 2; }));
  m_sshd.link().cut();
  ASSERT_TRUE(waitUntil([&] { return finished.count() + failed.count() >= 2; }, 180000)) << sshdLog().toStdString();
  ASSERT_EQ(failed.count(), 0) << failed[0][2].toString().toStdString();
  EXPECT_EQ(finished[1][0].toString(), qJob);
  EXPECT_EQ(finished[1][1].toJsonObject().value("out").toString(), out);
  EXPECT_TRUE(QFile::exists(out + "/razor_quant_summary.json"));
  QStringList kinds;
  for (const auto& a : artifacts)
    if (a[0].toString() == qJob) kinds << a[1].toJsonObject().value("kind").toString();
  EXPECT_TRUE(kinds.contains("checkpoint") && kinds.contains("summary")) << kinds.join(',').toStdString();
  EXPECT_GE(lost.count(), 2);

  // 3. stopRemoteWorkers ends the session worker on the server.
  pool.stopRemoteWorkers();
  EXPECT_TRUE(waitUntil([&] { return !lockHeld(m_ws.filePath(".razor/sessions/cpu.lock")); }, 30000));
}

TEST_F(RemoteSsh, ANewWorkbenchAdoptsTheJobAnEarlierOneLeftRunning) {
  {
    WorkerPool first;
    first.setRemote(host());
    first.setGpuCount(0);
    QSignalSpy progress(&first, &WorkerPool::jobProgressAvailable);
    QSignalSpy failed(&first, &WorkerPool::jobFailed);
    first.start();
    first.submit("sleep", QJsonObject{{"ms", 2500}, {"step_ms", 10}});
    ASSERT_TRUE(waitUntil([&] { return progress.count() >= 1; }, kStartTimeoutMs)) << sshdLog().toStdString();
    first.shutdown();  // the workbench closes: remote jobs go on
    ASSERT_EQ(failed.count(), 1);
    EXPECT_EQ(failed[0][1].toString(), "disconnected");
    EXPECT_TRUE(failed[0][2].toString().contains("goes on")) << failed[0][2].toString().toStdString();
  }
  WorkerPool second;
  second.setRemote(host());
  second.setGpuCount(0);
  QSignalSpy started(&second, &WorkerPool::jobStarted);
  QSignalSpy finished(&second, &WorkerPool::jobFinished);
  second.start();
  ASSERT_TRUE(waitUntil([&] { return finished.count() >= 1; }, kStartTimeoutMs)) << sshdLog().toStdString();
  ASSERT_EQ(started.count(), 1);
  EXPECT_EQ(started[0][0].toString(), finished[0][0].toString());
  EXPECT_EQ(finished[0][1].toJsonObject().value("slept_ms").toInt(), 2500);
  second.stopRemoteWorkers();
  EXPECT_TRUE(waitUntil([&] { return !lockHeld(m_ws.filePath(".razor/sessions/cpu.lock")); }, 30000));
}

TEST_F(RemoteSsh, AJobThatEndedWhileNoWorkbenchWasConnectedIsShownWithItsResult) {
  const QString out = m_ws.filePath("q");
  {
    WorkerPool first;
    first.setRemote(host());
    first.setGpuCount(0);
    QSignalSpy started(&first, &WorkerPool::jobStarted);
    first.start();
    first.submit("quantize", QJsonObject{{"model", kModel}, {"recipe", "uniform-int4"}, {"out", out}, {"cpu", true}});
    ASSERT_TRUE(waitUntil([&] { return started.count() >= 1; }, kStartTimeoutMs)) << sshdLog().toStdString();
    first.shutdown();  // the laptop closes while the job runs
  }
  ASSERT_TRUE(waitUntil([&] { return QFile::exists(out + "/razor_quant_summary.json"); }, kJobTimeoutMs));
  QTest::qWait(200);  // the session records the result

  WorkerPool second;
  second.setRemote(host());
  second.setGpuCount(0);
  QSignalSpy submitted(&second, &WorkerPool::jobSubmitted);
  QSignalSpy finished(&second, &WorkerPool::jobFinished);
  QSignalSpy artifacts(&second, &WorkerPool::jobArtifactAvailable);
  second.start();
  ASSERT_TRUE(waitUntil([&] { return finished.count() >= 1; }, kStartTimeoutMs)) << sshdLog().toStdString();
  EXPECT_EQ(submitted[0][1].toString(), "quantize");
  EXPECT_EQ(finished[0][1].toJsonObject().value("out").toString(), out);
  EXPECT_GE(artifacts.count(), 2) << "checkpoint and summary, replayed";
  EXPECT_EQ(second.readyWorkerCount(), 1);
  // Delivered, so forgotten: a third workbench sees nothing more.
  second.stopRemoteWorkers();
  EXPECT_TRUE(waitUntil([&] { return !lockHeld(m_ws.filePath(".razor/sessions/cpu.lock")); }, 30000));
}

TEST_F(RemoteSsh, ArtifactsAreFetchedOnceIntoAContentAddressedCacheAndWeightsAreRefused) {
  // Something to fetch: a result JSON and a stand-in weight file in the server's workspace.
  QDir(m_ws.path()).mkpath("run");
  QFile json(m_ws.filePath("run/result.json"));
  ASSERT_TRUE(json.open(QIODevice::WriteOnly));
  QByteArray body = "{\"format\":\"razor.bench/1\",\"scores\":[";
  for (int i = 0; i < 2000; ++i) body += QByteArray::number(i) + ",";
  body += "0]}\n";
  json.write(body);
  json.close();
  QFile weights(m_ws.filePath("run/model.safetensors"));
  ASSERT_TRUE(weights.open(QIODevice::WriteOnly));
  weights.write(QByteArray(4096, '\0'));
  weights.close();

  QTemporaryDir cache;
  RemoteFiles files;
  files.setHost(host());
  files.setCacheDirectory(cache.path());
  QSignalSpy fetched(&files, &RemoteFiles::fetched);
  QSignalSpy failedSpy(&files, &RemoteFiles::fetchFailed);

  files.fetch("run/result.json");  // relative to the remote workspace
  ASSERT_TRUE(waitUntil([&] { return fetched.count() + failedSpy.count() >= 1; }, kStartTimeoutMs));
  ASSERT_EQ(failedSpy.count(), 0) << failedSpy[0][2].toString().toStdString();
  EXPECT_FALSE(fetched[0][3].toBool()) << "first fetch transfers the file";
  const QString local = fetched[0][2].toString();
  EXPECT_TRUE(local.startsWith(cache.path()));
  EXPECT_TRUE(local.endsWith("/result.json"));
  QFile got(local);
  ASSERT_TRUE(got.open(QIODevice::ReadOnly));
  EXPECT_EQ(got.readAll(), body);

  files.fetch(m_ws.filePath("run/result.json"));  // the same content by its absolute path: from the cache
  ASSERT_TRUE(waitUntil([&] { return fetched.count() + failedSpy.count() >= 2; }, kStartTimeoutMs));
  ASSERT_EQ(fetched.count(), 2);
  EXPECT_TRUE(fetched[1][3].toBool());
  EXPECT_EQ(fetched[1][2].toString(), local);

  files.fetch("run/model.safetensors");
  files.fetch("run/missing.h5");
  ASSERT_TRUE(waitUntil([&] { return failedSpy.count() >= 2; }, kStartTimeoutMs));
  QStringList messages;
  for (const auto& f : failedSpy) messages << f[2].toString();
  EXPECT_TRUE(messages.join('\n').contains("weights are never fetched")) << messages.join('\n').toStdString();
  EXPECT_TRUE(messages.join('\n').contains("no such file")) << messages.join('\n').toStdString();
}

TEST_F(RemoteSsh, TheExportWizardUploadsItsRecipePlansOnTheServerAndPacksThroughTheRemotePool) {
  WorkerPool pool;
  pool.setRemote(host());
  pool.setGpuCount(0);
  pool.start();
  ExportWizard w;
  w.setRemote(host());
  w.setWorkerPool(&pool);
  w.setRecipesDir(QStringLiteral(RAZOR_SOURCE_DIR_T "/recipes/gguf"));  // chosen on the laptop
  w.show();
  const QString out = m_ws.filePath("tiny-q3.gguf");  // a server path
  w.setModelDir(kModel);
  w.next();
  w.selectPreset(QStringLiteral("instinct-q3.txt"));
  w.next();
  ASSERT_EQ(w.currentId(), ExportWizard::ImatrixPage);
  w.setOutputPath(out);
  QSignalSpy reviewed(&w, &ExportWizard::reviewFinished);
  w.next();
  ASSERT_EQ(w.currentId(), ExportWizard::ReviewPage);
  ASSERT_TRUE(waitUntil([&] { return reviewed.count() >= 1; }, kStartTimeoutMs)) << sshdLog().toStdString();
  ASSERT_TRUE(reviewed[0][0].toBool()) << w.report().toStdString();
  EXPECT_GT(w.reviewBpw(), 3.0);
  const QStringList args = w.packArguments(false);
  const QString recipe = args.value(args.indexOf("--recipe") + 1);
  EXPECT_TRUE(recipe.startsWith(m_ws.path() + "/.razor/uploads/")) << recipe.toStdString();
  EXPECT_TRUE(QFile::exists(recipe)) << "the upload is on the server";

  w.next();
  ASSERT_EQ(w.currentId(), ExportWizard::RunPage);
  QSignalSpy ran(&w, &ExportWizard::runFinished);
  for (QAbstractButton* b : w.currentPage()->findChildren<QAbstractButton*>())
    if (b->text() == QStringLiteral("Start")) b->click();
  ASSERT_TRUE(waitUntil([&] { return ran.count() >= 1; }, 180000));
  ASSERT_TRUE(ran[0][0].toBool()) << w.report().toStdString();
  QFile gguf(out);
  ASSERT_TRUE(gguf.open(QIODevice::ReadOnly));
  EXPECT_EQ(gguf.read(4), QByteArray("GGUF"));
  pool.stopRemoteWorkers();
  EXPECT_TRUE(waitUntil([&] { return !lockHeld(m_ws.filePath(".razor/sessions/cpu.lock")); }, 30000));
}

TEST_F(RemoteSsh, ServesAndEvaluatesOnTheServerThroughTheSameChannel) {
  const QString node = QStandardPaths::findExecutable("node");
  const QString oracle = QStringLiteral(RAZOR_SOURCE_DIR_T "/.oracle");
  if (node.isEmpty() || !QFile::exists(oracle + "/node_modules/node-llama-cpp/package.json"))
    GTEST_SKIP() << "node or the node-llama-cpp oracle is missing (scripts/install-oracle.sh)";
  const QString gguf = m_ws.filePath("tiny-q8.gguf");
  QProcess pack;
  pack.start(razorCli(), {"pack", kModel, "--type", "q8_0", "--out", gguf});
  ASSERT_TRUE(pack.waitForFinished(kJobTimeoutMs));
  ASSERT_EQ(pack.exitCode(), 0);
  QFile q(m_ws.filePath("mmlu_pro.jsonl"));
  ASSERT_TRUE(q.open(QIODevice::WriteOnly));
  q.write(R"({"question_id":1,"question":"What is 2 + 2?","options":["3","4","5","6"],"answer_index":1,"answer":"B"})" "\n");
  q.close();

  WorkerPool pool;
  pool.setRemote(host());
  pool.setGpuCount(0);
  pool.start();
  ServeEvalRun run(&pool);
  QSignalSpy finished(&run, &ServeEvalRun::runFinished);
  QSignalSpy failed(&run, &ServeEvalRun::runFailed);
  // llama.cpp behind an OpenAI-compatible endpoint, started by a session worker of its own on the server.
  run.start(QJsonObject{{"engine", "command"},
                        {"model", gguf},
                        {"command", QJsonArray{node, RAZOR_SOURCE_DIR_T "/tools/llamacpp/openai_server.mjs", "{model}",
                                               "{port}", "--oracle", oracle, "--ctx", "1024"}}},
            QJsonObject{{"benchmarks", "mmlu_pro"}, {"data", m_ws.path()}, {"out", m_ws.filePath("result.json")}, {"n", 1}});
  ASSERT_TRUE(waitUntil([&] { return finished.count() + failed.count() > 0; }, 240000)) << sshdLog().toStdString();
  ASSERT_EQ(failed.count(), 0) << failed[0][0].toString().toStdString();
  EXPECT_EQ(finished[0][1].toJsonObject().value("mmlu_pro_n").toInt(), 1);
  EXPECT_TRUE(QFile::exists(m_ws.filePath("result.json")));
  // The server's job is cancelled and its session worker exits with it.
  ASSERT_TRUE(waitUntil([&] { return !pool.isJobActive(run.serveJob()); }, 30000));
  const QDir sessions(m_ws.filePath(".razor/sessions"));
  const QStringList svc = sessions.entryList({"svc-*.lock"});
  ASSERT_EQ(svc.size(), 1);
  EXPECT_TRUE(waitUntil([&] { return !lockHeld(sessions.filePath(svc[0])); }, 30000));
  pool.stopRemoteWorkers();
}

TEST_F(RemoteSsh, ASecondWorkbenchTakesTheSessionOverAndTheFirstLetsGo) {
  WorkerPool first;
  first.setRemote(host());
  first.setGpuCount(0);
  first.setReconnectDelay(50);
  QSignalSpy firstAvailable(&first, &WorkerPool::workerAvailable);
  QSignalSpy firstFailed(&first, &WorkerPool::workerFailed);
  first.start();
  ASSERT_TRUE(waitUntil([&] { return firstAvailable.count() >= 1; }, kStartTimeoutMs)) << sshdLog().toStdString();
  WorkerPool second;
  second.setRemote(host());
  second.setGpuCount(0);
  QSignalSpy secondAvailable(&second, &WorkerPool::workerAvailable);
  second.start();
  ASSERT_TRUE(waitUntil([&] { return secondAvailable.count() >= 1 && firstFailed.count() >= 1; }, kStartTimeoutMs));
  EXPECT_TRUE(firstFailed[0][1].toString().contains("took it over")) << firstFailed[0][1].toString().toStdString();
  QTest::qWait(500);  // the first one does not reconnect (it would take the session back, and so on)
  EXPECT_EQ(firstAvailable.count(), 1);
  EXPECT_EQ(secondAvailable.count(), 1);
  EXPECT_EQ(second.readyWorkerCount(), 1);
  second.stopRemoteWorkers();
  EXPECT_TRUE(waitUntil([&] { return !lockHeld(m_ws.filePath(".razor/sessions/cpu.lock")); }, 30000));
}

TEST_F(RemoteSsh, AServiceLeftRunningIsAdoptedByTheNextWorkbenchAndStopsWhenCancelled) {
  const QString python = QStandardPaths::findExecutable("python3");
  if (python.isEmpty()) GTEST_SKIP() << "python3 is not on PATH (the stand-in server is a python http.server)";
  const QJsonObject serve{{"engine", "command"},
                          {"model", "fake"},
                          {"command", QJsonArray{python, RAZOR_SOURCE_DIR_T "/tests/common/fake_models_server.py", "{port}"}}};
  QString endpoint;
  {
    WorkerPool first;
    first.setRemote(host());
    first.setGpuCount(0);
    QSignalSpy artifacts(&first, &WorkerPool::jobArtifactAvailable);
    first.start();
    first.submit("serve", serve);
    ASSERT_TRUE(waitUntil([&] { return !artifacts.isEmpty(); }, kStartTimeoutMs)) << sshdLog().toStdString();
    endpoint = artifacts[0][1].toJsonObject().value("path").toString();
    first.shutdown();  // the workbench closes; the server goes on in its own session
  }
  const QDir sessions(m_ws.filePath(".razor/sessions"));
  const QStringList svc = sessions.entryList({"svc-*.lock"});
  ASSERT_EQ(svc.size(), 1);
  ASSERT_TRUE(lockHeld(sessions.filePath(svc[0])));

  WorkerPool second;
  second.setRemote(host());
  second.setGpuCount(0);
  QSignalSpy submitted(&second, &WorkerPool::jobSubmitted);
  QSignalSpy started(&second, &WorkerPool::jobStarted);
  QSignalSpy failed(&second, &WorkerPool::jobFailed);
  second.start();
  ASSERT_TRUE(waitUntil([&] { return started.count() >= 1; }, kStartTimeoutMs)) << sshdLog().toStdString();
  ASSERT_EQ(submitted[0][1].toString(), "serve");
  EXPECT_EQ(submitted[0][2].toJsonObject().value("adopted_from").toString(), host().label());
  EXPECT_TRUE(second.cancel(started[0][0].toString()));  // stop the server left behind
  ASSERT_TRUE(waitUntil([&] { return failed.count() >= 1; }, kStartTimeoutMs));
  EXPECT_EQ(failed[0][1].toString(), "cancelled") << failed[0][2].toString().toStdString();
  EXPECT_TRUE(failed[0][2].toString().contains(endpoint)) << failed[0][2].toString().toStdString();
  EXPECT_TRUE(waitUntil([&] { return !lockHeld(sessions.filePath(svc[0])); }, 30000)) << "its session ends with it";
  second.stopRemoteWorkers();
}

TEST_F(RemoteSsh, AnUnreachableServerFailsWithSshsOwnMessage) {
  RemoteHost h = host();
  h.sshOptions << "-o" << "Port=1";  // nothing listens there
  WorkerPool pool;
  pool.setRemote(h);
  pool.setGpuCount(0);
  pool.setMaxRestarts(2);
  pool.setReconnectDelay(50);
  QSignalSpy workerFailed(&pool, &WorkerPool::workerFailed);
  QSignalSpy jobFailed(&pool, &WorkerPool::jobFailed);
  pool.start();
  pool.submit("echo", QJsonObject{{"x", 1}});
  ASSERT_TRUE(waitUntil([&] { return jobFailed.count() >= 1; }, kStartTimeoutMs));
  EXPECT_EQ(jobFailed[0][1].toString(), "no_worker");
  QStringList messages;
  for (const auto& f : workerFailed) messages << f[1].toString();
  EXPECT_TRUE(messages.join('\n').contains("Connection refused")) << messages.join('\n').toStdString();
}

}  // namespace
