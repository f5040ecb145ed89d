// MethodCompareView (the Methods tab): a method comparison of `razor compare-methods` (razor.method_compare/1,
// docs/methods.md) — a table per method (held-out NMSE mean / median and per projection, KL, same top-1, ppl,
// fallbacks), one layer x expert heatmap of held-out NMSE per method (HeatmapWidget, one shared colour range so the
// methods compare cell by cell; log scale by default), and the best method per layer (a column of per-layer mean
// NMSE per method, the lowest marked).
//
// Open… loads a result file on a worker thread (QtConcurrent; a newer load supersedes an older one). Run… builds
// the `compare-methods` form from the worker's hello (ParamForm: every registry param, a new one appears without
// a GUI change), submits it to the worker pool (progress and cancel in the jobs dock) and opens its result.
#pragma once
#include <QJsonObject>
#include <QPointer>
#include <QWidget>

#include "MethodCompareData.h"

class QCheckBox;
class QComboBox;
class QDialog;
class QGridLayout;
class QLabel;
class QPushButton;
class QTableWidget;
class HeatmapWidget;
class ParamForm;
class WorkerPool;

class MethodCompareView : public QWidget {
  Q_OBJECT
 public:
  explicit MethodCompareView(QWidget* parent = nullptr);

  void loadFile(const QString& path);  // asynchronous: resultLoaded or loadFailed follows
  void setResult(const MethodCompareResult& r);
  const MethodCompareResult& result() const { return m_result; }
  bool isLoading() const { return m_loading > 0; }

  void setMetric(const QString& metric);  // MethodCompareResult::metrics()
  QString metric() const;
  void setLogScale(bool on);

  // The workspace's state: the opened file, the metric and the scale. Restoring opens the file again (a missing
  // one: loadFailed); an empty state empties the view.
  QJsonObject saveState() const;
  void restoreState(const QJsonObject& o);

  QTableWidget* summaryTable() const { return m_summary; }
  QTableWidget* layerTable() const { return m_layers; }
  QVector<HeatmapWidget*> heatmaps() const { return m_maps; }

  // ---- running the job ----
  void setWorkerPool(WorkerPool* pool);
  void setModelPath(const QString& path);
  void setOutputFolder(const QString& dir);  // where a run's result goes when the form names none
  // Remote pool: the result is a server path; jobResultReady hands it on (the main window fetches and loads it)
  // and the default output is relative (the server worker's working folder).
  void setRemote(bool remote) { m_remote = remote; }
  // The run form (built from the pool's hello; nullptr before one). Submit with runJob().
  ParamForm* runForm();
  QString runJob(QString* error = nullptr);  // the job id, "" with *error on failure
  QString currentJob() const { return m_job; }

 public slots:
  void openInteractive();
  void runInteractive();

 signals:
  void resultLoaded(const QString& path);
  void loadFailed(const QString& path, const QString& message);
  void messageAvailable(const QString& text);
  void jobResultReady(const QString& path);  // a finished run's result file (loaded here unless remote)

 private:
  void rebuild();
  void refreshHeatmaps();
  void updateRunButton();

  MethodCompareResult m_result;
  quint64 m_generation = 0;
  int m_loading = 0;
  QLabel* m_info;
  QComboBox* m_metric;
  QCheckBox* m_log;
  QPushButton* m_run;
  QTableWidget* m_summary;
  QTableWidget* m_layers;
  QWidget* m_mapsBox;
  QGridLayout* m_mapsGrid;
  QVector<HeatmapWidget*> m_maps;

  QPointer<WorkerPool> m_pool;
  ParamForm* m_form = nullptr;
  QString m_modelPath, m_outFolder, m_job, m_jobOut;
  bool m_remote = false;
};
