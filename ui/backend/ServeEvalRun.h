// ServeEvalRun: "evaluate this model" as jobs of a (local or remote) WorkerPool, docs/serving.md. Against an
// existing endpoint (startOnEndpoint) it is the `eval` job alone. Otherwise (start) `serve` starts vLLM (tensor parallel) / llama-server / a command on the worker's machine and
// reports its `endpoint` artifact once the server answers; then `eval` runs the benchmarks against that URL on
// the same machine; when the eval ends, however it ends, the server is stopped (its job cancelled). With a remote
// pool, the model, the data and the result file are the server's paths and the server never leaves the server.
#pragma once
#include <QJsonObject>
#include <QObject>
#include <QPointer>
#include <QString>

class WorkerPool;

class ServeEvalRun : public QObject {
  Q_OBJECT
 public:
  explicit ServeEvalRun(WorkerPool* pool, QObject* parent = nullptr);
  ~ServeEvalRun() override;

  // `serveParams` as the `serve` method's (engine, model, tensor_parallel, ...); `evalParams` as `eval`'s
  // (benchmarks, data, out, n, ...) without the endpoint, which comes from the server.
  void start(const QJsonObject& serveParams, const QJsonObject& evalParams);
  // `evalParams` with its endpoint: no server is started or stopped.
  void startOnEndpoint(const QJsonObject& evalParams);
  void cancel();
  bool isRunning() const { return m_running; }
  QString endpoint() const { return m_endpoint; }
  QString serveJob() const { return m_serveJob; }
  QString evalJob() const { return m_evalJob; }

 signals:
  void stageChanged(const QString& text);
  void progressAvailable(double done, double total, const QString& what);  // the eval's
  // The eval's result; `resultPath` is where the worker wrote it (a server path with a remote pool).
  void runFinished(const QString& resultPath, const QJsonObject& result);
  void runFailed(const QString& message);

 private:
  void finish(bool ok, const QString& message, const QString& path = {}, const QJsonObject& result = {});

  QPointer<WorkerPool> m_pool;
  QJsonObject m_evalParams;
  QString m_serveJob, m_evalJob, m_endpoint;
  bool m_running = false;
};
