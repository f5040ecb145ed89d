// The main window's workers: the local pool, a GPU server's (connect, work locally, status), the remote files.
#include "MainWindow.h"

#include <QApplication>
#include <QCloseEvent>
#include <QDesktopServices>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QInputDialog>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QStatusBar>
#include <QTabWidget>
#include <QTimer>
#include <QUndoStack>
#include <QUrl>
#include <QtConcurrent/QtConcurrentRun>

#include "AllocationEditor.h"
#include "MainWindowParts.h"

void MainWindow::startWorkers() {
#ifdef RAZOR_HAVE_WORKER_VIEWS
  if (m_pool) return;
  createPool();
#endif
}

void MainWindow::createPool() {
#ifdef RAZOR_HAVE_WORKER_VIEWS
  m_pool = new WorkerPool(this);
  m_pool->setProgram(m_razorProgram.isEmpty() ? WorkerPool::defaultProgram() : m_razorProgram);
  if (m_remote.isValid()) m_pool->setRemote(m_remote);
  auto* gpu = static_cast<GpuPanel*>(m_gpuPanel);
  // Remote or local, the panels take the same signals: the GPU telemetry of the pool's CPU worker (on the
  // server when remote) and the jobs' lifecycle.
  QPointer<WorkerPool> poolRef(m_pool);
  gpu->setProcessLabeler([poolRef](qint64 pid) { return poolRef ? poolRef->runningJobOfPid(pid) : QString(); });
  connect(m_pool, &WorkerPool::gpuSampleAvailable, gpu, &GpuPanel::addSample);
  connect(m_pool, &WorkerPool::workerLogAvailable, gpu,
          [gpu](int, const QString& line) { gpu->handleWorkerLog(QString(), line); });  // "GPU telemetry off: why"
  connect(m_pool, &WorkerPool::gpuSampleAvailable, this, [this](const QJsonObject& sample) {
    // The heatmap HUD shows the first GPU of the latest telemetry sample.
    const QJsonArray devs = sample.value(QStringLiteral("devices")).toArray();
    GpuFigures g;
    if (devs.isEmpty()) {
      g.note = tr("no GPU in this worker");
    } else {
      const QJsonObject d = devs.first().toObject();
      g.valid = true;
      g.name = d.value(QStringLiteral("name")).toString();
      g.utilPercent = d.value(QStringLiteral("util_gpu")).toDouble();
      g.memUsedMiB = d.value(QStringLiteral("mem_used")).toDouble() / 1048576.0;
      g.memTotalMiB = d.value(QStringLiteral("mem_total")).toDouble() / 1048576.0;
      g.temperatureC = d.value(QStringLiteral("temp_c")).toDouble();
      // The running jobs' own memory on this GPU (their workers' processes).
      QStringList jobs;
      for (const auto& pv : d.value(QStringLiteral("procs")).toArray()) {
        const QJsonObject p = pv.toObject();
        const QString job = m_pool ? m_pool->runningJobOfPid(qint64(p.value(QStringLiteral("pid")).toDouble())) : QString();
        if (!job.isEmpty())
          jobs << QStringLiteral("%1: %2 MiB").arg(job).arg(p.value(QStringLiteral("mem_used")).toDouble() / 1048576.0, 0, 'f', 0);
      }
      g.jobLine = jobs.join(QStringLiteral(", "));
    }
    m_heatmapView->setGpuFigures(g);
  });
  connect(m_pool, &WorkerPool::workerFailed, this, [this](int, const QString& msg) { message(tr("worker: %1").arg(msg), 8000); });
  // The model being opened: the pool's inspect job.
  connect(m_pool, &WorkerPool::jobFinished, this, [this](const QString& id, const QJsonObject& result) {
    if (id.isEmpty() || id != m_inspectJob) return;
    m_inspectJob.clear();
    parseInventory(QByteArray(), result, true);
  });
  connect(m_pool, &WorkerPool::jobFailed, this, [this](const QString& id, const QString&, const QString& msg) {
    if (id.isEmpty() || id != m_inspectJob) return;  // superseded ones no longer match
    m_inspectJob.clear();
    --m_pendingInventory;
    message(tr("Opening the model failed: %1").arg(msg));
    m_statusModel->setText(tr("no model"));
    emit modelFailed(msg);
    checkReady();
  });
  if (m_remote.isValid()) {
    connect(m_pool, &WorkerPool::jobArtifactAvailable, this, [this](const QString&, const QJsonObject& a) {
      const QString path = a.value(QStringLiteral("path")).toString();
      if (!path.isEmpty()) m_artifactKinds.insert(path, a.value(QStringLiteral("kind")).toString());
    });
    connect(m_pool, &WorkerPool::workerConnectionLost, this, [this](int slot, const QString& msg) {
      m_lostSlots.insert(slot);
      message(tr("Link to %1 lost (%2): %3 Reconnecting...")
                  .arg(m_remote.host, slot == 0 ? tr("CPU worker") : tr("GPU %1 worker").arg(slot - 1), msg),
              10000);
      updateRemoteState();
    });
    connect(m_pool, &WorkerPool::workerReconnected, this, [this](int slot) {
      m_lostSlots.remove(slot);
      message(tr("Reconnected to %1 (%2).")
                  .arg(m_remote.host, slot == 0 ? tr("CPU worker") : tr("GPU %1 worker").arg(slot - 1)),
              6000);
      updateRemoteState();
    });
  }
  m_allocation->setWorkerPool(m_pool);
  m_heatmapView->setWorkerPool(m_pool);
  m_methods->setRemote(m_remote.isValid());
  m_methods->setWorkerPool(m_pool);
  updateJobStore();
  if (auto* jobs = qobject_cast<JobsDock*>(m_jobsDock)) {
    jobs->attachPool(m_pool);
    jobs->show();
    resizeDocks({jobs}, {170}, Qt::Vertical);  // the views keep most of the height
  }
  m_pool->start();
#endif
}

void MainWindow::retirePool() {
#ifdef RAZOR_HAVE_WORKER_VIEWS
  if (!m_pool) return;
  WorkerPool* old = m_pool;
  m_pool = nullptr;
  // Its running and queued jobs end now (a remote pool only disconnects: the jobs go on on the server), and
  // the model being inspected through it fails through the handler above. Then nothing it says reaches us.
  m_allocation->setWorkerPool(nullptr);
  m_heatmapView->setWorkerPool(nullptr);
  m_methods->setWorkerPool(nullptr);
  old->shutdown();
  old->disconnect();
  QTimer::singleShot(old->cancelGrace() + 2000, old, &QObject::deleteLater);  // after its workers' grace
  m_lostSlots.clear();
  m_artifactKinds.clear();
  static_cast<GpuPanel*>(m_gpuPanel)->clear();
#endif
}

void MainWindow::connectRemote(const RemoteHost& host) {
#ifdef RAZOR_HAVE_REMOTE
  if (!host.isValid()) return;
  retirePool();
  m_remote = host;
  if (!m_files) {
    m_files = new RemoteFiles(this);
    connect(m_files, &RemoteFiles::fetched, this,
            [this](int id, const QString& remotePath, const QString& localPath, bool fromCache) {
              if (m_statisticsFetches.remove(id)) {
                message(tr("%1 from %2%3").arg(QFileInfo(remotePath).fileName(), m_remote.host,
                                               fromCache ? tr(" (cached)") : QString()),
                        4000);
                m_serverPathOf.insert(localPath, remotePath);
                openStatistics(localPath);
                checkReady();
              } else if (m_revealFetches.remove(id)) {
                QDesktopServices::openUrl(QUrl::fromLocalFile(QFileInfo(localPath).absolutePath()));
              } else if (m_resultFetches.remove(id)) {
                addResultFile(localPath);
              } else if (m_methodFetches.remove(id)) {
                m_methods->loadFile(localPath);
              }
            });
    connect(m_files, &RemoteFiles::fetchFailed, this, [this](int id, const QString& remotePath, const QString& msg) {
      const bool stats = m_statisticsFetches.remove(id);
      if (!stats && !m_revealFetches.remove(id) && !m_resultFetches.remove(id) && !m_methodFetches.remove(id)) return;
      message(tr("Fetching %1 from %2 failed: %3").arg(remotePath, m_remote.host, msg));
      if (stats) checkReady();
    });
  }
  m_files->setHost(host);
  createPool();
  if (auto* jobs = qobject_cast<JobsDock*>(m_jobsDock))
    connect(jobs, &JobsDock::outputOpenRequested, this, &MainWindow::openJobOutput, Qt::UniqueConnection);
  updateRemoteState();
  message(tr("Connecting to %1 ...").arg(host.label()), 6000);
#else
  Q_UNUSED(host);
#endif
}

void MainWindow::workLocally() {
#ifdef RAZOR_HAVE_REMOTE
  if (!isRemote()) return;
  retirePool();
  m_remote = RemoteHost();
  if (auto* jobs = qobject_cast<JobsDock*>(m_jobsDock))
    disconnect(jobs, &JobsDock::outputOpenRequested, this, &MainWindow::openJobOutput);  // the dock opens folders
  createPool();
  updateRemoteState();
  message(tr("Working locally."), 4000);
#endif
}

void MainWindow::stopRemoteWorkers() {
#ifdef RAZOR_HAVE_REMOTE
  if (!isRemote() || !m_pool) return;
  m_pool->stopRemoteWorkers();
  message(tr("Asked the session workers on %1 to exit.").arg(m_remote.host), 6000);
#endif
}

QString MainWindow::remoteStatusText() const { return isRemote() ? m_statusRemote->text() : QString(); }

void MainWindow::updateRemoteState() {
  const bool remote = isRemote();
  if (m_actWorkLocally) m_actWorkLocally->setEnabled(remote);
  if (m_actStopRemote) m_actStopRemote->setEnabled(remote);
  if (m_actRemoteStats) m_actRemoteStats->setEnabled(remote);
  QString text, note;
  if (remote) {
    text = tr("Remote: %1").arg(m_remote.label());
    if (!m_lostSlots.isEmpty()) {
      note = tr("link lost, reconnecting");
      text += QStringLiteral(" \u2014 ") + note;
    }
  }
  m_statusRemote->setText(text);
  m_statusRemote->setStyleSheet(m_lostSlots.isEmpty() ? QString() : QStringLiteral("color: #b3261e;"));
  m_statusRemote->setVisible(remote);
  updateCalibrationFolder();
#ifdef RAZOR_HAVE_REMOTE
  m_allocation->setRemote(remote ? m_remote : RemoteHost(), remote ? m_files : nullptr,
                          [this](const QString& local) { return m_serverPathOf.value(local, local); });
#endif
#ifdef RAZOR_HAVE_WORKER_VIEWS
  static_cast<GpuPanel*>(m_gpuPanel)->setHostLabel(remote ? m_remote.host : QString());
  if (auto* jobs = qobject_cast<JobsDock*>(m_jobsDock)) {
    jobs->setHostLabel(remote ? m_remote.label() : QString());
    jobs->setConnectionNote(note);
  }
#endif
}

void MainWindow::openRemoteDialog() {
#ifdef RAZOR_HAVE_REMOTE
  auto* dlg = new RemoteDialog(this);
  dlg->setAttribute(Qt::WA_DeleteOnClose);
  if (isRemote()) dlg->setHost(m_remote);
  connect(dlg, &QDialog::accepted, this, [this, dlg] { connectRemote(dlg->host()); });
  dlg->open();  // window-modal, returns at once
#endif
}

void MainWindow::openRemoteStatistics(const QString& serverPath) {
#ifdef RAZOR_HAVE_REMOTE
  if (!isRemote() || !m_files) {
    openStatistics(serverPath);
    return;
  }
  message(tr("Fetching %1 from %2 ...").arg(serverPath, m_remote.host));
  m_statisticsFetches.insert(m_files->fetch(serverPath));
#else
  openStatistics(serverPath);
#endif
}
