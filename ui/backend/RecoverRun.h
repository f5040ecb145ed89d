// RecoverRun: the `recover` job (razor recover, docs/recovery-cli.md) as seen by the workbench. It submits the job to
// a (local or remote) WorkerPool and reads its events:
//   - progress "A: ...", "B: ...", ... : the phase running (A rollouts, B teacher top-k, C training, D merge and
//     re-quantize, E evaluation), its done / total; an earlier phase of the run is then done;
//   - log messages "train {json}" (every train_log.jsonl entry of phase C, docs/recovery.md): the loss / KL curve;
//   - the result: "E" {"baseline": {"kl_mean","ppl",...}, "recovered": {...}, "teacher_ppl", "kl_reduction"}, from
//     which runsOfResult() makes the Runs view's two runs (before and after).
// The handle* slots take one event each (what the pool delivers; tests feed recorded events through them).
#pragma once
#include <QJsonObject>
#include <QList>
#include <QObject>
#include <QPointer>
#include <QString>
#include <QVector>

class WorkerPool;

class RecoverRun : public QObject {
  Q_OBJECT
 public:
  static constexpr const char* kPhases = "ABCDE";
  enum class PhaseState { Skipped, Waiting, Running, Done, Failed };
  struct TrainPoint {
    int step = 0;
    double loss = 0, kl = 0, klEma = 0, lr = 0, seconds = 0;
    qint64 tokens = 0;
  };

  explicit RecoverRun(WorkerPool* pool, QObject* parent = nullptr);
  ~RecoverRun() override;

  // `params` as the `recover` method's. The phases run are its "phases" (default all five).
  void start(const QJsonObject& params);
  // Starts following events without submitting (tests; an adopted job): `phases` as the param ("A,B,C").
  void follow(const QString& jobId, const QString& phases);
  void cancel();
  bool isRunning() const { return m_running; }
  QString jobId() const { return m_job; }

  PhaseState phaseState(QChar phase) const;
  QChar currentPhase() const { return m_current; }  // null before the first progress
  double phaseDone(QChar phase) const;   // 0..1 of that phase, -1 when its total is unknown
  QString phaseWhat(QChar phase) const;  // the phase's last progress text
  const QVector<TrainPoint>& trainPoints() const { return m_points; }
  QJsonObject result() const { return m_result; }
  QJsonObject params() const { return m_params; }

  // The Runs view's runs (RunsView.h) of phase E: the student before and after recovery, with the teacher's
  // perplexity as ref_ppl and the footprint of phase D when it ran; empty without "E".
  static QList<QJsonObject> runsOfResult(const QJsonObject& result, const QJsonObject& params = {});
  // "A,B,D" / "ABD" / "a b" -> "ABD" (letters of kPhases, in run order); empty input -> all.
  static QString normalizePhases(const QString& phases);

 public slots:
  void handleProgress(double done, double total, const QString& what);
  void handleLog(const QString& level, const QString& message);
  void handleFinished(const QJsonObject& result);
  void handleFailed(const QString& code, const QString& message);

 signals:
  void phaseChanged(QChar phase);  // also when a phase ends (state changes)
  void phaseProgress(QChar phase, double done, double total, const QString& what);
  void trainPointAvailable(const RecoverRun::TrainPoint& point);
  void runFinished(const QJsonObject& result);
  void runFailed(const QString& message);

 private:
  void reset(const QString& phases);
  void enter(QChar phase);
  int indexOf(QChar phase) const;

  QPointer<WorkerPool> m_pool;
  QString m_job, m_phases;
  QJsonObject m_params, m_result;
  bool m_running = false;
  QChar m_current;
  PhaseState m_state[5] = {};
  double m_done[5] = {}, m_total[5] = {};
  QString m_what[5];
  QVector<TrainPoint> m_points;
};
