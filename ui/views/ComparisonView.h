// ComparisonView: the benchmark comparison. A preset or hand-picked run columns side by side (ResultsModel)
// with deltas against a baseline, per-benchmark verdicts (better / within noise / recoverable gap / worse),
// Wilson intervals, truncation counts and the validation gate; a grouped bar chart, a size-vs-score
// Pareto chart and the served model's speed per context length (Qt Charts, no animation); export to CSV and PNG.
//
// Everything it reads is small JSON, parsed in the GUI thread (a few hundred kB at most).
#pragma once
#include <QPointer>
#include <QWidget>

class QChart;
class QChartView;
class QComboBox;
class QLabel;
class QTabWidget;
class QTableView;
class QTableWidget;
class ResultsModel;

class ComparisonView : public QWidget {
  Q_OBJECT
 public:
  enum class Snapshot { Table, Bars, Pareto, Speed, Whole };

  explicit ComparisonView(QWidget* parent = nullptr);
  ~ComparisonView() override;

  // Ready to show: the bundled catalogue (ResultsModel::bundledResultsDir()) with the first preset.
  static ComparisonView* createDemo(QWidget* parent = nullptr);

  ResultsModel* model() const { return m_model; }
  QTableView* table() const { return m_table; }
  QChart* barChart() const { return m_bars; }
  QChart* paretoChart() const { return m_pareto; }
  QTabWidget* chartTabs() const { return m_tabs; }
  // The Speed tab (`razor eval --speed-contexts`): a table per run column and context (prefill / decode tok/s, GPU
  // memory, expert offload) and prefill / decode tokens/s by context as grouped bars, one set per run column.
  QTableWidget* speedTable() const { return m_speedTable; }
  QChart* prefillChart() const { return m_prefill; }
  QChart* decodeChart() const { return m_decode; }

  // Loads a catalogue folder (official_targets.json, runs.json, comparisons.json, seed/).
  int loadCatalog(const QString& dir);
  bool exportCsv(const QString& path, QString* error = nullptr) const;
  bool exportPng(const QString& path, Snapshot what = Snapshot::Whole, QString* error = nullptr);

 public slots:
  void applyPreset(int index);
  void openResults();  // file dialog: one or more result files
  void openResultsFolder();
  void exportCsvInteractive();
  void exportPngInteractive();
  void refreshCharts();

 signals:
  void messageAvailable(const QString& text);  // for the main window's status bar

 private:
  void refreshCombos();
  void refreshSpeed();
  void showErrors(const QStringList& errors);

  ResultsModel* m_model = nullptr;
  QTableView* m_table = nullptr;
  QTabWidget* m_tabs = nullptr;
  QChartView* m_barView = nullptr;
  QChartView* m_paretoView = nullptr;
  QChart* m_bars = nullptr;
  QChart* m_pareto = nullptr;
  QWidget* m_speedPage = nullptr;
  QTableWidget* m_speedTable = nullptr;
  QChart* m_prefill = nullptr;
  QChart* m_decode = nullptr;
  QComboBox* m_presetBox = nullptr;
  QComboBox* m_baselineBox = nullptr;
  QComboBox* m_addRunBox = nullptr;
  QLabel* m_note = nullptr;
  bool m_updatingCombos = false;
};
