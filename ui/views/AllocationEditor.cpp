#include "AllocationEditor.h"
#include "ErrorCodes.h"

#include <QButtonGroup>
#include <QComboBox>
#include <QDateTime>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLabel>
#include <QLineEdit>
#include <QSpinBox>
#include <QPushButton>
#include <QRegularExpression>
#include <QSplitter>
#include <QStandardPaths>
#include <QTableView>
#include <QTemporaryDir>
#include <QToolButton>
#include <QUndoCommand>
#include <QVBoxLayout>
#include <cmath>

#include "HeatmapWidget.h"
#include "RemoteFiles.h"
#include "WorkerPool.h"

namespace {

constexpr double kBrushBits[] = {2, 3, 4, 8, 16};
// Footprint equal to the target within this many GB counts as met (display rounding is 0.01 GB).
constexpr double kTargetSlackGb = 0.005;

class BitsCommand : public QUndoCommand {
 public:
  BitsCommand(AllocationEditor* ed, QVector<QPoint> cells, QVector<double> before, QVector<double> after,
              const QString& text, bool alreadyApplied)
      : QUndoCommand(text), m_ed(ed), m_cells(std::move(cells)), m_before(std::move(before)),
        m_after(std::move(after)), m_skipRedo(alreadyApplied) {}
  void undo() override { m_ed->applyBits(m_cells, m_before); }
  void redo() override {
    if (m_skipRedo) {
      m_skipRedo = false;
      return;
    }
    m_ed->applyBits(m_cells, m_after);
  }

 private:
  AllocationEditor* m_ed;
  QVector<QPoint> m_cells;
  QVector<double> m_before, m_after;
  bool m_skipRedo;
};

QString gb(double bytes) {
  if (bytes >= 1e9) return QString::number(bytes / 1e9, 'f', 2) + QStringLiteral(" GB");
  return QString::number(bytes / 1e6, 'f', 2) + QStringLiteral(" MB");
}

}  // namespace

// ---- AllocationEditor -----------------------------------------------------------------------------------

AllocationEditor::AllocationEditor(QWidget* parent)
    : QWidget(parent), m_undo(new QUndoStack(this)), m_layers(new LayerBudgetModel(&m_fp, this)),
      m_fitMode(nullptr) {
  // Tool bar: base recipe, brush, display, undo/redo.
  auto* bar = new QHBoxLayout;
  m_base = new QComboBox;
  m_base->setObjectName(QStringLiteral("baseRecipe"));
  for (const auto& dir : razor::recipe_search_path())
    for (const QFileInfo& fi : QDir(QString::fromStdString(dir)).entryInfoList({QStringLiteral("*.json")}, QDir::Files, QDir::Name))
      if (m_base->findText(fi.completeBaseName()) < 0) m_base->addItem(fi.completeBaseName(), fi.absoluteFilePath());
  bar->addWidget(new QLabel(tr("Base recipe")));
  bar->addWidget(m_base);
  bar->addSpacing(12);
  bar->addWidget(new QLabel(tr("Brush")));
  m_brushGroup = new QButtonGroup(this);
  for (double b : kBrushBits) {
    auto* tb = new QToolButton;
    tb->setText(b >= 16 ? QStringLiteral("16") : QString::number(b));
    tb->setToolTip(b >= 16 ? tr("Keep at stored precision (16 bits)") : tr("Paint %1 bits").arg(b));
    tb->setCheckable(true);
    tb->setObjectName(QStringLiteral("brush%1").arg(int(b)));
    QPalette pal = tb->palette();
    pal.setColor(QPalette::Button, QColor::fromRgb(HeatmapCanvas::bitsColor(b)));
    pal.setColor(QPalette::ButtonText, Qt::black);
    tb->setPalette(pal);
    tb->setAutoFillBackground(true);
    m_brushGroup->addButton(tb, int(b));
    bar->addWidget(tb);
  }
  m_brushGroup->button(2)->setChecked(true);
  bar->addSpacing(12);
  bar->addWidget(new QLabel(tr("Show")));
  m_display = new QComboBox;
  m_display->setObjectName(QStringLiteral("allocationDisplay"));
  m_display->setMinimumContentsLength(16);
  bar->addWidget(m_display);
  auto* undo = new QToolButton;
  undo->setDefaultAction(m_undo->createUndoAction(this, tr("Undo")));
  auto* redo = new QToolButton;
  redo->setDefaultAction(m_undo->createRedoAction(this, tr("Redo")));
  bar->addStretch(1);
  bar->addWidget(undo);
  bar->addWidget(redo);

  m_heatmap = new HeatmapWidget;
  m_heatmap->canvas()->setPaintEnabled(true);
  m_heatmap->canvas()->setMode(HeatmapCanvas::Mode::Bits);

  // Right panel: footprint, fit, per-layer budgets.
  auto* side = new QWidget;
  auto* sl = new QVBoxLayout(side);
  sl->setContentsMargins(0, 0, 0, 0);
  auto* fpBox = new QGroupBox(tr("Footprint"));
  auto* fpl = new QVBoxLayout(fpBox);
  m_footprintLabel = new QLabel;
  m_footprintLabel->setObjectName(QStringLiteral("footprintLabel"));
  m_footprintLabel->setTextFormat(Qt::RichText);
  m_footprintLabel->setWordWrap(true);
  m_footprintLabel->setMinimumHeight(m_footprintLabel->fontMetrics().lineSpacing() * 8);  // 6 rows + target line
  fpBox->setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Minimum);
  fpl->addWidget(m_footprintLabel);
  sl->addWidget(fpBox);

  auto* fitBox = new QGroupBox(tr("Fit"));
  auto* form = new QFormLayout(fitBox);
  m_fitMode = new QComboBox;
  m_fitMode->setObjectName(QStringLiteral("fitMode"));
  m_fitMode->addItem(tr("Expert bits (probe)"), QStringLiteral("fake"));
  m_fitMode->addItem(tr("Whole-file GGUF"), QStringLiteral("gguf"));
  m_fitMode->setToolTip(tr("Expert bits: per-expert bits from the probe (razor.recipe/1, applied here as one undo step). "
                           "Whole-file GGUF: a ggml type per tensor from measured KL sensitivities (a tensor-type "
                           "recipe for the export)."));
  form->addRow(tr("Mode"), m_fitMode);
  m_ggufTypes = new QLineEdit;
  m_ggufTypes->setObjectName(QStringLiteral("ggufTypes"));
  m_ggufTypes->setPlaceholderText(tr("every ggml type"));
  m_ggufTypes->setToolTip(tr("Whole-file GGUF: the types the allocation may choose from, comma-separated "
                             "(fewer types: fewer sensitivity measurements)"));
  m_ggufTypes->setEnabled(false);
  form->addRow(tr("GGUF types"), m_ggufTypes);
  m_strategy = new QComboBox;  // filled from the worker's hello (enums.strategies)
  m_strategy->setObjectName(QStringLiteral("strategy"));
  m_strategy->addItem(QStringLiteral("solver"), QStringLiteral("solver"));
  form->addRow(tr("Strategy"), m_strategy);
  auto* tl = new QHBoxLayout;
  m_target = new QDoubleSpinBox;
  m_target->setRange(0, 100000);
  m_target->setDecimals(2);
  m_target->setObjectName(QStringLiteral("targetValue"));
  m_targetUnit = new QComboBox;
  m_targetUnit->addItem(tr("GB"));
  m_targetUnit->addItem(tr("bits"));
  tl->addWidget(m_target, 1);
  tl->addWidget(m_targetUnit);
  form->addRow(tr("Target"), tl);
  m_fit = new QPushButton(tr("Fit to target"));
  m_fit->setObjectName(QStringLiteral("fitButton"));
  m_fit->setEnabled(false);
  m_fit->setToolTip(tr("Waiting for a worker ..."));
  form->addRow(m_fit);
  sl->addWidget(fitBox);

  auto* mBox = new QGroupBox(tr("Measure"));
  auto* mf = new QFormLayout(mBox);
  m_measureText = new QLineEdit;
  m_measureText->setObjectName(QStringLiteral("measureText"));
  m_measureText->setPlaceholderText(tr("bundled held-out text"));
  mf->addRow(tr("Text"), m_measureText);
  auto* wl = new QHBoxLayout;
  m_measureWindows = new QSpinBox;
  m_measureWindows->setObjectName(QStringLiteral("measureWindows"));
  m_measureWindows->setRange(1, 100000);
  m_measureWindows->setValue(8);
  m_measureCtx = new QSpinBox;
  m_measureCtx->setObjectName(QStringLiteral("measureCtx"));
  m_measureCtx->setRange(2, 1 << 20);
  m_measureCtx->setValue(256);
  m_measureOffset = new QSpinBox;
  m_measureOffset->setObjectName(QStringLiteral("measureOffset"));
  m_measureOffset->setRange(0, 2000000000);
  wl->addWidget(m_measureWindows);
  wl->addWidget(new QLabel(QStringLiteral("\u00d7")));
  wl->addWidget(m_measureCtx);
  wl->addWidget(new QLabel(tr("from")));
  wl->addWidget(m_measureOffset);
  mf->addRow(tr("Windows"), wl);
  m_measure = new QPushButton(tr("Measure KL / ppl"));
  m_measure->setObjectName(QStringLiteral("measureButton"));
  m_measure->setEnabled(false);
  mf->addRow(m_measure);
  m_measureResult = new QLabel;
  m_measureResult->setObjectName(QStringLiteral("measureResult"));
  m_measureResult->setWordWrap(true);
  mf->addRow(m_measureResult);
  auto* stl = new QHBoxLayout;
  m_studyStrategies = new QLineEdit(QStringLiteral("solver,freq,asal,flat"));
  m_studyStrategies->setObjectName(QStringLiteral("studyStrategies"));
  m_studyStrategies->setToolTip(tr("Strategies, comma-separated (the worker's list, plus 'flat': every expert at the budget)"));
  m_studyBudgets = new QLineEdit(QStringLiteral("3.0,2.5"));
  m_studyBudgets->setObjectName(QStringLiteral("studyBudgets"));
  m_studyBudgets->setToolTip(tr("Budgets, comma-separated: expert bits (3.0) or sizes (47GB)"));
  m_study = new QPushButton(tr("Study"));
  m_study->setObjectName(QStringLiteral("studyButton"));
  stl->addWidget(m_studyStrategies, 2);
  stl->addWidget(m_studyBudgets, 1);
  stl->addWidget(m_study);
  mf->addRow(tr("Study"), stl);
  sl->addWidget(mBox);

  sl->addWidget(new QLabel(tr("<b>Per-layer budgets</b> (edit Avg bits to set a whole layer)")));
  m_layerTable = new QTableView;
  m_layerTable->setModel(m_layers);
  m_layerTable->verticalHeader()->hide();
  m_layerTable->verticalHeader()->setDefaultSectionSize(20);
  m_layerTable->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  m_layerTable->setEditTriggers(QAbstractItemView::DoubleClicked | QAbstractItemView::EditKeyPressed |
                                QAbstractItemView::AnyKeyPressed);
  sl->addWidget(m_layerTable, 1);
  auto* save = new QPushButton(tr("Save recipe..."));
  save->setObjectName(QStringLiteral("saveRecipeButton"));
  sl->addWidget(save);

  auto* split = new QSplitter(Qt::Horizontal);
  split->addWidget(m_heatmap);
  split->addWidget(side);
  split->setStretchFactor(0, 1);
  split->setSizes({900, 340});
  auto* lay = new QVBoxLayout(this);
  lay->addLayout(bar);
  lay->addWidget(split, 1);

  connect(m_brushGroup, &QButtonGroup::idClicked, this, [this](int id) { m_brush = id; });
  auto* canvas = m_heatmap->canvas();
  connect(canvas, &HeatmapCanvas::strokeStarted, this, [this] {
    m_strokeCells.clear();
    m_strokeBefore.clear();
  });
  connect(canvas, &HeatmapCanvas::cellsPainted, this, [this](const QVector<QPoint>& cells) {
    for (const QPoint& c : cells) {
      const double before = m_fp.expertBits(c.y(), c.x());
      if (std::isnan(before)) continue;
      m_strokeCells << c;
      m_strokeBefore << before;
      applyBits({c}, {m_brush});
    }
  });
  connect(canvas, &HeatmapCanvas::strokeFinished, this, [this] {
    if (m_strokeCells.isEmpty()) return;
    QVector<double> after(m_strokeCells.size(), m_brush);
    m_undo->push(new BitsCommand(this, m_strokeCells, m_strokeBefore, after,
                                 tr("paint %1 cell(s) %2 bits").arg(m_strokeCells.size()).arg(m_brush), true));
    m_strokeCells.clear();
    m_strokeBefore.clear();
  });
  connect(m_layers, &LayerBudgetModel::layerBitsRequested, this, &AllocationEditor::setLayerBits);
  connect(m_base, &QComboBox::activated, this, [this](int i) {
    QString err;
    if (!loadRecipe(m_base->itemData(i).toString(), &err)) m_footprintLabel->setText(err.toHtmlEscaped());
  });
  connect(m_display, &QComboBox::currentIndexChanged, this, &AllocationEditor::rebuildHeatmap);
  connect(m_target, &QDoubleSpinBox::valueChanged, this, [this](double v) {
    m_targetValue = v;
    updateFitButton();
    updateFootprint();
  });
  connect(m_targetUnit, &QComboBox::currentIndexChanged, this, [this](int i) {
    m_targetGb = i == 0;
    updateFootprint();
  });
  connect(m_fit, &QPushButton::clicked, this, &AllocationEditor::runAllocate);
  connect(m_measure, &QPushButton::clicked, this, &AllocationEditor::runMeasure);
  connect(m_study, &QPushButton::clicked, this, &AllocationEditor::runStudy);
  connect(m_fitMode, &QComboBox::currentIndexChanged, this, [this] {
    m_strategy->setEnabled(m_fitMode->currentData().toString() == QLatin1String("fake"));
    m_ggufTypes->setEnabled(m_fitMode->currentData().toString() == QLatin1String("gguf"));
    updateFitButton();
    updateMeasureButton();
  });
  connect(save, &QPushButton::clicked, this, [this] {
    emit saveRecipeRequested();  // MainWindow owns the file dialog (File > Save recipe...)
  });
  refreshDisplayCombo();
  QString err;
  loadRecipe(QStringLiteral("seed-default"), &err);
  m_base->setCurrentIndex(std::max(0, m_base->findText(QStringLiteral("seed-default"))));
  updateFitButton();
  updateMeasureButton();
}

QString AllocationEditor::probePath() const {
  for (const auto& s : m_sources)
    if (s.kind == HeatmapSource::Kind::Probe) return s.path;
  return {};
}

void AllocationEditor::updateFitButton() {
  const bool busy = !m_fitJob.isEmpty() || m_uploadFor == Upload::Fit || m_fetchId >= 0;
  const bool gguf = m_fitMode && m_fitMode->currentData().toString() == QLatin1String("gguf");
  QString why;
  if (!m_pool)
    why = tr("No worker pool: paint bits or set layer budgets by hand");
  else if (!m_allocateAvailable)
    why = tr("Waiting for a worker that has the `allocate` job ...");
  else if (!m_hasModel)
    why = tr("Open a model first");
  else if (!gguf && probePath().isEmpty())
    why = tr("Expert bits need a probe: Salience \u2192 Calibrate (or File \u2192 Open statistics...)");
  else if (m_targetValue <= 0)
    why = tr("Set a target (GB or bits) first");
  else if (busy)
    why = tr("allocate is running ... (jobs dock: progress, cancel)");
  m_fit->setEnabled(why.isEmpty());
  m_fit->setToolTip(why.isEmpty() ? (gguf ? tr("Run `allocate` (mode gguf) in a worker: a ggml type per tensor of the whole file")
                                          : tr("Run `allocate` in a worker and apply its expert bits (one undo step)"))
                                  : why);
}

void AllocationEditor::updateStudyButton() {
  QString why;
  if (!m_pool) why = tr("No worker pool");
  else if (!m_studyAvailable) why = tr("Waiting for a worker that has the `study` job ...");
  else if (!m_hasModel) why = tr("Open a model first");
  else if (probePath().isEmpty()) why = tr("A study needs a probe: Salience \u2192 Calibrate");
  else if (!m_studyJob.isEmpty()) why = tr("Studying ... (jobs dock: progress, cancel)");
  m_study->setEnabled(why.isEmpty());
  m_study->setToolTip(why.isEmpty() ? tr("Allocate with every strategy at every budget and measure each (windows as above); "
                                         "every row becomes a run")
                                    : why);
}

void AllocationEditor::updateMeasureButton() {
  updateStudyButton();
  QString why;
  if (!m_pool)
    why = tr("No worker pool");
  else if (!m_measureAvailable)
    why = tr("Waiting for a worker that has the `eval-ppl` job ...");
  else if (!m_hasModel)
    why = tr("Open a model first");
  else if (!m_measureJob.isEmpty() || !m_measurePackJob.isEmpty() || m_uploadFor == Upload::Measure)
    why = tr("Measuring ... (jobs dock: progress, cancel)");
  const bool gguf = m_fitMode && m_fitMode->currentData().toString() == QLatin1String("gguf");
  if (why.isEmpty() && gguf && m_ggufRecipe.isEmpty()) why = tr("Fit a whole-file GGUF allocation first");
  m_measure->setEnabled(why.isEmpty());
  m_measure->setToolTip(why.isEmpty() ? (gguf ? tr("Pack the whole-file GGUF allocation and score the file against the source "
                                                   "model (eval-ppl with the GGUF); the result is a run (Runs tab)")
                                              : tr("KL (mean, p99), same top-1 and perplexity of this allocation against the source "
                                                   "model, fake-quantized in memory in a worker; the result is a run (Runs tab)"))
                                      : why);
}

void AllocationEditor::setWorkerPool(WorkerPool* pool) {
  if (m_pool == pool) return;
  if (m_pool) m_pool->disconnect(this);
  m_pool = pool;
  m_fitJob.clear();
  m_measureJob.clear();
  m_studyJob.clear();
  m_allocateAvailable = m_measureAvailable = m_studyAvailable = false;
  if (m_pool) {
    connect(m_pool, &WorkerPool::jobFinished, this, &AllocationEditor::onJobFinished);
    connect(m_pool, &WorkerPool::jobFailed, this, &AllocationEditor::onJobFailed);
    connect(m_pool, &WorkerPool::workerAvailable, this, [this](int, const QJsonObject& hello) { setWorkerHello(hello); });
  }
  updateFitButton();
  updateMeasureButton();
}

void AllocationEditor::setWorkerHello(const QJsonObject& hello) {
  const QJsonArray methods = hello.value(QStringLiteral("methods")).toArray();
  m_allocateAvailable = methods.contains(QStringLiteral("allocate"));
  m_measureAvailable = methods.contains(QStringLiteral("eval-ppl"));
  m_studyAvailable = methods.contains(QStringLiteral("study"));
  const QJsonArray strategies = hello.value(QStringLiteral("enums")).toObject().value(QStringLiteral("strategies")).toArray();
  if (!strategies.isEmpty()) {
    const QString keep = m_strategy->currentData().toString();
    m_strategy->clear();
    for (const auto& v : strategies) m_strategy->addItem(v.toString(), v.toString());
    m_strategy->setCurrentIndex(std::max(0, m_strategy->findData(keep)));
  }
  updateFitButton();
  updateMeasureButton();
}

void AllocationEditor::setMeasureWindow(const QString& text, int windows, int ctx, qint64 offset) {
  m_measureText->setText(text);
  m_measureWindows->setValue(windows);
  m_measureCtx->setValue(ctx);
  m_measureOffset->setValue(int(offset));
}

void AllocationEditor::setGgufMode(bool on) { m_fitMode->setCurrentIndex(on ? 1 : 0); }
void AllocationEditor::setGgufTypes(const QString& types) { m_ggufTypes->setText(types); }

void AllocationEditor::setRemote(const RemoteHost& host, RemoteFiles* files,
                                 std::function<QString(const QString&)> serverPathOf) {
  m_serverPathOf = std::move(serverPathOf);
  if (files != m_files) {
    if (m_files) m_files->disconnect(this);
    m_files = files;
    if (m_files) {
      connect(m_files, &RemoteFiles::uploaded, this, [this](int id, const QString&, const QString& remoteBase, bool) {
        if (id != m_uploadId) return;
        m_uploadId = -1;
        const Upload what = m_uploadFor;
        m_uploadFor = Upload::None;
        if (what == Upload::Measure) {
          submitMeasure(remoteBase);
          return;
        }
        // Beside the uploaded base (that folder exists): allocate does not create folders.
        const QString remoteOut = QFileInfo(remoteBase).path() +
                                  QStringLiteral("/allocated-%1.json").arg(QDateTime::currentMSecsSinceEpoch());
        startAllocate(m_serverPathOf ? m_serverPathOf(probePath()) : probePath(), remoteBase, remoteOut, QString());
      });
      connect(m_files, &RemoteFiles::fetched, this, [this](int id, const QString&, const QString& local, bool) {
        if (id != m_fetchId) return;
        m_fetchId = -1;
        applyAllocated(local);
      });
      auto failed = [this](int id, const QString&, const QString& msg) {
        if (id != m_uploadId && id != m_fetchId) return;
        const bool measure = id == m_uploadId && m_uploadFor == Upload::Measure;
        m_uploadId = m_fetchId = -1;
        m_uploadFor = Upload::None;
        updateFitButton();
        updateMeasureButton();
        if (measure) emit measureFailed(msg);
        else emit allocateFailed(msg);
      };
      connect(m_files, &RemoteFiles::uploadFailed, this, failed);
      connect(m_files, &RemoteFiles::fetchFailed, this, failed);
    }
  }
  if (host.toJson() == m_remote.toJson()) return;
  m_remote = host;
}

void AllocationEditor::setInventory(const ModelInventory& inv, const FootprintModel& compiled, quint64 generation) {
  if (generation != m_recipeGeneration) return setInventory(inv);
  m_fp = compiled;
  m_hasModel = m_fp.layers() >= 0 && !inv.tensors.isEmpty();
  m_modelPath = inv.path;
  m_layers->reset();
  m_undo->clear();
  updateFitButton();
  updateMeasureButton();
  rebuildHeatmap();
  updateFootprint();
}

void AllocationEditor::setInventory(const ModelInventory& inv) {
  QString err;
  ++m_recipeGeneration;
  m_hasModel = m_fp.setInventory(inv, &err);
  m_modelPath = inv.path;
  m_layers->reset();
  m_undo->clear();
  updateFitButton();
  updateMeasureButton();
  rebuildHeatmap();
  updateFootprint();
}

bool AllocationEditor::setRecipeJson(const QJsonObject& recipe, QString* error) {
  const QByteArray text = QJsonDocument(recipe).toJson(QJsonDocument::Compact);
  auto j = nlohmann::json::parse(text.constData(), text.constData() + text.size(), nullptr, false);
  auto r = razor::parse_recipe(j, recipe.value(QStringLiteral("name")).toString(QStringLiteral("recipe")).toStdString());
  if (!r.ok()) {
    if (error) *error = QString::fromStdString(r.error().to_string());
    return false;
  }
  if (!m_fp.setRecipe(*r, error)) return false;
  ++m_recipeGeneration;
  m_undo->clear();
  const int i = m_base->findText(QString::fromStdString(r->name));
  if (i >= 0) m_base->setCurrentIndex(i);
  m_layers->refresh();
  rebuildHeatmap();
  updateFootprint();
  return true;
}

bool AllocationEditor::loadRecipe(const QString& pathOrName, QString* error) {
  auto r = razor::load_recipe(pathOrName.toStdString());
  if (!r.ok()) {
    if (error) *error = QString::fromStdString(r.error().to_string());
    return false;
  }
  if (!m_fp.setRecipe(*r, error)) return false;
  ++m_recipeGeneration;
  m_undo->clear();
  m_layers->refresh();
  rebuildHeatmap();
  updateFootprint();
  return true;
}

QJsonObject AllocationEditor::recipeJson() const {
  const std::string s = m_fp.recipe().to_json().dump();
  return QJsonDocument::fromJson(QByteArray::fromStdString(s)).object();
}

bool AllocationEditor::saveRecipe(const QString& path, QString* error) const {
  razor::recipe r = m_fp.recipe();
  const QString stem = QFileInfo(path).completeBaseName();
  if (!stem.isEmpty()) r.name = stem.toStdString();
  auto st = razor::save_recipe(r, path.toStdString());
  if (!st.ok()) {
    if (error) *error = QString::fromStdString(st.to_string());
    return false;
  }
  return true;
}

void AllocationEditor::setStatistics(const QVector<HeatmapSource>& sources) {
  m_sources = sources;
  refreshDisplayCombo();
  updateFitButton();
  updateStudyButton();
}

void AllocationEditor::refreshDisplayCombo() {
  const QString keep = m_display->currentText();
  m_display->blockSignals(true);
  m_display->clear();
  m_display->addItem(tr("Bits"), QStringList());
  for (const auto& s : m_sources)
    for (const auto& n : s.statNames())
      m_display->addItem(QStringLiteral("%1: %2").arg(QFileInfo(s.path).fileName(), n), QStringList{s.path, n});
  m_display->setCurrentIndex(std::max(0, m_display->findText(keep)));
  m_display->blockSignals(false);
  rebuildHeatmap();
}

void AllocationEditor::rebuildHeatmap() {
  auto* c = m_heatmap->canvas();
  if (!m_hasModel) {
    c->setGrid(HeatmapGrid());
    return;
  }
  const QStringList sel = m_display->currentData().toStringList();
  const HeatmapSource* src = nullptr;
  const HeatmapGrid* stat = nullptr;
  if (sel.size() == 2)
    for (const auto& s : m_sources)
      if (s.path == sel[0] && s.rows == m_fp.layers() && s.cols == m_fp.experts()) {
        src = &s;
        stat = s.grid(sel[1]);
      }
  c->setBits(m_fp.bitsGrid());
  if (stat) {
    c->setMode(HeatmapCanvas::Mode::Statistic);
    c->setCounts(src->counts);
    c->setEntropy(src->entropy);
    c->setTitle(QStringLiteral("%1 (bits painted on top)").arg(stat->name));
    c->setGrid(*stat);
  } else {
    // Bits are the statistic: the image and legend show the allocation.
    HeatmapGrid g = HeatmapGrid::filled(QStringLiteral("bits"), m_fp.layers(), m_fp.experts());
    g.values = m_fp.bitsGrid();
    const HeatmapSource* counts = nullptr;
    for (const auto& s : m_sources)
      if (!s.counts.isEmpty() && s.rows == m_fp.layers() && s.cols == m_fp.experts()) counts = &s;
    c->setCounts(counts ? counts->counts : QVector<double>());
    c->setEntropy(counts ? counts->entropy : QVector<double>());
    c->setMode(HeatmapCanvas::Mode::Bits);
    c->setTitle(QStringLiteral("expert bits \u2014 %1").arg(QString::fromStdString(m_fp.recipe().name)));
    c->setGrid(g);
  }
}

void AllocationEditor::applyBits(const QVector<QPoint>& cells, const QVector<double>& bits) {
  auto* c = m_heatmap->canvas();
  ++m_recipeGeneration;
  for (int i = 0; i < cells.size(); ++i) {
    m_fp.setExpertBits(cells[i].y(), cells[i].x(), bits[i]);
    c->setCellBits(cells[i].y(), cells[i].x(), bits[i]);
  }
  m_layers->refresh();
  updateFootprint();
}

void AllocationEditor::setBrushBits(double bits) {
  m_brush = bits;
  if (auto* b = m_brushGroup->button(int(bits))) b->setChecked(true);
}

void AllocationEditor::pushCellBits(const QVector<QPoint>& cells, double bits,
                                    const std::function<QString(int)>& label) {
  QVector<QPoint> used;
  QVector<double> before;
  for (const QPoint& c : cells) {
    const double b = m_fp.expertBits(c.y(), c.x());
    if (std::isnan(b)) continue;
    used << c;
    before << b;
  }
  if (used.isEmpty()) return;
  m_undo->push(new BitsCommand(this, used, before, QVector<double>(used.size(), bits), label(int(used.size())), false));
}

void AllocationEditor::paintCells(const QVector<QPoint>& cells, double bits) {
  pushCellBits(cells, bits, [&](int n) { return tr("paint %1 cell(s) %2 bits").arg(n).arg(bits); });
}

void AllocationEditor::setLayerBits(int layer, double bits) {
  QVector<QPoint> cells;
  for (int e = 0; e < m_fp.experts(); ++e) cells << QPoint(e, layer);
  pushCellBits(cells, bits, [&](int) { return tr("layer %1 to %2 bits").arg(layer).arg(bits); });
}

void AllocationEditor::setTarget(double value, bool gigabytes) {
  m_targetUnit->setCurrentIndex(gigabytes ? 0 : 1);
  m_target->setValue(value);
}

QString AllocationEditor::footprintText() const {
  if (!m_hasModel) return tr("<i>Open a model to see its footprint.</i>");
  const razor::footprint f = m_fp.result();
  QString s = tr("<table cellspacing=3>"
                 "<tr><td>packed size</td><td><b>%1</b> (%2 GiB)</td></tr>"
                 "<tr><td>effective bits (seed)</td><td><b>%3</b> &rarr; %4 (seed convention)</td></tr>"
                 "<tr><td>with scales</td><td>%5 bits</td></tr>"
                 "<tr><td>bits per weight</td><td>%6 (all parameters)</td></tr>"
                 "<tr><td>routed experts</td><td>%7 bits average</td></tr></table>")
                  .arg(gb(f.packed_bytes()))
                  .arg(f.packed_bytes() / 1073741824.0, 0, 'f', f.packed_bytes() >= 1e9 ? 2 : 4)
                  .arg(f.seed_effective_bits(), 0, 'f', 3)
                  .arg(gb(f.seed_footprint_gb() * 1e9))
                  .arg(f.effective_bits_with_scales(), 0, 'f', 3)
                  .arg(f.bits_per_weight(), 0, 'f', 3)
                  .arg(f.expert_avg_bits(), 0, 'f', 3);
  if (m_targetValue > 0) {
    const double have = m_targetGb ? f.packed_bytes() / 1e9 : f.seed_effective_bits();
    const double diff = have - m_targetValue;
    const bool met = m_targetGb ? diff <= kTargetSlackGb : diff <= 1e-3;
    s += QStringLiteral("<p style='color:%1'>target %2 %3: %4%5 %3 %6</p>")
             .arg(met ? QStringLiteral("#4caf50") : QStringLiteral("#ef5350"))
             .arg(m_targetValue, 0, 'f', 2)
             .arg(m_targetGb ? QStringLiteral("GB") : QStringLiteral("bits"))
             .arg(diff >= 0 ? QStringLiteral("+") : QString())
             .arg(diff, 0, 'f', m_targetGb ? 2 : 3)
             .arg(met ? tr("(met)") : tr("(over)"));
  }
  return s;
}

void AllocationEditor::updateFootprint() {
  m_footprintLabel->setText(footprintText());
  emit footprintChanged();
}

void AllocationEditor::applyAllocated(const QString& recipePath) {
  updateFitButton();
  auto r = razor::load_recipe(recipePath.toStdString());
  if (!r.ok()) {
    emit allocateFailed(QString::fromStdString(r.error().to_string()));
    return;
  }
  // The solver's per-expert bits become one undoable edit.
  QVector<QPoint> cells;
  QVector<double> before, after;
  FootprintModel probeModel = m_fp;
  probeModel.setRecipe(*r);
  for (int l = 0; l < m_fp.layers(); ++l)
    for (int e = 0; e < m_fp.experts(); ++e) {
      const double a = m_fp.expertBits(l, e), b = probeModel.expertBits(l, e);
      if (std::isnan(a) || std::isnan(b) || a == b) continue;
      cells << QPoint(e, l);
      before << a;
      after << b;
    }
  if (!cells.isEmpty()) m_undo->push(new BitsCommand(this, cells, before, after, tr("fit to target"), false));
  m_fitLabel = QStringLiteral("%1 %2%3").arg(m_strategy->currentData().toString()).arg(m_targetValue)
                   .arg(m_targetGb ? QStringLiteral("GB") : QStringLiteral("bits"));
  m_fitUndoIndex = m_undo->index();
  emit allocateFinished(recipePath);
}

QJsonObject AllocationEditor::saveState() const {
  const QRectF v = m_heatmap->canvas()->viewRect();
  return {{QStringLiteral("brush"), m_brush},
          {QStringLiteral("display"), m_display->currentText()},
          {QStringLiteral("target"), m_targetValue},
          {QStringLiteral("target_unit"), m_targetGb ? QStringLiteral("GB") : QStringLiteral("bits")},
          {QStringLiteral("strategy"), m_strategy->currentData().toString()},
          {QStringLiteral("view"), QJsonArray{v.x(), v.y(), v.width(), v.height()}}};
}

void AllocationEditor::restoreState(const QJsonObject& o) {
  if (o.isEmpty()) return;
  setBrushBits(o.value(QStringLiteral("brush")).toDouble(2));
  const int d = m_display->findText(o.value(QStringLiteral("display")).toString());
  if (d >= 0) m_display->setCurrentIndex(d);
  setTarget(o.value(QStringLiteral("target")).toDouble(), o.value(QStringLiteral("target_unit")).toString() != QLatin1String("bits"));
  const int s = m_strategy->findData(o.value(QStringLiteral("strategy")).toString());
  if (s >= 0) m_strategy->setCurrentIndex(s);
  const QJsonArray v = o.value(QStringLiteral("view")).toArray();
  if (v.size() == 4)
    m_heatmap->canvas()->setViewRect(QRectF(v[0].toDouble(), v[1].toDouble(), v[2].toDouble(), v[3].toDouble()));
}
