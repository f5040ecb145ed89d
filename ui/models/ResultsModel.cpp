#include "ResultsModel.h"

#include <QBrush>
#include <QColor>
#include <QCoreApplication>
#include <QDir>
#include <QDirIterator>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <algorithm>
#include <cmath>
#include <set>

#include "util/json_limits.h"
#include "util/paths.h"

using namespace razor::results;

using nlohmann::json;

namespace {

json readJson(const QString& path, QString* error) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) {
    if (error) *error = path + ": cannot be opened";
    return json();
  }
  QByteArray bytes = f.readAll();
  // Bounded (razor::parse_json: 64 MiB, nesting 64 deep): a hostile results file is an error, not a crash.
  auto doc = razor::parse_json(std::string_view(bytes.constData(), size_t(bytes.size())), path.toStdString());
  if (!doc.ok()) {
    if (error) *error = QString::fromStdString(doc.error().message());
    return json(nlohmann::json::value_t::discarded);
  }
  return std::move(doc).value();
}

QString q(const std::string& s) { return QString::fromStdString(s); }

QString pct(double v) { return QString::number(v, 'f', 1); }

QColor verdictColor(verdict_kind v) {
  switch (v) {
    case verdict_kind::better: return QColor(200, 235, 200);
    case verdict_kind::within_noise: return QColor(232, 232, 232);
    case verdict_kind::recoverable_gap: return QColor(255, 228, 170);
    case verdict_kind::worse: return QColor(245, 195, 195);
    default: return QColor();
  }
}

QString csvField(QString s) {
  if (s.contains(QLatin1Char(',')) || s.contains(QLatin1Char('"')) || s.contains(QLatin1Char('\n'))) {
    s.replace(QLatin1String("\""), QLatin1String("\"\""));
    return QLatin1Char('"') + s + QLatin1Char('"');
  }
  return s;
}

}  // namespace

ResultsModel::ResultsModel(QObject* parent) : QAbstractTableModel(parent) { rebuild(); }

QString ResultsModel::bundledResultsDir() {
  QString env = qEnvironmentVariable("RAZOR_RESULTS_DIR");
  if (!env.isEmpty() && QFileInfo(env).isDir()) return env;
  QString installed = QCoreApplication::applicationDirPath() + QStringLiteral("/../share/razor/results");
  if (QFileInfo(installed + QStringLiteral("/official_targets.json")).exists()) return QDir(installed).absolutePath();
  return QString::fromStdString(razor::source_dir()) + QStringLiteral("/resources/results");
}

int ResultsModel::loadCatalog(const QString& dir, QStringList* errors) {
  auto note = [&](const QString& e) {
    if (errors && !e.isEmpty()) errors->append(e);
  };
  QString err;
  json targets = readJson(dir + QStringLiteral("/official_targets.json"), &err);
  note(err);
  if (!targets.is_discarded() && !targets.is_null()) {
    std::string perr;
    official_targets t = parse_official_targets(targets, &perr);
    if (!perr.empty()) note(q(perr));
    else m_targets = t;
  }
  err.clear();
  json runs = readJson(dir + QStringLiteral("/runs.json"), &err);
  note(err);
  if (runs.is_object() && runs.contains("runs") && runs["runs"].is_object()) {
    for (auto& [tag, meta] : runs["runs"].items()) {
      if (!meta.is_object()) continue;
      QString label = meta.contains("label") && meta["label"].is_string() ? q(meta["label"].get<std::string>()) : q(tag);
      std::optional<double> fp;
      if (meta.contains("footprint_gb") && meta["footprint_gb"].is_number()) fp = meta["footprint_gb"].get<double>();
      m_catalogue[q(tag)] = {label, fp};
    }
  }
  err.clear();
  json presets = readJson(dir + QStringLiteral("/comparisons.json"), &err);
  note(err);
  m_presets.clear();
  if (presets.is_object() && presets.contains("presets") && presets["presets"].is_array()) {
    for (auto& p : presets["presets"]) {
      Preset pr;
      pr.name = q(p.value("name", std::string("preset")));
      pr.note = q(p.value("note", std::string()));
      pr.baseline = p.value("baseline", 0);
      for (auto& b : p.value("benchmarks", json::array())) pr.benchmarks << q(b.get<std::string>());
      for (auto& c : p.value("columns", json::array())) {
        RunColumn col;
        col.label = q(c.value("label", std::string()));
        if (c.contains("footprint_gb") && c["footprint_gb"].is_number()) col.footprintGb = c["footprint_gb"].get<double>();
        for (auto& s : c.value("sources", json::array())) {
          Source src;
          src.run = q(s.value("run", std::string()));
          for (auto& b : s.value("benchmarks", json::array())) src.benchmarks << q(b.get<std::string>());
          col.sources << src;
        }
        pr.columns << col;
      }
      m_presets << pr;
    }
  }
  int n = loadDirectory(dir + QStringLiteral("/seed"), errors);
  if (!m_presets.isEmpty()) applyPreset(0);
  else rebuild();
  return n;
}

bool ResultsModel::loadFile(const QString& path, QString* error) {
  import_result r = import_result_file(path.toStdString());
  if (!r.ok()) {
    if (error) *error = q(r.error);
    return false;
  }
  noteSpeed(r);
  if (r.results.empty()) rebuild();  // a speed-only file: no scores, but a run to show
  addResults(r.results);
  return true;
}

void ResultsModel::noteSpeed(const import_result& r) {
  if (!r.speed || r.run.empty()) return;
  QJsonObject s = QJsonDocument::fromJson(QByteArray::fromStdString(r.speed->dump())).object();
  // How the server ran: llama-server's --n-cpu-moe (experts of the first N layers on the CPU) in its argv.
  if (r.provenance && r.provenance->contains("server_command") && (*r.provenance)["server_command"].is_array()) {
    const json& argv = (*r.provenance)["server_command"];
    int n = 0;
    for (size_t i = 0; i + 1 < argv.size(); ++i)
      if (argv[i].is_string() && argv[i].get<std::string>() == "--n-cpu-moe" && argv[i + 1].is_string())
        n = QString::fromStdString(argv[i + 1].get<std::string>()).toInt();
    s[QStringLiteral("n_cpu_moe")] = n;
  }
  m_speed[q(r.run)] = s;
}

QJsonObject ResultsModel::speed(const QString& run) const {
  auto it = m_speed.find(run);
  return it == m_speed.end() ? QJsonObject() : it->second;
}

QJsonObject ResultsModel::speedOfColumn(int runColumn) const {
  if (runColumn < 0 || runColumn >= m_columns.size()) return {};
  for (const Source& s : m_columns[runColumn].sources)
    if (auto it = m_speed.find(s.run); it != m_speed.end()) return it->second;
  return {};
}

int ResultsModel::loadDirectory(const QString& dir, QStringList* errors) {
  if (!QFileInfo(dir).isDir()) {
    if (errors) errors->append(dir + QStringLiteral(": not a folder"));
    return 0;
  }
  std::vector<bench_result> all;
  int files = 0;
  QStringList paths;
  QDirIterator it(dir, {QStringLiteral("*.json")}, QDir::Files, QDirIterator::Subdirectories);
  while (it.hasNext()) paths << it.next();
  paths.sort();
  for (const QString& p : paths) {
    if (p.endsWith(QStringLiteral("_dbg.json"))) continue;
    import_result r = import_result_file(p.toStdString());
    if (!r.ok()) {
      if (errors) errors->append(q(r.error));
      continue;
    }
    if (!r.note.empty() && errors) errors->append(p + QStringLiteral(": ") + q(r.note));
    noteSpeed(r);
    ++files;
    all.insert(all.end(), r.results.begin(), r.results.end());
  }
  if (all.empty()) rebuild();  // speed-only files: runs without scores
  addResults(all);
  return files;
}

void ResultsModel::addResults(const std::vector<bench_result>& results) {
  if (results.empty()) return;
  // A file loaded again replaces its earlier records.
  std::set<std::string> sources;
  for (auto& r : results) sources.insert(r.source);
  std::erase_if(m_results, [&](const bench_result& r) { return sources.count(r.source) > 0; });
  m_results.insert(m_results.end(), results.begin(), results.end());
  rebuild();
}

void ResultsModel::setOfficialTargets(const official_targets& targets) {
  m_targets = targets;
  rebuild();
}

void ResultsModel::applyPreset(int index) {
  if (index < 0 || index >= m_presets.size()) return;
  const Preset& p = m_presets[index];
  setComparison(p.columns, p.baseline, p.benchmarks);
}

void ResultsModel::setComparison(const QVector<RunColumn>& columns, int baseline, const QStringList& benchmarks) {
  m_columns = columns;
  m_baseline = columns.isEmpty() ? 0 : std::clamp(baseline, 0, int(columns.size()) - 1);
  m_fixedBenchmarks = benchmarks;
  rebuild();
}

void ResultsModel::addRunColumn(const QString& run) {
  RunColumn c;
  c.label = runLabel(run);
  c.sources << Source{run, {}};
  m_columns << c;
  rebuild();
}

void ResultsModel::removeRunColumn(int i) {
  if (i < 0 || i >= m_columns.size()) return;
  m_columns.removeAt(i);
  if (m_baseline >= m_columns.size()) m_baseline = std::max(0, int(m_columns.size()) - 1);
  else if (i < m_baseline) --m_baseline;
  rebuild();
}

void ResultsModel::setBaseline(int i) {
  if (i < 0 || i >= m_columns.size() || i == m_baseline) return;
  m_baseline = i;
  rebuild();
}

QStringList ResultsModel::runs() const {
  std::set<QString> s;
  for (auto& r : m_results) s.insert(q(r.run));
  for (auto& [run, speed] : m_speed) s.insert(run);
  return QStringList(s.begin(), s.end());
}

QString ResultsModel::runLabel(const QString& run) const {
  auto it = m_catalogue.find(run);
  return it != m_catalogue.end() ? it->second.first : run;
}

const bench_result* ResultsModel::lookup(const RunColumn& col, const QString& bench) const {
  std::string b = bench.toStdString();
  for (const Source& s : col.sources) {
    if (!s.benchmarks.isEmpty() && !s.benchmarks.contains(bench)) continue;
    std::string run = s.run.toStdString();
    for (auto& r : m_results)
      if (r.run == run && r.bench == b) return &r;
  }
  return nullptr;
}

void ResultsModel::rebuild() {
  beginResetModel();
  if (!m_fixedBenchmarks.isEmpty()) {
    m_benchmarks = m_fixedBenchmarks;
  } else {
    std::set<std::pair<int, QString>> keys;
    for (const RunColumn& c : m_columns)
      for (const Source& s : c.sources)
        for (auto& r : m_results)
          if (q(r.run) == s.run && (s.benchmarks.isEmpty() || s.benchmarks.contains(q(r.bench))))
            keys.insert({benchmark_order(r.bench), q(r.bench)});
    m_benchmarks.clear();
    for (auto& [o, k] : keys) m_benchmarks << k;
  }
  m_layout.clear();
  m_layout.push_back({CellKind::Benchmark, -1});
  m_layout.push_back({CellKind::Gate, -1});
  for (int i = 0; i < m_columns.size(); ++i) {
    m_layout.push_back({CellKind::Acc, i});
    m_layout.push_back({CellKind::FinTrunc, i});
    if (i != m_baseline) {
      m_layout.push_back({CellKind::Delta, i});
      m_layout.push_back({CellKind::Verdict, i});
    }
  }
  m_cells.assign(m_benchmarks.size(), std::vector<const bench_result*>(m_columns.size(), nullptr));
  for (int b = 0; b < m_benchmarks.size(); ++b)
    for (int c = 0; c < m_columns.size(); ++c) m_cells[b][c] = lookup(m_columns[c], m_benchmarks[b]);
  endResetModel();
  emit comparisonChanged();
}

const bench_result* ResultsModel::result(int benchRow, int runColumn) const {
  if (benchRow < 0 || benchRow >= int(m_cells.size()) || runColumn < 0 || runColumn >= m_columns.size()) return nullptr;
  return m_cells[benchRow][runColumn];
}

bench_comparison ResultsModel::comparison(int benchRow, int runColumn) const {
  return compare_results(result(benchRow, m_baseline), result(benchRow, runColumn));
}

gate_status ResultsModel::gate(int benchRow) const {
  if (benchRow < 0 || benchRow >= m_benchmarks.size()) return {};
  return gate_for(m_benchmarks[benchRow].toStdString(), m_results, m_targets);
}

std::optional<double> ResultsModel::footprint(int runColumn) const {
  if (runColumn < 0 || runColumn >= m_columns.size()) return std::nullopt;
  const RunColumn& c = m_columns[runColumn];
  if (c.footprintGb) return c.footprintGb;
  for (const Source& s : c.sources) {
    auto it = m_catalogue.find(s.run);
    if (it != m_catalogue.end() && it->second.second) return it->second.second;
    for (auto& r : m_results)
      if (q(r.run) == s.run && r.footprint) return r.footprint;
  }
  return std::nullopt;
}

std::optional<double> ResultsModel::meanScoreOnCommon(int runColumn, QStringList* common) const {
  QStringList keys;
  for (int b = 0; b < m_benchmarks.size(); ++b) {
    bool all = true;
    for (int c = 0; c < m_columns.size(); ++c) {
      const bench_result* r = result(b, c);
      if (!r || !r->higher_is_better) all = false;
    }
    if (all) keys << m_benchmarks[b];
  }
  if (common) *common = keys;
  if (keys.isEmpty() || runColumn < 0 || runColumn >= m_columns.size()) return std::nullopt;
  double sum = 0;
  for (const QString& k : keys) sum += result(int(m_benchmarks.indexOf(k)), runColumn)->acc;
  return sum / keys.size();
}

ResultsModel::CellKind ResultsModel::cellKind(int column, int* runColumn) const {
  if (column < 0 || column >= int(m_layout.size())) {
    if (runColumn) *runColumn = -1;
    return CellKind::Benchmark;
  }
  if (runColumn) *runColumn = m_layout[column].run;
  return m_layout[column].kind;
}

int ResultsModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : int(m_benchmarks.size());
}

int ResultsModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : int(m_layout.size());
}

QVariant ResultsModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount() || index.column() >= columnCount()) return {};
  const int row = index.row();
  const Layout& L = m_layout[index.column()];
  const QString bench = m_benchmarks[row];
  if (role == BenchKeyRole) return bench;
  if (role == RunIndexRole) return L.run;
  const bench_result* r = L.run >= 0 ? result(row, L.run) : nullptr;
  const bool prop = r && r->is_proportion();

  switch (L.kind) {
    case CellKind::Benchmark:
      if (role == Qt::DisplayRole) return q(benchmark_name(bench.toStdString()));
      if (role == Qt::ToolTipRole) return bench;
      return {};
    case CellKind::Gate: {
      if (role != Qt::DisplayRole && role != Qt::ToolTipRole && role != GateRole && role != Qt::BackgroundRole) return {};
      gate_status g = gate(row);
      if (role == GateRole) return int(g.state);
      if (role == Qt::DisplayRole) return q(std::string(gate_state_name(g.state)));
      if (role == Qt::ToolTipRole)
        return g.state == gate_state::no_target ? tr("No run of a model with an official number for this benchmark")
                                              : q(g.evidence);
      if (role == Qt::BackgroundRole && g.state == gate_state::not_gated) return QBrush(QColor(255, 240, 200));
      return {};
    }
    case CellKind::Acc: {
      if (!r) return role == Qt::DisplayRole ? QVariant(QStringLiteral("—")) : QVariant();
      interval ci = prop ? wilson_interval(r->acc, r->n) : interval{};
      switch (role) {
        case Qt::DisplayRole:
          if (!r->higher_is_better) return QString::number(r->acc, 'g', 4);
          return prop ? QStringLiteral("%1 [%2–%3]").arg(pct(r->acc), pct(ci.lo), pct(ci.hi)) : pct(r->acc);
        case Qt::ToolTipRole:
          return tr("%1: %2 on %3\nn = %4%5\nsource: %6 (%7)")
              .arg(q(r->run), pct(r->acc), q(benchmark_name(r->bench)))
              .arg(r->n)
              .arg(prop ? tr(", Wilson 95% [%1, %2]").arg(pct(ci.lo), pct(ci.hi)) : QString())
              .arg(QFileInfo(q(r->source)).fileName(), q(std::string(schema_variant_name(r->variant))));
        case Qt::TextAlignmentRole: return int(Qt::AlignRight | Qt::AlignVCenter);
        case AccRole: return r->acc;
        case CiLowRole: return prop ? QVariant(ci.lo) : QVariant();
        case CiHighRole: return prop ? QVariant(ci.hi) : QVariant();
        case AccFinishedRole: return r->acc_finished ? QVariant(*r->acc_finished) : QVariant();
        case NRole: return r->n;
        case TruncRole: return r->trunc ? QVariant(*r->trunc) : QVariant();
        default: return {};
      }
    }
    case CellKind::FinTrunc: {
      if (!r) return {};
      if (role == Qt::DisplayRole) {
        QString fin = r->acc_finished ? pct(*r->acc_finished) : QStringLiteral("—");
        QString tr_ = r->trunc ? QString::number(*r->trunc) : QStringLiteral("?");
        return QStringLiteral("%1 / %2 tr").arg(fin, tr_);
      }
      if (role == Qt::ToolTipRole)
        return tr("accuracy among finished generations / truncated generations (of %1)").arg(r->n);
      if (role == Qt::TextAlignmentRole) return int(Qt::AlignRight | Qt::AlignVCenter);
      if (role == AccFinishedRole) return r->acc_finished ? QVariant(*r->acc_finished) : QVariant();
      if (role == TruncRole) return r->trunc ? QVariant(*r->trunc) : QVariant();
      return {};
    }
    case CellKind::Delta:
    case CellKind::Verdict: {
      bench_comparison c = comparison(row, L.run);
      if (role == VerdictRole) return int(c.verdict);
      if (role == DeltaRole)
        return (c.verdict == verdict_kind::missing || c.verdict == verdict_kind::baseline) ? QVariant() : QVariant(c.delta);
      if (role == Qt::ToolTipRole) return q(c.why);
      if (role == Qt::BackgroundRole && L.kind == CellKind::Verdict) {
        QColor col = verdictColor(c.verdict);
        return col.isValid() ? QVariant(QBrush(col)) : QVariant();
      }
      if (role == Qt::TextAlignmentRole && L.kind == CellKind::Delta) return int(Qt::AlignRight | Qt::AlignVCenter);
      if (role != Qt::DisplayRole) return {};
      if (c.verdict == verdict_kind::missing) return QStringLiteral("—");
      if (L.kind == CellKind::Verdict) {
        // Marks beside the verdict: the paired test when both runs have per-sample records, a warning when the
        // two columns were measured differently (the tooltip says how).
        QString v = q(std::string(verdict_name(c.verdict)));
        if (c.paired) v += QStringLiteral(" · McNemar p %1").arg(c.paired->p, 0, 'g', 2);
        const bench_result* base = result(row, m_baseline);
        const bench_result* cand = result(row, L.run);
        if (base && cand && !provenance_differences(*base, *cand).empty()) v = QStringLiteral("⚠ ") + v;
        return v;
      }
      const bench_result* base = result(row, m_baseline);
      if (base && !base->higher_is_better) return QString::number(c.delta, 'g', 3);
      return QString::asprintf("%+.1f", c.delta);
    }
  }
  return {};
}

QVariant ResultsModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation == Qt::Vertical) {
    if (role == Qt::DisplayRole && section >= 0 && section < rowCount()) return section + 1;
    return {};
  }
  if (section < 0 || section >= columnCount()) return {};
  const Layout& L = m_layout[section];
  if (role == Qt::ToolTipRole && L.run >= 0) {
    QStringList src;
    for (auto& s : m_columns[L.run].sources)
      src << (s.benchmarks.isEmpty() ? s.run : s.run + QStringLiteral(" (") + s.benchmarks.join(QStringLiteral(", ")) + QLatin1Char(')'));
    return tr("sources: %1").arg(src.join(QStringLiteral("; ")));
  }
  if (role != Qt::DisplayRole) return {};
  QString label = L.run >= 0 ? m_columns[L.run].label : QString();
  switch (L.kind) {
    case CellKind::Benchmark: return tr("Benchmark");
    case CellKind::Gate: return tr("Gate");
    case CellKind::Acc: return L.run == m_baseline ? label + tr(" (baseline)") : label;
    case CellKind::FinTrunc: return label + tr(" fin / tr");
    case CellKind::Delta: return QStringLiteral("Δ ") + label;
    case CellKind::Verdict: return tr("verdict ") + label;
  }
  return {};
}

QString ResultsModel::toCsv() const {
  QStringList lines;
  lines << QStringLiteral(
      "benchmark,key,run_column,runs,acc,ci95_lo,ci95_hi,acc_finished,n,n_finished,trunc,budget,backend,footprint_gb,"
      "delta_vs_baseline,delta_finished,z,verdict,gate,gate_evidence,source");
  for (int b = 0; b < m_benchmarks.size(); ++b) {
    gate_status g = gate(b);
    for (int c = 0; c < m_columns.size(); ++c) {
      const bench_result* r = result(b, c);
      QStringList f;
      f << csvField(q(benchmark_name(m_benchmarks[b].toStdString()))) << m_benchmarks[b] << csvField(m_columns[c].label);
      QStringList srcRuns;
      for (auto& s : m_columns[c].sources) srcRuns << s.run;
      f << csvField(srcRuns.join(QLatin1Char(';')));
      if (!r) {
        for (int k = 0; k < 17; ++k) f << QString();
        lines << f.join(QLatin1Char(','));
        continue;
      }
      bool prop = r->is_proportion();
      interval ci = prop ? wilson_interval(r->acc, r->n) : interval{};
      bench_comparison cmp = comparison(b, c);
      auto fp = footprint(c);
      f << QString::number(r->acc, 'f', 4) << (prop ? QString::number(ci.lo, 'f', 2) : QString())
        << (prop ? QString::number(ci.hi, 'f', 2) : QString())
        << (r->acc_finished ? QString::number(*r->acc_finished, 'f', 4) : QString()) << QString::number(r->n)
        << (r->n_finished ? QString::number(*r->n_finished) : QString()) << (r->trunc ? QString::number(*r->trunc) : QString())
        << (r->budget ? QString::number(*r->budget) : QString()) << csvField(q(r->backend))
        << (fp ? QString::number(*fp, 'f', 2) : QString());
      bool cmpd = cmp.verdict != verdict_kind::baseline && cmp.verdict != verdict_kind::missing;
      f << (cmpd ? QString::number(cmp.delta, 'f', 4) : QString())
        << (cmpd && cmp.delta_finished ? QString::number(*cmp.delta_finished, 'f', 4) : QString())
        << (cmpd && cmp.verdict != verdict_kind::no_test ? QString::number(cmp.z, 'f', 3) : QString())
        << q(std::string(verdict_name(cmp.verdict))) << q(std::string(gate_state_name(g.state))) << csvField(q(g.evidence))
        << csvField(QFileInfo(q(r->source)).fileName());
      lines << f.join(QLatin1Char(','));
    }
  }
  return lines.join(QLatin1Char('\n')) + QLatin1Char('\n');
}
