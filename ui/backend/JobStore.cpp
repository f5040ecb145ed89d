#include "JobStore.h"
#include "ErrorCodes.h"

#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QSaveFile>
#include <algorithm>

JobStore::JobStore(const QString& workspaceDir, QObject* parent) : QObject(parent), m_workspace(workspaceDir) {}

QString JobStore::jobsDir() const { return QDir(m_workspace).filePath(QStringLiteral("jobs")); }
QString JobStore::jobDir(const QString& id) const { return QDir(jobsDir()).filePath(id); }

QString JobStore::now() { return QDateTime::currentDateTimeUtc().toString(Qt::ISODateWithMs); }

void JobStore::load() {
  QDir dir(jobsDir());
  const QStringList ids = dir.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name);
  for (const QString& id : ids) {
    QFile f(dir.filePath(id + "/job.json"));
    if (!f.open(QIODevice::ReadOnly)) continue;
    QJsonParseError err;
    QJsonDocument doc = QJsonDocument::fromJson(f.read(16 << 20), &err);
    if (err.error != QJsonParseError::NoError || !doc.isObject()) {
      emit storeFailed(tr("%1: not a valid job file (%2)").arg(f.fileName(), err.errorString()));
      continue;
    }
    QJsonObject j = doc.object();
    const QString state = j.value("state").toString();
    m_jobs.insert(id, j);
    if (state == QLatin1String("queued") || state == QLatin1String("running")) {
      j["state"] = QStringLiteral("interrupted");
      j["error"] = QJsonObject{{"code", "interrupted"},
                               {"message", tr("The workbench ended while this job was %1; it did not finish and left "
                                              "no output under its final name.")
                                               .arg(state)}};
      if (j.value("ended").toString().isEmpty()) j["ended"] = now();
      m_jobs.insert(id, j);
      save(id);
    }
  }
}

QString JobStore::newJobId() {
  const QString base = QDateTime::currentDateTimeUtc().toString(QStringLiteral("yyyyMMdd-HHmmss-zzz"));
  for (;;) {
    QString id = QStringLiteral("%1-%2").arg(base).arg(++m_counter);
    if (!m_jobs.contains(id) && !QDir(jobDir(id)).exists()) return id;
  }
}

void JobStore::recordSubmitted(const QString& id, const QString& method, const QJsonObject& params,
                               const QString& key) {
  QJsonObject j{{"format", "razor.job/1"}, {"id", id},          {"method", method},
                {"params", params},        {"key", key},        {"state", "queued"},
                {"submitted", now()},      {"started", ""},     {"ended", ""},
                {"worker", QJsonObject()}, {"artifacts", QJsonArray()}};
  m_jobs.insert(id, j);
  if (!QDir().mkpath(jobDir(id))) emit storeFailed(tr("cannot create %1").arg(jobDir(id)));
  save(id);
}

void JobStore::recordStarted(const QString& id, int slot, qint64 pid) {
  auto it = m_jobs.find(id);
  if (it == m_jobs.end()) return;
  (*it)["state"] = QStringLiteral("running");
  (*it)["started"] = now();
  (*it)["worker"] = QJsonObject{{"slot", slot}, {"pid", pid}};
  save(id);
}

void JobStore::recordProgress(const QString& id, double done, double total, const QString& what) {
  auto it = m_jobs.find(id);
  if (it == m_jobs.end()) return;
  (*it)["progress"] = QJsonObject{{"done", done}, {"total", total}, {"what", what}};
}

void JobStore::recordArtifact(const QString& id, const QJsonObject& artifact) {
  auto it = m_jobs.find(id);
  if (it == m_jobs.end()) return;
  QJsonObject a = artifact;
  a.remove("t");
  a.remove("id");
  QJsonArray arr = it->value("artifacts").toArray();
  arr.append(a);
  (*it)["artifacts"] = arr;
  save(id);
}

void JobStore::appendLog(const QString& id, const QString& line) {
  if (!m_jobs.contains(id)) return;
  QFile f(QDir(jobDir(id)).filePath(QStringLiteral("log.txt")));
  if (!f.open(QIODevice::Append | QIODevice::Text)) {
    emit storeFailed(tr("cannot append to %1: %2").arg(f.fileName(), f.errorString()));
    return;
  }
  QByteArray b = line.toUtf8();
  if (!b.endsWith('\n')) b.append('\n');
  f.write(b);
}

void JobStore::recordFinished(const QString& id, const QJsonObject& result) {
  auto it = m_jobs.find(id);
  if (it == m_jobs.end()) return;
  (*it)["state"] = QStringLiteral("finished");
  (*it)["ended"] = now();
  (*it)["result"] = result;
  save(id);
}

void JobStore::recordFailed(const QString& id, const QString& code, const QString& message) {
  auto it = m_jobs.find(id);
  if (it == m_jobs.end()) return;
  QString state = QStringLiteral("failed");
  if (code == ErrorCode::cancelled) state = QStringLiteral("cancelled");
  else if (code == ErrorCode::superseded) state = QStringLiteral("superseded");
  (*it)["state"] = state;
  (*it)["ended"] = now();
  (*it)["error"] = QJsonObject{{"code", code}, {"message", message}};
  save(id);
}

QStringList JobStore::jobIds() const {
  QStringList ids = m_jobs.keys();
  std::sort(ids.begin(), ids.end());
  return ids;
}

QJsonObject JobStore::job(const QString& id) const { return m_jobs.value(id); }

QString JobStore::logText(const QString& id) const {
  QFile f(QDir(jobDir(id)).filePath(QStringLiteral("log.txt")));
  if (!f.open(QIODevice::ReadOnly)) return {};
  return QString::fromUtf8(f.readAll());
}

void JobStore::save(const QString& id) {
  QSaveFile f(QDir(jobDir(id)).filePath(QStringLiteral("job.json")));
  if (!f.open(QIODevice::WriteOnly)) {
    emit storeFailed(tr("cannot write %1: %2").arg(f.fileName(), f.errorString()));
    return;
  }
  f.write(QJsonDocument(m_jobs.value(id)).toJson(QJsonDocument::Indented));
  if (!f.commit()) emit storeFailed(tr("cannot write %1: %2").arg(f.fileName(), f.errorString()));
  emit jobChanged(id);
}
