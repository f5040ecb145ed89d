// JobsDock: the jobs of the worker pool: queue and history (JobsModel) with progress bars, rate and time
// left; Cancel for the selected job, the selected job's log, and Open output. It never blocks: everything
// arrives through the pool's queued signals.
#pragma once
#include <QDockWidget>
#include <QPointer>

class JobStore;
class JobsModel;
class QLabel;
class QPlainTextEdit;
class QPushButton;
class QTableView;
class WorkerPool;

class JobsDock : public QDockWidget {
  Q_OBJECT
 public:
  explicit JobsDock(QWidget* parent = nullptr);

  // A dock showing a few fake jobs (queued, running with rate and time left, finished, failed).
  static JobsDock* createDemo(QWidget* parent = nullptr);

  void attachPool(WorkerPool* pool);   // feeds the model; Cancel calls pool->cancel()
  void attachStore(JobStore* store);   // history, log text of older jobs
  JobsModel* model() const { return m_model; }
  QTableView* table() const { return m_table; }
  QPlainTextEdit* logView() const { return m_log; }
  QPushButton* cancelButton() const { return m_cancel; }
  QPushButton* openOutputButton() const { return m_open; }
  QString selectedJobId() const;
  // A remote pool: the title names the server ("Jobs on gpu-box:/data/ws"); the note says when its link is down.
  void setHostLabel(const QString& label);
  void setConnectionNote(const QString& note);
  QString connectionNote() const;
  void selectJob(const QString& id);

 signals:
  void cancelRequested(const QString& jobId);
  // Emitted by Open output; when nothing is connected the folder is opened with QDesktopServices.
  void outputOpenRequested(const QString& path);

 private:
  void onSelectionChanged();
  void onLogLine(const QString& id, const QString& line);
  void updateButtons();

  JobsModel* m_model = nullptr;
  QTableView* m_table = nullptr;
  QPlainTextEdit* m_log = nullptr;
  QPushButton* m_cancel = nullptr;
  QPushButton* m_open = nullptr;
  QPushButton* m_clear = nullptr;
  QLabel* m_detail = nullptr;
  QLabel* m_connection = nullptr;
  QPointer<WorkerPool> m_pool;
  QPointer<JobStore> m_store;
};
