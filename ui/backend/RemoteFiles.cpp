#include "RemoteFiles.h"

#include <QCoreApplication>
#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QJsonDocument>
#include <QJsonObject>
#include <QPointer>
#include <QProcess>
#include <QStandardPaths>
#include <QtConcurrent/QtConcurrentRun>

namespace {
QString sha256Of(const QString& path) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) return {};
  QCryptographicHash h(QCryptographicHash::Sha256);
  if (!h.addData(&f)) return {};
  return QString::fromLatin1(h.result().toHex());
}
}  // namespace

RemoteFiles::RemoteFiles(QObject* parent) : QObject(parent) {
  m_cacheDir = QStandardPaths::writableLocation(QStandardPaths::CacheLocation) + QStringLiteral("/remote");
}

RemoteFiles::~RemoteFiles() = default;  // running ssh processes are children: killed with us

void RemoteFiles::setHost(const RemoteHost& host) { m_host = host; }
void RemoteFiles::setCacheDirectory(const QString& dir) { m_cacheDir = dir; }

QString RemoteFiles::stderrTail(QProcess* p) {
  QStringList lines = QString::fromUtf8(p->readAllStandardError()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
  while (lines.size() > 6) lines.removeFirst();
  return lines.join(QLatin1Char('\n'));
}

QString RemoteFiles::entryPath(const Request& r) const {
  return QDir(m_cacheDir).filePath(r.sha256 + QLatin1Char('/') + r.fileName);
}

int RemoteFiles::fetch(const QString& remotePath) {
  const int id = ++m_next;
  Request r;
  r.remotePath = remotePath;
  r.absPath = remotePath.startsWith(QLatin1Char('/')) || m_host.workspace.isEmpty()
                  ? remotePath
                  : m_host.workspace + QLatin1Char('/') + remotePath;
  r.fileName = QFileInfo(remotePath).fileName();
  m_requests.insert(id, r);
  if (!m_host.isValid()) {
    QMetaObject::invokeMethod(this, [this, id] { fail(id, tr("No GPU server is set.")); }, Qt::QueuedConnection);
    return id;
  }
  auto* p = new QProcess(this);
  connect(p, &QProcess::finished, this, [this, id, p] { onInfoFinished(id, p); });
  connect(p, &QProcess::errorOccurred, this, [this, id, p](QProcess::ProcessError e) {
    if (e == QProcess::FailedToStart) {
      fail(id, tr("%1 could not be started: %2").arg(m_host.sshProgram, p->errorString()));
      p->deleteLater();
    }
  });
  m_host.startRazor(p, {QStringLiteral("artifact"), QStringLiteral("info"), r.absPath});
  return id;
}

void RemoteFiles::onInfoFinished(int id, QProcess* p) {
  p->deleteLater();
  auto it = m_requests.find(id);
  if (it == m_requests.end()) return;
  if (p->exitStatus() != QProcess::NormalExit || p->exitCode() != 0) {
    fail(id, tr("%1 on %2 could not be described (exit %3):\n%4")
                 .arg(it->remotePath, m_host.host)
                 .arg(p->exitCode())
                 .arg(stderrTail(p)));
    return;
  }
  const QJsonObject info = QJsonDocument::fromJson(p->readAllStandardOutput().trimmed()).object();
  it->sha256 = info.value(QStringLiteral("sha256")).toString();
  it->bytes = info.value(QStringLiteral("bytes")).toInteger(-1);
  if (it->sha256.size() != 64 || it->bytes < 0) {
    fail(id, tr("%1 answered `razor artifact info` with something else than its JSON line.").arg(m_host.host));
    return;
  }
  const QString local = entryPath(*it);
  if (QFileInfo(local).size() == it->bytes && QFileInfo::exists(local)) {
    const QString remote = it->remotePath;
    m_requests.erase(it);
    emit fetched(id, remote, local, true);
    return;
  }
  if (!QDir().mkpath(QFileInfo(local).absolutePath())) {
    fail(id, tr("Cannot create the cache folder %1.").arg(QFileInfo(local).absolutePath()));
    return;
  }
  const QString partial = local + QStringLiteral(".partial-%1").arg(QCoreApplication::applicationPid());
  auto* s = new QProcess(this);
  s->setStandardOutputFile(partial, QIODevice::Truncate);
  connect(s, &QProcess::finished, this, [this, id, s, partial] { onSendFinished(id, s, partial); });
  s->start(m_host.sshProgram, m_host.sshArguments({m_host.razor, QStringLiteral("artifact"), QStringLiteral("send"), it->absPath},
                                                  /*compress=*/true));
}

void RemoteFiles::onSendFinished(int id, QProcess* p, const QString& partial) {
  p->deleteLater();
  auto it = m_requests.find(id);
  if (it == m_requests.end()) return;
  if (p->exitStatus() != QProcess::NormalExit || p->exitCode() != 0) {
    QFile::remove(partial);
    fail(id, tr("Fetching %1 from %2 failed (exit %3):\n%4").arg(it->remotePath, m_host.host).arg(p->exitCode()).arg(stderrTail(p)));
    return;
  }
  // Hash off the GUI thread, then keep the file only when it is what `info` described.
  auto* w = new QFutureWatcher<QString>(this);
  const Request r = *it;
  connect(w, &QFutureWatcher<QString>::finished, this, [this, id, w, partial, r] {
    w->deleteLater();
    const QString local = entryPath(r);
    if (w->result() != r.sha256) {
      QFile::remove(partial);
      fail(id, tr("%1 changed while it was fetched (its SHA-256 differs); fetch it again.").arg(r.remotePath));
      return;
    }
    QFile::remove(local);
    if (!QFile::rename(partial, local)) {
      QFile::remove(partial);
      fail(id, tr("Cannot move the fetched file into the cache (%1).").arg(local));
      return;
    }
    m_requests.remove(id);
    emit fetched(id, r.remotePath, local, false);
  });
  w->setFuture(QtConcurrent::run(sha256Of, partial));
}

int RemoteFiles::upload(const QString& localPath) {
  const int id = ++m_next;
  auto failLater = [this, id, localPath](const QString& msg) {
    QMetaObject::invokeMethod(this, [this, id, localPath, msg] { emit uploadFailed(id, localPath, msg); },
                              Qt::QueuedConnection);
  };
  if (!m_host.isValid()) {
    failLater(tr("No GPU server is set."));
    return id;
  }
  if (!QFileInfo(localPath).isFile()) {
    failLater(tr("%1 is not a file.").arg(localPath));
    return id;
  }
  // Hash off the GUI thread; then ask whether the server has that content already.
  auto* w = new QFutureWatcher<QString>(this);
  connect(w, &QFutureWatcher<QString>::finished, this, [this, w, id, localPath] {
    w->deleteLater();
    const QString sha = w->result();
    const QString remote = m_host.workspace + QStringLiteral("/.razor/uploads/") + sha + QLatin1Char('/') +
                           QFileInfo(localPath).fileName();
    auto* p = new QProcess(this);
    connect(p, &QProcess::finished, this, [this, p, id, localPath, remote, sha] {
      p->deleteLater();
      const QJsonObject info = QJsonDocument::fromJson(p->readAllStandardOutput().trimmed()).object();
      if (p->exitCode() == 0 && info.value(QStringLiteral("sha256")).toString() == sha) emit uploaded(id, localPath, remote, true);
      else sendUpload(id, localPath, remote);
    });
    connect(p, &QProcess::errorOccurred, this, [this, p, id, localPath](QProcess::ProcessError e) {
      if (e != QProcess::FailedToStart) return;
      p->deleteLater();
      emit uploadFailed(id, localPath, tr("%1 could not be started: %2").arg(m_host.sshProgram, p->errorString()));
    });
    m_host.startRazor(p, {QStringLiteral("artifact"), QStringLiteral("info"), remote});
  });
  w->setFuture(QtConcurrent::run(sha256Of, localPath));
  return id;
}

void RemoteFiles::sendUpload(int id, const QString& localPath, const QString& remotePath) {
  auto* p = new QProcess(this);
  p->setStandardInputFile(localPath);
  connect(p, &QProcess::finished, this, [this, p, id, localPath, remotePath] {
    p->deleteLater();
    if (p->exitStatus() == QProcess::NormalExit && p->exitCode() == 0) emit uploaded(id, localPath, remotePath, false);
    else
      emit uploadFailed(id, localPath, tr("Uploading %1 to %2 failed (exit %3):\n%4")
                                           .arg(localPath, m_host.host)
                                           .arg(p->exitCode())
                                           .arg(stderrTail(p)));
  });
  m_host.startRazor(p, {QStringLiteral("artifact"), QStringLiteral("receive"), remotePath});
}

void RemoteFiles::fail(int id, const QString& message) {
  auto it = m_requests.find(id);
  if (it == m_requests.end()) return;
  const QString remote = it->remotePath;
  m_requests.erase(it);
  emit fetchFailed(id, remote, message);
}
