// The Runs view: every measurement of an allocation is a run (recipe, file size, effective bits, KL mean / p99,
// perplexity, same-top-1, the text and window range, when), listed in a table (RunsModel) and drawn as a
// size-vs-KL chart (Qt Charts) whose Pareto front (no other run both smaller and closer) is a line. Selecting
// two runs shows them side by side: per-layer average expert bits and their difference. The runs are saved in
// the workspace (views.state.runs), the recipe of each inline, so a run can be reopened as the allocation.
//
// A run is a JSON object:
//   {"name", "recipe_name", "recipe" (razor.recipe/1, inline), "file_bytes", "effective_bits", "kl_mean",
//    "kl_p99", "ppl", "ref_ppl", "same_top1", "text", "offset", "windows", "ctx", "time" (ISO 8601),
//    "layer_bits" ([avg expert bits per layer]), "how" ("fake-quant in memory" | "GGUF in llama.cpp")}
#pragma once
#include <QAbstractTableModel>
#include <QJsonArray>
#include <QJsonObject>
#include <QVector>
#include <QWidget>

class QChartView;
class QLabel;
class QTableView;
class QTableWidget;

class RunsModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { Name, Size, Bits, KlMean, KlP99, Ppl, SameTop1, Text, When, ColumnCount };
  using QAbstractTableModel::QAbstractTableModel;
  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation o, int role = Qt::DisplayRole) const override;

  void addRun(const QJsonObject& run);
  void setRuns(const QVector<QJsonObject>& runs);
  const QVector<QJsonObject>& runs() const { return m_runs; }
  QJsonObject run(int row) const { return row >= 0 && row < m_runs.size() ? m_runs[row] : QJsonObject(); }

 private:
  QVector<QJsonObject> m_runs;
};

class RunsView : public QWidget {
  Q_OBJECT
 public:
  explicit RunsView(QWidget* parent = nullptr);

  void addRun(const QJsonObject& run);
  int runCount() const { return m_model->rowCount(); }
  RunsModel* model() const { return m_model; }
  QTableView* table() const { return m_table; }
  QChartView* chart() const { return m_chart; }
  QTableWidget* compareTable() const { return m_compare; }
  // Shows runs a and b side by side (also what selecting two rows does).
  void compare(int a, int b);
  // Indices (into runs) of the Pareto front: no other run has both fewer bytes and a lower KL mean.
  static QVector<int> paretoFront(const QVector<QJsonObject>& runs);

  QJsonObject saveState() const;
  void restoreState(const QJsonObject& o);

 signals:
  void runAdded(int row);
  void openRecipeRequested(const QJsonObject& recipe);

 private:
  void rebuildChart();
  void onSelection();

  RunsModel* m_model;
  QTableView* m_table;
  QChartView* m_chart;
  QTableWidget* m_compare;
  QLabel* m_compareTitle;
};
