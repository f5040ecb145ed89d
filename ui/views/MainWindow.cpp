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

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  setWindowTitle(tr("Razor Workbench"));
  setObjectName(QStringLiteral("MainWindow"));
  m_tabs = new QTabWidget;
  m_tabs->setDocumentMode(true);
  m_modelView = new ModelView;
  m_heatmapView = new HeatmapView;
  m_allocation = new AllocationEditor;
  addView(QStringLiteral("model"), tr("Model"), m_modelView);
  addView(QStringLiteral("salience"), tr("Salience"), m_heatmapView);
  addView(QStringLiteral("allocation"), tr("Allocation"), m_allocation);
  m_runs = new RunsView;
  addView(QStringLiteral("runs"), tr("Runs"), m_runs);
#ifdef RAZOR_HAVE_COMPARISON_VIEW
  auto* cmp = new ComparisonView;
  cmp->loadCatalog(ResultsModel::bundledResultsDir());  // the seed's published runs, bundled
  m_comparison = cmp;
  addView(QStringLiteral("comparison"), tr("Comparison"), cmp);
  connect(cmp, &ComparisonView::messageAvailable, this, [this](const QString& t) { message(t, 5000); });
#endif
  m_methods = new MethodCompareView;
  addView(QStringLiteral("methods"), tr("Methods"), m_methods);
  connect(m_methods, &MethodCompareView::messageAvailable, this, [this](const QString& t) { message(t, 6000); });
  connect(m_methods, &MethodCompareView::jobResultReady, this, [this](const QString& path) {
#ifdef RAZOR_HAVE_REMOTE
    if (isRemote() && m_files) m_methodFetches.insert(m_files->fetch(path));  // opened once fetched
#endif
    Q_UNUSED(path);
  });
#ifdef RAZOR_HAVE_WORKER_VIEWS
  auto* gpu = new GpuPanel;
  m_gpuPanel = gpu;
  addView(QStringLiteral("gpu"), tr("GPU"), gpu);
  auto* jobs = new JobsDock(this);
  jobs->setObjectName(QStringLiteral("jobsDock"));
  m_jobsDock = jobs;
  addDockWidget(Qt::BottomDockWidgetArea, jobs);
  jobs->hide();  // shown once the worker pool runs (View > Jobs)
#endif
  setCentralWidget(m_tabs);
  m_statusModel = new QLabel(tr("no model"));
  statusBar()->addPermanentWidget(m_statusModel);
  m_statusRemote = new QLabel;
  m_statusRemote->setObjectName(QStringLiteral("remoteStatus"));
  m_statusRemote->hide();
  statusBar()->addPermanentWidget(m_statusRemote);
  buildMenus();
  resize(1280, 800);

  connect(m_heatmapView, &HeatmapView::sourceAvailable, this, [this](const QString& path) {
    message(tr("Loaded %1").arg(QFileInfo(path).fileName()), 4000);
    m_allocation->setStatistics(m_heatmapView->sources());
  });
  connect(m_heatmapView, &HeatmapView::loadFailed, this, [this](const QString&, const QString& msg) { message(msg); });
  connect(m_heatmapView, &HeatmapView::loadsFinished, this, &MainWindow::checkReady);
  connect(m_allocation, &AllocationEditor::saveRecipeRequested, this, &MainWindow::saveRecipeInteractive);
  connect(m_allocation, &AllocationEditor::allocateFailed, this, [this](const QString& m) { message(tr("allocate: %1").arg(m)); });
  // The tuning loop: Calibrate (Salience) -> the heatmap and the allocation editor get the new probe; Measure
  // (Allocation) -> a run in the Runs view; a run's recipe can be opened as the allocation again.
  connect(m_heatmapView, &HeatmapView::calibrationFinished, this, [this](const QString& probe, const QString& imatrix) {
    m_lastImatrix = imatrix;
    if (isRemote()) openRemoteStatistics(probe);
    else openStatistics(probe);
    message(tr("Calibrated: %1").arg(probe), 5000);
  });
  connect(m_heatmapView, &HeatmapView::calibrationFailed, this, [this](const QString& m) { message(tr("calibrate: %1").arg(m)); });
  connect(m_allocation, &AllocationEditor::measureFinished, this, [this](const QJsonObject& run) {
    m_runs->addRun(run);
    message(tr("Measured %1: KL mean %2").arg(run.value(QStringLiteral("name")).toString())
                .arg(run.value(QStringLiteral("kl_mean")).toDouble(), 0, 'g', 4), 6000);
  });
  connect(m_allocation, &AllocationEditor::measureFailed, this, [this](const QString& m) { message(tr("measure: %1").arg(m)); });
  connect(m_runs, &RunsView::openRecipeRequested, this, [this](const QJsonObject& recipe) {
    QString err;
    if (!m_allocation->setRecipeJson(recipe, &err)) message(tr("Run recipe: %1").arg(err));
    else showView(QStringLiteral("allocation"));
  });
  updateCalibrationFolder();
}

// Calibration outputs: beside the workspace file when there is one, else in the application's data folder; on a
// server, the session worker's working folder (the remote workspace).
void MainWindow::updateJobStore() {
#ifdef RAZOR_HAVE_WORKER_VIEWS
  if (!m_pool || isRemote() || m_workspacePath.isEmpty()) return;  // remote: the session workers keep the jobs
  const QString dir = QFileInfo(m_workspacePath).absolutePath();
  if (!m_store || m_store->workspaceDir() != dir) {
    m_store = new JobStore(dir, this);
    m_store->load();
  }
  m_pool->setJobStore(m_store);
#endif
}

void MainWindow::updateCalibrationFolder() {
  // compare-methods results: beside the workspace, else the application's data folder (the view's default), or
  // the server worker's working folder when remote.
  m_methods->setOutputFolder(!isRemote() && !m_workspacePath.isEmpty()
                                 ? QFileInfo(m_workspacePath).absolutePath() + QStringLiteral("/method-compare")
                                 : QString());
  if (isRemote()) m_heatmapView->setCalibrationFolder(QString());
  else if (!m_workspacePath.isEmpty())
    m_heatmapView->setCalibrationFolder(QFileInfo(m_workspacePath).absolutePath() + QStringLiteral("/calibration"));
  else
    m_heatmapView->setCalibrationFolder(QStandardPaths::writableLocation(QStandardPaths::AppLocalDataLocation) +
                                        QStringLiteral("/calibration"));
}

MainWindow::~MainWindow() = default;

// Parses and compiles the footprint off the GUI thread (a per-expert 122B inventory is several MB of JSON and
// ~37,600 tensors to classify against the recipe's regexes). `json` from `razor inspect --json`, or `object`,
// the result of the worker's inspect job (the same document), serialised on the worker thread too.
void MainWindow::parseInventory(const QByteArray& json, const QJsonObject& object, bool fromObject) {
  struct Parsed {
    ModelInventory inv;
    FootprintModel fp;
    QString error;
  };
  const quint64 gen = m_inventoryGeneration;
  const quint64 recipeGen = m_allocation->recipeGeneration();
  const razor::recipe recipe = m_allocation->footprint().recipe();
  auto* watcher = new QFutureWatcher<Parsed>(this);
  QPointer<MainWindow> self(this);
  connect(watcher, &QFutureWatcher<Parsed>::finished, this, [self, watcher, gen, recipeGen] {
    watcher->deleteLater();
    if (!self) return;
    --self->m_pendingInventory;
    if (gen == self->m_inventoryGeneration) {  // else a newer model was asked for meanwhile
      const Parsed r = watcher->result();
      if (r.error.isEmpty()) {
        self->applyInventory(r.inv, &r.fp, recipeGen);
      } else {
        self->message(tr("Inventory: %1").arg(r.error));
        emit self->modelFailed(r.error);
      }
    }
    self->checkReady();
  });
  watcher->setFuture(QtConcurrent::run([json, object, fromObject, recipe] {
    Parsed p;
    const QByteArray text = fromObject ? QJsonDocument(object).toJson(QJsonDocument::Compact) : json;
    p.inv = ModelInventory::fromJson(text, &p.error);
    if (p.error.isEmpty()) {
      p.fp.setRecipe(recipe);
      p.fp.setInventory(p.inv);
    }
    return p;
  }));
}

bool MainWindow::openGLUsable() { return HeatmapGLWidget::openGLUsable(); }

void MainWindow::addView(const QString& id, const QString& title, QWidget* w) {
  w->setProperty("razorViewId", id);
  m_tabs->addTab(w, title);
}

QStringList MainWindow::viewIds() const {
  QStringList out;
  for (int i = 0; i < m_tabs->count(); ++i) out << m_tabs->widget(i)->property("razorViewId").toString();
  return out;
}

bool MainWindow::showView(const QString& id) {
  for (int i = 0; i < m_tabs->count(); ++i)
    if (m_tabs->widget(i)->property("razorViewId").toString() == id) {
      m_tabs->setCurrentIndex(i);
      return true;
    }
  return false;
}

void MainWindow::buildMenus() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  file->addAction(tr("&New workspace"), QKeySequence::New, this, &MainWindow::newWorkspace);
  file->addAction(tr("&Open workspace..."), QKeySequence::Open, this, [this] {
    const QString f = QFileDialog::getOpenFileName(this, tr("Open workspace"), QString(),
                                                   tr("Razor workspaces (*.razorproj);;All files (*)"));
    QString err;
    if (!f.isEmpty() && !openWorkspace(f, &err)) QMessageBox::warning(this, tr("Open workspace"), err);
  });
  auto saveAs = [this] {
    QString f = QFileDialog::getSaveFileName(this, tr("Save workspace"), m_workspacePath,
                                             tr("Razor workspaces (*.razorproj)"));
    if (f.isEmpty()) return;
    if (QFileInfo(f).suffix().isEmpty()) f += QStringLiteral(".razorproj");
    QString err;
    if (!saveWorkspace(f, &err)) QMessageBox::warning(this, tr("Save workspace"), err);
  };
  file->addAction(tr("&Save workspace"), QKeySequence::Save, this, [this, saveAs] {
    if (m_workspacePath.isEmpty()) return saveAs();
    QString err;
    if (!saveWorkspace(m_workspacePath, &err)) QMessageBox::warning(this, tr("Save workspace"), err);
  });
  file->addAction(tr("Save workspace &as..."), QKeySequence::SaveAs, this, saveAs);
  file->addSeparator();
  file->addAction(tr("Open &model..."), QKeySequence(tr("Ctrl+M")), this, [this] {
    if (isRemote()) {  // the model lives on the server: its path there
      bool ok = false;
      const QString d = QInputDialog::getText(
          this, tr("Open model on %1").arg(m_remote.host),
          tr("Model folder on the server (config.json + *.safetensors;\nrelative paths are below %1):")
              .arg(m_remote.workspace),
          QLineEdit::Normal, m_modelPath, &ok);
      if (ok && !d.trimmed().isEmpty()) openModel(d.trimmed());
      return;
    }
    const QString d = QFileDialog::getExistingDirectory(this, tr("Open model (config.json + *.safetensors)"));
    if (!d.isEmpty()) openModel(d);
  });
  file->addAction(tr("Open s&tatistics..."), QKeySequence(tr("Ctrl+T")), this, [this] {
    const QStringList fs = QFileDialog::getOpenFileNames(
        this, tr("Open statistics"), QString(),
        tr("Statistics (*.h5 *.hdf5 *.gguf *.dat *.json);;Probe HDF5 (*.h5 *.hdf5);;GGUF imatrix (*.gguf *.dat);;"
           "Quant summary (razor_quant_summary.json)"));
    for (const auto& f : fs) openStatistics(f);
  });
  file->addAction(tr("Open &recipe..."), this, [this] {
    const QString f = QFileDialog::getOpenFileName(this, tr("Open recipe"), QString(), tr("Recipes (*.json)"));
    QString err;
    if (f.isEmpty()) return;
    if (!m_allocation->loadRecipe(f, &err)) QMessageBox::warning(this, tr("Open recipe"), err);
    else if (!m_recipes.contains(f)) m_recipes << f;
  });
  file->addAction(tr("Save r&ecipe..."), this, &MainWindow::saveRecipeInteractive);
#ifdef RAZOR_HAVE_WORKER_VIEWS
  file->addAction(tr("E&xport GGUF..."), this, &MainWindow::openExportWizard);
#endif
#ifdef RAZOR_HAVE_REMOTE
  file->addAction(tr("E&valuate..."), this, &MainWindow::openEvaluateDialog);
#endif
#ifdef RAZOR_HAVE_WORKER_VIEWS
  file->addAction(tr("Re&cover..."), this, &MainWindow::openRecoverDialog);
#endif
  file->addSeparator();
  file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);

#ifdef RAZOR_HAVE_REMOTE
  QMenu* remote = menuBar()->addMenu(tr("&Remote"));
  remote->addAction(tr("&Connect to GPU server..."), this, &MainWindow::openRemoteDialog);
  m_actWorkLocally = remote->addAction(tr("Work &locally"), this, &MainWindow::workLocally);
  m_actStopRemote = remote->addAction(tr("&Stop remote workers"), this, [this] {
    if (QMessageBox::question(this, tr("Stop remote workers"),
                              tr("Stop the session workers on %1? Jobs running there are cancelled.")
                                  .arg(m_remote.host)) == QMessageBox::Yes)
      stopRemoteWorkers();
  });
  remote->addSeparator();
  m_actRemoteStats = remote->addAction(tr("Open statistics on the &server..."), this, [this] {
    bool ok = false;
    const QString f = QInputDialog::getText(
        this, tr("Open statistics on %1").arg(m_remote.host),
        tr("A probe .h5, GGUF imatrix or razor_quant_summary.json on the server\n(relative paths are below %1):")
            .arg(m_remote.workspace),
        QLineEdit::Normal, QString(), &ok);
    if (ok && !f.trimmed().isEmpty()) openRemoteStatistics(f.trimmed());
  });
  remote->addAction(tr("Submit to S&lurm..."), this, [this] {  // docs/slurm.md
    if (startWorkers(); m_pool) SlurmDialog::open(m_pool, isRemote() ? m_remote.host : tr("this machine"), m_modelPath, this);
  });
  updateRemoteState();
#endif

  QMenu* edit = menuBar()->addMenu(tr("&Edit"));
  QAction* undo = m_allocation->undoStack()->createUndoAction(this, tr("&Undo"));
  undo->setShortcut(QKeySequence::Undo);
  QAction* redo = m_allocation->undoStack()->createRedoAction(this, tr("&Redo"));
  redo->setShortcut(QKeySequence::Redo);
  edit->addAction(undo);
  edit->addAction(redo);

  QMenu* view = menuBar()->addMenu(tr("&View"));
  for (int i = 0; i < m_tabs->count(); ++i) {
    const QString id = m_tabs->widget(i)->property("razorViewId").toString();
    view->addAction(m_tabs->tabText(i), this, [this, id] { showView(id); });
  }
#ifdef RAZOR_HAVE_WORKER_VIEWS
  if (auto* dock = qobject_cast<QDockWidget*>(m_jobsDock)) view->addAction(dock->toggleViewAction());
#endif
}

void MainWindow::message(const QString& text, int ms) { statusBar()->showMessage(text, ms); }

void MainWindow::setRazorProgram(const QString& program) { m_razorProgram = program; }

void MainWindow::openModel(const QString& dir) {
  // The pool's worker inventories the model (result = `razor inspect --json`); the pool starts on the first open.
  // Keyed, so a newer open supersedes the older job; the superseded one's failure no longer matches m_inspectJob.
  // Remote: a server path.
  startWorkers();
  m_modelPath = isRemote() ? QDir::cleanPath(dir) : QFileInfo(dir).absoluteFilePath();
  ++m_inventoryGeneration;
  if (m_inspectJob.isEmpty()) ++m_pendingInventory;  // else its count is reused
  m_inspectJob.clear();
  if (!m_pool) {
    --m_pendingInventory;
    message(tr("Opening the model failed: no worker pool in this build"));
    emit modelFailed(tr("no worker pool"));
    checkReady();
    return;
  }
  m_statusModel->setText(isRemote() ? tr("inspecting %1 on %2 ...").arg(QFileInfo(m_modelPath).fileName(), m_remote.host)
                                    : tr("inspecting %1 ...").arg(QFileInfo(m_modelPath).fileName()));
  message(isRemote() ? tr("inspect %1 on %2").arg(m_modelPath, m_remote.host) : tr("inspect %1").arg(m_modelPath));
  WorkerPool::JobOptions opt;
  opt.key = QStringLiteral("mainwindow.inspect");
  const QJsonObject params{{QStringLiteral("model"), m_modelPath}, {QStringLiteral("tensors"), true}};
  m_inspectJob = m_pool->submit(QStringLiteral("inspect"), params, opt);
}

void MainWindow::applyInventory(const ModelInventory& inv, const FootprintModel* compiled, quint64 recipeGeneration) {
  m_inventory = inv;
  m_modelView->setInventory(inv);
  if (compiled)
    m_allocation->setInventory(inv, *compiled, recipeGeneration);
  else
    m_allocation->setInventory(inv);
  m_allocation->setModelPath(m_modelPath);
  m_heatmapView->setModelPath(m_modelPath);
  m_methods->setModelPath(m_modelPath);
  m_statusModel->setText(QStringLiteral("%1 \u2014 %2 layers, %3 experts (%4 active), %5 B params")
                             .arg(QFileInfo(m_modelPath).fileName())
                             .arg(inv.layers)
                             .arg(inv.expertsTotal)
                             .arg(inv.expertsActive)
                             .arg(double(inv.paramsTotal) / 1e9, 0, 'f', 3));
  setWindowTitle(tr("Razor Workbench \u2014 %1").arg(QFileInfo(m_modelPath).fileName()));
  if (inv.stalePartials.isEmpty())
    message(tr("Model opened: %1 tensors").arg(inv.tensors.size()), 4000);
  else  // what razor processes that were killed left behind: worth the user's attention, and their disk space
    message(tr("Model opened: %1 tensors. %n stale partial output(s) beside it, left by razor processes that no "
               "longer run (razor clean-partials removes them): %2",
               nullptr, int(inv.stalePartials.size()))
                .arg(inv.tensors.size())
                .arg(inv.stalePartials.join(QStringLiteral(", "))),
            30000);
  emit modelAvailable(m_modelPath);
}

void MainWindow::openStatistics(const QString& path) { m_heatmapView->loadFile(path); }

bool MainWindow::isBusy() const {
  return m_pendingInventory > 0 || m_heatmapView->pendingLoads() > 0 || !m_statisticsFetches.isEmpty();
}

void MainWindow::checkReady() {
  if (isBusy()) return;
  if (m_restorePending) {
    m_restorePending = false;
    const Workspace& w = m_restore;
    if (!w.activeRecipe.isEmpty()) {
      QString err;
      if (!m_allocation->setRecipeJson(w.activeRecipe, &err)) message(tr("Workspace recipe: %1").arg(err));
    }
    m_modelView->restoreState(w.viewState.value(QStringLiteral("model")).toObject());
    m_heatmapView->restoreState(w.viewState.value(QStringLiteral("salience")).toObject());
    m_allocation->restoreState(w.viewState.value(QStringLiteral("allocation")).toObject());
    m_runs->restoreState(w.viewState.value(QStringLiteral("runs")).toObject());
    m_methods->restoreState(w.viewState.value(QStringLiteral("methods")).toObject());
    if (!w.currentView.isEmpty()) showView(w.currentView);
  }
  emit workspaceReady();
}

void MainWindow::newWorkspace() {
  m_workspacePath.clear();
  m_modelPath.clear();
  m_recipes.clear();
  m_jobsFolder.clear();
  m_resultFiles.clear();
  m_inventory = ModelInventory();
  ++m_inventoryGeneration;
#ifdef RAZOR_HAVE_WORKER_VIEWS
  if (!m_inspectJob.isEmpty()) {
    const QString id = m_inspectJob;
    m_inspectJob.clear();
    if (m_pool) m_pool->cancel(id);
  }
#endif
  m_statisticsFetches.clear();  // answers still coming are dropped
  m_serverPathOf.clear();
  m_pendingInventory = 0;
  m_modelView->clear();
  m_heatmapView->clear();
  m_allocation->setInventory(ModelInventory());
  m_allocation->loadRecipe(QStringLiteral("seed-default"));
  m_heatmapView->setModelPath(QString());
  m_methods->setModelPath(QString());
  m_methods->restoreState(QJsonObject());
  m_runs->restoreState(QJsonObject());
  m_lastImatrix.clear();
  m_statusModel->setText(tr("no model"));
  setWindowTitle(tr("Razor Workbench"));
}

Workspace MainWindow::currentWorkspace() const {
  Workspace w;
  w.modelPath = m_modelPath;
  w.recipes = m_recipes;
  w.activeRecipe = m_allocation->recipeJson();
  w.statistics = m_heatmapView->sourcePaths();
  if (isRemote()) {  // the server's paths, so that reopening fetches them again (into the cache)
    w.remote = m_remote.toJson();
    for (QString& p : w.statistics) p = m_serverPathOf.value(p, p);
  }
  w.jobsFolder = m_jobsFolder;
  w.resultFiles = m_resultFiles;
  w.openViews = viewIds();
  w.currentView = m_tabs->currentWidget() ? m_tabs->currentWidget()->property("razorViewId").toString() : QString();
  w.viewState = QJsonObject{{QStringLiteral("model"), m_modelView->saveState()},
                            {QStringLiteral("salience"), m_heatmapView->saveState()},
                            {QStringLiteral("allocation"), m_allocation->saveState()},
                            {QStringLiteral("runs"), m_runs->saveState()},
                            {QStringLiteral("methods"), m_methods->saveState()}};
  w.windowGeometry = saveGeometry();
  w.windowState = saveState();
  return w;
}

bool MainWindow::saveWorkspace(const QString& path, QString* error) {
  const Workspace w = currentWorkspace();
  if (!w.save(path, error)) return false;
  m_workspacePath = QFileInfo(path).absoluteFilePath();
  updateCalibrationFolder();
  updateJobStore();
  message(tr("Workspace saved: %1").arg(path), 4000);
  return true;
}

bool MainWindow::openWorkspace(const QString& path, QString* error) {
  Workspace w;
  if (!Workspace::load(path, &w, error)) return false;
  newWorkspace();
  m_workspacePath = QFileInfo(path).absoluteFilePath();
  updateCalibrationFolder();
  updateJobStore();
  m_recipes = w.recipes;
  m_jobsFolder = w.jobsFolder;
  m_resultFiles = w.resultFiles;
  if (!w.windowGeometry.isEmpty()) restoreGeometry(w.windowGeometry);
  if (!w.windowState.isEmpty()) restoreState(w.windowState);
  m_restore = w;
  m_restorePending = true;
#ifdef RAZOR_HAVE_REMOTE
  // A workspace of a GPU server reconnects to it; a local one works locally.
  const RemoteHost host = RemoteHost::fromJson(w.remote);
  if (host.isValid() && !(isRemote() && m_remote.toJson() == host.toJson())) connectRemote(host);
  else if (!host.isValid() && isRemote()) workLocally();
#endif
  if (!w.modelPath.isEmpty()) openModel(w.modelPath);
  for (const auto& s : w.statistics) {
    if (isRemote()) openRemoteStatistics(s);
    else openStatistics(s);
  }
  QTimer::singleShot(0, this, &MainWindow::checkReady);  // nothing to load: restore at once
  return true;
}

void MainWindow::saveRecipeInteractive() {
  QString f = QFileDialog::getSaveFileName(this, tr("Save recipe"), QString(), tr("Recipes (*.json)"));
  if (f.isEmpty()) return;
  if (QFileInfo(f).suffix().isEmpty()) f += QStringLiteral(".json");
  QString err;
  if (!m_allocation->saveRecipe(f, &err)) {
    QMessageBox::warning(this, tr("Save recipe"), err);
    return;
  }
  if (!m_recipes.contains(f)) m_recipes << f;
  message(tr("Recipe saved: %1").arg(f), 4000);
}

QStringList MainWindow::screenshotViews(const QString& dir) {
  QDir().mkpath(dir);
  QStringList written;
  const int keep = m_tabs->currentIndex();
  for (int i = 0; i < m_tabs->count(); ++i) {
    m_tabs->setCurrentIndex(i);
    QApplication::processEvents();
    const QString id = m_tabs->widget(i)->property("razorViewId").toString();
    const QString file = QDir(dir).filePath(id + QStringLiteral(".png"));
    grab();  // the first frame of a GL view pays for shader compilation; the HUD shows the last frame's time
    if (grab().save(file)) written << file;
  }
  m_tabs->setCurrentIndex(keep);
  return written;
}

void MainWindow::openJobOutput(const QString& path) {
  if (!isRemote()) {  // what the dock does on its own: the folder in the file manager
    const QFileInfo fi(path);
    QDesktopServices::openUrl(QUrl::fromLocalFile(fi.isDir() ? fi.absoluteFilePath() : fi.absolutePath()));
    return;
  }
#ifdef RAZOR_HAVE_REMOTE
  const QString kind = m_artifactKinds.value(path);
  const QString name = QFileInfo(path).fileName().toLower();
  const bool statistics = kind == QLatin1String("h5") || kind == QLatin1String("summary") ||
                          name.endsWith(QLatin1String(".h5")) || name.endsWith(QLatin1String(".hdf5")) ||
                          name == QLatin1String("razor_quant_summary.json") || name.endsWith(QLatin1String(".imatrix"));
  if (statistics) {
    openRemoteStatistics(path);
  } else if (kind == QLatin1String("file") || name.endsWith(QLatin1String(".json"))) {
    message(tr("Fetching %1 from %2 ...").arg(path, m_remote.host));
    m_revealFetches.insert(m_files->fetch(path));
  } else {  // weights and checkpoints stay on the server
    message(tr("%1 is on %2 (weights are not copied to this machine).").arg(path, m_remote.host), 10000);
  }
#endif
}

void MainWindow::openExportWizard() {
#ifdef RAZOR_HAVE_WORKER_VIEWS
  auto* wiz = new ExportWizard(this);
  wiz->setAttribute(Qt::WA_DeleteOnClose);
  if (!m_razorProgram.isEmpty()) wiz->setRazorProgram(m_razorProgram);
  if (!m_modelPath.isEmpty()) wiz->setModelDir(m_modelPath);
  if (m_pool) wiz->setWorkerPool(m_pool);
  if (isRemote()) wiz->setRemote(m_remote);
  if (!m_lastImatrix.isEmpty()) wiz->setImatrixPath(m_lastImatrix);
  wiz->show();
#endif
}

void MainWindow::closeEvent(QCloseEvent* e) {
  if (m_pool) m_pool->shutdown();
  e->accept();
}

void MainWindow::openEvaluateDialog() {
#ifdef RAZOR_HAVE_REMOTE
  startWorkers();
  if (!m_pool) return;
  auto* d = new EvaluateDialog(m_pool, isRemote() ? m_remote.host : tr("this machine"), this);
  d->setAttribute(Qt::WA_DeleteOnClose);
  if (!m_modelPath.isEmpty()) d->setModel(m_modelPath);
  connect(d, &EvaluateDialog::resultAvailable, this, [this](const QString& path) {
    if (isRemote() && m_files) m_resultFetches.insert(m_files->fetch(path));  // drawn here: fetch it
    else addResultFile(path);
  });
  d->show();
#endif
}

QDialog* MainWindow::openRecoverDialog() {
#ifdef RAZOR_HAVE_WORKER_VIEWS
  startWorkers();
  if (!m_pool) return nullptr;
  auto* d = new RecoverDialog(m_pool, isRemote() ? m_remote.host : tr("this machine"), this);
  // Closed while its job runs, the dialog stays (hidden) until the job ends, so that the runs still arrive.
  connect(d, &QDialog::finished, d, [d] {
    if (!d->run()->isRunning()) d->deleteLater();
  });
  auto closedAndDone = [d] {
    if (!d->isVisible()) d->deleteLater();
  };
  connect(d->run(), &RecoverRun::runFinished, d, closedAndDone);
  connect(d->run(), &RecoverRun::runFailed, d, closedAndDone);
  // The open model is the usual teacher (the BF16 source the student was quantized from).
  if (!m_modelPath.isEmpty()) d->presetValue(QStringLiteral("teacher"), m_modelPath);
  connect(d, &RecoverDialog::runsAvailable, this, [this](const QJsonArray& runs) {
    for (const QJsonValue& r : runs) m_runs->addRun(r.toObject());
    if (runs.size() == 2) m_runs->compare(m_runs->runCount() - 2, m_runs->runCount() - 1);  // before | after
    showView(QStringLiteral("runs"));
    message(tr("Recovery measured: %n run(s) added to the Runs view", nullptr, int(runs.size())), 6000);
  });
  d->show();
  return d;
#else
  return nullptr;
#endif
}

bool MainWindow::addResultFile(const QString& path, QString* error) {
#ifdef RAZOR_HAVE_COMPARISON_VIEW
  auto* cmp = static_cast<ComparisonView*>(m_comparison);
  const QStringList before = cmp->model()->runs();
  QString err;
  if (!cmp->model()->loadFile(path, &err)) {
    message(tr("Result %1: %2").arg(path, err));
    if (error) *error = err;
    return false;
  }
  for (const QString& run : cmp->model()->runs())
    if (!before.contains(run)) cmp->model()->addRunColumn(run);
  if (!m_resultFiles.contains(path)) m_resultFiles << path;
  showView(QStringLiteral("comparison"));
  message(tr("Result added to the comparison: %1").arg(QFileInfo(path).fileName()), 5000);
  return true;
#else
  if (error) *error = tr("this build has no comparison view");
  Q_UNUSED(path);
  return false;
#endif
}
