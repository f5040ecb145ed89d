// RecoverDialog: File → Recover… — on-policy distillation of a quantized student toward its BF16 teacher (issue 21,
// docs/recovery-cli.md) as the worker's `recover` job (RecoverRun) on the window's pool (local, or the GPU server's:
// paths are that machine's). The form is the `recover` method's params from the worker's hello (ParamForm): the
// main knobs first (teacher, student, recipe, out, phases, prompts, samples, new tokens, epochs, learning rate,
// device), every other param under "More settings", so params the registry gains appear without a GUI change.
// While the job runs: each phase's state and progress (A rollouts, B teacher top-k, C training, D merge, E
// evaluation) and a live chart of the training loss and KL per step (Qt Charts) from the job's `train` events.
// At the end, KL and perplexity before / after and the teacher's; the two runs (runsAvailable) go to the Runs view.
#pragma once
#include <QDialog>
#include <QJsonArray>
#include <QJsonObject>

class ParamForm;
class QChartView;
class QLabel;
class QLineSeries;
class QProgressBar;
class QPushButton;
class QTableWidget;
class QValueAxis;
class RecoverRun;
class WorkerPool;

class RecoverDialog : public QDialog {
  Q_OBJECT
 public:
  // The params shown on the form's first rows (the rest go under "More settings").
  static const QStringList& primaryParams();

  RecoverDialog(WorkerPool* pool, const QString& where, QWidget* parent = nullptr);

  // Builds the form from a worker's hello (the dialog does it on its own from the pool's first hello).
  bool setHello(const QJsonObject& hello);
  // Sets a field now, or once the form is built (over the values remembered from the last run).
  void presetValue(const QString& name, const QJsonValue& value);
  ParamForm* form() const { return m_form; }
  RecoverRun* run() const { return m_run; }
  QChartView* chart() const { return m_chartView; }
  QLineSeries* lossSeries() const { return m_loss; }
  QLineSeries* klSeries() const { return m_kl; }
  QLineSeries* klEmaSeries() const { return m_klEma; }
  QTableWidget* phaseTable() const { return m_phases; }
  QLabel* summary() const { return m_summary; }
  QJsonObject params() const;  // what Start submits
  void start();

 signals:
  // Phase E's runs (RecoverRun::runsOfResult): before and after recovery, for the Runs view.
  void runsAvailable(const QJsonArray& runs);

 private:
  void updateStart();
  void updatePhases();
  void addPoint(double step, double loss, double kl, double klEma);
  void showResult(const QJsonObject& result);

  RecoverRun* m_run;
  QJsonObject m_presets;
  ParamForm* m_form;
  QLabel *m_waiting, *m_stage, *m_summary;
  QTableWidget* m_phases;
  QChartView* m_chartView;
  QLineSeries *m_loss, *m_kl, *m_klEma;
  QValueAxis *m_ax, *m_ay;
  QPushButton *m_start, *m_stop;
};
