#include "GpuPanel.h"

#include <QChart>
#include <QChartView>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QJsonArray>
#include <QLabel>
#include <QLegend>
#include <QLineSeries>
#include <QPen>
#include <QScrollArea>
#include <QTableWidget>
#include <QValueAxis>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kMiB = 1024.0 * 1024.0;

// NaN marks a value NVML refused (null in the sample).
double num(const QJsonObject& o, const char* key) {
  QJsonValue v = o.value(QLatin1String(key));
  return v.isDouble() ? v.toDouble() : std::nan("");
}

QString orNa(double v, const QString& text) { return std::isnan(v) ? QStringLiteral("n/a") : text; }

}  // namespace

GpuPanel::GpuPanel(QWidget* parent) : QWidget(parent) {
  m_status = new QLabel;
  m_status->setWordWrap(true);
  QFont f = m_status->font();
  f.setPointSizeF(f.pointSizeF() * 1.15);
  m_status->setFont(f);
  m_cards = new QWidget;
  m_cardLayout = new QVBoxLayout(m_cards);
  m_cardLayout->setContentsMargins(0, 0, 0, 0);
  m_cardLayout->addStretch(1);
  auto* scroll = new QScrollArea;
  scroll->setWidgetResizable(true);
  scroll->setWidget(m_cards);
  scroll->setFrameShape(QFrame::NoFrame);
  auto* lay = new QVBoxLayout(this);
  lay->addWidget(m_status);
  lay->addWidget(scroll, 1);
  showNoGpu(tr("No GPU telemetry yet: no worker has reported a GPU. With no NVIDIA GPU, or no NVML "
               "(libnvidia-ml.so.1), this panel stays empty; CPU work is unaffected."));
}

GpuPanel::~GpuPanel() = default;

void GpuPanel::setHistorySeconds(int seconds) { m_historySeconds = std::max(10, seconds); }

QString GpuPanel::statusText() const { return m_status->text(); }

void GpuPanel::setHostLabel(const QString& host) {
  m_host = host;
  for (auto it = m_gpus.begin(); it != m_gpus.end(); ++it)
    it->box->setTitle(titleFor(it.key(), it->box->property("razorGpuName").toString()));
}

QString GpuPanel::titleFor(int index, const QString& name) const {
  return m_host.isEmpty() ? tr("GPU %1: %2").arg(index).arg(name) : tr("GPU %1: %2 — on %3").arg(index).arg(name, m_host);
}

QString GpuPanel::gpuTitle(int i) const { return m_gpus.contains(i) ? m_gpus[i].box->title() : QString(); }

QChart* GpuPanel::chart(int i) const { return m_gpus.contains(i) ? m_gpus[i].chart : nullptr; }

int GpuPanel::historyPoints(int i) const { return m_gpus.contains(i) ? int(m_gpus[i].history.size()) : 0; }

QTableWidget* GpuPanel::processTable(int i) const { return m_gpus.contains(i) ? m_gpus[i].procs : nullptr; }

QString GpuPanel::summaryText(int i) const { return m_gpus.contains(i) ? m_gpus[i].summary->text() : QString(); }

void GpuPanel::showNoGpu(const QString& text) {
  m_noGpu = true;
  m_status->setText(text);
  m_status->setVisible(true);
  m_cards->setVisible(!m_gpus.isEmpty());
}

void GpuPanel::setUnavailable(const QString& reason) {
  showNoGpu(tr("No GPU telemetry: %1").arg(reason.isEmpty() ? tr("NVML is not available") : reason));
}

void GpuPanel::handleWorkerLog(const QString& level, const QString& message) {
  Q_UNUSED(level);
  static const QString kPrefix = QStringLiteral("GPU telemetry off:");
  const qsizetype at = message.indexOf(kPrefix);  // the pool's worker log lines read "[info] GPU telemetry off: ..."
  if (at >= 0) setUnavailable(message.mid(at + kPrefix.size()).trimmed());
}

void GpuPanel::clear() {
  for (auto& g : m_gpus) delete g.box;
  m_gpus.clear();
  showNoGpu(tr("No GPU telemetry yet."));
}

GpuPanel::Gpu& GpuPanel::gpuFor(int index, const QString& name) {
  auto it = m_gpus.find(index);
  if (it != m_gpus.end()) {
    it->box->setProperty("razorGpuName", name);
    it->box->setTitle(titleFor(index, name));
    return *it;
  }
  Gpu g;
  g.box = new QGroupBox(titleFor(index, name));
  g.box->setProperty("razorGpuName", name);
  g.summary = new QLabel;
  g.summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
  g.chart = new QChart;
  g.chart->setAnimationOptions(QChart::NoAnimation);
  g.chart->legend()->setAlignment(Qt::AlignBottom);
  g.chart->setMargins(QMargins(4, 4, 4, 4));
  auto mk = [&](const QString& n, QColor c) {
    auto* s = new QLineSeries;
    s->setName(n);
    QPen p(c);
    p.setWidthF(1.8);
    s->setPen(p);
    g.chart->addSeries(s);
    return s;
  };
  g.util = mk(tr("utilisation %"), QColor(31, 119, 180));
  g.mem = mk(tr("memory used %"), QColor(214, 39, 40));
  g.temp = mk(tr("temperature °C"), QColor(255, 127, 14));
  g.power = mk(tr("power W (right)"), QColor(44, 160, 44));
  g.x = new QValueAxis;
  g.x->setTitleText(tr("seconds ago"));
  g.x->setLabelFormat(QStringLiteral("%.0f"));
  g.x->setRange(-m_historySeconds, 0);
  g.y = new QValueAxis;
  g.y->setRange(0, 100);
  g.y->setLabelFormat(QStringLiteral("%.0f"));
  g.y->setTitleText(tr("% / °C"));
  g.yPower = new QValueAxis;
  g.yPower->setRange(0, 100);
  g.yPower->setLabelFormat(QStringLiteral("%.0f"));
  g.yPower->setTitleText(tr("W"));
  g.chart->addAxis(g.x, Qt::AlignBottom);
  g.chart->addAxis(g.y, Qt::AlignLeft);
  g.chart->addAxis(g.yPower, Qt::AlignRight);
  for (QLineSeries* s : {g.util, g.mem, g.temp, g.power}) s->attachAxis(g.x);
  for (QLineSeries* s : {g.util, g.mem, g.temp}) s->attachAxis(g.y);
  g.power->attachAxis(g.yPower);
  g.view = new QChartView(g.chart);
  g.view->setRenderHint(QPainter::Antialiasing);
  g.view->setMinimumHeight(220);
  g.procs = new QTableWidget(0, 2);
  g.procs->setHorizontalHeaderLabels({tr("PID"), tr("GPU memory")});
  g.procs->horizontalHeader()->setStretchLastSection(true);
  g.procs->verticalHeader()->setVisible(false);
  g.procs->setEditTriggers(QAbstractItemView::NoEditTriggers);
  g.procs->setMaximumWidth(240);
  auto* row = new QHBoxLayout;
  row->addWidget(g.view, 1);
  row->addWidget(g.procs);
  auto* bl = new QVBoxLayout(g.box);
  bl->addWidget(g.summary);
  bl->addLayout(row, 1);
  // Cards in index order, before the trailing stretch.
  int pos = 0;
  for (auto k = m_gpus.begin(); k != m_gpus.end() && k.key() < index; ++k) ++pos;
  m_cardLayout->insertWidget(pos, g.box);
  return *m_gpus.insert(index, g);
}

void GpuPanel::addSample(const QJsonObject& sample) {
  if (sample.value(QLatin1String("t")).toString() != QLatin1String("gpu")) return;
  const QJsonArray devices = sample.value(QLatin1String("devices")).toArray();
  if (devices.isEmpty()) {
    showNoGpu(m_host.isEmpty() ? tr("No GPU: the worker's telemetry lists no NVIDIA GPU on this machine.")
                               : tr("No GPU: the worker's telemetry lists no NVIDIA GPU on %1.").arg(m_host));
    return;
  }
  double now = sample.value(QLatin1String("time")).toDouble();
  m_noGpu = false;
  m_status->setVisible(false);
  m_cards->setVisible(true);
  for (const QJsonValue& dv : devices) {
    const QJsonObject d = dv.toObject();
    int index = d.value(QLatin1String("index")).toInt();
    QString name = d.value(QLatin1String("name")).toString(tr("unknown"));
    Gpu& g = gpuFor(index, name);
    double util = num(d, "util_gpu"), used = num(d, "mem_used"), total = num(d, "mem_total");
    double temp = num(d, "temp_c"), power = num(d, "power_w");
    double memPct = (!std::isnan(used) && total > 0) ? 100.0 * used / total : std::nan("");
    g.summary->setText(tr("utilisation %1 · memory %2 · %3 · %4")
                           .arg(orNa(util, QStringLiteral("%1%").arg(util, 0, 'f', 0)),
                                orNa(used + total, QStringLiteral("%1 / %2 GiB (%3%)")
                                                       .arg(used / kGiB, 0, 'f', 1)
                                                       .arg(total / kGiB, 0, 'f', 1)
                                                       .arg(memPct, 0, 'f', 0)),
                                orNa(temp, QStringLiteral("%1 °C").arg(temp, 0, 'f', 0)),
                                orNa(power, QStringLiteral("%1 W").arg(power, 0, 'f', 0))));
    const QJsonArray procs = d.value(QLatin1String("procs")).toArray();
    g.procs->setRowCount(int(procs.size()));
    for (int i = 0; i < procs.size(); ++i) {
      QJsonObject p = procs[i].toObject();
      const qint64 pidValue = qint64(p.value(QLatin1String("pid")).toDouble());
      const QString job = m_labeler ? m_labeler(pidValue) : QString();
      auto* pid = new QTableWidgetItem(job.isEmpty() ? QString::number(pidValue)
                                                     : QStringLiteral("%1 \u2014 %2").arg(pidValue).arg(job));
      if (!job.isEmpty()) pid->setToolTip(tr("worker %1 runs %2").arg(pidValue).arg(job));
      double m = num(p, "mem_used");
      auto* mem = new QTableWidgetItem(orNa(m, QStringLiteral("%1 MiB").arg(m / kMiB, 0, 'f', 0)));
      mem->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
      g.procs->setItem(i, 0, pid);
      g.procs->setItem(i, 1, mem);
    }
    g.history.push_back({now, util, memPct, temp, power});
    while (!g.history.empty() && g.history.front().t < now - m_historySeconds) g.history.pop_front();
    replot(g, now);
  }
}

void GpuPanel::replot(Gpu& g, double now) {
  QList<QPointF> u, m, t, p;
  double pmax = 100;
  for (const Point& pt : g.history) {
    double x = pt.t - now;
    if (!std::isnan(pt.util)) u << QPointF(x, pt.util);
    if (!std::isnan(pt.mem)) m << QPointF(x, pt.mem);
    if (!std::isnan(pt.temp)) t << QPointF(x, pt.temp);
    if (!std::isnan(pt.power)) {
      p << QPointF(x, pt.power);
      pmax = std::max(pmax, pt.power);
    }
  }
  g.util->replace(u);
  g.mem->replace(m);
  g.temp->replace(t);
  g.power->replace(p);
  g.x->setRange(-m_historySeconds, 0);
  g.yPower->setRange(0, std::ceil(pmax * 1.1 / 50.0) * 50.0);
  g.yPower->applyNiceNumbers();
}

QJsonObject GpuPanel::fakeSample(double time, int gpus) {
  QJsonArray devices;
  for (int i = 0; i < gpus; ++i) {
    double phase = time / 23.0 + i * 1.7;
    double util = std::clamp(55.0 + 40.0 * std::sin(phase) + 5.0 * std::sin(time / 3.0), 0.0, 100.0);
    double total = 79.6 * kGiB;
    double used = (18.0 + 40.0 * (0.5 + 0.5 * std::sin(phase / 2.0)) + 6.0 * i) * kGiB;
    QJsonArray procs;
    procs.append(QJsonObject{{QStringLiteral("pid"), 41200 + i}, {QStringLiteral("mem_used"), used - 0.6 * kGiB}});
    procs.append(QJsonObject{{QStringLiteral("pid"), 40990}, {QStringLiteral("mem_used"), 0.6 * kGiB}});
    devices.append(QJsonObject{{QStringLiteral("index"), i},
                               {QStringLiteral("name"), QStringLiteral("NVIDIA H100 80GB HBM3")},
                               {QStringLiteral("util_gpu"), std::round(util)},
                               {QStringLiteral("util_mem"), std::round(util * 0.6)},
                               {QStringLiteral("mem_used"), used},
                               {QStringLiteral("mem_total"), total},
                               {QStringLiteral("temp_c"), std::round(38.0 + util * 0.35)},
                               {QStringLiteral("power_w"), 90.0 + util * 5.5},
                               {QStringLiteral("procs"), procs}});
  }
  return QJsonObject{{QStringLiteral("t"), QStringLiteral("gpu")}, {QStringLiteral("time"), time},
                     {QStringLiteral("devices"), devices}};
}

GpuPanel* GpuPanel::createDemo(QWidget* parent) {
  auto* p = new GpuPanel(parent);
  const double t0 = 1.7e9;
  for (int s = 0; s <= 240; ++s) p->addSample(fakeSample(t0 + s, 2));
  p->resize(980, 720);
  return p;
}
