#include "MethodCompareView.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDateTime>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QScrollBar>
#include <QScrollArea>
#include <QSplitter>
#include <QStandardPaths>
#include <QTableWidget>
#include <QVBoxLayout>
#include <QtConcurrent/QtConcurrentRun>
#include <cmath>
#include <iterator>
#include <limits>

#include "HeatmapWidget.h"
#include "ParamForm.h"
#include "WorkerPool.h"

namespace {
const QString kMethod = QStringLiteral("compare-methods");

QString fmt(double v, int digits = 3) {
  return std::isnan(v) ? QStringLiteral("\u2014") : QString::number(v, 'g', digits);
}
// One colour per method, the same in the best-per-layer column and the heatmap titles' order.
QColor methodColor(int i) {
  static const QColor c[] = {QColor(0x4e, 0x79, 0xa7), QColor(0xf2, 0x8e, 0x2b), QColor(0x59, 0xa1, 0x4f),
                             QColor(0xe1, 0x57, 0x59), QColor(0x76, 0xb7, 0xb2), QColor(0xb0, 0x7a, 0xa1),
                             QColor(0xed, 0xc9, 0x48), QColor(0x9c, 0x75, 0x5f)};
  return c[i % int(std::size(c))];
}
QTableWidgetItem* cell(const QString& text, Qt::Alignment a = Qt::AlignRight | Qt::AlignVCenter) {
  auto* it = new QTableWidgetItem(text);
  it->setTextAlignment(a);
  it->setFlags(Qt::ItemIsSelectable | Qt::ItemIsEnabled);
  return it;
}
}  // namespace

MethodCompareView::MethodCompareView(QWidget* parent) : QWidget(parent) {
  auto* top = new QHBoxLayout;
  auto* open = new QPushButton(tr("Open result\u2026"));
  m_run = new QPushButton(tr("Run compare-methods\u2026"));
  m_metric = new QComboBox;
  m_metric->addItem(tr("expert output"), QStringLiteral("expert"));
  m_metric->addItem(tr("gate_proj"), QStringLiteral("gate"));
  m_metric->addItem(tr("up_proj"), QStringLiteral("up"));
  m_metric->addItem(tr("down_proj"), QStringLiteral("down"));
  m_log = new QCheckBox(tr("Log scale"));
  m_log->setChecked(true);
  m_info = new QLabel(tr("No method comparison: open a razor.method_compare/1 file or run compare-methods."));
  m_info->setWordWrap(true);
  top->addWidget(open);
  top->addWidget(m_run);
  top->addSpacing(12);
  top->addWidget(new QLabel(tr("Held-out NMSE of:")));
  top->addWidget(m_metric);
  top->addWidget(m_log);
  top->addSpacing(12);
  top->addWidget(m_info, 1);

  m_summary = new QTableWidget;
  m_summary->verticalHeader()->hide();
  m_summary->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_summary->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);

  m_mapsBox = new QWidget;
  m_mapsGrid = new QGridLayout(m_mapsBox);
  m_mapsGrid->setContentsMargins(0, 0, 0, 0);
  m_mapsGrid->setSpacing(4);

  m_layers = new QTableWidget;
  m_layers->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_layers->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);

  auto* bottom = new QSplitter(Qt::Horizontal);
  bottom->addWidget(m_mapsBox);
  bottom->addWidget(m_layers);
  bottom->setStretchFactor(0, 3);
  bottom->setStretchFactor(1, 1);
  auto* split = new QSplitter(Qt::Vertical);
  split->addWidget(m_summary);
  split->addWidget(bottom);
  split->setStretchFactor(0, 1);
  split->setStretchFactor(1, 3);

  auto* lay = new QVBoxLayout(this);
  lay->addLayout(top);
  lay->addWidget(split, 1);

  connect(open, &QPushButton::clicked, this, &MethodCompareView::openInteractive);
  connect(m_run, &QPushButton::clicked, this, &MethodCompareView::runInteractive);
  connect(m_metric, &QComboBox::currentIndexChanged, this, [this] { refreshHeatmaps(); });
  connect(m_log, &QCheckBox::toggled, this, [this] { refreshHeatmaps(); });
  updateRunButton();
}

void MethodCompareView::loadFile(const QString& path) {
  const quint64 gen = ++m_generation;
  ++m_loading;
  auto* watcher = new QFutureWatcher<MethodCompareResult>(this);
  QPointer<MethodCompareView> self(this);
  connect(watcher, &QFutureWatcher<MethodCompareResult>::finished, this, [self, watcher, gen] {
    watcher->deleteLater();
    if (!self) return;
    --self->m_loading;
    const MethodCompareResult r = watcher->result();
    if (gen != self->m_generation) return;  // superseded by a newer load
    if (!r.ok()) {
      emit self->messageAvailable(r.error);
      emit self->loadFailed(r.path, r.error);
      return;
    }
    self->setResult(r);
    emit self->resultLoaded(r.path);
  });
  watcher->setFuture(QtConcurrent::run([path] { return MethodCompareResult::load(path); }));
}

void MethodCompareView::setResult(const MethodCompareResult& r) {
  m_result = r;
  rebuild();
}

void MethodCompareView::setMetric(const QString& metric) {
  const int i = m_metric->findData(metric);
  if (i >= 0) m_metric->setCurrentIndex(i);
}

QString MethodCompareView::metric() const { return m_metric->currentData().toString(); }

void MethodCompareView::setLogScale(bool on) { m_log->setChecked(on); }

QJsonObject MethodCompareView::saveState() const {
  QJsonObject o{{QStringLiteral("metric"), metric()}, {QStringLiteral("log"), m_log->isChecked()}};
  if (m_result.ok() && !m_result.path.isEmpty()) o.insert(QStringLiteral("file"), m_result.path);
  return o;
}

void MethodCompareView::restoreState(const QJsonObject& o) {
  ++m_generation;  // a load in flight no longer applies
  setMetric(o.value(QStringLiteral("metric")).toString(QStringLiteral("expert")));
  setLogScale(o.value(QStringLiteral("log")).toBool(true));
  setResult(MethodCompareResult());
  const QString file = o.value(QStringLiteral("file")).toString();
  if (!file.isEmpty()) loadFile(file);
}

void MethodCompareView::rebuild() {
  const MethodCompareResult& r = m_result;
  if (r.methods.isEmpty()) {
    m_info->setText(tr("No method comparison: open a razor.method_compare/1 file or run compare-methods."));
    m_info->setToolTip(QString());
    m_summary->clear();
    m_summary->setRowCount(0);
    m_summary->setColumnCount(0);
    m_layers->clear();
    m_layers->setRowCount(0);
    m_layers->setColumnCount(0);
    for (HeatmapWidget* w : m_maps) w->deleteLater();
    m_maps.clear();
    return;
  }
  const QString best = r.bestOverall();
  m_info->setText(tr("%1 \u2014 %2 bits, group %3; %4 layers \u00d7 %5 experts, %6 scored; NMSE on each expert's "
                     "held-out tokens%7")
                      .arg(QFileInfo(r.model).fileName().isEmpty() ? r.model : QFileInfo(r.model).fileName())
                      .arg(r.bits)
                      .arg(r.group)
                      .arg(r.layers)
                      .arg(r.experts)
                      .arg(r.scored)
                      .arg(std::isnan(r.refPpl) ? QString() : tr("; unquantized ppl %1").arg(fmt(r.refPpl, 4))));
  m_info->setToolTip(r.path);

  // ---- table per method ----
  const QString ref = r.methods.contains(QStringLiteral("clip")) ? QStringLiteral("clip") : best;
  const QStringList head = {tr("Method"),    tr("Mean NMSE"), tr("\u00d7 %1").arg(ref), tr("Median"),
                            tr("gate"),      tr("up"),        tr("down"),               tr("Experts"),
                            tr("KL mean"),   tr("KL p99"),    tr("Same top-1"),         tr("ppl"),
                            tr("Fallbacks"), tr("Slices"),    tr("Quantize s")};
  m_summary->clear();
  m_summary->setColumnCount(int(head.size()));
  m_summary->setHorizontalHeaderLabels(head);
  m_summary->setRowCount(int(r.methods.size()));
  const double refMean = r.summary.value(ref).meanNmse;
  for (int i = 0; i < r.methods.size(); ++i) {
    const QString& m = r.methods[i];
    const MethodCompareResult::Summary s = r.summary.value(m);
    auto* name = cell(m, Qt::AlignLeft | Qt::AlignVCenter);
    name->setForeground(methodColor(i));
    QFont f = name->font();
    f.setBold(true);
    name->setFont(f);
    const QStringList vals = {fmt(s.meanNmse),
                              fmt(refMean > 0 ? s.meanNmse / refMean : qQNaN()),
                              fmt(s.medianNmse),
                              fmt(s.meanGate),
                              fmt(s.meanUp),
                              fmt(s.meanDown),
                              QString::number(s.nExperts),
                              fmt(s.klMean),
                              fmt(s.klP99),
                              std::isnan(s.sameTop1) ? fmt(s.sameTop1) : QString(QString::number(100 * s.sameTop1, 'f', 1) + QLatin1Char('%')),
                              fmt(s.ppl, 4),
                              QString::number(s.fallbacks),
                              QString::number(s.slices),
                              std::isnan(s.quantizeSeconds) ? fmt(s.quantizeSeconds) : QString::number(s.quantizeSeconds, 'f', 2)};
    m_summary->setItem(i, 0, name);
    for (int c = 0; c < vals.size(); ++c) {
      auto* it = cell(vals[c]);
      if (m == best && c == 0) {
        it->setBackground(QColor(0xd8, 0xf0, 0xd0));
        QFont bf = it->font();
        bf.setBold(true);
        it->setFont(bf);
      }
      m_summary->setItem(i, c + 1, it);
    }
  }
  m_summary->resizeColumnsToContents();
  // Every method's row visible: the table takes its rows' height, the heatmaps the rest.
  int h = m_summary->horizontalHeader()->sizeHint().height() + 2 * m_summary->frameWidth() + 2;
  for (int i = 0; i < m_summary->rowCount(); ++i) h += m_summary->rowHeight(i);
  if (m_summary->horizontalScrollBar()->isVisible()) h += m_summary->horizontalScrollBar()->height();
  m_summary->setMinimumHeight(std::min(h, 320));
  m_summary->setMaximumHeight(std::min(h, 320));

  // ---- best method per layer ----
  QStringList lhead = {tr("Best")};
  for (const QString& m : r.methods) lhead << m;
  m_layers->clear();
  m_layers->setColumnCount(int(lhead.size()));
  m_layers->setHorizontalHeaderLabels(lhead);
  m_layers->setRowCount(r.layers);
  QStringList rowNames;
  for (int l = 0; l < r.layers; ++l) {
    rowNames << tr("layer %1").arg(l);
    const QString b = r.bestMethod(l);
    const int bi = int(r.methods.indexOf(b));
    auto* bc = cell(b.isEmpty() ? QStringLiteral("\u2014") : b, Qt::AlignCenter);
    if (bi >= 0) {
      bc->setBackground(methodColor(bi));
      bc->setForeground(Qt::white);
    }
    m_layers->setItem(l, 0, bc);
    for (int i = 0; i < r.methods.size(); ++i) {
      auto* it = cell(fmt(r.perLayer.value(r.methods[i]).value(l, qQNaN())));
      if (i == bi) {
        QFont bf = it->font();
        bf.setBold(true);
        it->setFont(bf);
        it->setBackground(QColor(0xd8, 0xf0, 0xd0));
      }
      m_layers->setItem(l, i + 1, it);
    }
  }
  m_layers->setVerticalHeaderLabels(rowNames);
  m_layers->resizeColumnsToContents();
  int w = m_layers->verticalHeader()->sizeHint().width() + 2 * m_layers->frameWidth() + 4;
  for (int c = 0; c < m_layers->columnCount(); ++c) w += m_layers->columnWidth(c);
  if (m_layers->verticalScrollBar()->isVisible()) w += m_layers->verticalScrollBar()->width();
  m_layers->setMinimumWidth(std::min(w + 16, 520));

  // ---- one heatmap per method ----
  for (HeatmapWidget* w : m_maps) w->deleteLater();
  m_maps.clear();
  const int n = int(r.methods.size());
  const int cols = n <= 1 ? 1 : n <= 4 ? 2 : 3;
  for (int i = 0; i < n; ++i) {
    auto* w = new HeatmapWidget;
    w->setMinimumSize(200, 140);
    w->canvas()->setShowFlags(false);
    m_mapsGrid->addWidget(w, i / cols, i % cols);
    m_maps << w;
  }
  refreshHeatmaps();
}

void MethodCompareView::refreshHeatmaps() {
  const MethodCompareResult& r = m_result;
  const QString k = metric();
  const bool log = m_log->isChecked();
  // One colour range for every method's map: a cell compares across methods by colour.
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const QString& m : r.methods)
    for (double v : r.nmse.value(m).value(k)) {
      if (std::isnan(v) || (log && v <= 0)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  for (int i = 0; i < m_maps.size() && i < r.methods.size(); ++i) {
    HeatmapCanvas* c = m_maps[i]->canvas();
    c->setScale(log ? HeatmapCanvas::Scale::Log : HeatmapCanvas::Scale::Linear);
    c->setGrid(r.grid(r.methods[i], k));
    // Short: the canvas appends the scale and the shape; the metric is the combo's.
    c->setTitle(tr("%1 \u2014 mean %2").arg(r.methods[i], fmt(r.summary.value(r.methods[i]).meanNmse)));
    if (std::isfinite(lo))
      c->setFixedRange(lo, hi);
    else
      c->setFixedRange(1, 0);
  }
}

void MethodCompareView::openInteractive() {
  const QString path = QFileDialog::getOpenFileName(this, tr("Open a method comparison"), QString(),
                                                    tr("Method comparison (*.json);;All files (*)"));
  if (!path.isEmpty()) loadFile(path);
}

// ---- running compare-methods -------------------------------------------------------------------------------

void MethodCompareView::setWorkerPool(WorkerPool* pool) {
  if (m_pool) disconnect(m_pool, nullptr, this, nullptr);
  m_pool = pool;
  m_job.clear();
  if (pool) {
    connect(pool, &WorkerPool::workerAvailable, this, [this] { updateRunButton(); });
    connect(pool, &WorkerPool::jobFinished, this, [this](const QString& id, const QJsonObject& res) {
      if (id.isEmpty() || id != m_job) return;
      m_job.clear();
      updateRunButton();
      const QString out = res.value(QStringLiteral("out")).toString(m_jobOut);
      emit messageAvailable(tr("compare-methods finished: %1").arg(out));
      if (out.isEmpty()) return;
      emit jobResultReady(out);
      if (!m_remote) loadFile(out);
    });
    connect(pool, &WorkerPool::jobFailed, this, [this](const QString& id, const QString&, const QString& msg) {
      if (id.isEmpty() || id != m_job) return;
      m_job.clear();
      updateRunButton();
      emit messageAvailable(tr("compare-methods failed: %1").arg(msg));
    });
  }
  updateRunButton();
}

void MethodCompareView::setModelPath(const QString& path) {
  m_modelPath = path;
  if (m_form && !path.isEmpty()) m_form->setValue(QStringLiteral("model"), path);
  updateRunButton();
}

void MethodCompareView::setOutputFolder(const QString& dir) { m_outFolder = dir; }

void MethodCompareView::updateRunButton() {
  const bool ready = m_pool && !m_pool->lastHello().isEmpty() && m_job.isEmpty();
  m_run->setEnabled(ready);
  m_run->setToolTip(!m_pool ? tr("No worker pool")
                    : !m_job.isEmpty() ? tr("Running (%1): see the jobs dock").arg(m_job)
                    : ready ? tr("razor compare-methods through the worker pool")
                            : tr("Waiting for a worker"));
}

ParamForm* MethodCompareView::runForm() {
  if (m_form) return m_form;
  if (!m_pool || m_pool->lastHello().isEmpty()) return nullptr;
  const QJsonObject hello = m_pool->lastHello();
  const QJsonObject schema = ParamForm::methodSchema(hello, kMethod);
  if (schema.isEmpty()) return nullptr;
  m_form = new ParamForm(this);
  m_form->hide();
  m_form->build(schema, hello.value(QLatin1String("enums")).toObject(),
                {QStringLiteral("model"), QStringLiteral("methods"), QStringLiteral("bits"), QStringLiteral("probe"),
                 QStringLiteral("no_kl"), QStringLiteral("out")});
  if (!m_modelPath.isEmpty()) m_form->setValue(QStringLiteral("model"), m_modelPath);
  return m_form;
}

QString MethodCompareView::runJob(QString* error) {
  auto fail = [error](const QString& e) {
    if (error) *error = e;
    return QString();
  };
  if (!m_pool) return fail(tr("no worker pool"));
  if (!m_job.isEmpty()) return fail(tr("compare-methods is already running (%1)").arg(m_job));
  ParamForm* form = runForm();
  if (!form) return fail(tr("the worker does not offer compare-methods"));
  const QStringList problems = form->problems();
  if (!problems.isEmpty()) return fail(problems.join(QStringLiteral("; ")));
  QJsonObject p = form->params();
  if (p.value(QStringLiteral("out")).toString().isEmpty()) {
    QString dir = m_outFolder;
    if (dir.isEmpty() && !m_remote)
      dir = QStandardPaths::writableLocation(QStandardPaths::AppLocalDataLocation) + QStringLiteral("/method-compare");
    if (!m_remote) QDir().mkpath(dir);
    const QString model = QFileInfo(p.value(QStringLiteral("model")).toString()).fileName();
    const QString name = QStringLiteral("method-compare-%1-%2.json")
                             .arg(model.isEmpty() ? QStringLiteral("model") : model,
                                  QDateTime::currentDateTime().toString(QStringLiteral("yyyyMMdd-HHmmss")));
    p[QStringLiteral("out")] = dir.isEmpty() ? name : QDir(dir).filePath(name);
  }
  m_jobOut = p.value(QStringLiteral("out")).toString();
  m_job = m_pool->submit(kMethod, p);
  updateRunButton();
  emit messageAvailable(tr("compare-methods submitted (%1): %2").arg(m_job, m_jobOut));
  return m_job;
}

void MethodCompareView::runInteractive() {
  ParamForm* form = runForm();
  if (!form) {
    emit messageAvailable(tr("compare-methods: no worker yet"));
    return;
  }
  QDialog dlg(this);
  dlg.setWindowTitle(tr("Compare quantization methods"));
  auto* lay = new QVBoxLayout(&dlg);
  auto* note = new QLabel(tr("Held-out NMSE per expert and projection of each method, and KL / ppl of each "
                             "method's model (docs/methods.md). The result opens here when the job ends."));
  note->setWordWrap(true);
  lay->addWidget(note);
  form->setParent(&dlg);
  form->show();
  lay->addWidget(form);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
  buttons->button(QDialogButtonBox::Ok)->setText(tr("Run"));
  lay->addWidget(buttons);
  connect(buttons, &QDialogButtonBox::accepted, &dlg, [&dlg, this] {
    QString err;
    if (runJob(&err).isEmpty()) {
      emit messageAvailable(tr("compare-methods: %1").arg(err));
      return;
    }
    dlg.accept();
  });
  connect(buttons, &QDialogButtonBox::rejected, &dlg, &QDialog::reject);
  dlg.exec();
  form->hide();
  form->setParent(this);  // the form (and what was typed) outlives the dialog
}
