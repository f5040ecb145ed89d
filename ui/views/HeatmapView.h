// The Salience view: layer x expert heatmaps of any statistic of the opened statistics files (probe HDF5,
// GGUF imatrix, razor_quant_summary.json), linear or log colour scale with legend, exact-value tooltips,
// zoom and pan, the per-layer routing-entropy strip and cold / zero-count experts flagged.
//
// Files load on a worker thread (QtConcurrent); the result comes back through one QFutureWatcher per load,
// guarded by a QPointer, and a load superseded by a newer one for the same path is dropped.
// When OpenGL is usable (HeatmapGLWidget::openGLUsable(): not under the offscreen/minimal platforms) the view
// can draw through HeatmapGLWidget with the Dear ImGui HUD; otherwise only the raster HeatmapWidget exists.
//
// Calibrate (the row under the heatmap): the registry's `probe` job in the worker pool over a chosen text (empty:
// the bundled calibration text), number of tokens and first token, writing a probe HDF5 and a GGUF imatrix into
// calibrationFolder(); progress and cancel are the jobs dock's. calibrationFinished() hands both paths on (the
// main window opens the probe here and in the allocation editor).
#pragma once
#include <QJsonObject>
#include <QMap>
#include <QPointer>
#include <QWidget>

#include "HeatmapData.h"
#include "ImGuiOverlay.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QStackedWidget;
class HeatmapCanvas;
class HeatmapGLWidget;
class HeatmapWidget;
class QLineEdit;
class QPushButton;
class QSpinBox;
class WorkerPool;

class HeatmapView : public QWidget {
  Q_OBJECT
 public:
  explicit HeatmapView(QWidget* parent = nullptr);

  void loadFile(const QString& path);   // asynchronous; sourceAvailable or loadFailed follows
  void addSource(const HeatmapSource& src);
  void clear();
  const QVector<HeatmapSource>& sources() const { return m_sources; }
  const HeatmapSource* currentSource() const;
  QStringList sourcePaths() const;
  int pendingLoads() const { return m_pending; }

  void setCurrent(const QString& path, const QString& stat);
  void setLogScale(bool on);
  void setUseOpenGL(bool on);   // ignored when GL is not usable
  bool usingOpenGL() const;
  void setGpuFigures(const GpuFigures& g);
  HeatmapCanvas* canvas() const;  // the visible one
  HeatmapWidget* rasterWidget() const { return m_raster; }

  QJsonObject saveState() const;
  void restoreState(const QJsonObject& o);

  // ---- Calibrate ----
  void setWorkerPool(WorkerPool* pool);
  void setModelPath(const QString& path);       // the model probed (a server path when remote)
  // Where the outputs go ("": the worker's working folder); a local folder is created when missing, a server's
  // (local = false) must exist.
  void setCalibrationFolder(const QString& dir, bool local = true);
  QString calibrationFolder() const { return m_calibFolder; }
  void setCalibration(const QString& text, int tokens, qint64 offset);
  void calibrate();
  QString calibrationJob() const { return m_calibJob; }

 signals:
  void calibrationFinished(const QString& probePath, const QString& imatrixPath);
  void calibrationFailed(const QString& message);
  void sourceAvailable(const QString& path);
  void loadFailed(const QString& path, const QString& message);
  void loadsFinished();

 private:
  void refreshCombos();
  void showCurrent();
  void configure(HeatmapCanvas* c);

  QVector<HeatmapSource> m_sources;
  QMap<QString, quint64> m_loadGeneration;
  quint64 m_generation = 0;
  int m_pending = 0;
  QComboBox* m_source;
  QComboBox* m_stat;
  QComboBox* m_scale;
  QCheckBox* m_flags;
  QCheckBox* m_gl;
  QLabel* m_info;
  QStackedWidget* m_stack;
  HeatmapWidget* m_raster;
  HeatmapGLWidget* m_glWidget = nullptr;
  bool m_glUsable = false;
  GpuFigures m_gpu;

  void updateCalibrateButton();
  QPointer<WorkerPool> m_pool;
  QString m_modelPath, m_calibFolder, m_calibJob, m_calibOut, m_calibImatrix;
  bool m_calibLocal = true;
  QLineEdit* m_calibText;
  QSpinBox* m_calibTokens;
  QSpinBox* m_calibOffset;
  QPushButton* m_calibrate;
};
