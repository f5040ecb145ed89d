// JobsModel: the jobs of the worker pool as a table (one row per job, oldest first). Fed by WorkerPool's
// signals (attachPool) and, for history and for the method/params of jobs submitted elsewhere, by the
// JobStore (attachStore). Rate is an exponential moving average of progress units per second; time left is
// (total - done) / rate.
//
// Columns: Job, State, Progress (ProgressRole 0..1 for the delegate), Rate, Time left, Worker, Output.
#pragma once
#include <QAbstractTableModel>
#include <QJsonObject>
#include <QPointer>
#include <QStringList>
#include <QVector>
#include <functional>

class JobStore;
class WorkerPool;

class JobsModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { JobColumn, StateColumn, ProgressColumn, RateColumn, EtaColumn, WorkerColumn, OutputColumn, ColumnCount };
  enum Role {
    JobIdRole = Qt::UserRole + 1,  // QString
    StateRole,                     // int (State)
    ProgressRole,                  // double 0..1, or invalid when the total is unknown
    RateRole,                      // double units per second, or invalid
    EtaRole,                       // double seconds, or invalid
    OutputRole,                    // QString: first output path, or empty
  };
  enum class State { Queued, Running, Finished, Failed, Cancelled };

  struct Job {
    QString id, method;
    QJsonObject params;
    State state = State::Queued;
    double done = 0, total = 0;
    QString what;
    double rate = -1;        // units per second; < 0 unknown
    qint64 lastMs = -1;      // clock at the last progress
    double lastDone = 0;
    int slot = -1;
    QStringList outputs;     // artifact paths, then result.out / result.paths
    QStringList log;
    QString errorCode, errorMessage;
    QJsonObject result;
  };

  explicit JobsModel(QObject* parent = nullptr);

  void attachPool(WorkerPool* pool);
  void attachStore(JobStore* store);  // loads its jobs now, follows jobChanged()
  // Milliseconds for rate and time left (tests inject a fake clock).
  void setClock(std::function<qint64()> clock);

  const Job* job(const QString& id) const;
  const Job* jobAt(int row) const;
  int rowOf(const QString& id) const;
  static QString stateName(State s);
  static QString formatDuration(double seconds);  // "42 s", "3 min 05 s", "1 h 12 min"
  static constexpr int kMaxLogLines = 5000;

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

 public slots:
  void addJob(const QString& id, const QString& method, const QJsonObject& params = {});
  void markStarted(const QString& id, int slot);
  void updateProgress(const QString& id, double done, double total, const QString& what);
  void appendLog(const QString& id, const QString& level, const QString& message);
  void addArtifact(const QString& id, const QJsonObject& artifact);
  void markFinished(const QString& id, const QJsonObject& result);
  void markFailed(const QString& id, const QString& code, const QString& message);
  void removeEnded();  // forgets finished / failed / cancelled rows

 signals:
  void logLineAvailable(const QString& id, const QString& line);
  void jobStateChanged(const QString& id);

 private:
  Job& ensure(const QString& id);
  void changed(const QString& id, int firstColumn = 0, int lastColumn = ColumnCount - 1);
  void syncFromStore(const QString& id);

  QVector<Job> m_jobs;
  QPointer<JobStore> m_store;
  std::function<qint64()> m_clock;
};
