#include "RunsView.h"

#include <QChart>
#include <QChartView>
#include <QDateTime>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QLineSeries>
#include <QPushButton>
#include <QScatterSeries>
#include <QSplitter>
#include <QTableView>
#include <QTableWidget>
#include <QValueAxis>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

// ---- RunsModel ------------------------------------------------------------------------------------------

int RunsModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : int(m_runs.size()); }
int RunsModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant RunsModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return QAbstractTableModel::headerData(section, o, role);
  static const char* kNames[] = {"Run", "Size (MB)", "Eff. bits", "KL mean", "KL p99", "ppl", "Same top-1", "Text", "When"};
  return section >= 0 && section < ColumnCount ? QString::fromLatin1(kNames[section]) : QVariant();
}

QVariant RunsModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= m_runs.size() || index.column() >= ColumnCount) return {};
  const QJsonObject& r = m_runs[index.row()];
  auto num = [&](const char* key) { return r.value(QLatin1String(key)).toDouble(); };
  if (role == Qt::DisplayRole) {
    switch (index.column()) {
      case Name: return r.value(QStringLiteral("name")).toString();
      case Size: return QString::number(num("file_bytes") / 1e6, 'f', 3);
      case Bits: return QString::number(num("effective_bits"), 'f', 3);
      case KlMean: return QString::number(num("kl_mean"), 'g', 4);
      case KlP99: return QString::number(num("kl_p99"), 'g', 4);
      case Ppl: return QString::number(num("ppl"), 'f', 3);
      case SameTop1: return QString::number(num("same_top1"), 'f', 4);
      case Text:
        return QStringLiteral("%1 [%2, +%3x%4)")
            .arg(QFileInfo(r.value(QStringLiteral("text")).toString()).fileName())
            .arg(r.value(QStringLiteral("offset")).toInteger())
            .arg(r.value(QStringLiteral("windows")).toInteger())
            .arg(r.value(QStringLiteral("ctx")).toInteger());
      case When:
        return QDateTime::fromString(r.value(QStringLiteral("time")).toString(), Qt::ISODate).toLocalTime().toString(QStringLiteral("yyyy-MM-dd hh:mm"));
    }
  } else if (role == Qt::TextAlignmentRole) {
    if (index.column() != Name && index.column() != Text && index.column() != When)
      return int(Qt::AlignRight | Qt::AlignVCenter);
  } else if (role == Qt::ToolTipRole) {
    return QStringLiteral("%1: %2; ref ppl %3")
        .arg(r.value(QStringLiteral("recipe_name")).toString(), r.value(QStringLiteral("how")).toString())
        .arg(num("ref_ppl"), 0, 'f', 3);
  }
  return {};
}

void RunsModel::addRun(const QJsonObject& run) {
  beginInsertRows({}, int(m_runs.size()), int(m_runs.size()));
  m_runs.push_back(run);
  endInsertRows();
}

void RunsModel::setRuns(const QVector<QJsonObject>& runs) {
  beginResetModel();
  m_runs = runs;
  endResetModel();
}

// ---- RunsView ---------------------------------------------------------------------------------------------

RunsView::RunsView(QWidget* parent) : QWidget(parent), m_model(new RunsModel(this)) {
  m_table = new QTableView;
  m_table->setObjectName(QStringLiteral("runsTable"));
  m_table->setModel(m_model);
  m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_table->setSelectionMode(QAbstractItemView::ExtendedSelection);
  m_table->verticalHeader()->hide();
  m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  m_table->horizontalHeader()->setStretchLastSection(true);

  auto* chart = new QChart;
  chart->setTitle(tr("File size vs KL (mean) against the source — lower left is better"));
  chart->legend()->setAlignment(Qt::AlignBottom);
  m_chart = new QChartView(chart);
  m_chart->setObjectName(QStringLiteral("runsChart"));
  m_chart->setRenderHint(QPainter::Antialiasing);
  m_chart->setMinimumHeight(260);

  m_compareTitle = new QLabel(tr("Select two runs to compare them side by side."));
  m_compareTitle->setObjectName(QStringLiteral("compareTitle"));
  m_compare = new QTableWidget(0, 4);
  m_compare->setObjectName(QStringLiteral("compareTable"));
  m_compare->setHorizontalHeaderLabels({tr("Layer"), tr("A bits"), tr("B bits"), tr("B - A")});
  m_compare->verticalHeader()->hide();
  m_compare->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_compare->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
  auto* open = new QPushButton(tr("Open recipe as allocation"));
  open->setObjectName(QStringLiteral("openRunRecipe"));
  connect(open, &QPushButton::clicked, this, [this] {
    const auto rows = m_table->selectionModel()->selectedRows();
    if (!rows.isEmpty()) emit openRecipeRequested(m_model->run(rows.first().row()).value(QStringLiteral("recipe")).toObject());
  });

  auto* cmp = new QWidget;
  auto* cl = new QVBoxLayout(cmp);
  cl->setContentsMargins(0, 0, 0, 0);
  cl->addWidget(m_compareTitle);
  cl->addWidget(m_compare, 1);
  cl->addWidget(open);

  auto* bottom = new QSplitter(Qt::Horizontal);
  bottom->addWidget(m_chart);
  bottom->addWidget(cmp);
  bottom->setStretchFactor(0, 3);
  bottom->setStretchFactor(1, 2);
  auto* split = new QSplitter(Qt::Vertical);
  split->addWidget(m_table);
  split->addWidget(bottom);
  split->setStretchFactor(1, 2);
  auto* lay = new QVBoxLayout(this);
  lay->addWidget(split);

  connect(m_table->selectionModel(), &QItemSelectionModel::selectionChanged, this, &RunsView::onSelection);
  rebuildChart();
}

void RunsView::addRun(const QJsonObject& run) {
  m_model->addRun(run);
  rebuildChart();
  emit runAdded(m_model->rowCount() - 1);
}

QVector<int> RunsView::paretoFront(const QVector<QJsonObject>& runs) {
  QVector<int> front;
  for (int i = 0; i < runs.size(); ++i) {
    const double si = runs[i].value(QStringLiteral("file_bytes")).toDouble(), ki = runs[i].value(QStringLiteral("kl_mean")).toDouble();
    bool dominated = false;
    for (int j = 0; j < runs.size() && !dominated; ++j) {
      if (j == i) continue;
      const double sj = runs[j].value(QStringLiteral("file_bytes")).toDouble(), kj = runs[j].value(QStringLiteral("kl_mean")).toDouble();
      dominated = sj <= si && kj <= ki && (sj < si || kj < ki);
    }
    if (!dominated) front << i;
  }
  std::sort(front.begin(), front.end(), [&](int a, int b) {
    return runs[a].value(QStringLiteral("file_bytes")).toDouble() < runs[b].value(QStringLiteral("file_bytes")).toDouble();
  });
  return front;
}

void RunsView::rebuildChart() {
  QChart* c = m_chart->chart();
  c->removeAllSeries();
  for (QAbstractAxis* a : c->axes()) {
    c->removeAxis(a);
    delete a;
  }
  auto* points = new QScatterSeries;
  points->setName(tr("runs"));
  points->setMarkerSize(10);
  auto* front = new QLineSeries;
  front->setName(tr("Pareto front"));
  const auto& runs = m_model->runs();
  double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
  for (const auto& r : runs) {
    const double x = r.value(QStringLiteral("file_bytes")).toDouble() / 1e6, y = r.value(QStringLiteral("kl_mean")).toDouble();
    points->append(x, y);
    xmin = std::min(xmin, x);
    xmax = std::max(xmax, x);
    ymin = std::min(ymin, y);
    ymax = std::max(ymax, y);
  }
  for (int i : paretoFront(runs))
    front->append(runs[i].value(QStringLiteral("file_bytes")).toDouble() / 1e6, runs[i].value(QStringLiteral("kl_mean")).toDouble());
  c->addSeries(front);
  c->addSeries(points);
  auto* ax = new QValueAxis;
  ax->setTitleText(tr("file size (MB)"));
  auto* ay = new QValueAxis;
  ay->setTitleText(tr("KL mean (nats)"));
  if (runs.isEmpty()) {
    xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  }
  const double dx = std::max(1e-6, (xmax - xmin) * 0.1), dy = std::max(1e-9, (ymax - ymin) * 0.1);
  ax->setRange(std::max(0.0, xmin - dx), xmax + dx);
  ay->setRange(std::max(0.0, ymin - dy), ymax + dy);
  c->addAxis(ax, Qt::AlignBottom);
  c->addAxis(ay, Qt::AlignLeft);
  for (QAbstractSeries* s : c->series()) {
    s->attachAxis(ax);
    s->attachAxis(ay);
  }
}

void RunsView::onSelection() {
  const auto rows = m_table->selectionModel()->selectedRows();
  if (rows.size() == 2) compare(rows[0].row(), rows[1].row());
}

void RunsView::compare(int a, int b) {
  const QJsonObject ra = m_model->run(a), rb = m_model->run(b);
  const QJsonArray la = ra.value(QStringLiteral("layer_bits")).toArray(), lb = rb.value(QStringLiteral("layer_bits")).toArray();
  m_compareTitle->setText(tr("A = %1 (%2 MB, KL %3)   B = %4 (%5 MB, KL %6)")
                              .arg(ra.value(QStringLiteral("name")).toString())
                              .arg(ra.value(QStringLiteral("file_bytes")).toDouble() / 1e6, 0, 'f', 3)
                              .arg(ra.value(QStringLiteral("kl_mean")).toDouble(), 0, 'g', 4)
                              .arg(rb.value(QStringLiteral("name")).toString())
                              .arg(rb.value(QStringLiteral("file_bytes")).toDouble() / 1e6, 0, 'f', 3)
                              .arg(rb.value(QStringLiteral("kl_mean")).toDouble(), 0, 'g', 4));
  const int n = int(std::max(la.size(), lb.size()));
  m_compare->setRowCount(n);
  for (int l = 0; l < n; ++l) {
    const double x = l < la.size() ? la[l].toDouble() : NAN, y = l < lb.size() ? lb[l].toDouble() : NAN;
    const double d = y - x;
    auto* c0 = new QTableWidgetItem(QString::number(l));
    auto* c1 = new QTableWidgetItem(std::isnan(x) ? QStringLiteral("-") : QString::number(x, 'f', 3));
    auto* c2 = new QTableWidgetItem(std::isnan(y) ? QStringLiteral("-") : QString::number(y, 'f', 3));
    auto* c3 = new QTableWidgetItem(std::isnan(d) ? QStringLiteral("-") : QString::asprintf("%+.3f", d));
    if (!std::isnan(d) && std::fabs(d) > 1e-9) {
      // The difference as a heat colour: red where B has fewer bits, green where it has more.
      const int s = int(std::min(1.0, std::fabs(d) / 2.0) * 160);
      c3->setBackground(d < 0 ? QColor(255, 255 - s, 255 - s) : QColor(255 - s, 255, 255 - s));
      c3->setForeground(Qt::black);
    }
    for (auto* it : {c1, c2, c3}) it->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    m_compare->setItem(l, 0, c0);
    m_compare->setItem(l, 1, c1);
    m_compare->setItem(l, 2, c2);
    m_compare->setItem(l, 3, c3);
  }
}

QJsonObject RunsView::saveState() const {
  QJsonArray a;
  for (const auto& r : m_model->runs()) a.append(r);
  return {{QStringLiteral("runs"), a}};
}

void RunsView::restoreState(const QJsonObject& o) {
  QVector<QJsonObject> runs;
  for (const auto& v : o.value(QStringLiteral("runs")).toArray())
    if (v.isObject()) runs << v.toObject();
  m_model->setRuns(runs);
  rebuildChart();
}
