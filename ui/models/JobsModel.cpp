#include "JobsModel.h"
#include "ErrorCodes.h"

#include <QBrush>
#include <QColor>
#include <QDateTime>
#include <QFileInfo>
#include <QJsonArray>
#include <cmath>

#include "JobStore.h"
#include "RecoverRun.h"
#include "WorkerPool.h"

namespace {

// Weight of the newest rate measurement in the moving average: about the last 5 progress events count.
constexpr double kRateSmoothing = 0.3;

QString formatRate(double rate, double total) {
  if (rate < 0) return {};
  // Totals of a million or more are bytes in every method that reports them (pack, quantize).
  if (total >= 1e6) return QStringLiteral("%1 MB/s").arg(rate / 1e6, 0, 'f', rate >= 1e7 ? 0 : 1);
  if (total > 0 && total <= 1.0) return QStringLiteral("%1 %/s").arg(100.0 * rate, 0, 'f', 1);
  return QStringLiteral("%1 /s").arg(rate, 0, 'f', rate >= 10 ? 0 : 2);
}

// A job of phases (the `recover` job: "A: ...", "B: ..."; RecoverRun): "phase B (2 of 5)" before its progress text,
// since each phase counts its own done / total. Empty for other jobs.
QString phaseOf(const JobsModel::Job& j) {
  if (j.method != QLatin1String("recover") || j.what.size() < 2 || j.what[1] != QLatin1Char(':')) return {};
  const QString phases = RecoverRun::normalizePhases(j.params.value(QLatin1String("phases")).toString());
  const int k = phases.indexOf(j.what[0]);
  if (k < 0) return {};
  return JobsModel::tr("phase %1 (%2 of %3)").arg(j.what[0]).arg(k + 1).arg(phases.size());
}

}  // namespace

JobsModel::JobsModel(QObject* parent)
    : QAbstractTableModel(parent), m_clock([] { return QDateTime::currentMSecsSinceEpoch(); }) {}

void JobsModel::setClock(std::function<qint64()> clock) { m_clock = std::move(clock); }

void JobsModel::attachPool(WorkerPool* pool) {
  connect(pool, &WorkerPool::jobSubmitted, this, &JobsModel::addJob);
  connect(pool, &WorkerPool::jobStarted, this, &JobsModel::markStarted);
  connect(pool, &WorkerPool::jobProgressAvailable, this, &JobsModel::updateProgress);
  connect(pool, &WorkerPool::jobLogAvailable, this, &JobsModel::appendLog);
  connect(pool, &WorkerPool::jobArtifactAvailable, this, &JobsModel::addArtifact);
  connect(pool, &WorkerPool::jobFinished, this, &JobsModel::markFinished);
  connect(pool, &WorkerPool::jobFailed, this, &JobsModel::markFailed);
}

void JobsModel::attachStore(JobStore* store) {
  m_store = store;
  for (const QString& id : store->jobIds()) syncFromStore(id);
  connect(store, &JobStore::jobChanged, this, &JobsModel::syncFromStore);
}

void JobsModel::syncFromStore(const QString& id) {
  if (!m_store) return;
  const QJsonObject j = m_store->job(id);
  if (j.isEmpty()) return;
  const bool known = rowOf(id) >= 0;
  Job& job = ensure(id);
  if (job.method.isEmpty()) job.method = j.value(QLatin1String("method")).toString();
  if (job.params.isEmpty()) job.params = j.value(QLatin1String("params")).toObject();
  if (!known) {
    // History from an earlier session: take the recorded end state and outputs.
    const QString st = j.value(QLatin1String("state")).toString();
    if (st == QLatin1String("finished")) job.state = State::Finished;
    else if (st == QLatin1String("failed") || st == QLatin1String("interrupted")) job.state = State::Failed;
    else if (st == QLatin1String("cancelled") || st == QLatin1String("superseded")) job.state = State::Cancelled;
    else if (st == QLatin1String("running")) job.state = State::Running;
    for (const QJsonValue& a : j.value(QLatin1String("artifacts")).toArray()) {
      QString p = a.toObject().value(QLatin1String("path")).toString();
      if (!p.isEmpty() && !job.outputs.contains(p)) job.outputs << p;
    }
    QJsonObject err = j.value(QLatin1String("error")).toObject();
    job.errorCode = err.value(QLatin1String("code")).toString();
    job.errorMessage = err.value(QLatin1String("message")).toString();
    if (st == QLatin1String("interrupted") && job.errorMessage.isEmpty())
      job.errorMessage = tr("interrupted: the workbench ended while it ran");
    QJsonObject prog = j.value(QLatin1String("progress")).toObject();
    job.done = prog.value(QLatin1String("done")).toDouble();
    job.total = prog.value(QLatin1String("total")).toDouble();
    job.what = prog.value(QLatin1String("what")).toString();
  }
  changed(id);
}

JobsModel::Job& JobsModel::ensure(const QString& id) {
  for (Job& j : m_jobs)
    if (j.id == id) return j;
  beginInsertRows({}, int(m_jobs.size()), int(m_jobs.size()));
  Job j;
  j.id = id;
  m_jobs.push_back(j);
  endInsertRows();
  return m_jobs.back();
}

const JobsModel::Job* JobsModel::job(const QString& id) const {
  int r = rowOf(id);
  return r >= 0 ? &m_jobs[r] : nullptr;
}

const JobsModel::Job* JobsModel::jobAt(int row) const {
  return row >= 0 && row < m_jobs.size() ? &m_jobs[row] : nullptr;
}

int JobsModel::rowOf(const QString& id) const {
  for (int i = 0; i < m_jobs.size(); ++i)
    if (m_jobs[i].id == id) return i;
  return -1;
}

void JobsModel::changed(const QString& id, int first, int last) {
  int r = rowOf(id);
  if (r < 0) return;
  emit dataChanged(index(r, first), index(r, last));
}

void JobsModel::addJob(const QString& id, const QString& method, const QJsonObject& params) {
  Job& j = ensure(id);
  j.method = method;
  j.params = params;
  changed(id);
  emit jobStateChanged(id);
}

void JobsModel::markStarted(const QString& id, int slot) {
  Job& j = ensure(id);
  j.state = State::Running;
  j.slot = slot;
  j.lastMs = m_clock();
  j.lastDone = 0;
  changed(id);
  emit jobStateChanged(id);
}

void JobsModel::updateProgress(const QString& id, double done, double total, const QString& what) {
  Job& j = ensure(id);
  if (j.state == State::Queued) j.state = State::Running;
  const qint64 now = m_clock();
  if (j.lastMs >= 0 && now > j.lastMs && done >= j.lastDone) {
    double inst = (done - j.lastDone) * 1000.0 / double(now - j.lastMs);
    j.rate = j.rate < 0 ? inst : (1.0 - kRateSmoothing) * j.rate + kRateSmoothing * inst;
  }
  if (j.lastMs < 0 || now > j.lastMs) {
    j.lastMs = now;
    j.lastDone = done;
  }
  j.done = done;
  j.total = total;
  j.what = what;
  changed(id, StateColumn, EtaColumn);
}

void JobsModel::appendLog(const QString& id, const QString& level, const QString& message) {
  Job& j = ensure(id);
  QString line = level == QLatin1String("info") ? message : QStringLiteral("[%1] %2").arg(level, message);
  j.log << line;
  if (j.log.size() > kMaxLogLines) j.log.erase(j.log.begin(), j.log.begin() + (j.log.size() - kMaxLogLines));
  emit logLineAvailable(id, line);
}

void JobsModel::addArtifact(const QString& id, const QJsonObject& artifact) {
  Job& j = ensure(id);
  QString p = artifact.value(QLatin1String("path")).toString();
  if (!p.isEmpty() && !j.outputs.contains(p)) j.outputs << p;
  changed(id, OutputColumn, OutputColumn);
}

void JobsModel::markFinished(const QString& id, const QJsonObject& result) {
  Job& j = ensure(id);
  j.state = State::Finished;
  j.result = result;
  if (j.total > 0) j.done = j.total;
  QString out = result.value(QLatin1String("out")).toString();
  if (!out.isEmpty() && !j.outputs.contains(out)) j.outputs << out;
  j.rate = -1;
  changed(id);
  emit jobStateChanged(id);
}

void JobsModel::markFailed(const QString& id, const QString& code, const QString& message) {
  Job& j = ensure(id);
  j.state = (code == ErrorCode::cancelled || code == ErrorCode::superseded) ? State::Cancelled : State::Failed;
  j.errorCode = code;
  j.errorMessage = message;
  j.rate = -1;
  j.log << QStringLiteral("[%1] %2").arg(code, message);
  emit logLineAvailable(id, j.log.back());
  changed(id);
  emit jobStateChanged(id);
}

void JobsModel::removeEnded() {
  for (int i = int(m_jobs.size()) - 1; i >= 0; --i) {
    State s = m_jobs[i].state;
    if (s == State::Finished || s == State::Failed || s == State::Cancelled) {
      beginRemoveRows({}, i, i);
      m_jobs.removeAt(i);
      endRemoveRows();
    }
  }
}

QString JobsModel::stateName(State s) {
  switch (s) {
    case State::Queued: return tr("queued");
    case State::Running: return tr("running");
    case State::Finished: return tr("finished");
    case State::Failed: return tr("failed");
    case State::Cancelled: return tr("cancelled");
  }
  return {};
}

QString JobsModel::formatDuration(double s) {
  if (s < 0 || !std::isfinite(s)) return {};
  if (s < 60) return tr("%1 s").arg(qRound(s));
  if (s < 3600) return tr("%1 min %2 s").arg(int(s) / 60).arg(int(s) % 60, 2, 10, QLatin1Char('0'));
  return tr("%1 h %2 min").arg(int(s) / 3600).arg((int(s) % 3600) / 60, 2, 10, QLatin1Char('0'));
}

int JobsModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : int(m_jobs.size()); }

int JobsModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant JobsModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= m_jobs.size() || index.column() >= ColumnCount) return {};
  const Job& j = m_jobs[index.row()];
  const bool running = j.state == State::Running;
  const double frac = j.total > 0 ? std::clamp(j.done / j.total, 0.0, 1.0) : -1;
  const double eta = (running && j.rate > 0 && j.total > 0) ? (j.total - j.done) / j.rate : -1;
  switch (role) {
    case JobIdRole: return j.id;
    case StateRole: return int(j.state);
    case ProgressRole: return frac >= 0 ? QVariant(frac) : QVariant();
    case RateRole: return running && j.rate >= 0 ? QVariant(j.rate) : QVariant();
    case EtaRole: return eta >= 0 ? QVariant(eta) : QVariant();
    case OutputRole: return j.outputs.isEmpty() ? QString() : j.outputs.first();
    default: break;
  }
  if (role == Qt::ToolTipRole) {
    if (index.column() == StateColumn && !j.errorMessage.isEmpty()) return j.errorCode + QStringLiteral(": ") + j.errorMessage;
    if (index.column() == OutputColumn) return j.outputs.join(QLatin1Char('\n'));
    if (index.column() == JobColumn) return j.id;
    if (index.column() == ProgressColumn) return j.what;
    return {};
  }
  if (role == Qt::ForegroundRole && index.column() == StateColumn) {
    if (j.state == State::Failed) return QBrush(QColor(180, 30, 30));
    if (j.state == State::Finished) return QBrush(QColor(30, 120, 30));
    return {};
  }
  if (role != Qt::DisplayRole) return {};
  switch (index.column()) {
    case JobColumn: {
      QString what = j.method.isEmpty() ? tr("job") : j.method;
      QString out = j.params.value(QLatin1String("out")).toString();
      if (out.isEmpty()) out = j.params.value(QLatin1String("model")).toString();
      return out.isEmpty() ? what : QStringLiteral("%1 %2").arg(what, QFileInfo(out).fileName());
    }
    case StateColumn: return stateName(j.state) + (j.errorCode.isEmpty() || j.state == State::Finished ? QString() : QStringLiteral(" (%1)").arg(j.errorCode));
    case ProgressColumn: {
      const QString phase = j.state == State::Running ? phaseOf(j) : QString();
      const QString what = phase.isEmpty() ? j.what : phase + QStringLiteral("  ") + j.what.mid(2).trimmed();
      if (frac < 0) return j.state == State::Queued ? QString() : what;
      return QStringLiteral("%1%%2").arg(100.0 * frac, 0, 'f', 1).arg(what.isEmpty() ? QString() : QStringLiteral("  ") + what);
    }
    case RateColumn: return running ? formatRate(j.rate, j.total) : QString();
    case EtaColumn: return eta >= 0 ? formatDuration(eta) : QString();
    case WorkerColumn: return j.slot < 0 ? QString() : j.slot == 0 ? tr("CPU") : tr("GPU %1").arg(j.slot - 1);
    case OutputColumn: return j.outputs.isEmpty() ? QString() : QFileInfo(j.outputs.first()).fileName();
  }
  return {};
}

QVariant JobsModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (role != Qt::DisplayRole) return {};
  if (orientation == Qt::Vertical) return section + 1;
  switch (section) {
    case JobColumn: return tr("Job");
    case StateColumn: return tr("State");
    case ProgressColumn: return tr("Progress");
    case RateColumn: return tr("Rate");
    case EtaColumn: return tr("Time left");
    case WorkerColumn: return tr("Worker");
    case OutputColumn: return tr("Output");
  }
  return {};
}
