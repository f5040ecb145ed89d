#include "HeatmapView.h"
#include "ErrorCodes.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QHBoxLayout>
#include <QJsonArray>
#include <QDateTime>
#include <QDir>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QPointer>
#include <QStackedWidget>
#include <QVBoxLayout>
#include <QtConcurrent/QtConcurrentRun>

#include "HeatmapGLWidget.h"
#include "HeatmapWidget.h"
#include "WorkerPool.h"

HeatmapView::HeatmapView(QWidget* parent) : QWidget(parent) {
  auto* bar = new QHBoxLayout;
  m_source = new QComboBox;
  m_source->setObjectName(QStringLiteral("heatmapSource"));
  m_source->setMinimumContentsLength(24);
  m_source->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
  m_stat = new QComboBox;
  m_stat->setObjectName(QStringLiteral("heatmapStat"));
  m_stat->setMinimumContentsLength(18);
  m_scale = new QComboBox;
  m_scale->addItem(tr("Linear"));
  m_scale->addItem(tr("Log"));
  m_flags = new QCheckBox(tr("Flag cold experts"));
  m_flags->setChecked(true);
  m_gl = new QCheckBox(tr("OpenGL + HUD"));
  bar->addWidget(new QLabel(tr("Source")));
  bar->addWidget(m_source, 1);
  bar->addWidget(new QLabel(tr("Statistic")));
  bar->addWidget(m_stat);
  bar->addWidget(new QLabel(tr("Scale")));
  bar->addWidget(m_scale);
  bar->addWidget(m_flags);
  bar->addWidget(m_gl);

  m_stack = new QStackedWidget;
  m_raster = new HeatmapWidget;
  m_stack->addWidget(m_raster);
  configure(m_raster->canvas());
  m_glUsable = HeatmapGLWidget::openGLUsable();
  m_gl->setEnabled(m_glUsable);
  m_gl->setToolTip(m_glUsable ? tr("Draw through OpenGL with the Dear ImGui GPU overlay")
                              : tr("OpenGL is not usable on this platform (offscreen, minimal, or no GL context)"));
  m_gpu.note = tr("no worker telemetry yet");

  m_info = new QLabel;
  m_info->setObjectName(QStringLiteral("heatmapInfo"));
  m_info->setText(tr("Calibrate below (a probe over a text, in a worker), or open a probe HDF5 file, a GGUF imatrix "
                     "or a razor_quant_summary.json with File \u2192 Open statistics..."));

  auto* cal = new QHBoxLayout;
  m_calibText = new QLineEdit;
  m_calibText->setObjectName(QStringLiteral("calibrationText"));
  m_calibText->setPlaceholderText(tr("bundled calibration text"));
  m_calibTokens = new QSpinBox;
  m_calibTokens->setObjectName(QStringLiteral("calibrationTokens"));
  m_calibTokens->setRange(16, 2000000000);
  m_calibTokens->setValue(8192);
  m_calibOffset = new QSpinBox;
  m_calibOffset->setObjectName(QStringLiteral("calibrationOffset"));
  m_calibOffset->setRange(0, 2000000000);
  m_calibrate = new QPushButton(tr("Calibrate"));
  m_calibrate->setObjectName(QStringLiteral("calibrateButton"));
  cal->addWidget(new QLabel(tr("Calibration text")));
  cal->addWidget(m_calibText, 1);
  cal->addWidget(new QLabel(tr("tokens")));
  cal->addWidget(m_calibTokens);
  cal->addWidget(new QLabel(tr("from token")));
  cal->addWidget(m_calibOffset);
  cal->addWidget(m_calibrate);
  connect(m_calibrate, &QPushButton::clicked, this, &HeatmapView::calibrate);

  auto* lay = new QVBoxLayout(this);
  lay->addLayout(bar);
  lay->addWidget(m_stack, 1);
  lay->addLayout(cal);
  lay->addWidget(m_info);
  updateCalibrateButton();

  connect(m_source, &QComboBox::currentIndexChanged, this, [this] {
    refreshCombos();
    showCurrent();
  });
  connect(m_stat, &QComboBox::currentIndexChanged, this, &HeatmapView::showCurrent);
  connect(m_scale, &QComboBox::currentIndexChanged, this, [this](int i) {
    for (HeatmapCanvas* c : {m_raster->canvas(), m_glWidget ? m_glWidget->canvas() : nullptr})
      if (c) c->setScale(i == 1 ? HeatmapCanvas::Scale::Log : HeatmapCanvas::Scale::Linear);
  });
  connect(m_flags, &QCheckBox::toggled, this, [this](bool on) {
    for (HeatmapCanvas* c : {m_raster->canvas(), m_glWidget ? m_glWidget->canvas() : nullptr})
      if (c) c->setShowFlags(on);
  });
  connect(m_gl, &QCheckBox::toggled, this, &HeatmapView::setUseOpenGL);
}

void HeatmapView::configure(HeatmapCanvas* c) {
  c->setScale(m_scale && m_scale->currentIndex() == 1 ? HeatmapCanvas::Scale::Log : HeatmapCanvas::Scale::Linear);
  c->setShowFlags(!m_flags || m_flags->isChecked());
}

void HeatmapView::loadFile(const QString& path) {
  const QString abs = QFileInfo(path).absoluteFilePath();
  const quint64 gen = ++m_generation;
  m_loadGeneration[abs] = gen;
  ++m_pending;
  m_info->setText(tr("Loading %1 ...").arg(abs));
  auto* watcher = new QFutureWatcher<HeatmapSource>(this);
  QPointer<HeatmapView> self(this);
  connect(watcher, &QFutureWatcher<HeatmapSource>::finished, this, [self, watcher, abs, gen] {
    watcher->deleteLater();
    if (!self) return;
    --self->m_pending;
    const HeatmapSource src = watcher->result();
    if (self->m_loadGeneration.value(abs) == gen) {  // a newer load of the same file supersedes this one
      if (src.ok()) {
        self->addSource(src);
        emit self->sourceAvailable(abs);
      } else {
        self->m_info->setText(src.error);
        emit self->loadFailed(abs, src.error);
      }
    }
    if (self->m_pending == 0) emit self->loadsFinished();
  });
  watcher->setFuture(QtConcurrent::run([abs] { return loadHeatmapSource(abs); }));
}

void HeatmapView::addSource(const HeatmapSource& src) {
  HeatmapSource s = src;
  if (s.kind != HeatmapSource::Kind::Synthetic) s.path = QFileInfo(s.path).absoluteFilePath();
  int idx = -1;
  for (int i = 0; i < m_sources.size(); ++i)
    if (m_sources[i].path == s.path) idx = i;
  if (idx >= 0)
    m_sources[idx] = s;
  else
    m_sources.push_back(s), idx = int(m_sources.size()) - 1;
  m_source->blockSignals(true);
  m_source->clear();
  for (const auto& x : m_sources)
    m_source->addItem(QStringLiteral("%1 (%2)").arg(QFileInfo(x.path).fileName(), x.kindName()), x.path);
  m_source->setCurrentIndex(idx);
  m_source->blockSignals(false);
  refreshCombos();
  showCurrent();
}

void HeatmapView::clear() {
  m_sources.clear();
  m_source->clear();
  m_stat->clear();
  for (HeatmapCanvas* c : {m_raster->canvas(), m_glWidget ? m_glWidget->canvas() : nullptr})
    if (c) c->setGrid(HeatmapGrid());
}

const HeatmapSource* HeatmapView::currentSource() const {
  const int i = m_source->currentIndex();
  return i >= 0 && i < m_sources.size() ? &m_sources[i] : nullptr;
}

QStringList HeatmapView::sourcePaths() const {
  QStringList out;
  for (const auto& s : m_sources)
    if (s.kind != HeatmapSource::Kind::Synthetic) out << s.path;
  return out;
}

void HeatmapView::refreshCombos() {
  const QString keep = m_stat->currentText();
  m_stat->blockSignals(true);
  m_stat->clear();
  if (const HeatmapSource* s = currentSource()) m_stat->addItems(s->statNames());
  const int i = m_stat->findText(keep);
  m_stat->setCurrentIndex(i >= 0 ? i : 0);
  m_stat->blockSignals(false);
}

void HeatmapView::showCurrent() {
  const HeatmapSource* s = currentSource();
  if (!s) return;
  const HeatmapGrid* g = s->grid(m_stat->currentText());
  if (!g) return;
  for (HeatmapCanvas* c : {m_raster->canvas(), m_glWidget ? m_glWidget->canvas() : nullptr}) {
    if (!c) continue;
    c->setCounts(s->counts);
    c->setEntropy(s->entropy);
    c->setTitle(QStringLiteral("%1 \u2014 %2").arg(g->name, QFileInfo(s->path).fileName()));
    c->setGrid(*g);
  }
  m_info->setText(s->summary + QStringLiteral("   |   wheel: zoom (Shift: experts, Ctrl: layers), drag: pan, "
                                              "double-click: reset, hover: exact values"));
}

void HeatmapView::setCurrent(const QString& path, const QString& stat) {
  const int i = m_source->findData(QFileInfo(path).absoluteFilePath());
  if (i >= 0) m_source->setCurrentIndex(i);
  const int j = m_stat->findText(stat);
  if (j >= 0) m_stat->setCurrentIndex(j);
}

void HeatmapView::setLogScale(bool on) { m_scale->setCurrentIndex(on ? 1 : 0); }

void HeatmapView::setUseOpenGL(bool on) {
  if (on && !m_glUsable) return;
  if (on && !m_glWidget) {
    m_glWidget = new HeatmapGLWidget;
    m_glWidget->setGpuFigures(m_gpu);
    configure(m_glWidget->canvas());
    m_stack->addWidget(m_glWidget);
    showCurrent();
  }
  if (m_glWidget) m_glWidget->canvas()->setViewRect(on ? m_raster->canvas()->viewRect() : m_glWidget->canvas()->viewRect());
  if (!on && m_glWidget) m_raster->canvas()->setViewRect(m_glWidget->canvas()->viewRect());
  m_stack->setCurrentWidget(on ? static_cast<QWidget*>(m_glWidget) : m_raster);
  if (m_gl->isChecked() != on) m_gl->setChecked(on);
}

bool HeatmapView::usingOpenGL() const { return m_glWidget && m_stack->currentWidget() == m_glWidget; }

void HeatmapView::setGpuFigures(const GpuFigures& g) {
  m_gpu = g;
  if (m_glWidget) m_glWidget->setGpuFigures(g);
}

HeatmapCanvas* HeatmapView::canvas() const { return usingOpenGL() ? m_glWidget->canvas() : m_raster->canvas(); }

QJsonObject HeatmapView::saveState() const {
  const QRectF v = canvas()->viewRect();
  const HeatmapSource* s = currentSource();
  return {{QStringLiteral("source"), s ? s->path : QString()},
          {QStringLiteral("stat"), m_stat->currentText()},
          {QStringLiteral("log"), m_scale->currentIndex() == 1},
          {QStringLiteral("flags"), m_flags->isChecked()},
          {QStringLiteral("opengl"), usingOpenGL()},
          {QStringLiteral("view"), QJsonArray{v.x(), v.y(), v.width(), v.height()}}};
}

void HeatmapView::restoreState(const QJsonObject& o) {
  if (o.isEmpty()) return;
  setCurrent(o.value(QStringLiteral("source")).toString(), o.value(QStringLiteral("stat")).toString());
  setLogScale(o.value(QStringLiteral("log")).toBool());
  m_flags->setChecked(o.value(QStringLiteral("flags")).toBool(true));
  setUseOpenGL(o.value(QStringLiteral("opengl")).toBool());
  const QJsonArray v = o.value(QStringLiteral("view")).toArray();
  if (v.size() == 4)
    canvas()->setViewRect(QRectF(v[0].toDouble(), v[1].toDouble(), v[2].toDouble(), v[3].toDouble()));
}

// ---- Calibrate: the `probe` job in the worker pool ---------------------------------------------------------

void HeatmapView::setWorkerPool(WorkerPool* pool) {
  if (m_pool == pool) return;
  if (m_pool) m_pool->disconnect(this);
  m_pool = pool;
  m_calibJob.clear();
  if (m_pool) {
    connect(m_pool, &WorkerPool::jobFinished, this, [this](const QString& id, const QJsonObject&) {
      if (id.isEmpty() || id != m_calibJob) return;
      m_calibJob.clear();
      updateCalibrateButton();
      m_info->setText(tr("Calibrated: %1").arg(m_calibOut));
      emit calibrationFinished(m_calibOut, m_calibImatrix);
    });
    connect(m_pool, &WorkerPool::jobFailed, this, [this](const QString& id, const QString& code, const QString& msg) {
      if (id.isEmpty() || id != m_calibJob) return;
      m_calibJob.clear();
      updateCalibrateButton();
      m_info->setText(tr("Calibration failed: %1").arg(msg));
      if (code != ErrorCode::superseded) emit calibrationFailed(msg);
    });
  }
  updateCalibrateButton();
}

void HeatmapView::setModelPath(const QString& path) {
  m_modelPath = path;
  updateCalibrateButton();
}

void HeatmapView::setCalibrationFolder(const QString& dir, bool local) {
  m_calibFolder = dir;
  m_calibLocal = local;
}

void HeatmapView::setCalibration(const QString& text, int tokens, qint64 offset) {
  m_calibText->setText(text);
  m_calibTokens->setValue(tokens);
  m_calibOffset->setValue(int(offset));
}

void HeatmapView::updateCalibrateButton() {
  QString why;
  if (!m_pool) why = tr("No worker pool");
  else if (m_modelPath.isEmpty()) why = tr("Open a model first");
  else if (!m_calibJob.isEmpty()) why = tr("Calibrating ... (jobs dock: progress, cancel)");
  m_calibrate->setEnabled(why.isEmpty());
  m_calibrate->setToolTip(why.isEmpty() ? tr("Run the probe over the text in a worker: routing statistics (HDF5) and an "
                                             "importance matrix (GGUF); the heatmap opens the result")
                                        : why);
}

void HeatmapView::calibrate() {
  if (!m_pool || m_modelPath.isEmpty() || !m_calibJob.isEmpty()) return;
  const QString stamp = QDateTime::currentDateTime().toString(QStringLiteral("yyyyMMdd-hhmmss-zzz"));
  const QString dir = m_calibFolder.isEmpty() ? QString() : m_calibFolder + QLatin1Char('/');
  if (!m_calibFolder.isEmpty() && m_calibLocal) QDir().mkpath(m_calibFolder);
  m_calibOut = dir + QStringLiteral("probe-%1.h5").arg(stamp);
  m_calibImatrix = dir + QStringLiteral("imatrix-%1.gguf").arg(stamp);
  const int tokens = m_calibTokens->value();
  QJsonObject params{{QStringLiteral("model"), m_modelPath},
                     {QStringLiteral("tokens"), tokens},
                     {QStringLiteral("seqlen"), std::min(tokens, 256)},
                     {QStringLiteral("offset"), m_calibOffset->value()},
                     {QStringLiteral("out"), m_calibOut},
                     {QStringLiteral("imatrix"), m_calibImatrix}};
  if (!m_calibText->text().trimmed().isEmpty()) params[QStringLiteral("text")] = m_calibText->text().trimmed();
  WorkerPool::JobOptions opt;
  opt.key = QStringLiteral("salience.calibrate");
  m_calibJob = m_pool->submit(QStringLiteral("probe"), params, opt);
  m_info->setText(tr("Calibrating %1 on %2 tokens ...").arg(QFileInfo(m_modelPath).fileName()).arg(tokens));
  updateCalibrateButton();
}
