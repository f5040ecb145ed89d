// A real OpenSSH server on loopback for the remote-worker tests: Debian's /usr/sbin/sshd started with a
// throwaway host key, a throwaway user key (the only one it accepts), its own config and pid file, and a
// client config (ssh -F) that names it "razor-loopback" and checks its host key. Between ssh and sshd sits
// LinkProxy, a TCP relay the test can cut (both ends see the connection die, as on a dropped network link) and
// hold down (new connections are refused) to exercise reconnecting.
#pragma once
#include <signal.h>
#include <unistd.h>

#include <QDir>
#include <QFile>
#include <QList>
#include <QPointer>
#include <QProcess>
#include <QStandardPaths>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTemporaryDir>
#include <QTest>

#include "RemoteHost.h"

namespace razor_test {

class LinkProxy : public QObject {
 public:
  bool listen(quint16 target) {
    m_target = target;
    connect(&m_server, &QTcpServer::newConnection, this, [this] {
      while (QTcpSocket* in = m_server.nextPendingConnection()) {
        if (m_down) {
          in->abort();
          in->deleteLater();
          continue;
        }
        auto* out = new QTcpSocket(this);
        in->setParent(this);
        m_pairs.append(std::make_pair(QPointer<QTcpSocket>(in), QPointer<QTcpSocket>(out)));
        connect(in, &QTcpSocket::readyRead, out, [in, out] { out->write(in->readAll()); });
        connect(out, &QTcpSocket::readyRead, in, [in, out] { in->write(out->readAll()); });
        connect(in, &QTcpSocket::disconnected, out, &QTcpSocket::disconnectFromHost);
        connect(out, &QTcpSocket::disconnected, in, &QTcpSocket::disconnectFromHost);
        out->connectToHost(QStringLiteral("127.0.0.1"), m_target);
      }
    });
    return m_server.listen(QHostAddress::LocalHost, 0);
  }
  quint16 port() const { return m_server.serverPort(); }
  // Drops every connection now (RST on both sides).
  void cut() {
    for (auto& [a, b] : m_pairs) {
      if (a) a->abort();
      if (b) b->abort();
    }
    m_pairs.clear();
  }
  void setDown(bool down) { m_down = down; }
  int connectionsSeen() const { return int(m_pairs.size()); }

 private:
  QTcpServer m_server;
  quint16 m_target = 0;
  bool m_down = false;
  QList<std::pair<QPointer<QTcpSocket>, QPointer<QTcpSocket>>> m_pairs;
};

class LoopbackSshd {
 public:
  ~LoopbackSshd() {
    if (m_sshd.state() != QProcess::NotRunning) {
      m_sshd.terminate();
      if (!m_sshd.waitForFinished(5000)) m_sshd.kill();
      m_sshd.waitForFinished(5000);
    }
  }

  // Starts sshd; false with the reason (to skip with) when this machine cannot.
  bool start(QString* why) {
    const QString sshd = QStringLiteral("/usr/sbin/sshd");
    if (!QFile::exists(sshd) || QStandardPaths::findExecutable(QStringLiteral("ssh")).isEmpty() ||
        QStandardPaths::findExecutable(QStringLiteral("ssh-keygen")).isEmpty()) {
      *why = QStringLiteral("openssh-server / openssh-client are not installed (scripts/setup-deps.sh installs them)");
      return false;
    }
    if (!m_dir.isValid()) {
      *why = QStringLiteral("no temporary folder");
      return false;
    }
    if (::getuid() == 0) QDir().mkpath(QStringLiteral("/run/sshd"));  // sshd's privilege-separation folder
    for (const char* k : {"host_key", "user_key"}) {
      QProcess g;
      g.start(QStringLiteral("ssh-keygen"), {"-q", "-t", "ed25519", "-N", "", "-C", "razor-test", "-f", path(k)});
      if (!g.waitForFinished(30000) || g.exitCode() != 0) {
        *why = QStringLiteral("ssh-keygen failed: ") + QString::fromUtf8(g.readAllStandardError());
        return false;
      }
    }
    QFile::copy(path("user_key.pub"), path("authorized_keys"));
    QFile::setPermissions(path("authorized_keys"), QFile::ReadOwner | QFile::WriteOwner);
    QTcpServer probe;  // a free port for sshd
    probe.listen(QHostAddress::LocalHost, 0);
    m_sshdPort = probe.serverPort();
    probe.close();
    write("sshd_config", QStringLiteral("Port %1\nListenAddress 127.0.0.1\nHostKey %2\nPidFile %3\n"
                                        "AuthorizedKeysFile %4\nStrictModes no\nPasswordAuthentication no\n"
                                        "KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n"
                                        "LogLevel VERBOSE\n")
                             .arg(m_sshdPort)
                             .arg(path("host_key"), path("sshd.pid"), path("authorized_keys")));
    if (!m_proxy.listen(m_sshdPort)) {
      *why = QStringLiteral("cannot listen on loopback");
      return false;
    }
    QFile hostPub(path("host_key.pub"));
    hostPub.open(QIODevice::ReadOnly);
    write("known_hosts", QStringLiteral("razor-loopback ") + QString::fromUtf8(hostPub.readAll()));
    write("ssh_config", QStringLiteral("Host razor-loopback\n  HostName 127.0.0.1\n  Port %1\n  User %2\n"
                                       "  IdentityFile %3\n  IdentitiesOnly yes\n  HostKeyAlias razor-loopback\n"
                                       "  UserKnownHostsFile %4\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n")
                            .arg(m_proxy.port())
                            .arg(userName())
                            .arg(path("user_key"), path("known_hosts")));
    m_sshd.setProcessChannelMode(QProcess::MergedChannels);
    m_sshd.setStandardOutputFile(path("sshd.log"));
    m_sshd.start(sshd, {"-D", "-e", "-f", path("sshd_config")});
    if (!m_sshd.waitForStarted(10000)) {
      *why = QStringLiteral("sshd did not start: ") + m_sshd.errorString();
      return false;
    }
    for (int i = 0; i < 200; ++i) {  // until it accepts connections
      QTcpSocket s;
      s.connectToHost(QStringLiteral("127.0.0.1"), m_sshdPort);
      if (s.waitForConnected(100)) return true;
      if (m_sshd.state() == QProcess::NotRunning) break;
      QTest::qWait(50);
    }
    *why = QStringLiteral("sshd did not listen; its log:\n") + log();
    return false;
  }

  RemoteHost host(const QString& razor, const QString& workspace) const {
    RemoteHost h;
    h.host = QStringLiteral("razor-loopback");
    h.sshOptions = {QStringLiteral("-F"), path("ssh_config")};
    h.razor = razor;
    h.workspace = workspace;
    return h;
  }
  LinkProxy& link() { return m_proxy; }
  QString log() const {
    QFile f(path("sshd.log"));
    f.open(QIODevice::ReadOnly);
    return QString::fromUtf8(f.readAll());
  }
  QString path(const char* name) const { return m_dir.filePath(QString::fromLatin1(name)); }

 private:
  static QString userName() {
    QProcess p;
    p.start(QStringLiteral("id"), {"-un"});
    p.waitForFinished(5000);
    return QString::fromUtf8(p.readAllStandardOutput()).trimmed();
  }
  void write(const char* name, const QString& text) {
    QFile f(path(name));
    f.open(QIODevice::WriteOnly | QIODevice::Truncate);
    f.write(text.toUtf8());
  }

  QTemporaryDir m_dir;
  QProcess m_sshd;
  LinkProxy m_proxy;
  quint16 m_sshdPort = 0;
};

}  // namespace razor_test
