// WorkerClient: one `razor worker` process driven through QProcess with the JSON-lines protocol of
// docs/protocol.md. Everything is event-driven on the owner's thread (no waitFor*): lines are read on
// readyReadStandardOutput, at most a bounded number per event-loop turn, so a flooding worker never freezes
// the GUI; progress events of one turn are coalesced per job (last value wins).
//
// Robustness contract (tests/ui/test_worker_client.cpp drives each case with a scripted fake worker):
//  - a line longer than maxLineBytes() is dropped up to its newline and reported on protocolErrorAvailable();
//  - a line that is not a JSON object with a string "t" is reported there too, and reading goes on;
//  - the hello is checked: a protocol version other than ours is workerFailed() with a message that says
//    which versions met and what to do, and the process is stopped (failureIsPermanent() is then true);
//  - no hello within helloTimeout() ms, or an exit before it, is workerFailed();
//  - when the process dies, every request still pending fails with code "worker_crashed" and a message that
//    names the pid, how it died, the method, and the last lines of its stderr; then workerFinished().
//  - a session worker (its hello has "session": a remote `razor worker --connect`, docs/remote.md) outlives the
//    process we talk to: when that process (ssh) ends, pending requests fail with code "disconnected" instead,
//    since the jobs go on; attachRequest() re-subscribes a new client to one of them, ids continue from the
//    hello's next_id, each finished job is forgotten by the worker once delivered, killJob() asks the worker
//    to end itself (the remote SIGKILL) and detach() ends the link without stopping anything.
#pragma once
#include <QByteArray>
#include <QHash>
#include <QJsonObject>
#include <QObject>
#include <QProcess>
#include <QProcessEnvironment>
#include <QStringList>

class QTimer;

class WorkerClient : public QObject {
  Q_OBJECT
 public:
  enum class State { NotRunning, Starting, Ready, Failed, Finished };
  Q_ENUM(State)

  explicit WorkerClient(QObject* parent = nullptr);
  ~WorkerClient() override;

  void setProgram(const QString& program, const QStringList& arguments);
  void setProcessEnvironment(const QProcessEnvironment& env);
  void setWorkingDirectory(const QString& dir);
  void setMaxLineBytes(qint64 bytes);  // default razor::jobs::kMaxLineBytes (16 MiB)
  qint64 maxLineBytes() const { return m_maxLineBytes; }
  void setHelloTimeout(int ms);  // default 30000
  int helloTimeout() const { return m_helloTimeoutMs; }

  // Starts the process; helloAvailable() or workerFailed() follows.
  void start();
  // Queues a request (sent once the hello was accepted); returns its id, or -1 when the worker failed.
  qint64 sendRequest(const QString& method, const QJsonObject& params);
  void cancel(qint64 id);
  // Asks for a clean exit ({"t":"shutdown"}, then end of input). The running job is cancelled by the worker.
  void shutdown();
  // Kills the process now (SIGKILL); pending requests fail with "worker_crashed".
  void kill();
  // Kills the job's worker: a session worker is asked to (it answers the job "cancelled" and exits; the link is
  // cut if it has not closed 5 s later); a local worker is kill()ed.
  void killJob(qint64 id);
  // Session workers: closes our end of the link; the worker keeps its jobs (pending ones fail "disconnected").
  void detach();
  // Session workers: re-subscribes to job `id` that the hello listed; its events (replayed, then live) and its
  // result arrive as for a request sent here. false when not connected to a session worker.
  bool attachRequest(qint64 id, const QString& method);
  bool isSession() const { return m_hello.contains(QLatin1String("session")); }
  // The session worker closed this link because another client connected to it ({"t":"bye","reason":"taken_over"}).
  bool wasTakenOver() const { return m_takenOver; }

  State state() const { return m_state; }
  bool isReady() const { return m_state == State::Ready; }
  bool failureIsPermanent() const { return m_permanentFailure; }
  QJsonObject hello() const { return m_hello; }
  // The worker's pid (from its hello, else from QProcess); kept after the process ended.
  qint64 processId() const { return m_pid; }
  QString program() const { return m_program; }
  QList<qint64> pendingRequests() const { return m_pending.keys(); }
  QStringList lastStderrLines() const { return m_stderrTail; }

 signals:
  void helloAvailable(const QJsonObject& hello);
  void progressAvailable(qint64 id, double done, double total, const QString& what);
  void logAvailable(qint64 id, const QString& level, const QString& message);  // id -1: not about a job
  void artifactAvailable(qint64 id, const QJsonObject& artifact);
  void gpuSampleAvailable(const QJsonObject& sample);
  void stderrAvailable(const QString& line);
  void protocolErrorAvailable(const QString& message);  // a bad line: reported, not fatal
  void jobFinished(qint64 id, const QJsonObject& result);
  void jobFailed(qint64 id, const QString& code, const QString& message);
  void workerFailed(const QString& message);  // cannot start, no or bad hello, version mismatch
  void workerFinished(int exitCode, bool crashed);

 private:
  void onStarted();
  void onReadyReadStdout();
  void onReadyReadStderr();
  void onProcessFinished(int exitCode, QProcess::ExitStatus status);
  void onProcessError(QProcess::ProcessError error);
  void processBuffered(bool all);
  void handleLine(const QByteArray& line);
  void handleMessage(const QJsonObject& m);
  void flushProgress(qint64 id);
  void flushAllProgress();
  void writeLine(const QJsonObject& m);
  void fail(const QString& message, bool permanent);
  QString stderrTail() const;
  QString describeExit() const;

  QProcess* m_process = nullptr;
  QTimer* m_helloTimer = nullptr;
  QString m_program;
  QStringList m_arguments;
  QProcessEnvironment m_env;
  bool m_envSet = false;
  QString m_workingDir;
  qint64 m_maxLineBytes;
  int m_helloTimeoutMs = 30000;

  State m_state = State::NotRunning;
  bool m_permanentFailure = false;
  bool m_killRequested = false;
  bool m_shutdownRequested = false;
  bool m_processScheduled = false;
  bool m_takenOver = false;
  QJsonObject m_hello;
  qint64 m_pid = 0;
  qint64 m_nextId = 1;
  QHash<qint64, QString> m_pending;  // id -> method
  QList<QByteArray> m_outbox;        // lines waiting for the hello

  QByteArray m_buf;        // stdout bytes not yet split into lines
  bool m_discarding = false;
  QByteArray m_errBuf;
  QStringList m_stderrTail;

  struct Progress {
    double done = 0, total = 0;
    QString what;
  };
  QHash<qint64, Progress> m_progress;  // coalesced within one turn
  QList<qint64> m_progressOrder;
  int m_exitCode = 0;
  bool m_crashed = false;
};
