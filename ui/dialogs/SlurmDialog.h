// SlurmDialog: Remote → Submit to Slurm… — a quantize or pack of the open model as a Slurm array job (one layer
// range per task) plus its merge job, submitted and followed by the worker method `slurm` (docs/slurm.md, "From the
// workbench"). Paths are those of the pool's machine (the cluster's login node when remote) and must be on the
// filesystem every compute node sees. Submit hands the job to the pool; the jobs dock shows its progress (array
// tasks finished / tasks) and its log (job ids, state changes); cancelling it there runs scancel.
#pragma once
#include <QDialog>
#include <QJsonObject>

class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;
class WorkerPool;

class SlurmDialog : public QDialog {
  Q_OBJECT
 public:
  SlurmDialog(WorkerPool* pool, const QString& where, QWidget* parent = nullptr);
  // The window's menu entry: a dialog that deletes itself on close, prefilled with the open model.
  static SlurmDialog* open(WorkerPool* pool, const QString& where, const QString& model, QWidget* parent);

  void setModel(const QString& path);
  // The `slurm` method's params that Submit sends (tests read them).
  QJsonObject params() const;
  // pool->submit("slurm", params()); returns the job id ("" when the form is incomplete).
  QString submit();
  QString jobId() const { return m_jobId; }

 private:
  void updateSubmit();

  WorkerPool* m_pool;
  QString m_jobId;
  QComboBox* m_kind;
  QLineEdit *m_model, *m_out, *m_workDir, *m_recipe, *m_type, *m_partition, *m_gres, *m_time;
  QSpinBox* m_tasks;
  QLabel* m_status;
  QPushButton* m_submit;
};
