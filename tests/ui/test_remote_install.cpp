// RemoteDialog's install of the portable bundle (docs/bundle.md) through a real OpenSSH server on loopback
// (loopback_sshd.h): a server without razor is offered the install; the archive (razor-<version>/bin/razor, the
// build's razor) goes up through ssh's stdin, is unpacked into the install folder (a scratch folder here, never the
// real ~/.local) and the dialog checks the installed razor and can connect. A second install reuses it; a folder of
// that name that razor did not write is never replaced; an upload that is not a bundle leaves nothing behind.
#include <gtest/gtest.h>

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QTemporaryDir>

#include "RemoteDialog.h"
#include "loopback_sshd.h"

using namespace razor_test;

namespace {

// ssh on loopback plus unpacking a 7 MB archive: seconds; this is the bound on a loaded two-core machine.
constexpr int kWaitMs = 120000;

class RemoteInstall : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(m_tmp.isValid());
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, m_tmp.filePath(QStringLiteral("settings")));
    QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, m_tmp.filePath(QStringLiteral("settings")));
    QString why;
    if (!m_sshd.start(&why)) GTEST_SKIP() << why.toStdString();
    ASSERT_TRUE(QDir().mkpath(workspace()));
  }
  QString workspace() const { return m_tmp.filePath(QStringLiteral("ws")); }
  QString installDir() const { return m_tmp.filePath(QStringLiteral("home/.local")); }
  static QString version() { return QStringLiteral(RAZOR_VERSION); }

  // razor-<version>-linux-x86_64.tar.gz holding razor-<version>/bin/razor (the build's razor).
  QString makeBundle() {
    const QString stage = m_tmp.filePath(QStringLiteral("stage"));
    const QString bin = stage + QStringLiteral("/razor-") + version() + QStringLiteral("/bin");
    EXPECT_TRUE(QDir().mkpath(bin));
    EXPECT_TRUE(QFile::copy(QStringLiteral(RAZOR_CLI_EXE), bin + QStringLiteral("/razor")));
    const QString archive = m_tmp.filePath(RemoteDialog::bundleFileName());
    QProcess tar;
    tar.start(QStringLiteral("tar"), {"-C", stage, "-czf", archive, QStringLiteral("razor-") + version()});
    EXPECT_TRUE(tar.waitForFinished(kWaitMs));
    EXPECT_EQ(tar.exitCode(), 0) << tar.readAllStandardError().toStdString();
    return archive;
  }

  // A dialog whose check found no razor on the server (the install is offered).
  void checkWithoutRazor(RemoteDialog& d) {
    d.setHost(m_sshd.host(QStringLiteral("razor-not-on-this-server"), workspace()));
    d.setInstallDir(installDir());
    QSignalSpy checked(&d, &RemoteDialog::checkFinished);
    d.check();
    ASSERT_TRUE(checked.wait(kWaitMs) || !checked.isEmpty()) << m_sshd.log().toStdString();
    EXPECT_FALSE(checked[0][0].toBool());
    EXPECT_TRUE(d.installOffered()) << d.message().toStdString();
  }

  // Runs the install; returns installFinished's arguments.
  static QList<QVariant> runInstall(RemoteDialog& d) {
    QSignalSpy done(&d, &RemoteDialog::installFinished);
    d.install();
    EXPECT_TRUE(d.isInstalling());
    EXPECT_FALSE(d.connectButton()->isEnabled());
    if (!done.wait(kWaitMs) && done.isEmpty()) return {};
    return done.takeFirst();
  }

  QStringList leftovers() const {
    return QDir(installDir()).entryList({QStringLiteral(".razor-install.*")}, QDir::AllEntries | QDir::Hidden);
  }

  QTemporaryDir m_tmp;
  LoopbackSshd m_sshd;
};

}  // namespace

TEST_F(RemoteInstall, InstallsTheBundleAndConnectsToIt) {
  const QString archive = makeBundle();
  const QString expected = installDir() + QStringLiteral("/razor-") + version() + QStringLiteral("/bin/razor");
  {
    RemoteDialog d;
    checkWithoutRazor(d);
    d.setBundlePath(archive);
    QSignalSpy checked(&d, &RemoteDialog::checkFinished);
    const QList<QVariant> r = runInstall(d);
    ASSERT_EQ(r.size(), 3) << m_sshd.log().toStdString();
    ASSERT_TRUE(r[0].toBool()) << r[2].toString().toStdString();
    EXPECT_EQ(r[1].toString(), expected);
    EXPECT_TRUE(QFileInfo(expected).isExecutable());
    EXPECT_TRUE(leftovers().isEmpty()) << leftovers().join(' ').toStdString();
    // The razor field is the installed razor, checked at once: the same protocol, the workspace usable.
    EXPECT_EQ(d.host().razor, expected);
    ASSERT_TRUE(checked.wait(kWaitMs) || !checked.isEmpty());
    EXPECT_TRUE(checked[0][0].toBool()) << checked[0][2].toString().toStdString();
    EXPECT_TRUE(d.connectButton()->isEnabled());
    EXPECT_FALSE(d.installOffered());
  }
  {
    // Installed already: the second install keeps it and answers the same razor.
    RemoteDialog d;
    checkWithoutRazor(d);
    d.setBundlePath(archive);
    const QList<QVariant> r = runInstall(d);
    ASSERT_EQ(r.size(), 3);
    EXPECT_TRUE(r[0].toBool()) << r[2].toString().toStdString();
    EXPECT_EQ(r[1].toString(), expected);
  }
}

TEST_F(RemoteInstall, NeverReplacesWhatItDidNotWrite) {
  const QString archive = makeBundle();
  ASSERT_TRUE(QDir().mkpath(installDir()));
  const QString theirs = installDir() + QStringLiteral("/razor-") + version();
  {
    QFile f(theirs);  // a file of the install's name, not razor's
    ASSERT_TRUE(f.open(QIODevice::WriteOnly));
    f.write("precious");
  }
  RemoteDialog d;
  checkWithoutRazor(d);
  d.setBundlePath(archive);
  const QList<QVariant> r = runInstall(d);
  ASSERT_EQ(r.size(), 3);
  EXPECT_FALSE(r[0].toBool());
  EXPECT_TRUE(r[2].toString().contains(QStringLiteral("not replaced"))) << r[2].toString().toStdString();
  EXPECT_TRUE(d.message().contains(theirs)) << d.message().toStdString();
  QFile f(theirs);
  ASSERT_TRUE(f.open(QIODevice::ReadOnly));
  EXPECT_EQ(f.readAll(), QByteArray("precious"));
  EXPECT_TRUE(d.installOffered());  // still offered, once the user moved it away
  EXPECT_TRUE(d.installButton()->isEnabled());
}

TEST_F(RemoteInstall, AnUploadThatIsNoBundleLeavesNothing) {
  const QString junk = m_tmp.filePath(QStringLiteral("not-a-bundle.tar.gz"));
  {
    QFile f(junk);
    ASSERT_TRUE(f.open(QIODevice::WriteOnly));
    f.write(QByteArray(4096, 'x'));
  }
  RemoteDialog d;
  checkWithoutRazor(d);
  d.setBundlePath(junk);
  const QList<QVariant> r = runInstall(d);
  ASSERT_EQ(r.size(), 3);
  EXPECT_FALSE(r[0].toBool());
  EXPECT_TRUE(r[2].toString().contains(QStringLiteral("not a complete .tar.gz"))) << r[2].toString().toStdString();
  EXPECT_FALSE(QFileInfo::exists(installDir() + QStringLiteral("/razor-") + version()));
  EXPECT_TRUE(leftovers().isEmpty()) << leftovers().join(' ').toStdString();
  EXPECT_EQ(d.host().razor, QStringLiteral("razor-not-on-this-server"));  // the field is left as it was
}
