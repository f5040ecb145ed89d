#include "RazorCommand.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QStandardPaths>

RazorCommand::RazorCommand(QObject* parent) : QObject(parent), m_program(defaultProgram()) {}

RazorCommand::~RazorCommand() { cancel(); }

QString RazorCommand::defaultProgram() {
  const QString env = qEnvironmentVariable("RAZOR_CLI");
  if (!env.isEmpty()) return env;
  const QString dir = QCoreApplication::applicationDirPath();
  for (const QString& cand : {dir + QStringLiteral("/razor"), dir + QStringLiteral("/../razor")})
    if (QFileInfo(cand).isExecutable()) return QDir::cleanPath(cand);
  const QString onPath = QStandardPaths::findExecutable(QStringLiteral("razor"));
  return onPath.isEmpty() ? QStringLiteral("razor") : onPath;
}

quint64 RazorCommand::run(const QStringList& args) {
  cancel();
  const quint64 id = ++m_id;
  auto* p = new QProcess(this);
  m_process = p;
  if (m_remote.isValid()) {
    p->setProgram(m_remote.sshProgram);
    p->setArguments(m_remote.razorArguments(args));
  } else {
    p->setProgram(m_program);
    p->setArguments(args);
  }
  p->setProcessChannelMode(QProcess::SeparateChannels);
  // Results of a superseded run are dropped: only the process we still point at may answer.
  connect(p, &QProcess::finished, this, [this, p, id](int code, QProcess::ExitStatus st) {
    const QByteArray out = p->readAllStandardOutput(), err = p->readAllStandardError();
    p->deleteLater();
    if (m_process != p) return;
    m_process = nullptr;
    if (st != QProcess::NormalExit)
      emit commandFailed(id, QStringLiteral("%1 crashed").arg(QFileInfo(m_program).fileName()));
    else if (code != 0)
      emit commandFailed(id, QString::fromUtf8(err).trimmed().isEmpty()
                                 ? QStringLiteral("%1 exited with code %2").arg(QFileInfo(m_program).fileName()).arg(code)
                                 : QString::fromUtf8(err).trimmed());
    else
      emit commandFinished(id, out, err);
  });
  connect(p, &QProcess::errorOccurred, this, [this, p, id](QProcess::ProcessError e) {
    if (e != QProcess::FailedToStart || m_process != p) return;
    m_process = nullptr;
    p->deleteLater();
    emit commandFailed(id, QStringLiteral("cannot start %1: %2").arg(m_program, p->errorString()));
  });
  p->start();
  return id;
}

void RazorCommand::cancel() {
  if (QProcess* p = m_process) {
    m_process = nullptr;
    p->disconnect(this);
    if (p->state() != QProcess::NotRunning) {
      // No waiting on the GUI thread: the process is freed once it has exited.
      connect(p, &QProcess::finished, p, &QObject::deleteLater);
      p->kill();
    } else {
      p->deleteLater();
    }
  }
}
