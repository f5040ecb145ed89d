#include "WorkerClient.h"
#include "ErrorCodes.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonParseError>
#include <QTimer>

#include "jobs/protocol_version.h"

namespace {
// Lines handled per event-loop turn before the rest is rescheduled: keeps the GUI responsive under a flood.
constexpr int kLinesPerTurn = 2000;
// Longest stderr line kept (the rest of the line is cut), and how many stderr lines a crash message quotes.
constexpr int kMaxStderrLine = 64 * 1024;
constexpr int kStderrTailLines = 12;

QString preview(const QByteArray& line) {
  QString s = QString::fromUtf8(line.left(80)).toHtmlEscaped();
  s.replace(QChar('\0'), QStringLiteral("\\0"));
  return line.size() > 80 ? s + QStringLiteral("...") : s;
}
}  // namespace

WorkerClient::WorkerClient(QObject* parent)
    : QObject(parent), m_maxLineBytes(razor::jobs::kMaxLineBytes) {
  m_helloTimer = new QTimer(this);
  m_helloTimer->setSingleShot(true);
  connect(m_helloTimer, &QTimer::timeout, this, [this] {
    if (m_state != State::Starting) return;
    fail(tr("The worker (%1) did not say hello within %2 s; it was stopped.%3")
             .arg(m_program)
             .arg(m_helloTimeoutMs / 1000.0)
             .arg(stderrTail()),
         false);
  });
}

WorkerClient::~WorkerClient() {
  if (m_process) {
    m_process->disconnect(this);
    if (m_process->state() != QProcess::NotRunning) m_process->kill();
  }
}

void WorkerClient::setProgram(const QString& program, const QStringList& arguments) {
  m_program = program;
  m_arguments = arguments;
}

void WorkerClient::setProcessEnvironment(const QProcessEnvironment& env) {
  m_env = env;
  m_envSet = true;
}

void WorkerClient::setWorkingDirectory(const QString& dir) { m_workingDir = dir; }
void WorkerClient::setMaxLineBytes(qint64 bytes) { m_maxLineBytes = qMax<qint64>(1024, bytes); }
void WorkerClient::setHelloTimeout(int ms) { m_helloTimeoutMs = ms; }

void WorkerClient::start() {
  if (m_process) return;
  m_process = new QProcess(this);
  m_process->setProcessChannelMode(QProcess::SeparateChannels);
  if (m_envSet) m_process->setProcessEnvironment(m_env);
  if (!m_workingDir.isEmpty()) m_process->setWorkingDirectory(m_workingDir);
  connect(m_process, &QProcess::started, this, &WorkerClient::onStarted);
  connect(m_process, &QProcess::readyReadStandardOutput, this, &WorkerClient::onReadyReadStdout);
  connect(m_process, &QProcess::readyReadStandardError, this, &WorkerClient::onReadyReadStderr);
  connect(m_process, &QProcess::finished, this, &WorkerClient::onProcessFinished);
  connect(m_process, &QProcess::errorOccurred, this, &WorkerClient::onProcessError);
  m_state = State::Starting;
  m_helloTimer->start(m_helloTimeoutMs);
  m_process->start(m_program, m_arguments);
}

void WorkerClient::onStarted() { m_pid = m_process->processId(); }

qint64 WorkerClient::sendRequest(const QString& method, const QJsonObject& params) {
  if (m_state == State::Failed || m_state == State::Finished || m_shutdownRequested) return -1;
  qint64 id = m_nextId++;
  m_pending.insert(id, method);
  writeLine(QJsonObject{{"t", "req"}, {"id", id}, {"method", method}, {"params", params}});
  return id;
}

void WorkerClient::cancel(qint64 id) {
  if (!m_pending.contains(id)) return;
  writeLine(QJsonObject{{"t", "cancel"}, {"id", id}});
}

void WorkerClient::shutdown() {
  if (!m_process || m_shutdownRequested) return;
  m_shutdownRequested = true;
  if (m_state == State::Ready) {
    writeLine(QJsonObject{{"t", "shutdown"}});
    m_process->closeWriteChannel();
  } else if (m_process->state() != QProcess::NotRunning) {
    m_killRequested = true;
    m_process->kill();
  }
}

void WorkerClient::kill() {
  if (!m_process || m_process->state() == QProcess::NotRunning) return;
  m_killRequested = true;
  m_process->kill();
}

void WorkerClient::killJob(qint64 id) {
  if (!isSession() || m_state != State::Ready) {
    kill();
    return;
  }
  writeLine(QJsonObject{{"t", "kill"}, {"id", id}});
  QTimer::singleShot(5000, this, [this] { kill(); });  // the worker did not end, or the link is dead
}

void WorkerClient::detach() {
  if (!m_process || m_shutdownRequested) return;
  m_shutdownRequested = true;
  if (m_state == State::Ready && isSession()) m_process->closeWriteChannel();
  else if (m_process->state() != QProcess::NotRunning) {
    m_killRequested = true;
    m_process->kill();
  }
}

bool WorkerClient::attachRequest(qint64 id, const QString& method) {
  if (m_state != State::Ready || !isSession() || m_shutdownRequested) return false;
  m_pending.insert(id, method);
  m_nextId = qMax(m_nextId, id + 1);
  writeLine(QJsonObject{{"t", "attach"}, {"id", id}});
  return true;
}

void WorkerClient::writeLine(const QJsonObject& m) {
  QByteArray line = QJsonDocument(m).toJson(QJsonDocument::Compact);
  line.append('\n');
  if (m_state != State::Ready) {
    m_outbox.append(line);
    return;
  }
  m_process->write(line);  // buffered by QProcess, never blocks
}

// ---- reading ----
void WorkerClient::onReadyReadStdout() {
  m_buf.append(m_process->readAllStandardOutput());
  processBuffered(false);
}

void WorkerClient::processBuffered(bool all) {
  m_processScheduled = false;
  int handled = 0;
  qsizetype pos = 0;
  while (pos < m_buf.size()) {
    qsizetype nl = m_buf.indexOf('\n', pos);
    if (nl < 0) break;
    if (m_discarding) {
      m_discarding = false;  // the end of an over-long line: drop it
    } else {
      QByteArray line = m_buf.mid(pos, nl - pos);
      if (line.size() > m_maxLineBytes) {
        emit protocolErrorAvailable(tr("The worker sent a line of %1 bytes, longer than the limit of %2 bytes; "
                                       "it was dropped.")
                                        .arg(line.size())
                                        .arg(m_maxLineBytes));
      } else {
        handleLine(line);
      }
    }
    pos = nl + 1;
    if (!all && ++handled >= kLinesPerTurn) break;
    if (!m_process) break;
  }
  m_buf.remove(0, pos);
  flushAllProgress();
  // An unfinished line already over the limit: report it now and drop bytes up to its newline.
  if (!m_discarding && m_buf.size() > m_maxLineBytes && m_buf.indexOf('\n') < 0) {
    emit protocolErrorAvailable(tr("The worker sent a line longer than the limit of %1 bytes; it was dropped.")
                                    .arg(m_maxLineBytes));
    m_buf.clear();
    m_discarding = true;
  }
  if (m_discarding && !m_buf.isEmpty() && m_buf.indexOf('\n') < 0) m_buf.clear();
  if (!all && m_buf.indexOf('\n') >= 0 && !m_processScheduled) {
    m_processScheduled = true;
    QTimer::singleShot(0, this, [this] { processBuffered(false); });
  }
}

void WorkerClient::handleLine(const QByteArray& raw) {
  QByteArray line = raw;
  if (line.endsWith('\r')) line.chop(1);
  if (line.trimmed().isEmpty()) return;
  QJsonParseError err;
  QJsonDocument doc = QJsonDocument::fromJson(line, &err);
  if (err.error != QJsonParseError::NoError || !doc.isObject()) {
    emit protocolErrorAvailable(tr("The worker sent a line that is not a JSON object (%1): \"%2\"")
                                    .arg(err.error != QJsonParseError::NoError ? err.errorString() : tr("not an object"),
                                         preview(line)));
    return;
  }
  QJsonObject m = doc.object();
  if (!m.value("t").isString()) {
    emit protocolErrorAvailable(tr("The worker sent a JSON object without a message type \"t\": \"%1\"").arg(preview(line)));
    return;
  }
  handleMessage(m);
}

void WorkerClient::handleMessage(const QJsonObject& m) {
  const QString t = m.value("t").toString();
  if (m_state == State::Starting) {
    if (t != QLatin1String("hello")) {
      fail(tr("The program %1 is not a razor worker: its first message was \"%2\", not a hello.").arg(m_program, t),
           true);
      return;
    }
    m_helloTimer->stop();
    const int proto = m.value("proto").toInt(-1);
    if (proto != razor::jobs::kProtocolVersion) {
      fail(tr("Version mismatch: the worker %1 (razor %2) speaks protocol version %3, but this workbench speaks "
              "version %4. Install razor and razor-workbench from the same release.")
               .arg(m_program, m.value("version").toString(tr("unknown")),
                    proto < 0 ? tr("(none)") : QString::number(proto))
               .arg(razor::jobs::kProtocolVersion),
           true);
      return;
    }
    m_hello = m;
    if (m.value("pid").toInteger() > 0) m_pid = m.value("pid").toInteger();
    // A session worker remembers ids from earlier clients: continue above them.
    m_nextId = qMax(m_nextId, m.value("session").toObject().value("next_id").toInteger());
    m_state = State::Ready;
    for (const QByteArray& line : std::as_const(m_outbox)) m_process->write(line);
    m_outbox.clear();
    if (m_shutdownRequested) {
      writeLine(QJsonObject{{"t", "shutdown"}});
      m_process->closeWriteChannel();
    }
    emit helloAvailable(m);
    return;
  }
  if (m_state != State::Ready) return;  // after a failure nothing more is delivered
  const qint64 id = m.value("id").isDouble() ? m.value("id").toInteger() : -1;
  if (t == QLatin1String("progress")) {
    if (!m_progress.contains(id)) m_progressOrder.append(id);
    m_progress[id] = {m.value("done").toDouble(), m.value("total").toDouble(), m.value("what").toString()};
    return;
  }
  if (t == QLatin1String("gpu")) {
    emit gpuSampleAvailable(m);
    return;
  }
  flushProgress(id);  // progress before anything else about the job
  if (t == QLatin1String("log")) {
    emit logAvailable(id, m.value("level").toString(), m.value("msg").toString());
  } else if (t == QLatin1String("artifact")) {
    emit artifactAvailable(id, m);
  } else if (t == QLatin1String("result")) {
    m_pending.remove(id);
    if (isSession()) writeLine(QJsonObject{{"t", "forget"}, {"id", id}});  // delivered: the worker may drop it
    emit jobFinished(id, m.value("result").toObject());
  } else if (t == QLatin1String("error")) {
    const QString code = m.value("code").toString(QStringLiteral("internal"));
    const QString msg = m.value("message").toString();
    if (id < 0) {
      emit protocolErrorAvailable(tr("The worker refused a line: %1: %2").arg(code, msg));
    } else {
      m_pending.remove(id);
      if (isSession()) writeLine(QJsonObject{{"t", "forget"}, {"id", id}});
      emit jobFailed(id, code, msg);
    }
  } else if (t == QLatin1String("bye") || t == QLatin1String("hello")) {
    // bye: a clean exit follows (or, from a session worker, the end of this link); a second hello is ignored
    if (m.value("reason").toString() == QLatin1String("taken_over")) m_takenOver = true;
  } else {
    // A newer worker's message type: ignored (forward compatible within one protocol version).
  }
}

void WorkerClient::flushProgress(qint64 id) {
  auto it = m_progress.find(id);
  if (it == m_progress.end()) return;
  Progress p = *it;
  m_progress.erase(it);
  m_progressOrder.removeOne(id);
  emit progressAvailable(id, p.done, p.total, p.what);
}

void WorkerClient::flushAllProgress() {
  const QList<qint64> order = m_progressOrder;
  for (qint64 id : order) flushProgress(id);
}

void WorkerClient::onReadyReadStderr() {
  m_errBuf.append(m_process->readAllStandardError());
  for (;;) {
    qsizetype nl = m_errBuf.indexOf('\n');
    if (nl < 0) {
      if (m_errBuf.size() > kMaxStderrLine) nl = kMaxStderrLine;
      else break;
    }
    QString line = QString::fromUtf8(m_errBuf.left(qMin<qsizetype>(nl, kMaxStderrLine)));
    m_errBuf.remove(0, nl + 1);
    if (line.endsWith('\r')) line.chop(1);
    // Self-overwriting terminal progress ("\r... 42%") keeps its last state only.
    if (int cr = line.lastIndexOf('\r'); cr >= 0) line = line.mid(cr + 1);
    m_stderrTail.append(line);
    while (m_stderrTail.size() > kStderrTailLines) m_stderrTail.removeFirst();
    emit stderrAvailable(line);
  }
}

QString WorkerClient::stderrTail() const {
  if (m_stderrTail.isEmpty()) return {};
  return tr("\nLast lines of its stderr:\n%1").arg(m_stderrTail.join('\n'));
}

QString WorkerClient::describeExit() const {
  if (m_killRequested) return tr("was stopped by the workbench");
  if (m_crashed) return tr("crashed or was killed by a signal");
  return tr("exited with code %1").arg(m_exitCode);
}

void WorkerClient::fail(const QString& message, bool permanent) {
  if (m_state == State::Failed) return;
  m_state = State::Failed;
  m_permanentFailure = permanent;
  m_helloTimer->stop();
  emit workerFailed(message);
  if (m_process && m_process->state() != QProcess::NotRunning) {
    m_killRequested = true;
    m_process->kill();
  }
}

void WorkerClient::onProcessError(QProcess::ProcessError error) {
  if (error == QProcess::FailedToStart) {
    fail(tr("The worker program %1 could not be started: %2").arg(m_program, m_process->errorString()), true);
    const QList<qint64> ids = m_pending.keys();
    m_pending.clear();
    for (qint64 id : ids) emit jobFailed(id, ErrorCode::worker_crashed, tr("The worker could not be started."));
    emit workerFinished(-1, true);
  }
  // Crashed / write errors are followed by finished(); handled there.
}

void WorkerClient::onProcessFinished(int exitCode, QProcess::ExitStatus status) {
  m_exitCode = exitCode;
  m_crashed = status == QProcess::CrashExit;
  m_helloTimer->stop();
  // What the worker wrote before it died still counts (a result may be in the last bytes).
  m_buf.append(m_process->readAllStandardOutput());
  if (!m_buf.isEmpty() && !m_buf.endsWith('\n') && !m_discarding) m_buf.append('\n');
  processBuffered(true);
  onReadyReadStderr();
  if (!m_errBuf.isEmpty()) {
    m_errBuf.append('\n');
    onReadyReadStderr();
  }
  const State before = m_state;
  if (before == State::Starting)
    fail(tr("The worker (%1) %2 before saying hello.%3").arg(m_program, describeExit(), stderrTail()), false);
  if (m_state != State::Failed) m_state = State::Finished;
  const QHash<qint64, QString> pending = m_pending;
  m_pending.clear();
  for (auto it = pending.cbegin(); it != pending.cend(); ++it) {
    if (isSession()) {
      emit jobFailed(it.key(), ErrorCode::disconnected,
                     tr("The link to the session worker (pid %1 on the server) dropped while it ran \"%2\" (%3 %4); "
                        "the job goes on there.%5")
                         .arg(m_pid)
                         .arg(it.value(), m_program, describeExit(), stderrTail()));
      continue;
    }
    emit jobFailed(it.key(), ErrorCode::worker_crashed,
                   tr("The worker process (pid %1) %2 while running \"%3\"; the job was lost and no output was kept "
                      "under its final name.%4")
                       .arg(m_pid)
                       .arg(describeExit(), it.value(), stderrTail()));
  }
  emit workerFinished(exitCode, m_crashed);
}
