// JobStore: durable jobs in the workspace folder, so that after a restart the workbench shows what ran, with
// what, and how it ended.
//
//   <workspace>/jobs/<id>/job.json   {"format":"razor.job/1","id","method","params","key",
//                                      "state":"queued|running|finished|failed|cancelled|superseded|interrupted",
//                                      "submitted","started","ended" (ISO 8601, UTC; "" until then),
//                                      "worker":{"slot","pid"},"artifacts":[{path,kind,dtype,shape,...}],
//                                      "progress":{"done","total","what"} (the last value, written at the end),
//                                      "result":{...} | "error":{"code","message"}}
//   <workspace>/jobs/<id>/log.txt    the job's log lines and the worker's stderr while it ran, one per line
//
// job.json is replaced atomically (QSaveFile) at every state change; log.txt is appended. load() turns jobs a
// previous session left "queued" or "running" into "interrupted". Ids sort by submission time.
#pragma once
#include <QHash>
#include <QJsonObject>
#include <QObject>
#include <QStringList>

class JobStore : public QObject {
  Q_OBJECT
 public:
  explicit JobStore(const QString& workspaceDir, QObject* parent = nullptr);

  QString workspaceDir() const { return m_workspace; }
  QString jobsDir() const;
  QString jobDir(const QString& id) const;

  // Reads every jobs/*/job.json (a corrupt one is skipped and reported on storeFailed).
  void load();
  // A new unique, time-sortable id ("20250101-120000-123-1").
  QString newJobId();

  void recordSubmitted(const QString& id, const QString& method, const QJsonObject& params, const QString& key);
  void recordStarted(const QString& id, int slot, qint64 pid);
  void recordProgress(const QString& id, double done, double total, const QString& what);  // memory only
  void recordArtifact(const QString& id, const QJsonObject& artifact);
  void appendLog(const QString& id, const QString& line);
  void recordFinished(const QString& id, const QJsonObject& result);
  void recordFailed(const QString& id, const QString& code, const QString& message);

  QStringList jobIds() const;  // oldest first
  QJsonObject job(const QString& id) const;
  QString logText(const QString& id) const;

 signals:
  void jobChanged(const QString& id);
  void storeFailed(const QString& message);

 private:
  void save(const QString& id);
  static QString now();

  QString m_workspace;
  QHash<QString, QJsonObject> m_jobs;
  int m_counter = 0;
};
