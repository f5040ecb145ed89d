// ServeEvalDialog: Remote → Serve and evaluate… — an engine (vLLM with tensor parallelism, llama-server), the
// model to serve and the benchmarks to run, as paths of the pool's machine (the GPU server when remote); Start
// runs a ServeEvalRun on the window's pool and shows its stage and progress; a finished run's result file is
// handed to the main window (resultAvailable), which adds it to the comparison view.
#pragma once
#include <QDialog>
#include <QJsonObject>

class QComboBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;
class ServeEvalRun;
class WorkerPool;

class ServeEvalDialog : public QDialog {
  Q_OBJECT
 public:
  ServeEvalDialog(WorkerPool* pool, const QString& where, QWidget* parent = nullptr);

  void setModel(const QString& path);
  // What Start submits (tests read them).
  QJsonObject serveParams() const;
  QJsonObject evalParams() const;
  void start();
  ServeEvalRun* run() const { return m_run; }

 signals:
  void resultAvailable(const QString& resultPath);

 private:
  void updateStart();

  ServeEvalRun* m_run;
  QComboBox* m_engine;
  QLineEdit *m_model, *m_name, *m_benchmarks, *m_data, *m_out;
  QSpinBox *m_tp, *m_ctx, *m_n;
  QLabel* m_stage;
  QProgressBar* m_bar;
  QPushButton *m_start, *m_stop;
};
