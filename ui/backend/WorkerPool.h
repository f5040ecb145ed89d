// WorkerPool: the workbench's `razor worker` processes and the job queue in front of them.
//
//  - Slot 0 is the CPU worker (`razor worker --cpu`, which also sends the GPU telemetry); slots 1..N are one
//    worker per GPU (`razor worker --telemetry-ms 0` with CUDA_VISIBLE_DEVICES=<that GPU>). N is setGpuCount(),
//    or by default the number of GPUs the CPU worker's hello lists.
//  - Jobs wait in a FIFO queue and go to the first idle worker that fits their target (Any: light methods
//    prefer the CPU worker, heavy ones a GPU worker). One job per worker at a time.
//  - A service job (`serve`: an inference server that runs until cancelled; `slurm`: follows cluster jobs for
//    hours) gets a worker of its own, started for it (CPU role, every GPU visible, no telemetry; remote: a
//    session of its own) and ended with it, so that it never holds a slot that other jobs (the `eval` against
//    the server) wait for.
//  - A job submitted with a key supersedes every queued or running job with the same key: those fail at once
//    with code "superseded", running ones are cancelled, and nothing they report later is delivered.
//  - cancel() is cooperative first ({"t":"cancel"}); a worker that has not ended the job after cancelGrace()
//    ms is killed (the job fails "cancelled", saying so) and restarted.
//  - A worker that dies fails only its running job (code "worker_crashed", with the pid, how it died and its
//    last stderr lines), leftover "*.partial-<pid>" outputs of that job (beside params.out) are removed in the
//    background before the failure is reported, and the worker is restarted; a slot whose worker fails to
//    start maxRestarts() times in a row, or speaks another protocol version, is given up (workerFailed()).
//  - With a JobStore, every job's spec, state changes, log and stderr lines are recorded durably.
//  - Remote (setRemote(), docs/remote.md): every slot is `ssh host razor worker --connect ...`, a session worker
//    on the server that outlives the link. A dropped link does not fail the running job: the slot reconnects
//    with back-off (1, 2, 4 ... 30 s; setReconnectDelay()) and re-attaches the job by id, which then reports
//    what happened meanwhile. A slot that cannot reconnect maxRestarts() times in a row is given up and its job
//    fails "disconnected" (it may still run on the server). A cancel that is not honoured within cancelGrace()
//    asks the session worker to end itself (its partial output removed by it). shutdown() only disconnects:
//    remote jobs go on; stopRemoteWorkers() ends the session workers. Jobs a session still holds when a (new)
//    pool connects are adopted: each gets a job id here, jobSubmitted() and jobStarted(); the running one reports
//    like one submitted here, those that ended meanwhile replay what they reported and end; the services an earlier
//    workbench left running (their sessions, listed in the hello's "others") get a service slot each again.
// Nothing here blocks the GUI thread.
#pragma once
#include <QHash>
#include <QJsonObject>
#include <QList>
#include <QObject>
#include <QPointer>
#include <QStringList>

#include "RemoteHost.h"

class JobStore;
class QTimer;
class WorkerClient;

// Where a job may run (see the class comment). Outside the class so that it can be a default argument.
enum class WorkerTarget { Any, Cpu, Gpu };
struct WorkerJobOptions {
  QString key;  // a later job with the same key supersedes this one
  WorkerTarget target = WorkerTarget::Any;
};

class WorkerPool : public QObject {
  Q_OBJECT
 public:
  using Target = WorkerTarget;
  using JobOptions = WorkerJobOptions;

  explicit WorkerPool(QObject* parent = nullptr);
  ~WorkerPool() override;

  // The `razor` program next to the application ($RAZOR_CLI, beside the executable, one folder up, ../bin), else on
  // PATH, else "razor".
  static QString defaultProgram();
  // The worker program and the arguments before the role flags (default: {"worker"}).
  void setProgram(const QString& program, const QStringList& arguments = {QStringLiteral("worker")});
  void setGpuCount(int n);          // -1 (default): from the CPU worker's hello
  void setCancelGrace(int ms);      // default 5000
  int cancelGrace() const { return m_cancelGraceMs; }
  void setHelloTimeout(int ms);     // default 30000
  void setMaxLineBytes(qint64 bytes);
  void setMaxRestarts(int n);       // default 3
  void setWorkingDirectory(const QString& dir);
  void setJobStore(JobStore* store);
  // Before start(): run the workers on this host (an invalid host: locally).
  void setRemote(const RemoteHost& host);
  bool isRemote() const { return m_remote.isValid(); }
  RemoteHost remote() const { return m_remote; }
  void setReconnectDelay(int ms);   // first back-off step of a remote slot's reconnects, default 1000
  // Remote: asks every session worker to exit (running jobs are cancelled there).
  void stopRemoteWorkers();

  void start();
  // Cancels what runs, fails what waits, and asks every worker to exit (killed after cancelGrace()).
  void shutdown();

  // Returns the job id (also the JobStore id).
  QString submit(const QString& method, const QJsonObject& params, const JobOptions& options = {});
  // false when the job is unknown or already ended.
  bool cancel(const QString& jobId);

  int workerCount() const { return int(m_slots.size()); }
  int readyWorkerCount() const;
  qint64 workerPid(int slot) const;
  int jobSlot(const QString& jobId) const;  // -1 unless running
  // "probe (job-3)": the job the worker with this pid is running (GPU telemetry lists processes by pid); "" none.
  QString runningJobOfPid(qint64 pid) const;
  bool isJobActive(const QString& jobId) const;
  int queuedJobCount() const { return int(m_queue.size()); }
  // The latest worker hello (its "schema" and "enums" build the job forms, ParamForm); empty before the first.
  QJsonObject lastHello() const { return m_lastHello; }

 signals:
  void workerAvailable(int slot, const QJsonObject& hello);
  void workerFailed(int slot, const QString& message);
  void workerConnectionLost(int slot, const QString& message);  // remote: reconnecting
  void workerReconnected(int slot);
  void workerLogAvailable(int slot, const QString& line);  // stderr lines
  void protocolErrorAvailable(int slot, const QString& message);
  void gpuSampleAvailable(const QJsonObject& sample);
  void jobSubmitted(const QString& jobId, const QString& method, const QJsonObject& params);  // also adopted ones
  void jobStarted(const QString& jobId, int slot);
  void jobProgressAvailable(const QString& jobId, double done, double total, const QString& what);
  void jobLogAvailable(const QString& jobId, const QString& level, const QString& message);
  void jobArtifactAvailable(const QString& jobId, const QJsonObject& artifact);
  void jobFinished(const QString& jobId, const QJsonObject& result);
  void jobFailed(const QString& jobId, const QString& code, const QString& message);

 private:
  struct Slot {
    QPointer<WorkerClient> client;
    bool gpu = false;
    QString cudaDevice;      // CUDA_VISIBLE_DEVICES value for GPU slots
    bool ready = false;
    bool givenUp = false;
    int failedStarts = 0;
    qint64 pid = 0;
    QString jobId;           // running job, empty when idle
    qint64 wireId = -1;
    QTimer* killTimer = nullptr;
    bool detached = false;   // remote: the link dropped while jobId ran; re-attach on the next hello
    QString serviceJob;      // a service slot: the one job it was started for (retired when that job ends)
    QString session;         // remote: the session worker's name ("cpu", "gpu0", a unique "svc..." per service)
    QHash<qint64, QString> replaying;  // adopted jobs that had ended: wire id -> job id, until their answer
    QString releaseJob() {   // the slot is idle again; returns the job it had
      const QString id = jobId;
      jobId.clear();
      wireId = -1;
      detached = false;
      return id;
    }
  };
  struct Job {
    QString id, method, key;
    QJsonObject params;
    Target target = Target::Any;
    bool ended = false;        // finished or failed was emitted: nothing more is delivered
    bool cancelRequested = false;
    int slot = -1;
    bool adoptedService = false;  // a service found running in the session: announced once its worker answers
  };

  // `session` names a remote service's existing session (adopting it); default: a new one.
  int addSlot(bool gpu, const QString& cudaDevice, const QString& serviceJob = QString(), const QString& session = QString());
  void startWorker(int slot);
  void onHello(int slot, WorkerClient* c, const QJsonObject& hello);
  void onWorkerFailed(int slot, WorkerClient* c, const QString& message);
  void onWorkerFinished(int slot, WorkerClient* c, bool crashed);
  void onJobEnded(int slot, WorkerClient* c, qint64 wireId, bool ok, const QJsonObject& result, const QString& code,
                  const QString& message);
  void schedule();
  bool fits(const Job& job, int slot) const;
  void endJob(const QString& jobId, bool ok, const QJsonObject& result, const QString& code, const QString& message);
  void supersede(const QString& key, const QString& byJob);
  void failUnrunnableJobs();
  Job* runningJob(int slot, WorkerClient* c, qint64 wireId);
  void logJob(const QString& jobId, const QString& line);
  QString slotName(int slot) const;
  void reattach(int slot, WorkerClient* c, const QJsonObject& hello);
  void adoptSessionJobs(int slot, WorkerClient* c, const QJsonObject& hello);
  void adoptServices(const QJsonObject& hello);
  void adoptServiceJob(int slot, WorkerClient* c, const QJsonObject& hello);
  QString nextJobId();  // the JobStore's, else job-<n>
  void announceAdopted(const QString& id, int slot, qint64 wire, const QString& method, bool running);

  QString m_program;
  QStringList m_arguments{QStringLiteral("worker")};
  int m_gpuCount = -1;
  bool m_gpuSlotsCreated = false;
  int m_cancelGraceMs = 5000;
  int m_helloTimeoutMs = 30000;
  qint64 m_maxLineBytes = 0;
  int m_maxRestarts = 3;
  QString m_workingDir;
  QPointer<JobStore> m_store;
  RemoteHost m_remote;
  int m_reconnectDelayMs = 1000;
  bool m_servicesAdopted = false;
  bool m_started = false;
  bool m_shuttingDown = false;
  int m_counter = 0;

  QJsonObject m_lastHello;
  QList<Slot> m_slots;
  QHash<QString, Job> m_jobs;
  QStringList m_queue;
};
