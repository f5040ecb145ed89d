#include "WorkerPool.h"
#include "ErrorCodes.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QJsonArray>
#include <QProcessEnvironment>
#include <QStandardPaths>
#include <QTimer>
#include <QtConcurrent/QtConcurrentRun>

#include "JobStore.h"
#include "WorkerClient.h"

namespace {

// Methods that run until cancelled (`serve`: an inference server) or for hours without work of their own (`slurm`
// follows jobs on a cluster): each gets a worker of its own (see the class comment), so that it holds no slot
// other jobs wait for; that worker sees every GPU, so vLLM's tensor parallelism spans the machine.
bool isServiceMethod(const QString& m) { return m == QLatin1String("serve") || m == QLatin1String("slurm"); }

// Methods that need no GPU: with Target::Any they prefer the CPU worker (`eval` is an HTTP client).
bool isLightMethod(const QString& m) {
  static const QStringList light = {"echo", "sleep", "inspect", "footprint", "synth", "eval"};
  return light.contains(m);
}

// Removes "<name>.partial-<pid>" files and folders a dead worker left beside `out` (the core's atomic
// writers name their temporaries so: util/atomic_file.h). Runs on a pool thread.
QStringList removePartials(const QString& out, qint64 pid) {
  QStringList removed;
  const QFileInfo fi(out);
  QDir dir = fi.absoluteDir();
  const QString suffix = QStringLiteral(".partial-%1").arg(pid);
  const QFileInfoList entries =
      dir.entryInfoList(QDir::AllEntries | QDir::Hidden | QDir::System | QDir::NoDotAndDotDot);
  for (const QFileInfo& e : entries) {
    if (!e.fileName().endsWith(suffix)) continue;
    bool ok = e.isDir() && !e.isSymLink() ? QDir(e.absoluteFilePath()).removeRecursively()
                                          : QFile::remove(e.absoluteFilePath());
    if (ok) removed.append(e.absoluteFilePath());
  }
  return removed;
}

}  // namespace

QString WorkerPool::defaultProgram() {
  const QString env = qEnvironmentVariable("RAZOR_CLI");
  if (!env.isEmpty() && QFileInfo(env).isExecutable()) return env;
  const QString app = QCoreApplication::applicationDirPath();
  for (const QString& rel : {QStringLiteral("/razor"), QStringLiteral("/../razor"), QStringLiteral("/../../razor"),
                             QStringLiteral("/../bin/razor")}) {
    QFileInfo fi(app + rel);
    if (fi.isFile() && fi.isExecutable()) return QDir::cleanPath(fi.absoluteFilePath());
  }
  const QString onPath = QStandardPaths::findExecutable(QStringLiteral("razor"));
  return onPath.isEmpty() ? QStringLiteral("razor") : onPath;
}

WorkerPool::WorkerPool(QObject* parent) : QObject(parent) {}

WorkerPool::~WorkerPool() {
  for (Slot& s : m_slots)
    if (s.client) {
      s.client->disconnect(this);
      delete s.client.data();  // kills the process
    }
}

void WorkerPool::setProgram(const QString& program, const QStringList& arguments) {
  m_program = program;
  m_arguments = arguments;
}
void WorkerPool::setGpuCount(int n) { m_gpuCount = n; }
void WorkerPool::setCancelGrace(int ms) { m_cancelGraceMs = ms; }
void WorkerPool::setHelloTimeout(int ms) { m_helloTimeoutMs = ms; }
void WorkerPool::setMaxLineBytes(qint64 bytes) { m_maxLineBytes = bytes; }
void WorkerPool::setMaxRestarts(int n) { m_maxRestarts = qMax(1, n); }
void WorkerPool::setWorkingDirectory(const QString& dir) { m_workingDir = dir; }
void WorkerPool::setJobStore(JobStore* store) { m_store = store; }
void WorkerPool::setRemote(const RemoteHost& host) { m_remote = host; }
void WorkerPool::setReconnectDelay(int ms) { m_reconnectDelayMs = qMax(1, ms); }

QString WorkerPool::slotName(int slot) const {
  return m_slots[slot].session;
}

void WorkerPool::stopRemoteWorkers() {
  if (!isRemote()) return;
  for (Slot& s : m_slots)
    if (s.client) s.client->shutdown();
}

int WorkerPool::readyWorkerCount() const {
  int n = 0;
  for (const Slot& s : m_slots) n += s.ready ? 1 : 0;
  return n;
}

qint64 WorkerPool::workerPid(int slot) const {
  return slot >= 0 && slot < m_slots.size() ? m_slots[slot].pid : 0;
}

int WorkerPool::jobSlot(const QString& jobId) const {
  for (int i = 0; i < m_slots.size(); ++i)
    if (m_slots[i].jobId == jobId) return i;
  return -1;
}

QString WorkerPool::runningJobOfPid(qint64 pid) const {
  if (pid <= 0) return {};
  for (const Slot& s : m_slots)
    if (s.pid == pid && !s.jobId.isEmpty()) {
      auto it = m_jobs.find(s.jobId);
      return it == m_jobs.end() ? s.jobId : QStringLiteral("%1 (%2)").arg(it->method, s.jobId);
    }
  return {};
}

bool WorkerPool::isJobActive(const QString& jobId) const {
  auto it = m_jobs.constFind(jobId);
  return it != m_jobs.constEnd() && !it->ended;
}

// ---- workers ----
void WorkerPool::start() {
  if (m_started) return;
  m_started = true;
  addSlot(false, QString());
  if (m_gpuCount >= 0) {
    m_gpuSlotsCreated = true;
    for (int i = 0; i < m_gpuCount; ++i) addSlot(true, QString::number(i));
  }
}

int WorkerPool::addSlot(bool gpu, const QString& cudaDevice, const QString& serviceJob, const QString& session) {
  Slot s;
  s.gpu = gpu;
  s.cudaDevice = cudaDevice;
  s.serviceJob = serviceJob;
  // A service's session is new each time: an older one may still run a server another workbench left.
  s.session = !session.isEmpty()    ? session
              : !serviceJob.isEmpty() ? QStringLiteral("svc-%1-%2")
                                          .arg(QDateTime::currentMSecsSinceEpoch(), 0, 36)
                                          .arg(m_slots.size())
              : gpu               ? QStringLiteral("gpu") + cudaDevice
                                  : QStringLiteral("cpu");
  s.killTimer = new QTimer(this);
  s.killTimer->setSingleShot(true);
  const int index = int(m_slots.size());
  connect(s.killTimer, &QTimer::timeout, this, [this, index] {
    Slot& sl = m_slots[index];
    if (!sl.client) return;
    if (!sl.jobId.isEmpty())
      logJob(sl.jobId, tr("The worker (pid %1) did not end the job within %2 s of the cancel request: killing it.")
                           .arg(sl.pid)
                           .arg(m_cancelGraceMs / 1000.0));
    if (!sl.jobId.isEmpty() && sl.wireId >= 0) sl.client->killJob(sl.wireId);
    else sl.client->kill();
  });
  m_slots.append(s);
  startWorker(index);
  return index;
}

void WorkerPool::startWorker(int slot) {
  Slot& s = m_slots[slot];
  auto* c = new WorkerClient(this);
  QStringList args = m_arguments;
  QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
  if (s.gpu) {
    args << QStringLiteral("--telemetry-ms") << QStringLiteral("0");
    env.insert(QStringLiteral("CUDA_VISIBLE_DEVICES"), s.cudaDevice);
  } else {
    args << QStringLiteral("--cpu");
    if (!s.serviceJob.isEmpty()) args << QStringLiteral("--telemetry-ms") << QStringLiteral("0");  // slot 0 samples
  }
  if (isRemote()) {
    // The server's environment is its own: the GPU is chosen by the session worker's --cuda-devices.
    QStringList role = s.gpu ? QStringList{QStringLiteral("--telemetry-ms"), QStringLiteral("0"),
                                           QStringLiteral("--cuda-devices"), s.cudaDevice}
                             : QStringList{QStringLiteral("--cpu")};
    if (!s.serviceJob.isEmpty()) role << QStringLiteral("--telemetry-ms") << QStringLiteral("0");
    c->setProgram(m_remote.sshProgram, m_remote.workerArguments(slotName(slot), role));
    env = QProcessEnvironment::systemEnvironment();  // SSH_AUTH_SOCK and the user's ssh settings
  } else {
    c->setProgram(m_program, args);
  }
  c->setProcessEnvironment(env);
  c->setHelloTimeout(m_helloTimeoutMs);
  if (m_maxLineBytes > 0) c->setMaxLineBytes(m_maxLineBytes);
  if (!m_workingDir.isEmpty()) c->setWorkingDirectory(m_workingDir);

  connect(c, &WorkerClient::helloAvailable, this, [this, slot, c](const QJsonObject& h) { onHello(slot, c, h); });
  connect(c, &WorkerClient::workerFailed, this,
          [this, slot, c](const QString& msg) { onWorkerFailed(slot, c, msg); });
  connect(c, &WorkerClient::workerFinished, this,
          [this, slot, c](int, bool crashed) { onWorkerFinished(slot, c, crashed); });
  connect(c, &WorkerClient::jobFinished, this, [this, slot, c](qint64 id, const QJsonObject& r) {
    onJobEnded(slot, c, id, true, r, QString(), QString());
  });
  connect(c, &WorkerClient::jobFailed, this, [this, slot, c](qint64 id, const QString& code, const QString& msg) {
    onJobEnded(slot, c, id, false, QJsonObject(), code, msg);
  });
  connect(c, &WorkerClient::progressAvailable, this,
          [this, slot, c](qint64 id, double done, double total, const QString& what) {
            if (Job* j = runningJob(slot, c, id)) {
              if (m_store) m_store->recordProgress(j->id, done, total, what);
              emit jobProgressAvailable(j->id, done, total, what);
            }
          });
  connect(c, &WorkerClient::logAvailable, this,
          [this, slot, c](qint64 id, const QString& level, const QString& msg) {
            if (Job* j = runningJob(slot, c, id)) {
              if (m_store) m_store->appendLog(j->id, QStringLiteral("[%1] %2").arg(level, msg));
              emit jobLogAvailable(j->id, level, msg);
            } else if (id < 0) {
              emit workerLogAvailable(slot, QStringLiteral("[%1] %2").arg(level, msg));
            }
          });
  connect(c, &WorkerClient::artifactAvailable, this, [this, slot, c](qint64 id, const QJsonObject& a) {
    if (Job* j = runningJob(slot, c, id)) {
      if (m_store) m_store->recordArtifact(j->id, a);
      emit jobArtifactAvailable(j->id, a);
    }
  });
  connect(c, &WorkerClient::gpuSampleAvailable, this, &WorkerPool::gpuSampleAvailable);
  connect(c, &WorkerClient::stderrAvailable, this, [this, slot, c](const QString& line) {
    const Slot& sl = m_slots[slot];
    if (sl.client == c && !sl.jobId.isEmpty() && m_store) m_store->appendLog(sl.jobId, QStringLiteral("stderr: ") + line);
    emit workerLogAvailable(slot, line);
  });
  connect(c, &WorkerClient::protocolErrorAvailable, this, [this, slot, c](const QString& msg) {
    const Slot& sl = m_slots[slot];
    if (sl.client == c && !sl.jobId.isEmpty()) logJob(sl.jobId, tr("protocol: %1").arg(msg));
    emit protocolErrorAvailable(slot, msg);
  });

  s.client = c;
  s.ready = false;
  s.pid = 0;
  c->start();
}

void WorkerPool::onHello(int slot, WorkerClient* c, const QJsonObject& hello) {
  Slot& s = m_slots[slot];
  if (s.client != c) return;
  s.ready = true;
  s.failedStarts = 0;
  s.pid = c->processId();
  if (s.detached) reattach(slot, c, hello);
  else if (isRemote() && s.jobId.isEmpty() && s.serviceJob.isEmpty()) adoptSessionJobs(slot, c, hello);
  else if (isRemote() && s.jobId.isEmpty() && m_jobs.value(s.serviceJob).adoptedService) adoptServiceJob(slot, c, hello);
  if (slot == 0 && isRemote() && !m_servicesAdopted) adoptServices(hello);
  m_lastHello = hello;
  emit workerAvailable(slot, hello);
  if (slot == 0 && !m_gpuSlotsCreated) {
    m_gpuSlotsCreated = true;
    // GPU i of the hello is the i-th device CUDA shows this process; keep an inherited selection.
    const QStringList inherited =
        isRemote() ? QStringList() : qEnvironmentVariable("CUDA_VISIBLE_DEVICES").split(',', Qt::SkipEmptyParts);
    const QJsonArray gpus = hello.value("gpus").toArray();
    for (int i = 0; i < gpus.size(); ++i) {
      const QString dev = i < inherited.size() ? inherited[i].trimmed()
                                               : QString::number(gpus[i].toObject().value("index").toInt(i));
      addSlot(true, dev);
    }
    failUnrunnableJobs();
  }
  schedule();
}

void WorkerPool::onWorkerFailed(int slot, WorkerClient* c, const QString& message) {
  Slot& s = m_slots[slot];
  if (s.client != c) return;
  s.ready = false;
  if (c->failureIsPermanent()) s.givenUp = true;
  emit workerFailed(slot, message);
  if (s.givenUp) failUnrunnableJobs();
}

void WorkerPool::onWorkerFinished(int slot, WorkerClient* c, bool crashed) {
  Slot& s = m_slots[slot];
  if (s.client != c) return;
  const bool hadHello = c->state() == WorkerClient::State::Finished && !c->hello().isEmpty();
  s.ready = false;
  s.client = nullptr;
  s.killTimer->stop();
  c->deleteLater();
  if (m_shuttingDown || s.givenUp) return;
  if (c->wasTakenOver()) {  // another workbench uses this session now: reconnecting would take it back, in a loop
    s.givenUp = true;
    emit workerFailed(slot, tr("Another workbench connected to session %1 on %2 and took it over; this window no "
                               "longer uses it (Remote \u2192 Connect to take it back).")
                                .arg(slotName(slot), m_remote.host));
    if (!s.jobId.isEmpty())
      endJob(s.releaseJob(), false, {}, ErrorCode::disconnected,
             tr("Another workbench took session %1 on %2 over; the job goes on there.").arg(slotName(slot), m_remote.host));
    failUnrunnableJobs();
    return;
  }
  if (!hadHello && ++s.failedStarts >= m_maxRestarts) {
    s.givenUp = true;
    emit workerFailed(slot, isRemote() ? tr("The link of slot %1 to %2 could not be re-established in %3 tries; it "
                                            "is not retried.")
                                             .arg(slot)
                                             .arg(m_remote.host)
                                             .arg(s.failedStarts)
                                       : tr("The worker of slot %1 failed to start %2 times in a row; it is not "
                                            "restarted.")
                                             .arg(slot)
                                             .arg(s.failedStarts));
    if (s.detached) {
      endJob(s.releaseJob(), false, {}, ErrorCode::disconnected,
             tr("Lost the link to %1 and could not reconnect; the job may still be running there (session %2). "
                "Reconnect later to see it.")
                 .arg(m_remote.host, slotName(slot)));
    }
    failUnrunnableJobs();
    return;
  }
  // Back off when it keeps failing to start; a remote link: 1, 2, 4 ... 30 s between tries.
  const int delayMs = isRemote() ? qMin(30000, m_reconnectDelayMs << qMin(s.failedStarts, 15)) : 100 * s.failedStarts;
  QTimer::singleShot(delayMs, this, [this, slot] {
    Slot& sl = m_slots[slot];
    if (!m_shuttingDown && !sl.givenUp && !sl.client) startWorker(slot);
  });
  Q_UNUSED(crashed);
}

// ---- jobs ----
QString WorkerPool::nextJobId() { return m_store ? m_store->newJobId() : QStringLiteral("job-%1").arg(++m_counter); }

QString WorkerPool::submit(const QString& method, const QJsonObject& params, const JobOptions& options) {
  const QString id = nextJobId();
  Job j;
  j.id = id;
  j.method = method;
  j.key = options.key;
  j.params = params;
  j.target = options.target;
  m_jobs.insert(id, j);
  if (m_store) m_store->recordSubmitted(id, method, params, options.key);
  emit jobSubmitted(id, method, params);
  if (!options.key.isEmpty()) supersede(options.key, id);
  m_queue.append(id);
  // Assignment (and a refusal) comes from the event loop, after the caller holds the id.
  QTimer::singleShot(0, this, [this] {
    failUnrunnableJobs();
    schedule();
  });
  return id;
}

bool WorkerPool::cancel(const QString& jobId) {
  auto it = m_jobs.find(jobId);
  if (it == m_jobs.end() || it->ended) return false;
  if (m_queue.removeOne(jobId)) {
    endJob(jobId, false, {}, ErrorCode::cancelled, tr("Cancelled before it started."));
    return true;
  }
  it->cancelRequested = true;
  const int slot = jobSlot(jobId);
  if (slot >= 0) {
    Slot& s = m_slots[slot];
    logJob(jobId, tr("cancel requested"));
    if (s.detached) return true;  // sent once the job is re-attached
    if (s.client) s.client->cancel(s.wireId);
    s.killTimer->start(m_cancelGraceMs);
  }
  return true;
}

void WorkerPool::supersede(const QString& key, const QString& byJob) {
  // Ids first: a slot connected to jobFailed may submit, which must not invalidate this loop.
  QStringList ids;
  for (const Job& j : std::as_const(m_jobs))
    if (!j.ended && j.key == key && j.id != byJob) ids << j.id;
  for (const QString& id : ids) {
    if (!m_queue.removeOne(id)) {
      const int slot = jobSlot(id);
      if (slot >= 0) {  // running: stop it, and drop whatever it still reports
        m_jobs[id].cancelRequested = true;
        Slot& s = m_slots[slot];
        if (s.client) s.client->cancel(s.wireId);
        s.killTimer->start(m_cancelGraceMs);
      }
    }
    endJob(id, false, {}, ErrorCode::superseded,
           tr("Replaced by a newer request with the same key (job %1); its result is discarded.").arg(byJob));
  }
}

bool WorkerPool::fits(const Job& job, int slot) const {
  const Slot& s = m_slots[slot];
  if (isServiceMethod(job.method) || !s.serviceJob.isEmpty()) return s.serviceJob == job.id;
  switch (job.target) {
    case Target::Cpu: return !s.gpu;
    case Target::Gpu: return s.gpu;
    case Target::Any: return true;
  }
  return false;
}

void WorkerPool::schedule() {
  if (m_shuttingDown) return;
  if (m_started) {  // a service job gets its own worker, started now; it takes the job once it says hello
    for (const QString& id : std::as_const(m_queue)) {
      const Job& j = m_jobs[id];
      bool hasSlot = false;
      for (const Slot& sl : std::as_const(m_slots)) hasSlot = hasSlot || sl.serviceJob == id;
      if (isServiceMethod(j.method) && !hasSlot) addSlot(false, QString(), id);
    }
  }
  for (int qi = 0; qi < m_queue.size();) {
    Job& j = m_jobs[m_queue[qi]];
    // Light jobs look at the CPU worker first, heavy ones at the GPU workers first.
    QList<int> order;
    for (int i = 1; i < m_slots.size(); ++i) order.append(i);
    if (isLightMethod(j.method)) order.prepend(0);
    else order.append(0);
    int chosen = -1;
    for (int i : order) {
      const Slot& s = m_slots[i];
      if (s.ready && s.client && s.jobId.isEmpty() && fits(j, i)) {
        chosen = i;
        break;
      }
    }
    if (chosen < 0) {
      ++qi;
      continue;
    }
    Slot& s = m_slots[chosen];
    const qint64 wire = s.client->sendRequest(j.method, j.params);
    if (wire < 0) {
      ++qi;
      continue;
    }
    m_queue.removeAt(qi);
    s.jobId = j.id;
    s.wireId = wire;
    j.slot = chosen;
    const QString id = j.id;
    if (m_store) m_store->recordStarted(id, chosen, s.pid);
    emit jobStarted(id, chosen);
  }
}

void WorkerPool::failUnrunnableJobs() {
  const QStringList queued = m_queue;
  for (const QString& id : queued) {
    const Job& j = m_jobs[id];
    bool possible = false;
    for (int i = 0; i < m_slots.size(); ++i)
      if (!m_slots[i].givenUp && fits(j, i)) possible = true;
    // GPU workers are created once the CPU worker reports its GPUs.
    if (!possible && j.target == Target::Gpu && !m_gpuSlotsCreated && !m_slots.isEmpty() && !m_slots[0].givenUp)
      possible = true;
    if (!m_started || isServiceMethod(j.method)) possible = true;  // not started yet / its worker is coming
    for (int i = 0; i < m_slots.size(); ++i)  // a service worker that could not start: nothing else can run it
      if (m_slots[i].serviceJob == id && m_slots[i].givenUp) possible = false;
    if (possible) continue;
    m_queue.removeOne(id);
    endJob(id, false, {}, ErrorCode::no_worker,
           j.target == Target::Gpu && m_gpuSlotsCreated
               ? tr("No GPU worker can run \"%1\": this machine shows no usable GPU.").arg(j.method)
               : tr("No worker can run \"%1\": the worker could not be started (see the worker log).").arg(j.method));
  }
}

WorkerPool::Job* WorkerPool::runningJob(int slot, WorkerClient* c, qint64 wireId) {
  Slot& s = m_slots[slot];
  if (s.client != c) return nullptr;
  const QString id = s.wireId == wireId ? s.jobId : s.replaying.value(wireId);
  if (id.isEmpty()) return nullptr;
  auto it = m_jobs.find(id);
  if (it == m_jobs.end() || it->ended) return nullptr;
  return &*it;
}

void WorkerPool::onJobEnded(int slot, WorkerClient* c, qint64 wireId, bool ok, const QJsonObject& result,
                            const QString& code, const QString& message) {
  Slot& s = m_slots[slot];
  if (s.client == c && s.replaying.contains(wireId)) {  // an adopted job that had ended: its replayed answer
    const QString id = s.replaying.take(wireId);
    if (code == ErrorCode::disconnected)
      endJob(id, false, {}, code, tr("The link dropped while this job's report was replayed; reconnect to see it."));
    else
      endJob(id, ok, result, code, message);
    return;
  }
  if (s.client != c || s.wireId != wireId || s.jobId.isEmpty()) return;
  if (code == ErrorCode::disconnected && isRemote() && !m_shuttingDown) {
    // The job goes on on the server: keep the slot's claim and re-attach once the link is back.
    s.detached = true;
    s.ready = false;
    logJob(s.jobId, tr("The link to %1 dropped; reconnecting to re-attach job %2.").arg(m_remote.host).arg(wireId));
    emit workerConnectionLost(slot, message);
    return;
  }
  const QString jobId = s.releaseJob();
  s.killTimer->stop();
  auto it = m_jobs.find(jobId);
  if (it == m_jobs.end()) return;
  it->slot = -1;
  if (ok || code != ErrorCode::worker_crashed) {
    endJob(jobId, ok, result, code, message);
    schedule();
    return;
  }
  // The worker died with the job: it is restarted (onWorkerFinished); remove what it left half-written first.
  s.ready = false;
  QString finalCode = code, finalMessage = message;
  if (it->cancelRequested) {
    finalCode = ErrorCode::cancelled;
    finalMessage = tr("Cancelled: the worker (pid %1) did not stop within %2 s of the cancel request, so it was "
                      "killed and is being restarted. No output was kept under its final name.")
                       .arg(s.pid)
                       .arg(m_cancelGraceMs / 1000.0);
  }
  const QString out = it->params.value("out").toString();
  const qint64 pid = s.pid;
  if (out.isEmpty() || pid <= 0 || isRemote()) {  // a session worker removes its own partial output
    endJob(jobId, false, {}, finalCode, finalMessage);
    return;
  }
  // A relative output is relative to the worker's working directory.
  const QString outPath = QFileInfo(out).isRelative() && !m_workingDir.isEmpty() ? QDir(m_workingDir).filePath(out) : out;
  auto* watcher = new QFutureWatcher<QStringList>(this);
  connect(watcher, &QFutureWatcher<QStringList>::finished, this, [this, watcher, jobId, finalCode, finalMessage] {
    const QStringList removed = watcher->result();
    for (const QString& p : removed) logJob(jobId, tr("removed the partial output %1").arg(p));
    endJob(jobId, false, {}, finalCode, finalMessage);
    watcher->deleteLater();
  });
  watcher->setFuture(QtConcurrent::run(removePartials, outPath, pid));
}

void WorkerPool::endJob(const QString& jobIdRef, bool ok, const QJsonObject& result, const QString& code,
                        const QString& message) {
  const QString jobId = jobIdRef;  // a copy: the reference may point into a job a handler replaces
  auto it = m_jobs.find(jobId);
  if (it == m_jobs.end() || it->ended) return;
  it->ended = true;
  for (Slot& sl : m_slots)  // a service worker ends with its job
    if (sl.serviceJob == jobId && !sl.givenUp) {
      sl.givenUp = true;
      sl.ready = false;
      if (sl.client) {
        sl.client->shutdown();
        sl.killTimer->start(m_cancelGraceMs);
      }
    }
  if (ok) {
    if (m_store) m_store->recordFinished(jobId, result);
    emit jobFinished(jobId, result);
  } else {
    if (m_store) {
      m_store->appendLog(jobId, QStringLiteral("%1: %2").arg(code, message));
      m_store->recordFailed(jobId, code, message);
    }
    emit jobFailed(jobId, code, message);
  }
}

void WorkerPool::logJob(const QString& jobId, const QString& line) {
  if (m_store) m_store->appendLog(jobId, line);
  auto it = m_jobs.constFind(jobId);
  if (it != m_jobs.constEnd() && !it->ended) emit jobLogAvailable(jobId, QStringLiteral("info"), line);
}

void WorkerPool::shutdown() {
  if (m_shuttingDown) return;
  m_shuttingDown = true;
  const QStringList queued = m_queue;
  m_queue.clear();
  for (const QString& id : queued)
    endJob(id, false, {}, ErrorCode::cancelled, tr("The workbench shut down before the job started."));
  for (Slot& s : m_slots) {
    if (!s.jobId.isEmpty()) {
      if (isRemote())
        endJob(s.jobId, false, {}, ErrorCode::disconnected,
               tr("The workbench disconnected; the job goes on on %1 (session %2, id %3).")
                   .arg(m_remote.host, slotName(int(&s - m_slots.data())))
                   .arg(s.wireId));
      else
        endJob(s.jobId, false, {}, ErrorCode::cancelled, tr("The workbench shut down while the job ran."));
    }
    if (s.client) {
      if (isRemote()) s.client->detach();  // remote jobs keep running; stopRemoteWorkers() ends them
      else s.client->shutdown();
      s.killTimer->start(m_cancelGraceMs);
    }
  }
}

void WorkerPool::reattach(int slot, WorkerClient* c, const QJsonObject& hello) {
  Slot& s = m_slots[slot];
  s.detached = false;
  const QString jobId = s.jobId;
  auto it = m_jobs.find(jobId);
  if (it == m_jobs.end() || it->ended) {
    s.releaseJob();
    return;
  }
  bool known = false;
  for (const QJsonValue& j : hello.value("session").toObject().value("jobs").toArray())
    if (j.toObject().value("id").toInteger() == s.wireId) known = true;
  if (known && c->attachRequest(s.wireId, it->method)) {
    logJob(jobId, tr("Reconnected to %1; re-attached job %2.").arg(m_remote.host).arg(s.wireId));
    if (it->cancelRequested) {  // asked while the link was down
      c->cancel(s.wireId);
      s.killTimer->start(m_cancelGraceMs);
    }
    emit workerReconnected(slot);
    return;
  }
  const qint64 wire = s.wireId;
  s.releaseJob();
  endJob(jobId, false, {}, ErrorCode::worker_crashed,
         tr("Reconnected to %1, but its session worker (pid %2) does not know job %3: the worker was restarted "
            "meanwhile (see .razor/sessions/%4.log in the remote workspace).")
             .arg(m_remote.host)
             .arg(hello.value("pid").toInteger())
             .arg(wire)
             .arg(slotName(slot)));
  emit workerReconnected(slot);
}

void WorkerPool::adoptSessionJobs(int slot, WorkerClient* c, const QJsonObject& hello) {
  // Jobs an earlier workbench left in this session: the one still running becomes the slot's job; those that
  // ended while no workbench was connected are replayed (artifacts, logs, result) and shown as ended.
  Slot& s = m_slots[slot];
  for (const QJsonValue& v : hello.value("session").toObject().value("jobs").toArray()) {
    const QJsonObject sj = v.toObject();
    const QString state = sj.value("state").toString();
    const bool running = state == QLatin1String("running"), ended = state == QLatin1String("ended");
    if (!(running && s.jobId.isEmpty()) && !ended) continue;
    const qint64 wire = sj.value("id").toInteger();
    const QString method = sj.value("method").toString();
    if (!c->attachRequest(wire, method)) return;
    const QString id = nextJobId();
    Job j;
    j.id = id;
    j.method = method;
    m_jobs.insert(id, j);
    if (running) {
      s.jobId = id;
      s.wireId = wire;
    } else {
      s.replaying.insert(wire, id);
    }
    announceAdopted(id, slot, wire, method, running);
  }
}

void WorkerPool::announceAdopted(const QString& id, int slot, qint64 wire, const QString& method, bool running) {
  m_jobs[id].slot = slot;
  const QJsonObject params{{"adopted_from", m_remote.label()}, {"session_id", wire}};
  if (m_store) {
    m_store->recordSubmitted(id, method, params, QString());
    m_store->recordStarted(id, slot, m_slots[slot].pid);
  }
  emit jobSubmitted(id, method, params);
  emit jobStarted(id, slot);
  logJob(id, running ? tr("Adopted job %1 (%2), started earlier in session %3 on %4.")
                           .arg(wire)
                           .arg(method, slotName(slot), m_remote.host)
                     : tr("Job %1 (%2) of session %3 on %4 ended while no workbench was connected; here is what it "
                          "reported.")
                           .arg(wire)
                           .arg(method, slotName(slot), m_remote.host));
}

void WorkerPool::adoptServices(const QJsonObject& hello) {
  m_servicesAdopted = true;
  for (const QJsonValue& v : hello.value("session").toObject().value("others").toArray()) {
    const QString name = v.toObject().value("slot").toString();
    if (!name.startsWith(QLatin1String("svc-"))) continue;
    bool known = false;
    for (const Slot& sl : std::as_const(m_slots)) known = known || sl.session == name;
    if (known) continue;
    // A service slot for it; its job is announced when the session worker says what it runs (adoptServiceJob).
    Job j;
    j.id = nextJobId();
    j.adoptedService = true;
    m_jobs.insert(j.id, j);
    addSlot(false, QString(), j.id, name);
  }
}

void WorkerPool::adoptServiceJob(int slot, WorkerClient* c, const QJsonObject& hello) {
  Slot& s = m_slots[slot];
  const QString id = s.serviceJob;
  for (const QJsonValue& v : hello.value("session").toObject().value("jobs").toArray()) {
    const QJsonObject sj = v.toObject();
    if (sj.value("state").toString() != QLatin1String("running")) continue;
    const qint64 wire = sj.value("id").toInteger();
    const QString method = sj.value("method").toString();
    if (!c->attachRequest(wire, method)) break;
    m_jobs[id].method = method;
    m_jobs[id].adoptedService = false;
    s.jobId = id;
    s.wireId = wire;
    announceAdopted(id, slot, wire, method, true);
    return;
  }
  // Nothing runs there any more: end that idle session worker, quietly (nothing was announced).
  m_jobs.remove(id);
  s.givenUp = true;
  s.ready = false;
  c->shutdown();
}
