// The workbench's main window: a workspace (Workspace, *.razorproj) of one model, its recipes, statistics files
// and views, reopened as it was; views as tabs (Model, Salience, Allocation, Comparison when present).
//
// Nothing heavy runs on the GUI thread: the inventory comes from `razor inspect --json` (RazorCommand, a
// QProcess) and is parsed on a worker thread; statistics files load through HeatmapView's QtConcurrent path.
// Every result returns through a QPointer-guarded queued callback that drops answers to superseded requests.
// workspaceReady() is emitted whenever nothing is pending any more (used by --screenshot and the tests).
#pragma once
#include <QMainWindow>
#include <QPointer>

#include "ModelInventory.h"
#include "Workspace.h"

class QLabel;
class QTabWidget;
class AllocationEditor;
class FootprintModel;
class HeatmapView;
class ModelView;
class RazorCommand;
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
  void openStatistics(const QString& path);
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

  QTabWidget* m_tabs;
  ModelView* m_modelView;
  HeatmapView* m_heatmapView;
  AllocationEditor* m_allocation;
  QWidget* m_comparison = nullptr;
  QWidget* m_gpuPanel = nullptr;
  QWidget* m_jobsDock = nullptr;
  WorkerPool* m_pool = nullptr;
  QString m_razorProgram;
  void openExportWizard();
  RazorCommand* m_inspect;
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
};
