// RemoteFiles: fetches the small files the workbench draws (probe HDF5, quantize summaries, result JSON) from a
// RemoteHost, on demand, never weights (the server refuses those: core/jobs/remote_files.h), and uploads the
// few it chose locally (a recipe) into <workspace>/.razor/uploads/<sha256>/<name>. Fetching is two ssh runs:
// `razor artifact info PATH` (size and SHA-256), then, unless the cache already holds that content,
// `razor artifact send PATH` with ssh compression (-C) into the cache. The cache is content-addressed:
// <cache>/<sha256>/<file name>, written under a temporary name, checked against the hash, then renamed; an
// unchanged file is fetched once however often it is asked for. Nothing here blocks the GUI thread.
#pragma once
#include <QHash>
#include <QObject>
#include <QString>

#include "RemoteHost.h"

class QProcess;

class RemoteFiles : public QObject {
  Q_OBJECT
 public:
  explicit RemoteFiles(QObject* parent = nullptr);
  ~RemoteFiles() override;

  void setHost(const RemoteHost& host);
  RemoteHost host() const { return m_host; }
  // Default: QStandardPaths::CacheLocation + "/remote".
  void setCacheDirectory(const QString& dir);
  QString cacheDirectory() const { return m_cacheDir; }

  // Starts fetching `remotePath` (a server path; relative ones are relative to the host's workspace) and returns
  // a request id; fetched() or fetchFailed() follows with it.
  int fetch(const QString& remotePath);
  // Uploads a local file unless the server already holds that content at its upload path; uploaded() gives the
  // server path. Weights and files over 256 MiB are refused by the server.
  int upload(const QString& localPath);

 signals:
  void fetched(int id, const QString& remotePath, const QString& localPath, bool fromCache);
  void fetchFailed(int id, const QString& remotePath, const QString& message);
  void uploaded(int id, const QString& localPath, const QString& remotePath, bool alreadyThere);
  void uploadFailed(int id, const QString& localPath, const QString& message);

 private:
  struct Request {
    QString remotePath, absPath, sha256, fileName;
    qint64 bytes = -1;
  };
  void onInfoFinished(int id, QProcess* p);
  void onSendFinished(int id, QProcess* p, const QString& partial);
  void fail(int id, const QString& message);
  void sendUpload(int id, const QString& localPath, const QString& remotePath);
  QString entryPath(const Request& r) const;
  static QString stderrTail(QProcess* p);

  RemoteHost m_host;
  QString m_cacheDir;
  int m_next = 0;
  QHash<int, Request> m_requests;
};
