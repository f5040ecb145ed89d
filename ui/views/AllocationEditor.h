// The bit-allocation editor: per-expert bits painted on the layer x expert heatmap (click or drag with the
// 2/3/4/8/16-bit brush), per-layer budgets (LayerBudgetModel: set every expert of a layer at once), the base
// recipe, a strategy picker with "fit to N GB / X bits" (the registry's `allocate` job in the worker pool, with
// progress, cancel and a jobs dock entry; the button is disabled, with a tooltip saying why, until a worker's hello
// lists the job; the strategies come from the hello's enumerations), "Measure" (the `eval-ppl` job: the current
// allocation fake-quantized in memory, KL mean / p99, same-top-1 and perplexity against the source on a chosen
// text and window range; each measurement becomes a run, measureFinished()), the live footprint (GB, effective
// bits, against the target) recomputed on every edit by FootprintModel, undo/redo (QUndoStack) and Save recipe
// (razor.recipe/1 JSON). The whole-file GGUF mode of Fit runs `allocate` with mode gguf (its tensor-type recipe is
// what the export wizard packs).
#pragma once
#include <QAbstractTableModel>
#include <QJsonObject>
#include <QPointer>
#include <QUndoStack>
#include <QWidget>
#include <functional>

#include "FootprintModel.h"
#include "LayerBudgetModel.h"
#include "HeatmapData.h"
#include "ModelInventory.h"
#include "RemoteHost.h"

class QButtonGroup;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QPushButton;
class QTableView;
class QLineEdit;
class QSpinBox;
class HeatmapWidget;
class RemoteFiles;
class WorkerPool;

class AllocationEditor : public QWidget {
  Q_OBJECT
 public:
  explicit AllocationEditor(QWidget* parent = nullptr);

  void setInventory(const ModelInventory& inv);
  // The same with a FootprintModel already compiled off the GUI thread (MainWindow builds it beside the
  // inventory: a per-expert 122B layout takes ~200 ms). Used only if the recipe has not changed meanwhile.
  void setInventory(const ModelInventory& inv, const FootprintModel& compiled, quint64 recipeGeneration);
  quint64 recipeGeneration() const { return m_recipeGeneration; }
  bool hasModel() const { return m_hasModel; }
  void setModelPath(const QString& p) { m_modelPath = p; }
  // The pool Fit and Measure run in (nullptr: neither is available). Its workers' hello (setWorkerHello) says
  // whether `allocate` / `eval-ppl` exist and which strategies `allocate` takes.
  void setWorkerPool(WorkerPool* pool);
  void setWorkerHello(const QJsonObject& hello);
  // A model on a GPU server (docs/remote.md): the pool's workers run there; the base recipe is uploaded through
  // `files`, the probe named by its server path via `serverPathOf` of the local copy, the result fetched back
  // through `files`. An invalid host: local.
  void setRemote(const RemoteHost& host, RemoteFiles* files, std::function<QString(const QString&)> serverPathOf);
  // Replaces the recipe (clears the undo history). False with a message when the JSON is not a valid recipe.
  bool setRecipeJson(const QJsonObject& recipe, QString* error = nullptr);
  bool loadRecipe(const QString& pathOrName, QString* error = nullptr);
  QJsonObject recipeJson() const;
  bool saveRecipe(const QString& path, QString* error = nullptr) const;
  void setStatistics(const QVector<HeatmapSource>& sources);  // for the display and for `razor allocate --probe`

  // Edits (each one undoable).
  void setBrushBits(double bits);
  double brushBits() const { return m_brush; }
  void paintCells(const QVector<QPoint>& cells, double bits);  // x = expert, y = layer; one undo step
  void setLayerBits(int layer, double bits);
  void setTarget(double value, bool gigabytes);

  const FootprintModel& footprint() const { return m_fp; }
  QUndoStack* undoStack() const { return m_undo; }
  LayerBudgetModel* layerModel() const { return m_layers; }
  HeatmapWidget* heatmap() const { return m_heatmap; }
  QString footprintText() const;
  bool allocateAvailable() const { return m_allocateAvailable; }
  bool measureAvailable() const { return m_measureAvailable; }
  // Measure settings: the text (empty: the bundled held-out text), windows, tokens per window, first token.
  void setMeasureWindow(const QString& text, int windows, int ctx, qint64 offset);
  void setGgufMode(bool on);  // Fit: whole-file GGUF (allocate mode gguf) instead of expert bits
  void setGgufTypes(const QString& types);  // GGUF mode: the type ladder, comma-separated ("": every type)
  QString lastGgufRecipe() const { return m_ggufRecipe; }
  QString fitJob() const { return m_fitJob; }
  QString measureJob() const { return m_measureJob; }
  void runMeasure();
  // Study: the `study` job (strategies x budgets, each fake-quantized in memory and measured on the Measure
  // settings' text and windows); every row becomes a run (measureFinished once per row).
  void setStudy(const QString& strategies, const QString& budgets);
  void runStudy();
  QString studyJob() const { return m_studyJob; }

  QJsonObject saveState() const;
  void restoreState(const QJsonObject& o);

  // Used by the undo commands: apply bits without recording.
  void applyBits(const QVector<QPoint>& cells, const QVector<double>& bits);

 signals:
  void footprintChanged();
  void recipeChanged();
  void saveRecipeRequested();
  void allocateFinished(const QString& recipePath);
  void allocateFailed(const QString& message);
  void ggufAllocateFinished(const QString& recipePath, const QJsonObject& report);
  void measureFinished(const QJsonObject& run);  // a run (RunsView.h)
  void measureFailed(const QString& message);
  void studyFinished(int runs);

 private:
  void updateFootprint();
  void rebuildHeatmap();
  void updateFitButton();
  QString probePath() const;
  void runAllocate();
  void refreshDisplayCombo();
  // One undo step setting those of `cells` that hold an expert to `bits`; `label` names it from their count.
  void pushCellBits(const QVector<QPoint>& cells, double bits, const std::function<QString(int)>& label);

  FootprintModel m_fp;
  bool m_hasModel = false;
  quint64 m_recipeGeneration = 0;  // bumped by every recipe change or edit
  QString m_modelPath;
  QVector<HeatmapSource> m_sources;
  double m_brush = 2;
  double m_targetValue = 0;
  bool m_targetGb = true;
  bool m_allocateAvailable = false;
  bool m_measureAvailable = false;
  QPointer<WorkerPool> m_pool;
  QString m_fitJob, m_measureJob;   // the pool's jobs of this editor (empty: none running)
  QString m_measurePackJob;         // GGUF mode: the pack before the measurement
  QString m_studyJob;
  bool m_studyAvailable = false;
  void updateStudyButton();
  void onStudyFinished(const QJsonObject& result);
  QString m_fitOut;                 // where the running fit writes (a server path when remote)
  bool m_fitGguf = false;
  QString m_ggufRecipe;
  QJsonObject m_measureRun;         // the run being measured (filled in when the result arrives)
  enum class Upload { None, Fit, Measure } m_uploadFor = Upload::None;
  int m_runCounter = 0;
  QString m_fitLabel;               // "solver 2.5bits": the last fit applied, for run names
  int m_fitUndoIndex = -1;          // the undo index right after it (another index: edited since)
  void onJobFinished(const QString& id, const QJsonObject& result);
  void onJobFailed(const QString& id, const QString& code, const QString& message);
  void submitMeasure(const QString& path, bool gguf = false);  // a razor.recipe/1 file, or a GGUF file
  void updateMeasureButton();
  RemoteHost m_remote;
  std::function<QString(const QString&)> m_serverPathOf;
  QPointer<RemoteFiles> m_files;
  int m_uploadId = -1, m_fetchId = -1;  // this editor's requests to m_files
  void startAllocate(const QString& probe, const QString& base, const QString& out, const QString& localOut);
  void applyAllocated(const QString& recipePath);
  QUndoStack* m_undo;
  LayerBudgetModel* m_layers;
  HeatmapWidget* m_heatmap;
  QComboBox* m_base;
  QComboBox* m_display;
  QButtonGroup* m_brushGroup;
  QComboBox* m_strategy;
  QDoubleSpinBox* m_target;
  QComboBox* m_targetUnit;
  QPushButton* m_fit;
  QLabel* m_footprintLabel;
  QTableView* m_layerTable;
  QComboBox* m_fitMode;
  QLineEdit* m_ggufTypes;
  QPushButton* m_measure;
  QLineEdit* m_measureText;
  QSpinBox* m_measureWindows;
  QSpinBox* m_measureCtx;
  QSpinBox* m_measureOffset;
  QLabel* m_measureResult;
  QLineEdit* m_studyStrategies;
  QLineEdit* m_studyBudgets;
  QPushButton* m_study;
  // a drag stroke collects its cells, applied live, and becomes one undo command when it ends
  QVector<QPoint> m_strokeCells;
  QVector<double> m_strokeBefore;
};
