// EvaluateDialog: File → Evaluate… — benchmarks against a model, as jobs of the window's worker pool (local, or
// the GPU server's when remote; paths are that machine's). Two sources: a server started for the run (vLLM with
// tensor parallelism or llama-server on a checkpoint / GGUF: ServeEvalRun serves, evaluates, stops it), or an
// existing OpenAI-compatible endpoint. The benchmarks are the runnable rows of the one benchmark table
// (results/benchmarks.h), ticked in a list; progress is per question (done / total and the last question's
// benchmark and id). Optionally the server's prefill / decode speed at a few prompt lengths (eval/speed.h). A finished run's result file is handed to the main window (resultAvailable), which adds it
// to the comparison view.
#pragma once
#include <QDialog>
#include <QJsonObject>
#include <QStringList>

class QComboBox;
class QFormLayout;
class QLabel;
class QLineEdit;
class QListWidget;
class QProgressBar;
class QPushButton;
class QSpinBox;
class ServeEvalRun;
class WorkerPool;

class EvaluateDialog : public QDialog {
  Q_OBJECT
 public:
  EvaluateDialog(WorkerPool* pool, const QString& where, QWidget* parent = nullptr);

  void setModel(const QString& path);
  // "serve" (start a server for the run) or "endpoint" (an existing one).
  void setSource(const QString& source);
  QString source() const;
  void setEndpoint(const QString& url, const QString& servedModel = {});
  void setBenchmarks(const QStringList& keys);
  QStringList benchmarks() const;  // the ticked keys, in table order
  void setDataDir(const QString& dir);
  void setResultPath(const QString& path);
  void setQuestions(int n);  // 0: each benchmark's default
  void setSpeedContexts(const QString& list);  // "512,4k,16k": prefill / decode speed at these prompt lengths
  // What Start submits (tests read them).
  QJsonObject serveParams() const;
  QJsonObject evalParams() const;  // with the endpoint and served model in endpoint mode
  void start();
  ServeEvalRun* run() const { return m_run; }

 signals:
  void resultAvailable(const QString& resultPath);

 private:
  void updateStart();
  void updateSource();

  ServeEvalRun* m_run;
  QFormLayout* m_form;
  QComboBox *m_source, *m_engine;
  QLineEdit *m_model, *m_name, *m_endpoint, *m_servedModel, *m_data, *m_out, *m_speed;
  QListWidget* m_benchmarks;
  QSpinBox *m_tp, *m_ctx, *m_n, *m_budget;
  QLabel *m_stage, *m_question;
  QProgressBar* m_bar;
  QPushButton *m_start, *m_stop;
};
