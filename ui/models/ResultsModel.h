// ResultsModel: benchmark results side by side. Rows are benchmarks (in the order of core/results/benchmarks.h), columns are
// runs; a "run column" is made of one or more result files, each optionally restricted to some benchmarks
// (the seed's RESULTS.md composes its headline this way, see resources/results/comparisons.json).
//
// Model columns: 0 Benchmark, 1 Gate, then per run column: "<label>" (acc [Wilson 95%]), "<label> fin/tr";
// and, for every run column except the baseline, "Δ <label>" and "verdict <label>" (core/results: compare_results()).
// Raw values are available through the roles below; toCsv() writes one line per (benchmark, run).
//
// The catalogue directory (bundledResultsDir(): resources/results) holds official_targets.json (the gate),
// runs.json (labels and footprints the result files do not carry), comparisons.json (presets) and seed/
// (the seed's result files).
#pragma once
#include <QAbstractTableModel>
#include <QJsonObject>
#include <QString>
#include <QStringList>
#include <QVector>
#include <map>
#include <optional>
#include <vector>

#include "results/bench_result.h"

class ResultsModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Role {
    BenchKeyRole = Qt::UserRole + 1,  // QString: "gpqa"
    AccRole,                          // double or invalid
    CiLowRole,                        // double (percent) or invalid
    CiHighRole,
    AccFinishedRole,
    NRole,                            // int
    TruncRole,                        // int or invalid
    DeltaRole,                        // double (candidate - baseline) or invalid
    VerdictRole,                      // int (razor::results::verdict_kind) or invalid
    GateRole,                         // int (razor::results::gate_state) on the Gate column
    RunIndexRole,                     // int: the run column a model column belongs to (-1 for 0 and 1)
  };
  enum class CellKind { Benchmark, Gate, Acc, FinTrunc, Delta, Verdict };

  struct Source {
    QString run;              // a result file's run (tag)
    QStringList benchmarks;   // empty: all of that file's benchmarks
  };
  struct RunColumn {
    QString label;
    QVector<Source> sources;
    std::optional<double> footprintGb;  // overrides the catalogue
  };
  struct Preset {
    QString name, note;
    int baseline = 0;
    QStringList benchmarks;  // empty: every benchmark any column has
    QVector<RunColumn> columns;
  };

  explicit ResultsModel(QObject* parent = nullptr);

  // ---- loading --------------------------------------------------------------------------------------
  // resources/results of this build: $RAZOR_RESULTS_DIR, <app>/../share/razor/results, or the source tree's.
  static QString bundledResultsDir();
  // Reads official_targets.json, runs.json and comparisons.json of `dir` and every result file under
  // dir/seed (recursively); applies the first preset. Problems go to `errors` (one line each); returns the
  // number of result files imported.
  int loadCatalog(const QString& dir, QStringList* errors = nullptr);
  // One result file; false with a message naming the file and the problem when it is rejected.
  bool loadFile(const QString& path, QString* error = nullptr);
  // Every *.json under `dir` (recursively); the seed's *_dbg.json dumps are skipped silently.
  int loadDirectory(const QString& dir, QStringList* errors = nullptr);
  void addResults(const std::vector<razor::results::bench_result>& results);
  void setOfficialTargets(const razor::results::official_targets& targets);

  // ---- what is compared -----------------------------------------------------------------------------
  const QVector<Preset>& presets() const { return m_presets; }
  void applyPreset(int index);
  void setComparison(const QVector<RunColumn>& columns, int baseline, const QStringList& benchmarks = {});
  // Appends one column holding all of `run`'s results, labelled from the catalogue.
  void addRunColumn(const QString& run);
  void removeRunColumn(int runColumn);
  void setBaseline(int runColumn);
  int baseline() const { return m_baseline; }

  // ---- speed of the served model (`razor eval --speed-contexts`, eval/speed.h) ---------------------------
  // The run's "speed" block ({"gen_tokens", "points": [{context, prompt_tokens, generated, prefill_tok_s,
  // decode_tok_s, method, gpu_memory_used_bytes?}], "peak_gpu_memory_used_bytes"?} or {"error"}), with
  // "n_cpu_moe" (the server's --n-cpu-moe from the provenance's server_command: 0 without it, absent when the
  // file does not say how it was served); empty when the run has none.
  QJsonObject speed(const QString& run) const;
  QJsonObject speedOfColumn(int runColumn) const;  // the first of its sources that has one

  // ---- queries (charts, exports, tests) ----------------------------------------------------------------
  QStringList runs() const;                    // every loaded run (speed-only ones too), sorted
  QString runLabel(const QString& run) const;  // catalogue label, or the run itself
  int runColumnCount() const { return int(m_columns.size()); }
  const RunColumn& runColumn(int i) const { return m_columns[i]; }
  QStringList benchmarkKeys() const { return m_benchmarks; }
  const razor::results::bench_result* result(int benchRow, int runColumn) const;
  razor::results::bench_comparison comparison(int benchRow, int runColumn) const;
  razor::results::gate_status gate(int benchRow) const;
  std::optional<double> footprint(int runColumn) const;
  // Mean acc of a run column over the benchmarks every run column has (the Pareto chart's score).
  std::optional<double> meanScoreOnCommon(int runColumn, QStringList* common = nullptr) const;
  const std::vector<razor::results::bench_result>& allResults() const { return m_results; }
  const razor::results::official_targets& officialTargets() const { return m_targets; }
  // Model column -> (kind, run column).
  CellKind cellKind(int column, int* runColumn = nullptr) const;
  QString toCsv() const;

  // ---- QAbstractItemModel ----------------------------------------------------------------------------
  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

 signals:
  void comparisonChanged();

 private:
  struct Layout {
    CellKind kind;
    int run;
  };
  void noteSpeed(const razor::results::import_result& r);
  void rebuild();  // recomputes m_benchmarks (when automatic), the column layout and the cell cache
  const razor::results::bench_result* lookup(const RunColumn& col, const QString& bench) const;

  std::vector<razor::results::bench_result> m_results;
  std::map<QString, QJsonObject> m_speed;  // run -> speed(run)
  razor::results::official_targets m_targets;
  QVector<Preset> m_presets;
  std::map<QString, std::pair<QString, std::optional<double>>> m_catalogue;  // run -> label, footprint
  QVector<RunColumn> m_columns;
  int m_baseline = 0;
  QStringList m_fixedBenchmarks;  // from the preset; empty: automatic
  QStringList m_benchmarks;
  std::vector<Layout> m_layout;
  std::vector<std::vector<const razor::results::bench_result*>> m_cells;  // [bench][run column]
};
