// The workbench's main window: a workspace (Workspace, *.razorproj) of one model, its recipes, statistics files
// and views, reopened as it was; views as tabs (Model, Salience, Allocation, Runs, Comparison when present, Methods).
//
// Nothing heavy runs on the GUI thread: the inventory comes from the worker pool's `inspect` job (the pool starts
// on the first open) and is parsed on a worker thread; statistics files load through HeatmapView's QtConcurrent path.
// Every result returns through a QPointer-guarded queued callback that drops answers to superseded requests.
// workspaceReady() is emitted whenever nothing is pending any more (used by --screenshot and the tests).
//
// Remote (Remote menu, RemoteDialog, docs/remote.md): connectRemote() rebuilds the worker pool on a GPU server
// (WorkerPool::setRemote). Then a model is a *server* path, inventoried by the pool's `inspect` job (the same
// razor.inventory/1 JSON, parsed the same way), and statistics files on the server (typed paths, or probe /
// summary artifacts of jobs opened from the jobs dock) are fetched by RemoteFiles into a local cache and opened
// from there. The GPU panel and the jobs dock take the remote pool's signals exactly as a local pool's.
#pragma once
#include <QHash>
#include <QJsonObject>
#include <QMainWindow>
#include <QPointer>
#include <QSet>

#include "ModelInventory.h"
#include "RemoteHost.h"
#include "Workspace.h"

class QDialog;
class QLabel;
class QTabWidget;
class AllocationEditor;
class FootprintModel;
class HeatmapView;
class JobStore;
class MethodCompareView;
class ModelView;
class QAction;
class RemoteFiles;
class RunsView;
class WorkerPool;

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  void setRazorProgram(const QString& program);
  // Starts the `razor worker` pool (GPU telemetry, jobs dock, GGUF export) when WorkerPool is part of this
  // build; the application calls it, tests normally do not.
  void startWorkers();
  WorkerPool* workerPool() const { return m_pool; }
  void openModel(const QString& dir);
  void openStatistics(const QString& path);  // a local file

  // ---- remote GPU server --------------------------------------------------------------------------------
  // Shuts the current pool down (a remote one only disconnects: its jobs go on) and starts one on `host`.
  void connectRemote(const RemoteHost& host);
  void workLocally();                       // back to a local pool
  void stopRemoteWorkers();                 // asks the server's session workers to exit (their jobs are cancelled)
  bool isRemote() const { return m_remote.isValid(); }
  RemoteHost remoteHost() const { return m_remote; }
  // Fetches a statistics file from the server (RemoteFiles, cached) and opens the local copy; counts as busy.
  void openRemoteStatistics(const QString& serverPath);
  // File → Evaluate… (EvaluateDialog on this window's pool: a server it starts, or an existing endpoint); its
  // result lands in the comparison.
  void openEvaluateDialog();
  // File → Recover… (RecoverDialog on this window's pool; the open model as the teacher): phase E's runs, before
  // and after recovery, land in the Runs view. Returns the dialog (nullptr without a worker pool).
  QDialog* openRecoverDialog();
  // Loads a benchmark result file into the comparison view as new run columns (and the workspace's list).
  bool addResultFile(const QString& path, QString* error = nullptr);
  // What the jobs dock's "Open output" does with an output of a remote job (fetch + open, or say where it is).
  void openJobOutput(const QString& path);
  RemoteFiles* remoteFiles() const { return m_files; }
  QString remoteStatusText() const;         // the status bar's "Remote: host:workspace" (empty when local)
  bool openWorkspace(const QString& path, QString* error = nullptr);
  bool saveWorkspace(const QString& path, QString* error = nullptr);
  void newWorkspace();
  Workspace currentWorkspace() const;  // the state that saveWorkspace writes
  QString workspacePath() const { return m_workspacePath; }

  bool isBusy() const;
  const ModelInventory& inventory() const { return m_inventory; }
  ModelView* modelView() const { return m_modelView; }
  HeatmapView* heatmapView() const { return m_heatmapView; }
  AllocationEditor* allocationEditor() const { return m_allocation; }
  RunsView* runsView() const { return m_runs; }
  // The Methods tab: a `razor compare-methods` result (razor.method_compare/1) and its job.
  MethodCompareView* methodCompareView() const { return m_methods; }
  // The importance matrix of the latest calibration (the export wizard's default), "" when none.
  QString lastImatrix() const { return m_lastImatrix; }
  void openExportWizard();
  QTabWidget* tabs() const { return m_tabs; }
  QStringList viewIds() const;
  bool showView(const QString& id);
  // Renders every view to dir/<view>.png; returns the files written.
  QStringList screenshotViews(const QString& dir);

  static bool openGLUsable();

 signals:
  void workspaceReady();
  void modelAvailable(const QString& path);
  void modelFailed(const QString& message);

 protected:
  void closeEvent(QCloseEvent* e) override;

 private:
  void buildMenus();
  void applyInventory(const ModelInventory& inv, const FootprintModel* compiled = nullptr, quint64 recipeGeneration = 0);
  void checkReady();
  void message(const QString& text, int ms = 0);
  void saveRecipeInteractive();
  void addView(const QString& id, const QString& title, QWidget* w);
  // `json` (razor inspect --json), or `object` (the worker's inspect result) when fromObject; off the GUI thread.
  void parseInventory(const QByteArray& json, const QJsonObject& object, bool fromObject);
  void createPool();  // on m_remote when valid, else local
  void retirePool();
  void openRemoteDialog();
  void updateRemoteState();

  QTabWidget* m_tabs;
  ModelView* m_modelView;
  HeatmapView* m_heatmapView;
  AllocationEditor* m_allocation;
  RunsView* m_runs;
  MethodCompareView* m_methods;
  QString m_lastImatrix;
  void updateCalibrationFolder();
  void updateJobStore();  // a saved local workspace records its jobs in <workspace>/jobs (JobStore)
  JobStore* m_store = nullptr;
  QWidget* m_comparison = nullptr;
  QWidget* m_gpuPanel = nullptr;
  QWidget* m_jobsDock = nullptr;
  WorkerPool* m_pool = nullptr;
  QString m_razorProgram;
  QLabel* m_statusModel;
  ModelInventory m_inventory;
  QString m_modelPath, m_workspacePath;
  QStringList m_recipes;
  QString m_jobsFolder;
  QStringList m_resultFiles;
  int m_pendingInventory = 0;
  quint64 m_inventoryGeneration = 0;
  Workspace m_restore;         // view state applied once the model and statistics are in
  bool m_restorePending = false;

  RemoteHost m_remote;                 // valid while the pool runs on a server
  RemoteFiles* m_files = nullptr;
  QLabel* m_statusRemote = nullptr;
  QString m_inspectJob;          // the pool's inspect job of the model being opened
  QSet<int> m_statisticsFetches;       // RemoteFiles requests to open as statistics
  QSet<int> m_revealFetches;           // RemoteFiles requests to show in the file manager
  QSet<int> m_resultFetches;           // RemoteFiles requests of eval results for the comparison view
  QSet<int> m_methodFetches;           // RemoteFiles requests of compare-methods results for the Methods view
  QHash<QString, QString> m_serverPathOf;  // fetched statistics: cache path -> the server path (workspaces save it)
  QHash<QString, QString> m_artifactKinds;  // remote job outputs: path -> artifact kind
  QSet<int> m_lostSlots;               // remote slots whose link is down (reconnecting)
  QAction* m_actWorkLocally = nullptr;
  QAction* m_actStopRemote = nullptr;
  QAction* m_actRemoteStats = nullptr;
};
