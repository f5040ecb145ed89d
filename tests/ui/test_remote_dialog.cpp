// RemoteDialog ("Connect to a GPU server"): the check against a fake ssh, a shell script written here that
// records its arguments and answers like `ssh HOST razor worker --probe` would (a good probe, another protocol,
// an unusable workspace, ssh's exit 255 with "Permission denied (publickey).", razor not found, no answer at
// all); Connect's availability; settings saved and restored; the HOST:WORKSPACE and ssh-option parsing.
// The real sshd test is tests/ui/test_remote_*.cpp of the remote pool (the lead's), not here.
#include <gtest/gtest.h>

#include <QElapsedTimer>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLineEdit>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QUndoStack>
#include <algorithm>

#include "AllocationEditor.h"
#include "GpuPanel.h"
#include "HeatmapView.h"
#include "JobsDock.h"
#include "JobsModel.h"
#include "MainWindow.h"
#include "RemoteDialog.h"
#include "RemoteFiles.h"
#include "RemoteHost.h"
#include "WorkerPool.h"
#include "Workspace.h"
#include "jobs/protocol_version.h"
#include "worker_test_util.h"

namespace {

// A check finishes within this on a loaded two-core machine (the fake answers at once; sh starts in ms).
constexpr int kCheckWaitMs = 30000;

class RemoteDialogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(m_tmp.isValid());
    // The dialog's QSettings go to the temp dir, never to the user's ~/.config.
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, m_tmp.filePath(QStringLiteral("settings")));
    QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, m_tmp.filePath(QStringLiteral("settings")));
  }

  // A fake ssh: records its arguments (one per line) in args.txt, then runs `body`.
  QString fakeSsh(const QString& name, const QByteArray& body) {
    const QString path = m_tmp.filePath(name);
    QFile f(path);
    EXPECT_TRUE(f.open(QIODevice::WriteOnly));
    f.write("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '" + argsFile().toUtf8() + "'\n" + body + "\n");
    f.close();
    f.setPermissions(f.permissions() | QFileDevice::ExeOwner | QFileDevice::ExeUser);
    return path;
  }
  // A fake ssh that prints `probe` as the one JSON line (after some login-shell noise) and exits 0.
  QString probeSsh(const QString& name, const QJsonObject& probe) {
    const QString json = QString::fromUtf8(QJsonDocument(probe).toJson(QJsonDocument::Compact));
    QString quoted = json;
    quoted.replace(QLatin1Char('\''), QStringLiteral("'\\''"));
    return fakeSsh(name, "echo 'welcome to gpu-box'\nprintf '%s\\n' '" + quoted.toUtf8() + "'\nexit 0");
  }
  QString argsFile() const { return m_tmp.filePath(QStringLiteral("args.txt")); }
  QStringList recordedArgs() const {
    QFile f(argsFile());
    if (!f.open(QIODevice::ReadOnly)) return {};
    return QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
  }

  static RemoteHost hostWith(const QString& ssh) {
    RemoteHost h;
    h.host = QStringLiteral("gpu-box");
    h.sshOptions = {QStringLiteral("-p"), QStringLiteral("2222")};
    h.razor = QStringLiteral("/opt/razor/bin/razor");
    h.workspace = QStringLiteral("/data/razor");
    h.sshProgram = ssh;
    return h;
  }

  // Runs the check and waits for checkFinished(); returns its arguments.
  static QList<QVariant> runCheck(RemoteDialog& d) {
    QSignalSpy done(&d, &RemoteDialog::checkFinished);
    d.check();
    EXPECT_TRUE(d.isChecking());
    EXPECT_FALSE(d.connectButton()->isEnabled());
    EXPECT_FALSE(d.checkButton()->isEnabled());
    if (!done.wait(kCheckWaitMs) && done.isEmpty()) return {};
    EXPECT_EQ(done.count(), 1);
    EXPECT_FALSE(d.isChecking());
    EXPECT_TRUE(d.checkButton()->isEnabled());
    return done.takeFirst();
  }

  QTemporaryDir m_tmp;
};

// What `razor worker --probe` prints on a server with one H100 and a running CPU session worker.
QJsonObject goodProbe() {
  return QJsonObject{
      {"t", "probe"},
      {"proto", razor::jobs::kProtocolVersion},
      {"version", "0.1.0"},
      {"host", "gpu-box-7"},
      {"workspace", "/data/razor"},
      {"workspace_ok", true},
      {"workspace_note", ""},
      {"sessions", QJsonArray{QJsonObject{{"slot", "cpu"}, {"pid", 4242}, {"alive", true}},
                              QJsonObject{{"slot", "gpu0"}, {"pid", 4243}, {"alive", false}}}},
      {"gpus", QJsonArray{QJsonObject{{"index", 0}, {"name", "NVIDIA H100 80GB HBM3"}, {"total_memory", 85520809984.0}}}},
      {"gpus_note", ""},
      {"cuda", true}};
}

}  // namespace

TEST_F(RemoteDialogTest, SuccessfulCheckEnablesConnect) {
  RemoteDialog d;
  d.setHost(hostWith(probeSsh(QStringLiteral("ssh-ok"), goodProbe())));
  EXPECT_FALSE(d.connectButton()->isEnabled());  // nothing checked yet
  const QList<QVariant> r = runCheck(d);
  ASSERT_EQ(r.size(), 3);
  EXPECT_TRUE(r[0].toBool()) << r[2].toString().toStdString();
  EXPECT_EQ(r[1].toJsonObject().value("host").toString(), QStringLiteral("gpu-box-7"));
  EXPECT_TRUE(d.checkOk());
  EXPECT_TRUE(d.connectButton()->isEnabled());
  EXPECT_TRUE(d.message().contains(QStringLiteral("Ready to connect to gpu-box:/data/razor")));
  EXPECT_TRUE(d.message().contains(QStringLiteral("re-attaches"))) << d.message().toStdString();  // a live session
  EXPECT_TRUE(d.resultText(RemoteDialog::ReachableRow).startsWith(QStringLiteral("yes")));
  EXPECT_EQ(d.resultText(RemoteDialog::ServerRow), QStringLiteral("gpu-box-7"));
  EXPECT_EQ(d.resultText(RemoteDialog::VersionRow), QStringLiteral("0.1.0, protocol %1").arg(razor::jobs::kProtocolVersion));
  EXPECT_TRUE(d.resultText(RemoteDialog::WorkspaceRow).contains(QStringLiteral("/data/razor")));
  EXPECT_TRUE(d.resultText(RemoteDialog::GpusRow).contains(QStringLiteral("0: NVIDIA H100 80GB HBM3")));
  EXPECT_TRUE(d.resultText(RemoteDialog::GpusRow).contains(QStringLiteral("79.6 GiB")));
  EXPECT_TRUE(d.resultText(RemoteDialog::SessionsRow).contains(QStringLiteral("cpu: pid 4242, running")));
  EXPECT_TRUE(d.resultText(RemoteDialog::SessionsRow).contains(QStringLiteral("gpu0: pid 4243, not running")));
  EXPECT_FALSE(d.installOffered());
  EXPECT_TRUE(d.installButton()->isHidden());

  // ssh got the probe command: BatchMode (never a password), the user's options before the host, the quoted
  // remote command after "--".
  const QStringList args = recordedArgs();
  EXPECT_TRUE(args.contains(QStringLiteral("BatchMode=yes")));
  const int p = int(args.indexOf(QStringLiteral("-p"))), host = int(args.indexOf(QStringLiteral("gpu-box")));
  ASSERT_GE(p, 0);
  ASSERT_GT(host, p);
  EXPECT_EQ(args.value(p + 1), QStringLiteral("2222"));
  EXPECT_EQ(args.value(host + 1), QStringLiteral("--"));
  EXPECT_EQ(args.value(host + 2), QStringLiteral("/opt/razor/bin/razor worker --probe --workspace /data/razor"));

  // An edit makes the check stale: Connect goes off until the fields are those checked again.
  auto* ws = d.findChild<QLineEdit*>(QStringLiteral("workspace"));
  ASSERT_NE(ws, nullptr);
  ws->setText(QStringLiteral("/data/other"));
  EXPECT_FALSE(d.connectButton()->isEnabled());
  EXPECT_TRUE(d.message().contains(QStringLiteral("check again")));
  ws->setText(QStringLiteral("/data/razor"));
  EXPECT_TRUE(d.connectButton()->isEnabled());
}

TEST_F(RemoteDialogTest, ProtocolMismatchIsAnError) {
  QJsonObject probe = goodProbe();
  probe["proto"] = razor::jobs::kProtocolVersion + 1;
  probe["version"] = "9.9.9";
  RemoteDialog d;
  d.setHost(hostWith(probeSsh(QStringLiteral("ssh-proto"), probe)));
  const QList<QVariant> r = runCheck(d);
  ASSERT_EQ(r.size(), 3);
  EXPECT_FALSE(r[0].toBool());
  EXPECT_EQ(r[1].toJsonObject().value("version").toString(), QStringLiteral("9.9.9"));  // the probe still came
  EXPECT_FALSE(d.connectButton()->isEnabled());
  EXPECT_TRUE(d.message().contains(QStringLiteral("install the same release on both sides"))) << d.message().toStdString();
  EXPECT_TRUE(d.resultText(RemoteDialog::VersionRow).contains(QStringLiteral("9.9.9")));
  EXPECT_TRUE(d.resultText(RemoteDialog::VersionRow).contains(QStringLiteral("install the same release on both sides")));
  EXPECT_TRUE(d.resultText(RemoteDialog::ReachableRow).startsWith(QStringLiteral("yes")));  // reachable, though
  EXPECT_TRUE(d.resultText(RemoteDialog::GpusRow).contains(QStringLiteral("H100")));       // and the rest is shown
  EXPECT_TRUE(d.installOffered());  // this release can be installed next to the other one
}

TEST_F(RemoteDialogTest, UnusableWorkspaceIsAnError) {
  QJsonObject probe = goodProbe();
  probe["workspace"] = "/data/razor";
  probe["workspace_ok"] = false;
  probe["workspace_note"] = "/data/razor: not a writable directory on gpu-box-7";
  probe["sessions"] = QJsonArray();
  probe["gpus"] = QJsonArray();
  probe["gpus_note"] = "no CUDA driver";
  RemoteDialog d;
  d.setHost(hostWith(probeSsh(QStringLiteral("ssh-ws"), probe)));
  const QList<QVariant> r = runCheck(d);
  ASSERT_EQ(r.size(), 3);
  EXPECT_FALSE(r[0].toBool());
  EXPECT_FALSE(d.connectButton()->isEnabled());
  EXPECT_TRUE(d.resultText(RemoteDialog::WorkspaceRow).contains(QStringLiteral("not a writable directory")));
  EXPECT_TRUE(d.message().contains(QStringLiteral("not a writable directory")));
  EXPECT_TRUE(d.resultText(RemoteDialog::GpusRow).contains(QStringLiteral("no CUDA driver")));
  EXPECT_EQ(d.resultText(RemoteDialog::SessionsRow), QStringLiteral("none running"));
}

TEST_F(RemoteDialogTest, PermissionDeniedShowsSshErrorAndKeyHint) {
  RemoteDialog d;
  d.setHost(hostWith(fakeSsh(QStringLiteral("ssh-denied"),
                             "echo 'Warning: Permanently added gpu-box (ED25519) to the list of known hosts.' >&2\n"
                             "echo 'me@gpu-box: Permission denied (publickey).' >&2\nexit 255")));
  const QList<QVariant> r = runCheck(d);
  ASSERT_EQ(r.size(), 3);
  EXPECT_FALSE(r[0].toBool());
  EXPECT_TRUE(r[1].toJsonObject().isEmpty());
  EXPECT_FALSE(d.connectButton()->isEnabled());
  const QString reach = d.resultText(RemoteDialog::ReachableRow);
  EXPECT_TRUE(reach.startsWith(QStringLiteral("no"))) << reach.toStdString();
  EXPECT_TRUE(reach.contains(QStringLiteral("255")));
  EXPECT_TRUE(reach.contains(QStringLiteral("Permission denied (publickey).")));
  EXPECT_TRUE(d.message().contains(QStringLiteral("never asks for a password"))) << d.message().toStdString();
  EXPECT_TRUE(d.message().contains(QStringLiteral("ssh-add")));
  EXPECT_EQ(d.resultText(RemoteDialog::ServerRow), QStringLiteral("\u2014"));  // nothing more is known
}

TEST_F(RemoteDialogTest, RazorNotFoundOnTheServer) {
  RemoteDialog d;
  d.setHost(hostWith(fakeSsh(QStringLiteral("ssh-127"), "echo 'sh: 1: /opt/razor/bin/razor: not found' >&2\nexit 127")));
  const QList<QVariant> r = runCheck(d);
  ASSERT_EQ(r.size(), 3);
  EXPECT_FALSE(r[0].toBool());
  EXPECT_TRUE(d.message().contains(QStringLiteral("was not found on the server")));
  EXPECT_TRUE(d.resultText(RemoteDialog::ReachableRow).contains(QStringLiteral("not found")));
  // No razor there: the dialog offers to install this release's bundle (test_remote_install.cpp installs it).
  EXPECT_TRUE(d.installOffered());
  EXPECT_FALSE(d.installButton()->isHidden());
  EXPECT_TRUE(d.installButton()->isEnabled());
}

TEST_F(RemoteDialogTest, NoAnswerTimesOut) {
  RemoteDialog d;
  d.setHost(hostWith(fakeSsh(QStringLiteral("ssh-silent"), "echo 'connecting...' >&2\nexec sleep 60")));
  d.setCheckTimeout(500);
  QElapsedTimer t;
  t.start();
  const QList<QVariant> r = runCheck(d);
  ASSERT_EQ(r.size(), 3);
  EXPECT_LT(t.elapsed(), 20000);  // the timeout ended it, not the script
  EXPECT_FALSE(r[0].toBool());
  EXPECT_FALSE(d.connectButton()->isEnabled());
  EXPECT_TRUE(d.message().contains(QStringLiteral("No answer from gpu-box within 0.5 s"))) << d.message().toStdString();
  EXPECT_TRUE(d.resultText(RemoteDialog::ReachableRow).contains(QStringLiteral("connecting...")));
  // The next check is not disturbed by the abandoned one.
  d.setHost(hostWith(probeSsh(QStringLiteral("ssh-ok2"), goodProbe())));
  const QList<QVariant> r2 = runCheck(d);
  ASSERT_EQ(r2.size(), 3);
  EXPECT_TRUE(r2[0].toBool());
}

TEST_F(RemoteDialogTest, MissingFieldsAndSupersededCheck) {
  RemoteDialog d;
  RemoteHost h = hostWith(probeSsh(QStringLiteral("ssh-ok3"), goodProbe()));
  h.workspace.clear();
  d.setHost(h);
  QList<QVariant> r = runCheck(d);
  ASSERT_EQ(r.size(), 3);
  EXPECT_FALSE(r[0].toBool());
  EXPECT_TRUE(d.message().contains(QStringLiteral("workspace")));
  EXPECT_TRUE(recordedArgs().isEmpty());  // ssh was not run

  // An edit while a check runs supersedes it: no answer is delivered for it.
  d.setHost(hostWith(fakeSsh(QStringLiteral("ssh-slow"), "exec sleep 60")));
  QSignalSpy done(&d, &RemoteDialog::checkFinished);
  d.check();
  ASSERT_TRUE(d.isChecking());
  d.findChild<QLineEdit*>(QStringLiteral("host"))->setText(QStringLiteral("other-box"));
  EXPECT_FALSE(d.isChecking());
  EXPECT_TRUE(d.checkButton()->isEnabled());
  QTest::qWait(200);
  EXPECT_EQ(done.count(), 0);
}

TEST_F(RemoteDialogTest, SavedOnConnectAndRestored) {
  const RemoteHost h = hostWith(probeSsh(QStringLiteral("ssh-ok4"), goodProbe()));
  {
    RemoteDialog d;
    d.setHost(h);
    d.accept();  // refused: not checked
    EXPECT_NE(d.result(), int(QDialog::Accepted));
    ASSERT_EQ(runCheck(d).value(0).toBool(), true);
    d.accept();
    EXPECT_EQ(d.result(), int(QDialog::Accepted));
  }
  const RemoteHost saved = RemoteDialog::savedHost();
  EXPECT_EQ(saved.host, h.host);
  EXPECT_EQ(saved.sshOptions, h.sshOptions);
  EXPECT_EQ(saved.razor, h.razor);
  EXPECT_EQ(saved.workspace, h.workspace);
  RemoteDialog again;  // restored on open
  EXPECT_EQ(again.host().host, h.host);
  EXPECT_EQ(again.host().sshOptions, h.sshOptions);
  EXPECT_EQ(again.host().razor, h.razor);
  EXPECT_EQ(again.host().workspace, h.workspace);
  EXPECT_FALSE(again.connectButton()->isEnabled());  // a restored host is checked again
}

TEST(RemoteDialog, OptionsAndSpecParsing) {
  const QStringList opts = RemoteDialog::splitOptions(QStringLiteral("-p 2222  -o \"ProxyCommand=ssh -W %h:%p jump\" -i ~/.ssh/k"));
  EXPECT_EQ(opts, (QStringList{"-p", "2222", "-o", "ProxyCommand=ssh -W %h:%p jump", "-i", "~/.ssh/k"}));
  EXPECT_EQ(RemoteDialog::splitOptions(RemoteDialog::joinOptions(opts)), opts);
  EXPECT_TRUE(RemoteDialog::splitOptions(QString()).isEmpty());

  QString err;
  RemoteHost h = RemoteDialog::parseSpec(QStringLiteral("me@gpu-box:/data/razor"), &err);
  EXPECT_EQ(h.host, QStringLiteral("me@gpu-box"));
  EXPECT_EQ(h.workspace, QStringLiteral("/data/razor"));
  h = RemoteDialog::parseSpec(QStringLiteral("[fe80::1]:work"), &err);
  EXPECT_EQ(h.host, QStringLiteral("fe80::1"));
  EXPECT_EQ(h.workspace, QStringLiteral("work"));
  h = RemoteDialog::parseSpec(QStringLiteral("gpu-box"), &err);
  EXPECT_FALSE(h.isValid());
  EXPECT_TRUE(err.contains(QStringLiteral("HOST:WORKSPACE")));
  EXPECT_FALSE(RemoteDialog::parseSpec(QStringLiteral("gpu-box:"), nullptr).isValid());
}

// The panels name the server when the pool is remote (they take the same signals as for a local pool).
TEST(RemoteDialog, PanelsNameTheServer) {
  GpuPanel gpu;
  gpu.addSample(GpuPanel::fakeSample(1.7e9, 1));
  EXPECT_EQ(gpu.gpuTitle(0), QStringLiteral("GPU 0: NVIDIA H100 80GB HBM3"));
  gpu.setHostLabel(QStringLiteral("gpu-box"));
  EXPECT_EQ(gpu.gpuTitle(0), QStringLiteral("GPU 0: NVIDIA H100 80GB HBM3 \u2014 on gpu-box"));
  gpu.addSample(GpuPanel::fakeSample(1.7e9 + 1, 1));
  EXPECT_EQ(gpu.gpuTitle(0), QStringLiteral("GPU 0: NVIDIA H100 80GB HBM3 \u2014 on gpu-box"));
  gpu.setHostLabel(QString());
  EXPECT_EQ(gpu.gpuTitle(0), QStringLiteral("GPU 0: NVIDIA H100 80GB HBM3"));

  JobsDock dock;
  dock.setHostLabel(QStringLiteral("gpu-box:/data/razor"));
  EXPECT_EQ(dock.windowTitle(), QStringLiteral("Jobs on gpu-box:/data/razor"));
  dock.setConnectionNote(QStringLiteral("link lost, reconnecting"));
  EXPECT_EQ(dock.connectionNote(), QStringLiteral("link lost, reconnecting"));
  dock.setHostLabel(QString());
  EXPECT_EQ(dock.windowTitle(), QStringLiteral("Jobs"));
}

// docs/screenshots/remote-dialog.png: written when RAZOR_SCREENSHOT_DIR is set (scripts/screenshots.sh), otherwise
// into a scratch folder.
TEST_F(RemoteDialogTest, Screenshot) {
  QTemporaryDir scratch;  // the pictures are rendered and saved either way; kept only under RAZOR_SCREENSHOT_DIR
  const QString dir = qEnvironmentVariable("RAZOR_SCREENSHOT_DIR", scratch.path());
  RemoteDialog d;
  RemoteHost h = hostWith(probeSsh(QStringLiteral("ssh-shot"), goodProbe()));
  h.sshOptions = {QStringLiteral("-J"), QStringLiteral("bastion.example.org")};
  h.razor = QStringLiteral("razor");
  d.setHost(h);
  d.show();
  ASSERT_EQ(runCheck(d).value(0).toBool(), true);
  d.adjustSize();
  d.resize(std::max(d.width(), 680), d.height());
  QTest::qWait(50);
  EXPECT_TRUE(d.grab().save(dir + QStringLiteral("/remote-dialog.png")));
}

// The main window in remote mode, end to end without sshd: a fake ssh that runs the remote command here (what
// sshd would do), so the pool's session workers, the inspect job and RemoteFiles' artifact commands are real.
TEST(RemoteMainWindow, OpensModelAndStatisticsThroughThePool) {
  QTemporaryDir tmp;
  ASSERT_TRUE(tmp.isValid());
  const QString ws = tmp.filePath(QStringLiteral("ws"));
  ASSERT_TRUE(QDir().mkpath(ws));
  const QString ssh = tmp.filePath(QStringLiteral("ssh-here"));
  {
    QFile f(ssh);
    ASSERT_TRUE(f.open(QIODevice::WriteOnly));
    // The last argument is the remote command line; session workers end on their own after 2 idle minutes
    // should the test die before stopping them.
    f.write("#!/bin/sh\nfor last; do :; done\ncase \"$last\" in *' --connect '*) last=\"$last --idle-exit 120\";; esac\n"
            "exec sh -c \"$last\"\n");
    f.close();
    f.setPermissions(f.permissions() | QFileDevice::ExeOwner | QFileDevice::ExeUser);
  }
  // A small probe file "on the server".
  const QString text = tmp.filePath(QStringLiteral("calib.txt"));
  {
    QFile f(text);
    ASSERT_TRUE(f.open(QIODevice::WriteOnly));
    for (int i = 0; i < 100; ++i) f.write("Kernels copy pages while the scheduler wakes the worker threads. ");
  }
  const QString model = QStringLiteral(RAZOR_MODELS_DIR "/tiny-qwen3-5-moe");
  const QString probe = QDir(ws).filePath(QStringLiteral("probe.h5"));
  QProcess p;
  p.start(razor_test::razorCli(), {QStringLiteral("probe"), model, QStringLiteral("--text"), text, QStringLiteral("--tokens"),
                                   QStringLiteral("128"), QStringLiteral("--out"), probe});
  ASSERT_TRUE(p.waitForFinished(razor_test::kJobTimeoutMs));
  ASSERT_EQ(p.exitCode(), 0);

  RemoteHost h;
  h.host = QStringLiteral("gpu-box");
  h.razor = razor_test::razorCli();
  h.workspace = ws;
  h.sshProgram = ssh;
  {
    MainWindow w;
    w.connectRemote(h);
    ASSERT_TRUE(w.isRemote());
    ASSERT_NE(w.workerPool(), nullptr);
    EXPECT_TRUE(w.workerPool()->isRemote());
    EXPECT_EQ(w.remoteStatusText(), QStringLiteral("Remote: gpu-box:") + ws);
    if (w.remoteFiles()) w.remoteFiles()->setCacheDirectory(tmp.filePath(QStringLiteral("cache")));

    QSignalSpy opened(&w, &MainWindow::modelAvailable);
    QSignalSpy failed(&w, &MainWindow::modelFailed);
    w.openModel(model);  // a server path: the pool's inspect job, not the local razor
    EXPECT_TRUE(w.isBusy());
    ASSERT_TRUE(razor_test::waitUntil([&] { return !w.isBusy(); }, razor_test::kJobTimeoutMs));
    ASSERT_EQ(failed.count(), 0) << failed.value(0).value(0).toString().toStdString();
    ASSERT_EQ(opened.count(), 1);
    EXPECT_EQ(w.inventory().layers, 4);
    EXPECT_GT(w.inventory().tensors.size(), 0);
    EXPECT_TRUE(w.allocationEditor()->hasModel());

    auto* dock = w.findChild<JobsDock*>();
    ASSERT_NE(dock, nullptr);
    ASSERT_GE(dock->model()->rowCount(), 1);  // the jobs dock shows the remote inspect job like a local one
    EXPECT_EQ(dock->model()->job(dock->model()->index(0, 0).data(JobsModel::JobIdRole).toString())->method,
              QStringLiteral("inspect"));
    EXPECT_TRUE(dock->windowTitle().contains(QStringLiteral("gpu-box")));

    w.openRemoteStatistics(QStringLiteral("probe.h5"));  // relative to the server workspace
    EXPECT_TRUE(w.isBusy());
    ASSERT_TRUE(razor_test::waitUntil([&] { return !w.isBusy(); }, razor_test::kJobTimeoutMs));
    ASSERT_EQ(w.heatmapView()->sources().size(), 1);
    EXPECT_TRUE(w.heatmapView()->sourcePaths().value(0).startsWith(tmp.filePath(QStringLiteral("cache"))))
        << w.heatmapView()->sourcePaths().value(0).toStdString();

    // Fit to target runs `razor allocate` on the server: the base recipe uploaded, the probe by its server path,
    // the recipe fetched back and applied as one undo step.
    AllocationEditor* ed = w.allocationEditor();
    auto* fit = ed->findChild<QPushButton*>(QStringLiteral("fitButton"));
    ASSERT_NE(fit, nullptr);
    ASSERT_TRUE(razor_test::waitUntil([&] { return ed->allocateAvailable(); }, razor_test::kJobTimeoutMs))
        << fit->toolTip().toStdString();
    ed->setTarget(3.0, false);
    ASSERT_TRUE(fit->isEnabled()) << fit->toolTip().toStdString();
    QSignalSpy allocated(ed, &AllocationEditor::allocateFinished);
    QSignalSpy allocFailed(ed, &AllocationEditor::allocateFailed);
    const int undoBefore = ed->undoStack()->count();
    fit->click();
    ASSERT_TRUE(razor_test::waitUntil([&] { return allocated.count() + allocFailed.count() > 0; }, razor_test::kJobTimeoutMs));
    ASSERT_EQ(allocFailed.count(), 0) << allocFailed[0][0].toString().toStdString();
    EXPECT_TRUE(allocated[0][0].toString().startsWith(tmp.filePath(QStringLiteral("cache"))))
        << "the server's recipe, fetched: " << allocated[0][0].toString().toStdString();
    EXPECT_TRUE(QFileInfo(allocated[0][0].toString()).fileName().startsWith(QStringLiteral("allocated-")));
    EXPECT_GE(ed->undoStack()->count(), undoBefore);  // one step when any expert's bits changed

    // A workspace saved now names the server and keeps the server's paths.
    const QString proj = tmp.filePath(QStringLiteral("remote.razorproj"));
    QString err;
    ASSERT_TRUE(w.saveWorkspace(proj, &err)) << err.toStdString();
    Workspace saved;
    ASSERT_TRUE(Workspace::load(proj, &saved, &err)) << err.toStdString();
    EXPECT_EQ(saved.remote.value(QStringLiteral("host")).toString(), QStringLiteral("gpu-box"));
    EXPECT_EQ(saved.modelPath, model);
    EXPECT_EQ(saved.statistics, QStringList{QStringLiteral("probe.h5")});

    w.workLocally();  // disconnects: the session workers stay for the next window
    EXPECT_FALSE(w.isRemote());
    EXPECT_TRUE(w.remoteStatusText().isEmpty());
    ASSERT_NE(w.workerPool(), nullptr);
    EXPECT_FALSE(w.workerPool()->isRemote());

    // Reopening it reconnects, inventories the server's model and fetches the statistics again.
    qputenv("RAZOR_SSH", QFile::encodeName(ssh));  // the workspace keeps the host, not the ssh program
    MainWindow w2;
    const bool reopened = w2.openWorkspace(proj, &err);
    qunsetenv("RAZOR_SSH");
    ASSERT_TRUE(reopened) << err.toStdString();
    ASSERT_TRUE(w2.isRemote());
    EXPECT_EQ(w2.remoteHost().host, QStringLiteral("gpu-box"));
    ASSERT_TRUE(razor_test::waitUntil([&] { return !w2.isBusy() && w2.heatmapView()->sources().size() == 1; },
                                      razor_test::kJobTimeoutMs))
        << "busy " << w2.isBusy() << ", sources " << w2.heatmapView()->sources().size() << ", layers "
        << w2.inventory().layers;
    EXPECT_EQ(w2.inventory().layers, 4);
    w2.stopRemoteWorkers();
  }
  // The session workers were asked to exit: none is left alive in the workspace.
  EXPECT_TRUE(razor_test::waitUntil(
      [&] {
        QProcess q;
        q.start(razor_test::razorCli(), {QStringLiteral("worker"), QStringLiteral("--probe"), QStringLiteral("--workspace"), ws});
        if (!q.waitForFinished(razor_test::kStartTimeoutMs)) return false;
        const QJsonObject o = QJsonDocument::fromJson(q.readAllStandardOutput()).object();
        for (const QJsonValue& s : o.value(QStringLiteral("sessions")).toArray())
          if (s.toObject().value(QStringLiteral("alive")).toBool()) return false;
        return true;
      },
      30000));
}

TEST(RemoteHost, QuotesEveryWordOfTheRemoteCommandWhereTheShellNeedsIt) {
  EXPECT_EQ(RemoteHost::shellQuote(QStringLiteral("/opt/razor/bin/razor")), QStringLiteral("/opt/razor/bin/razor"));
  EXPECT_EQ(RemoteHost::shellQuote(QStringLiteral("/data/my models")), QStringLiteral("'/data/my models'"));
  EXPECT_EQ(RemoteHost::shellQuote(QStringLiteral("it's $HOME")), QStringLiteral("'it'\\''s $HOME'"));
  EXPECT_EQ(RemoteHost::shellQuote(QString()), QStringLiteral("''"));
  RemoteHost h;
  h.host = QStringLiteral("gpu-box");
  h.workspace = QStringLiteral("/data/w s");
  const QStringList a = h.razorArguments({QStringLiteral("artifact"), QStringLiteral("info"), QStringLiteral("a b.json")});
  EXPECT_EQ(a.last(), QStringLiteral("cd '/data/w s' && razor artifact info 'a b.json'"));
  EXPECT_TRUE(a.contains(QStringLiteral("BatchMode=yes")));
}
