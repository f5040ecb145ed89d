#include "ComparisonView.h"

#include <QBarCategoryAxis>
#include <QBarSeries>
#include <QBarSet>
#include <QChart>
#include <QChartView>
#include <QComboBox>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLegend>
#include <QLineSeries>
#include <QPushButton>
#include <QSaveFile>
#include <QScatterSeries>
#include <QSplitter>
#include <QTabWidget>
#include <QTableView>
#include <QTableWidget>
#include <QJsonArray>
#include <QToolButton>
#include <QVBoxLayout>
#include <QValueAxis>
#include <algorithm>
#include <cmath>
#include <tuple>

#include "ResultsModel.h"

using namespace razor::results;

namespace {

void clearChart(QChart* chart) {
  chart->removeAllSeries();
  const auto axes = chart->axes();
  for (QAbstractAxis* a : axes) {
    chart->removeAxis(a);
    delete a;
  }
}

}  // namespace

ComparisonView::ComparisonView(QWidget* parent) : QWidget(parent), m_model(new ResultsModel(this)) {
  auto* top = new QHBoxLayout;
  m_presetBox = new QComboBox;
  m_presetBox->setSizeAdjustPolicy(QComboBox::AdjustToContents);
  m_baselineBox = new QComboBox;
  m_addRunBox = new QComboBox;
  m_addRunBox->setMinimumContentsLength(18);
  m_addRunBox->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
  auto* addBtn = new QPushButton(tr("Add run"));
  auto* removeBtn = new QPushButton(tr("Remove column"));
  auto* openBtn = new QToolButton;
  openBtn->setText(tr("Open results…"));
  openBtn->setPopupMode(QToolButton::MenuButtonPopup);
  auto* csvBtn = new QPushButton(tr("Export CSV…"));
  auto* pngBtn = new QPushButton(tr("Export PNG…"));
  top->addWidget(new QLabel(tr("Comparison:")));
  top->addWidget(m_presetBox, 1);
  top->addWidget(new QLabel(tr("Baseline:")));
  top->addWidget(m_baselineBox);
  top->addWidget(m_addRunBox);
  top->addWidget(addBtn);
  top->addWidget(removeBtn);
  top->addWidget(openBtn);
  top->addWidget(csvBtn);
  top->addWidget(pngBtn);

  m_table = new QTableView;
  m_table->setModel(m_model);
  m_table->setAlternatingRowColors(false);
  m_table->setSelectionBehavior(QAbstractItemView::SelectItems);
  m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  m_table->verticalHeader()->setVisible(false);
  m_table->setWordWrap(false);

  m_bars = new QChart;
  m_bars->setAnimationOptions(QChart::NoAnimation);
  m_barView = new QChartView(m_bars);
  m_barView->setRenderHint(QPainter::Antialiasing);
  m_pareto = new QChart;
  m_pareto->setAnimationOptions(QChart::NoAnimation);
  m_paretoView = new QChartView(m_pareto);
  m_paretoView->setRenderHint(QPainter::Antialiasing);
  m_tabs = new QTabWidget;
  m_tabs->addTab(m_barView, tr("Scores"));
  m_tabs->addTab(m_paretoView, tr("Size vs score"));
  m_speedTable = new QTableWidget(0, 8);
  m_speedTable->setObjectName(QStringLiteral("speedTable"));
  m_speedTable->setHorizontalHeaderLabels({tr("Run"), tr("Expert offload"), tr("Context"), tr("Prompt tokens"),
                                           tr("Prefill tok/s"), tr("Decode tok/s"), tr("GPU memory"), tr("Measured by")});
  m_speedTable->verticalHeader()->hide();
  m_speedTable->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_speedTable->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  m_speedTable->horizontalHeader()->setStretchLastSection(true);
  m_prefill = new QChart;
  m_decode = new QChart;
  auto* speedCharts = new QHBoxLayout;
  for (QChart* c : {m_prefill, m_decode}) {
    c->setAnimationOptions(QChart::NoAnimation);
    c->legend()->setAlignment(Qt::AlignBottom);
    auto* v = new QChartView(c);
    v->setRenderHint(QPainter::Antialiasing);
    v->setMinimumHeight(240);
    speedCharts->addWidget(v);
  }
  m_speedPage = new QWidget;
  auto* sl = new QVBoxLayout(m_speedPage);
  sl->setContentsMargins(0, 0, 0, 0);
  sl->addWidget(m_speedTable, 2);
  sl->addLayout(speedCharts, 3);
  m_tabs->addTab(m_speedPage, tr("Speed"));

  m_note = new QLabel;
  m_note->setWordWrap(true);
  m_note->setTextInteractionFlags(Qt::TextSelectableByMouse);

  auto* split = new QSplitter(Qt::Vertical);
  auto* upper = new QWidget;
  auto* ul = new QVBoxLayout(upper);
  ul->setContentsMargins(0, 0, 0, 0);
  ul->addWidget(m_table, 1);
  ul->addWidget(m_note);
  split->addWidget(upper);
  split->addWidget(m_tabs);
  split->setStretchFactor(0, 1);
  split->setStretchFactor(1, 2);
  split->setSizes({300, 560});

  auto* lay = new QVBoxLayout(this);
  lay->addLayout(top);
  lay->addWidget(split, 1);

  connect(m_presetBox, &QComboBox::currentIndexChanged, this, [this](int i) {
    if (!m_updatingCombos) applyPreset(i);
  });
  connect(m_baselineBox, &QComboBox::currentIndexChanged, this, [this](int i) {
    if (!m_updatingCombos && i >= 0) m_model->setBaseline(i);
  });
  connect(addBtn, &QPushButton::clicked, this, [this] {
    QString run = m_addRunBox->currentData().toString();
    if (!run.isEmpty()) m_model->addRunColumn(run);
  });
  connect(removeBtn, &QPushButton::clicked, this, [this] {
    int rc = -1;
    m_model->cellKind(m_table->currentIndex().column(), &rc);
    if (rc < 0) rc = m_model->runColumnCount() - 1;
    m_model->removeRunColumn(rc);
  });
  connect(openBtn, &QToolButton::clicked, this, &ComparisonView::openResults);
  openBtn->addAction(tr("Open results…"), this, &ComparisonView::openResults);
  openBtn->addAction(tr("Open a folder of results…"), this, &ComparisonView::openResultsFolder);
  connect(csvBtn, &QPushButton::clicked, this, &ComparisonView::exportCsvInteractive);
  connect(pngBtn, &QPushButton::clicked, this, &ComparisonView::exportPngInteractive);
  connect(m_model, &ResultsModel::comparisonChanged, this, [this] {
    refreshCombos();
    refreshCharts();
  });
  refreshCharts();
}

ComparisonView::~ComparisonView() = default;

ComparisonView* ComparisonView::createDemo(QWidget* parent) {
  auto* v = new ComparisonView(parent);
  v->loadCatalog(ResultsModel::bundledResultsDir());
  v->resize(1180, 820);
  return v;
}

int ComparisonView::loadCatalog(const QString& dir) {
  QStringList errors;
  int n = m_model->loadCatalog(dir, &errors);
  m_updatingCombos = true;
  m_presetBox->clear();
  for (const auto& p : m_model->presets()) m_presetBox->addItem(p.name);
  m_updatingCombos = false;
  refreshCombos();
  if (!m_model->presets().isEmpty()) m_note->setText(m_model->presets().first().note);
  showErrors(errors);
  emit messageAvailable(tr("%1 result files from %2").arg(n).arg(dir));
  return n;
}

void ComparisonView::applyPreset(int index) {
  m_model->applyPreset(index);
  if (index >= 0 && index < m_model->presets().size()) m_note->setText(m_model->presets()[index].note);
}

void ComparisonView::refreshCombos() {
  m_updatingCombos = true;
  m_baselineBox->clear();
  for (int i = 0; i < m_model->runColumnCount(); ++i) m_baselineBox->addItem(m_model->runColumn(i).label);
  m_baselineBox->setCurrentIndex(m_model->baseline());
  const QString keep = m_addRunBox->currentData().toString();
  m_addRunBox->clear();
  for (const QString& run : m_model->runs()) {
    QString label = m_model->runLabel(run);
    m_addRunBox->addItem(label == run ? run : QStringLiteral("%1 — %2").arg(label, run), run);
  }
  int k = m_addRunBox->findData(keep);
  if (k >= 0) m_addRunBox->setCurrentIndex(k);
  m_updatingCombos = false;
}

void ComparisonView::showErrors(const QStringList& errors) {
  if (errors.isEmpty()) return;
  QString text = tr("%n file(s) not imported:", nullptr, int(errors.size()));
  for (const QString& e : errors) text += QStringLiteral("\n• ") + e;
  m_note->setText(text);
  emit messageAvailable(errors.first());
}

void ComparisonView::refreshCharts() {
  // ---- grouped bars: accuracy per benchmark, one set per run column --------------------------------------
  clearChart(m_bars);
  QStringList cats;
  QList<int> rows;
  for (int b = 0; b < m_model->rowCount(); ++b) {
    bool prop = true;
    for (int c = 0; c < m_model->runColumnCount(); ++c)
      if (auto* r = m_model->result(b, c); r && !r->higher_is_better) prop = false;
    if (!prop) continue;
    rows << b;
    cats << QString::fromStdString(benchmark_name(m_model->benchmarkKeys()[b].toStdString()));
  }
  auto* series = new QBarSeries;
  double lo = 100;
  for (int c = 0; c < m_model->runColumnCount(); ++c) {
    auto* set = new QBarSet(m_model->runColumn(c).label);
    for (int b : rows) {
      const bench_result* r = m_model->result(b, c);
      *set << (r ? r->acc : 0.0);
      if (r) lo = std::min(lo, r->acc);
    }
    series->append(set);
  }
  series->setLabelsVisible(true);
  series->setLabelsFormat(QStringLiteral("@value"));
  series->setLabelsPrecision(3);
  series->setLabelsPosition(QAbstractBarSeries::LabelsInsideEnd);
  m_bars->addSeries(series);
  auto* ax = new QBarCategoryAxis;
  ax->append(cats);
  auto* ay = new QValueAxis;
  double floorY = rows.isEmpty() || m_model->runColumnCount() == 0 ? 0.0 : std::max(0.0, std::floor((lo - 10.0) / 10.0) * 10.0);
  ay->setRange(floorY, 100);
  ay->setTitleText(tr("accuracy %"));
  ay->setLabelFormat(QStringLiteral("%.0f"));
  m_bars->addAxis(ax, Qt::AlignBottom);
  m_bars->addAxis(ay, Qt::AlignLeft);
  series->attachAxis(ax);
  series->attachAxis(ay);
  m_bars->setTitle(m_model->runColumnCount() == 0
                       ? tr("No results yet: pick a comparison, or open result files (ComparisonView::loadCatalog)")
                       : tr("Accuracy by benchmark (truncations count as wrong)"));
  m_bars->legend()->setAlignment(Qt::AlignBottom);

  // ---- Pareto: footprint vs mean accuracy on the benchmarks every column has ---------------------------
  clearChart(m_pareto);
  QStringList common;
  m_model->meanScoreOnCommon(0, &common);
  struct Pt {
    double x, y;
  };
  QList<Pt> pts;
  auto* px = new QValueAxis;
  auto* py = new QValueAxis;
  double xmax = 1, ymin = 100, ymax = 0;
  QStringList missing;
  for (int c = 0; c < m_model->runColumnCount(); ++c) {
    auto fp = m_model->footprint(c);
    auto score = m_model->meanScoreOnCommon(c);
    if (!fp || !score) {
      missing << m_model->runColumn(c).label;
      continue;
    }
    auto* s = new QScatterSeries;
    s->setName(QStringLiteral("%1 (%2 GB)").arg(m_model->runColumn(c).label).arg(*fp, 0, 'f', 1));
    s->setMarkerSize(13);
    s->append(*fp, *score);
    s->setPointLabelsVisible(true);
    s->setPointLabelsFormat(QStringLiteral("%1: %2").arg(m_model->runColumn(c).label).arg(*score, 0, 'f', 1));
    s->setPointLabelsClipping(false);
    m_pareto->addSeries(s);
    pts << Pt{*fp, *score};
    xmax = std::max(xmax, *fp);
    ymin = std::min(ymin, *score);
    ymax = std::max(ymax, *score);
  }
  // Frontier: by size ascending, keep points that beat every smaller one.
  std::sort(pts.begin(), pts.end(), [](const Pt& a, const Pt& b) { return a.x < b.x || (a.x == b.x && a.y > b.y); });
  auto* frontier = new QLineSeries;
  frontier->setName(tr("Pareto frontier"));
  double best = -1;
  for (const Pt& p : pts)
    if (p.y > best) {
      frontier->append(p.x, p.y);
      best = p.y;
    }
  m_pareto->addSeries(frontier);
  m_pareto->addAxis(px, Qt::AlignBottom);
  m_pareto->addAxis(py, Qt::AlignLeft);
  for (QAbstractSeries* s : m_pareto->series()) {
    s->attachAxis(px);
    s->attachAxis(py);
  }
  px->setRange(0, std::ceil(xmax * 1.12 / 10.0) * 10.0);
  px->setTitleText(tr("footprint, GB"));
  px->setLabelFormat(QStringLiteral("%.0f"));
  if (pts.isEmpty()) {
    ymin = 0;
    ymax = 100;
  }
  py->setRange(std::max(0.0, std::floor(ymin - 3)), std::min(100.0, std::ceil(ymax + 3)));
  py->setTitleText(tr("mean accuracy %"));
  py->setLabelFormat(QStringLiteral("%.0f"));
  QString title = common.isEmpty() ? tr("Size vs score: no benchmark common to every column")
                                   : tr("Size vs mean score on %1").arg([&] {
                                       QStringList n;
                                       for (auto& k : common) n << QString::fromStdString(benchmark_name(k.toStdString()));
                                       return n.join(QStringLiteral(", "));
                                     }());
  if (!missing.isEmpty()) title += tr(" (not placed: %1)").arg(missing.join(QStringLiteral(", ")));
  m_pareto->setTitle(title);
  m_pareto->legend()->setAlignment(Qt::AlignBottom);
  refreshSpeed();
}

// The Speed tab: per run column its speed block (ResultsModel::speedOfColumn). Contexts are the asked lengths.
void ComparisonView::refreshSpeed() {
  m_speedTable->setRowCount(0);
  clearChart(m_prefill);
  clearChart(m_decode);
  QList<int> contexts;
  QList<int> columns;  // run columns with points
  for (int c = 0; c < m_model->runColumnCount(); ++c) {
    const QJsonArray pts = m_model->speedOfColumn(c).value(QLatin1String("points")).toArray();
    if (pts.isEmpty()) continue;
    columns << c;
    for (const QJsonValue& p : pts) {
      const int ctx = p.toObject().value(QLatin1String("context")).toInt();
      if (!contexts.contains(ctx)) contexts << ctx;
    }
  }
  std::sort(contexts.begin(), contexts.end());
  auto cell = [this](int row, int col, const QString& text, bool number = true) {
    auto* it = new QTableWidgetItem(text);
    if (number) it->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    m_speedTable->setItem(row, col, it);
  };
  auto gb = [](double bytes) { return QStringLiteral("%1 GB").arg(bytes / 1e9, 0, 'f', 1); };
  for (int c = 0; c < m_model->runColumnCount(); ++c) {
    const QJsonObject sp = m_model->speedOfColumn(c);
    if (sp.isEmpty()) continue;
    const QString label = m_model->runColumn(c).label;
    const QString offload = !sp.contains(QLatin1String("n_cpu_moe")) ? QString()
                            : sp.value(QLatin1String("n_cpu_moe")).toInt() > 0
                                ? tr("--n-cpu-moe %1").arg(sp.value(QLatin1String("n_cpu_moe")).toInt())
                                : tr("none");
    if (sp.contains(QLatin1String("error"))) {  // the measurement failed; the benchmarks' scores were kept
      const int row = m_speedTable->rowCount();
      m_speedTable->insertRow(row);
      cell(row, 0, label, false);
      cell(row, 7, tr("failed: %1").arg(sp.value(QLatin1String("error")).toString()), false);
      continue;
    }
    for (const QJsonValue& v : sp.value(QLatin1String("points")).toArray()) {
      const QJsonObject p = v.toObject();
      const int row = m_speedTable->rowCount();
      m_speedTable->insertRow(row);
      cell(row, 0, label, false);
      cell(row, 1, offload, false);
      cell(row, 2, QString::number(p.value(QLatin1String("context")).toInt()));
      cell(row, 3, QString::number(p.value(QLatin1String("prompt_tokens")).toInt()));
      cell(row, 4, QString::number(p.value(QLatin1String("prefill_tok_s")).toDouble(), 'f', 1));
      cell(row, 5, QString::number(p.value(QLatin1String("decode_tok_s")).toDouble(), 'f', 1));
      cell(row, 6, p.contains(QLatin1String("gpu_memory_used_bytes"))
                       ? gb(p.value(QLatin1String("gpu_memory_used_bytes")).toDouble()) : tr("n/a"));
      cell(row, 7, p.value(QLatin1String("method")).toString(), false);
    }
  }
  // Grouped bars: one category per context, one set per run column (its peak memory and offload in the legend).
  QStringList cats;
  for (int ctx : contexts) cats << (ctx % 1024 == 0 && ctx >= 1024 ? QStringLiteral("%1k").arg(ctx / 1024) : QString::number(ctx));
  for (auto [chart, key, title] : {std::tuple{m_prefill, "prefill_tok_s", tr("Prefill tokens/s by prompt length")},
                                   std::tuple{m_decode, "decode_tok_s", tr("Decode tokens/s by prompt length")}}) {
    auto* series = new QBarSeries;
    double hi = 0;
    for (int c : columns) {
      const QJsonObject sp = m_model->speedOfColumn(c);
      QString name = m_model->runColumn(c).label;
      if (sp.value(QLatin1String("n_cpu_moe")).toInt() > 0)
        name += tr(", --n-cpu-moe %1").arg(sp.value(QLatin1String("n_cpu_moe")).toInt());
      if (sp.contains(QLatin1String("peak_gpu_memory_used_bytes")))
        name += tr(" (peak %1)").arg(gb(sp.value(QLatin1String("peak_gpu_memory_used_bytes")).toDouble()));
      auto* set = new QBarSet(name);
      const QJsonArray pts = sp.value(QLatin1String("points")).toArray();
      for (int ctx : contexts) {
        double v = 0;
        for (const QJsonValue& p : pts)
          if (p.toObject().value(QLatin1String("context")).toInt() == ctx) v = p.toObject().value(QLatin1String(key)).toDouble();
        *set << v;
        hi = std::max(hi, v);
      }
      series->append(set);
    }
    series->setLabelsVisible(true);
    series->setLabelsFormat(QStringLiteral("@value"));
    series->setLabelsPrecision(4);
    series->setLabelsPosition(QAbstractBarSeries::LabelsOutsideEnd);
    chart->addSeries(series);
    auto* ax = new QBarCategoryAxis;
    ax->append(cats);
    ax->setTitleText(tr("prompt tokens"));
    auto* ay = new QValueAxis;
    ay->setRange(0, hi > 0 ? hi * 1.15 : 1.0);
    ay->setTitleText(tr("tokens/s"));
    ay->setLabelFormat(QStringLiteral("%.0f"));
    chart->addAxis(ax, Qt::AlignBottom);
    chart->addAxis(ay, Qt::AlignLeft);
    series->attachAxis(ax);
    series->attachAxis(ay);
    chart->setTitle(columns.isEmpty() ? tr("No speed measured for these runs (razor eval --speed-contexts 512,4k,16k)") : title);
  }
}

bool ComparisonView::exportCsv(const QString& path, QString* error) const {
  QSaveFile f(path);
  if (!f.open(QIODevice::WriteOnly | QIODevice::Text)) {
    if (error) *error = tr("%1: cannot be written (%2)").arg(path, f.errorString());
    return false;
  }
  f.write(m_model->toCsv().toUtf8());
  if (!f.commit()) {
    if (error) *error = tr("%1: cannot be written (%2)").arg(path, f.errorString());
    return false;
  }
  return true;
}

bool ComparisonView::exportPng(const QString& path, Snapshot what, QString* error) {
  QWidget* w = this;
  switch (what) {
    case Snapshot::Table: w = m_table; break;
    case Snapshot::Bars: w = m_barView; break;
    case Snapshot::Pareto: w = m_paretoView; break;
    case Snapshot::Speed: w = m_speedPage; break;
    case Snapshot::Whole: w = this; break;
  }
  if (what == Snapshot::Bars) m_tabs->setCurrentWidget(m_barView);
  if (what == Snapshot::Pareto) m_tabs->setCurrentWidget(m_paretoView);
  if (what == Snapshot::Speed) m_tabs->setCurrentWidget(m_speedPage);
  QPixmap pm = w->grab();
  if (pm.isNull() || !pm.save(path, "PNG")) {
    if (error) *error = tr("%1: the PNG could not be written").arg(path);
    return false;
  }
  return true;
}

void ComparisonView::openResults() {
  const QStringList files =
      QFileDialog::getOpenFileNames(this, tr("Open benchmark results"), QString(), tr("Result files (*.json)"));
  QStringList errors;
  for (const QString& f : files) {
    QString e;
    if (!m_model->loadFile(f, &e)) errors << e;
  }
  refreshCombos();
  showErrors(errors);
}

void ComparisonView::openResultsFolder() {
  QString dir = QFileDialog::getExistingDirectory(this, tr("Open a folder of benchmark results"));
  if (dir.isEmpty()) return;
  QStringList errors;
  int n = m_model->loadDirectory(dir, &errors);
  refreshCombos();
  showErrors(errors);
  emit messageAvailable(tr("%1 result files from %2").arg(n).arg(dir));
}

void ComparisonView::exportCsvInteractive() {
  QString path = QFileDialog::getSaveFileName(this, tr("Export comparison as CSV"), QStringLiteral("comparison.csv"),
                                              tr("CSV (*.csv)"));
  if (path.isEmpty()) return;
  QString e;
  emit messageAvailable(exportCsv(path, &e) ? tr("Wrote %1").arg(path) : e);
}

void ComparisonView::exportPngInteractive() {
  QString path = QFileDialog::getSaveFileName(this, tr("Export comparison as PNG"), QStringLiteral("comparison.png"),
                                              tr("PNG (*.png)"));
  if (path.isEmpty()) return;
  QString e;
  emit messageAvailable(exportPng(path, Snapshot::Whole, &e) ? tr("Wrote %1").arg(path) : e);
}
