#include "RecoverRun.h"

#include <QDateTime>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>

#include "ErrorCodes.h"
#include "WorkerPool.h"

RecoverRun::RecoverRun(WorkerPool* pool, QObject* parent) : QObject(parent), m_pool(pool) {
  reset(QString());
  if (!pool) return;
  connect(pool, &WorkerPool::jobProgressAvailable, this, [this](const QString& job, double d, double t, const QString& w) {
    if (job == m_job) handleProgress(d, t, w);
  });
  connect(pool, &WorkerPool::jobLogAvailable, this, [this](const QString& job, const QString& level, const QString& m) {
    if (job == m_job) handleLog(level, m);
  });
  connect(pool, &WorkerPool::jobFinished, this, [this](const QString& job, const QJsonObject& r) {
    if (job == m_job) handleFinished(r);
  });
  connect(pool, &WorkerPool::jobFailed, this, [this](const QString& job, const QString& code, const QString& m) {
    if (job == m_job) handleFailed(code, m);
  });
}

RecoverRun::~RecoverRun() = default;

QString RecoverRun::normalizePhases(const QString& phases) {
  QString out;
  const QString all = QString::fromLatin1(kPhases);
  for (QChar c : all)
    if (phases.contains(c, Qt::CaseInsensitive)) out += c;
  return out.isEmpty() ? all : out;
}

int RecoverRun::indexOf(QChar phase) const { return QString::fromLatin1(kPhases).indexOf(phase.toUpper()); }

void RecoverRun::reset(const QString& phases) {
  m_phases = normalizePhases(phases);
  m_current = QChar();
  m_points.clear();
  m_result = QJsonObject();
  for (int i = 0; i < 5; ++i) {
    m_state[i] = m_phases.contains(QLatin1Char(kPhases[i])) ? PhaseState::Waiting : PhaseState::Skipped;
    m_done[i] = m_total[i] = 0;
    m_what[i].clear();
  }
}

void RecoverRun::start(const QJsonObject& params) {
  if (m_running || !m_pool) return;
  m_params = params;
  reset(params.value(QLatin1String("phases")).toString());
  m_running = true;
  m_job = m_pool->submit(QStringLiteral("recover"), params);
}

void RecoverRun::follow(const QString& jobId, const QString& phases) {
  m_job = jobId;
  m_params = QJsonObject{{QStringLiteral("phases"), phases}};
  reset(phases);
  m_running = true;
}

void RecoverRun::cancel() {
  if (m_running && m_pool && !m_job.isEmpty()) m_pool->cancel(m_job);  // jobFailed (cancelled) follows
}

RecoverRun::PhaseState RecoverRun::phaseState(QChar phase) const {
  const int i = indexOf(phase);
  return i < 0 ? PhaseState::Skipped : m_state[i];
}

double RecoverRun::phaseDone(QChar phase) const {
  const int i = indexOf(phase);
  if (i < 0) return -1;
  if (m_state[i] == PhaseState::Done) return 1;
  return m_total[i] > 0 ? qBound(0.0, m_done[i] / m_total[i], 1.0) : -1;
}

QString RecoverRun::phaseWhat(QChar phase) const {
  const int i = indexOf(phase);
  return i < 0 ? QString() : m_what[i];
}

// A phase starts: the ones of this run before it are done (the phases run in order, one at a time).
void RecoverRun::enter(QChar phase) {
  const int k = indexOf(phase);
  if (k < 0 || m_current == phase) return;
  for (int i = 0; i < k; ++i)
    if (m_state[i] == PhaseState::Waiting || m_state[i] == PhaseState::Running) m_state[i] = PhaseState::Done;
  m_state[k] = PhaseState::Running;
  m_current = phase;
  emit phaseChanged(phase);
}

void RecoverRun::handleProgress(double done, double total, const QString& what) {
  // "C: step 5 loss 0.41 ...": the phase letter, then what it does.
  if (what.size() < 2 || what[1] != QLatin1Char(':')) return;
  const QChar phase = what[0];
  const int k = indexOf(phase);
  if (k < 0) return;
  enter(phase);
  m_done[k] = done;
  m_total[k] = total;
  m_what[k] = what.mid(2).trimmed();
  emit phaseProgress(phase, done, total, m_what[k]);
}

void RecoverRun::handleLog(const QString&, const QString& message) {
  static const QString kTrain = QStringLiteral("train ");
  if (!message.startsWith(kTrain)) return;
  const QJsonObject e = QJsonDocument::fromJson(message.mid(kTrain.size()).toUtf8()).object();
  if (!e.contains(QLatin1String("step")) || e.value(QLatin1String("done")).toBool()) return;  // the closing line
  TrainPoint p;
  p.step = e.value(QLatin1String("step")).toInt();
  p.loss = e.value(QLatin1String("loss")).toDouble();
  p.kl = e.value(QLatin1String("kl")).toDouble();
  p.klEma = e.value(QLatin1String("kl_ema")).toDouble();
  p.lr = e.value(QLatin1String("lr")).toDouble();
  p.seconds = e.value(QLatin1String("seconds")).toDouble();
  p.tokens = qint64(e.value(QLatin1String("tokens")).toDouble());
  enter(QLatin1Char('C'));
  m_points << p;
  emit trainPointAvailable(p);
}

void RecoverRun::handleFinished(const QJsonObject& result) {
  m_running = false;
  m_result = result;
  for (int i = 0; i < 5; ++i)
    if (m_state[i] != PhaseState::Skipped) m_state[i] = PhaseState::Done;
  emit phaseChanged(m_current);
  emit runFinished(result);
}

void RecoverRun::handleFailed(const QString& code, const QString& message) {
  m_running = false;
  const int k = indexOf(m_current);
  if (k >= 0) m_state[k] = PhaseState::Failed;
  emit phaseChanged(m_current);
  emit runFailed(code == ErrorCode::cancelled ? tr("Cancelled.") : tr("recover failed (%1): %2").arg(code, message));
}

QList<QJsonObject> RecoverRun::runsOfResult(const QJsonObject& result, const QJsonObject& params) {
  const QJsonObject e = result.value(QLatin1String("E")).toObject();
  if (e.isEmpty()) return {};
  const QJsonObject d = result.value(QLatin1String("D")).toObject();
  const QJsonObject totals = d.value(QLatin1String("totals")).toObject();
  const QString recipe = d.value(QLatin1String("recipe")).toString(params.value(QLatin1String("recipe")).toString());
  const QString when = QDateTime::currentDateTime().toString(Qt::ISODate);
  QList<QJsonObject> runs;
  for (const char* which : {"baseline", "recovered"}) {
    const QJsonObject m = e.value(QLatin1String(which)).toObject();
    if (m.isEmpty()) continue;
    const bool after = QLatin1String(which) == QLatin1String("recovered");
    const QString model = m.value(QLatin1String("model")).toString();
    QJsonObject run{{QStringLiteral("name"), QStringLiteral("%1 (%2)").arg(QFileInfo(model).fileName(),
                                                                         after ? tr("recovered") : tr("before recovery"))},
                    {QStringLiteral("recipe_name"), recipe},
                    {QStringLiteral("kl_mean"), m.value(QLatin1String("kl_mean"))},
                    {QStringLiteral("kl_p99"), m.value(QLatin1String("kl_p99"))},
                    {QStringLiteral("ppl"), m.value(QLatin1String("ppl"))},
                    {QStringLiteral("ref_ppl"), e.value(QLatin1String("teacher_ppl"))},
                    {QStringLiteral("same_top1"), m.value(QLatin1String("same_top1"))},
                    {QStringLiteral("text"), QFileInfo(e.value(QLatin1String("text")).toString()).fileName()},
                    {QStringLiteral("windows"), e.value(QLatin1String("windows"))},
                    {QStringLiteral("ctx"), e.value(QLatin1String("ctx"))},
                    {QStringLiteral("time"), when},
                    {QStringLiteral("how"), after ? tr("OPD recovery (razor recover), fake-quant in memory")
                                                  : tr("the student before recovery, fake-quant in memory")},
                    {QStringLiteral("model"), model}};
    if (after) run[QStringLiteral("kl_reduction")] = e.value(QLatin1String("kl_reduction"));
    // Phase D re-quantizes with the student's recipe: both have this footprint.
    if (totals.contains(QLatin1String("packed_gb")))
      run[QStringLiteral("file_bytes")] = totals.value(QLatin1String("packed_gb")).toDouble() * 1e9;
    if (totals.contains(QLatin1String("seed_effective_bits")))
      run[QStringLiteral("effective_bits")] = totals.value(QLatin1String("seed_effective_bits"));
    runs << run;
  }
  return runs;
}
