#include "ServeEvalRun.h"

#include <QJsonArray>

#include "WorkerPool.h"

ServeEvalRun::ServeEvalRun(WorkerPool* pool, QObject* parent) : QObject(parent), m_pool(pool) {
  connect(pool, &WorkerPool::jobArtifactAvailable, this, [this](const QString& job, const QJsonObject& a) {
    if (!m_running || job != m_serveJob || !m_evalJob.isEmpty()) return;
    if (a.value(QLatin1String("kind")).toString() != QLatin1String("endpoint")) return;
    m_endpoint = a.value(QLatin1String("path")).toString();
    QJsonObject p = m_evalParams;
    p[QStringLiteral("endpoint")] = m_endpoint;
    // The server's argv (its model path or name included) goes into the result's provenance (docs/eval.md).
    p[QStringLiteral("server_command")] = a.value(QLatin1String("argv")).toArray();
    emit stageChanged(tr("Evaluating against %1 (%2)").arg(m_endpoint, a.value(QLatin1String("engine")).toString()));
    m_evalJob = m_pool->submit(QStringLiteral("eval"), p);
  });
  connect(pool, &WorkerPool::jobProgressAvailable, this, [this](const QString& job, double d, double t, const QString& w) {
    if (job == m_evalJob && m_running) emit progressAvailable(d, t, w);
  });
  connect(pool, &WorkerPool::jobFinished, this, [this](const QString& job, const QJsonObject& r) {
    if (job == m_evalJob) finish(true, QString(), r.value(QLatin1String("out")).toString(), r);
  });
  connect(pool, &WorkerPool::jobFailed, this, [this](const QString& job, const QString& code, const QString& msg) {
    if (job == m_evalJob) finish(false, tr("The evaluation failed (%1): %2").arg(code, msg));
    else if (!m_serveJob.isEmpty() && job == m_serveJob) finish(false, tr("The server ended before the evaluation did (%1): %2").arg(code, msg));
  });
}

ServeEvalRun::~ServeEvalRun() { cancel(); }

void ServeEvalRun::start(const QJsonObject& serveParams, const QJsonObject& evalParams) {
  if (m_running || !m_pool) return;
  m_running = true;
  m_evalParams = evalParams;
  m_endpoint.clear();
  m_evalJob.clear();
  emit stageChanged(tr("Starting %1 for %2 …")
                        .arg(serveParams.value(QLatin1String("engine")).toString(QStringLiteral("vllm")),
                             serveParams.value(QLatin1String("model")).toString()));
  m_serveJob = m_pool->submit(QStringLiteral("serve"), serveParams);
}

void ServeEvalRun::startOnEndpoint(const QJsonObject& evalParams) {
  if (m_running || !m_pool) return;
  m_running = true;
  m_evalParams = evalParams;
  m_serveJob.clear();
  m_endpoint = evalParams.value(QLatin1String("endpoint")).toString();
  emit stageChanged(tr("Evaluating against %1").arg(m_endpoint));
  m_evalJob = m_pool->submit(QStringLiteral("eval"), evalParams);
}

void ServeEvalRun::cancel() {
  if (!m_running) return;
  finish(false, tr("Cancelled."));
}

void ServeEvalRun::finish(bool ok, const QString& message, const QString& path, const QJsonObject& result) {
  if (!m_running) return;
  m_running = false;
  if (m_pool) {  // the server's job ends by cancel: that is how a server is stopped
    if (!m_evalJob.isEmpty()) m_pool->cancel(m_evalJob);
    if (!m_serveJob.isEmpty()) m_pool->cancel(m_serveJob);
  }
  if (ok) {
    emit stageChanged(tr("Done: %1").arg(path));
    emit runFinished(path, result);
  } else {
    emit stageChanged(message);
    emit runFailed(message);
  }
}
