// Runs one `razor <command> ...` at a time through QProcess, asynchronously, until the JSON-lines worker
// (WorkerClient / WorkerPool) takes these jobs over. Starting a new run supersedes the previous one: its process
// is killed and its output dropped, so a late answer never overwrites a newer one. Signals arrive on the GUI
// thread; the object owns its processes, so destroying it ends them (no dangling callbacks).
#pragma once
#include <QObject>
#include <QPointer>
#include <QProcess>
#include <QStringList>

#include "RemoteHost.h"

class RazorCommand : public QObject {
  Q_OBJECT
 public:
  explicit RazorCommand(QObject* parent = nullptr);
  ~RazorCommand() override;

  // The `razor` program: $RAZOR_CLI, else `razor` beside the application or one folder up (build trees put
  // razor-workbench in build/ui/), else `razor` on PATH.
  static QString defaultProgram();
  void setProgram(const QString& p) { m_program = p; }
  QString program() const { return m_program; }
  // Runs `razor <args>` on this server through ssh instead (an invalid host: locally); paths are the server's.
  void setRemote(const RemoteHost& host) { m_remote = host; }

  quint64 run(const QStringList& args);  // returns the request id carried by the signals
  void cancel();
  bool isRunning() const { return !m_process.isNull(); }
  quint64 currentId() const { return m_id; }

 signals:
  void commandFinished(quint64 id, const QByteArray& out, const QByteArray& err);
  void commandFailed(quint64 id, const QString& message);

 private:
  QString m_program;
  RemoteHost m_remote;
  QPointer<QProcess> m_process;
  quint64 m_id = 0;
};
