// The allocation editor's jobs in the worker pool: Fit (`allocate`, expert bits or whole-file GGUF types),
// Measure (`eval-ppl` of the edited recipe), Study, and their results; the editing itself is AllocationEditor.cpp.
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

void AllocationEditor::runAllocate() {
  const QString probe = probePath();
  const bool gguf = m_fitMode->currentData().toString() == QLatin1String("gguf");
  if (!m_pool || !m_allocateAvailable || !m_hasModel || (!gguf && probe.isEmpty()) || m_targetValue <= 0) return;
  static QTemporaryDir tmp;  // lives as long as the application; holds the base and the result
  const QString stamp = QString::number(QDateTime::currentMSecsSinceEpoch());
  if (gguf) {
    // The whole file: no base recipe and no probe (the sensitivities are measured in the worker).
    const QString out = m_remote.isValid() ? QStringLiteral("allocated-gguf-%1.txt").arg(stamp)
                                           : tmp.filePath(QStringLiteral("allocated-gguf-%1.txt").arg(stamp));
    startAllocate(QString(), QString(), out, m_remote.isValid() ? QString() : out);
    return;
  }
  const QString base = tmp.filePath(QStringLiteral("base.json")),
                out = tmp.filePath(QStringLiteral("allocated-%1.json").arg(stamp));
  QString err;
  if (!saveRecipe(base, &err)) {
    emit allocateFailed(err);
    return;
  }
  if (!m_remote.isValid()) {
    startAllocate(probe, base, out, out);
    return;
  }
  // A model on a GPU server: the base recipe goes up, `allocate` runs there on the server's probe file, and
  // its recipe comes back through the (shared) RemoteFiles cache; answers to other requests are not ours.
  if (!m_files) {
    emit allocateFailed(tr("No connection to %1 for files.").arg(m_remote.host));
    return;
  }
  m_uploadFor = Upload::Fit;
  m_uploadId = m_files->upload(base);
  updateFitButton();
}

void AllocationEditor::startAllocate(const QString& probe, const QString& base, const QString& out, const QString& localOut) {
  Q_UNUSED(localOut);
  const QString target = QString::number(m_targetValue, 'g', 6) + (m_targetGb ? QStringLiteral("GB") : QStringLiteral("bits"));
  m_fitGguf = probe.isEmpty();
  QJsonObject params{{QStringLiteral("model"), m_modelPath}, {QStringLiteral("target"), target}, {QStringLiteral("out"), out}};
  if (m_fitGguf) {
    params[QStringLiteral("mode")] = QStringLiteral("gguf");
    // The sensitivities: one calibration window and the fitted curve (a few types measured per tensor) keep an
    // interactive fit short; `razor allocate --mode gguf` measures every type.
    params[QStringLiteral("calib_windows")] = 1;
    params[QStringLiteral("sensitivity")] = QStringLiteral("fit");
    if (!m_ggufTypes->text().trimmed().isEmpty()) params[QStringLiteral("types")] = m_ggufTypes->text().simplified().remove(QLatin1Char(' '));
  } else {
    params[QStringLiteral("probe")] = probe;
    params[QStringLiteral("strategy")] = m_strategy->currentData().toString();
    params[QStringLiteral("base")] = base;
  }
  m_fitOut = out;
  WorkerPool::JobOptions opt;
  opt.key = QStringLiteral("allocation.fit");
  m_fitJob = m_pool->submit(QStringLiteral("allocate"), params, opt);
  updateFitButton();
}

void AllocationEditor::runMeasure() {
  if (!m_pool || !m_measureAvailable || !m_hasModel || !m_measureJob.isEmpty() || !m_measurePackJob.isEmpty()) return;
  static QTemporaryDir tmp;
  if (m_fitMode->currentData().toString() == QLatin1String("gguf")) {
    // The whole-file GGUF allocation: packed (the pack job) and the file scored against the source (eval-ppl
    // with gguf: dequantized back to the model's layout); its size is the file's, to the byte.
    if (m_ggufRecipe.isEmpty()) {
      emit measureFailed(tr("Fit a whole-file GGUF allocation first (Mode: Whole-file GGUF, Fit to target)"));
      return;
    }
    ++m_runCounter;
    m_measureRun = QJsonObject{{QStringLiteral("name"), QStringLiteral("gguf %1 #%2").arg(m_fitLabel).arg(m_runCounter)},
                               {QStringLiteral("recipe_name"), QFileInfo(m_ggufRecipe).fileName()},
                               {QStringLiteral("gguf_recipe"), m_ggufRecipe},
                               {QStringLiteral("how"), tr("GGUF: pack, then eval-ppl --gguf (dequantized)")}};
    const QString name = QStringLiteral("measure-%1.gguf").arg(QDateTime::currentMSecsSinceEpoch());
    QJsonObject params{{QStringLiteral("model"), m_modelPath},
                       {QStringLiteral("recipe"), m_ggufRecipe},
                       {QStringLiteral("out"), m_remote.isValid() ? name : tmp.filePath(name)}};
    WorkerPool::JobOptions opt;
    opt.key = QStringLiteral("allocation.measure");
    m_measurePackJob = m_pool->submit(QStringLiteral("pack"), params, opt);
    m_measureResult->setText(tr("packing ..."));
    updateMeasureButton();
    return;
  }
  const QString recipePath = tmp.filePath(QStringLiteral("measure-%1.json").arg(QDateTime::currentMSecsSinceEpoch()));
  QString err;
  if (!saveRecipe(recipePath, &err)) {
    emit measureFailed(err);
    return;
  }
  const razor::footprint f = m_fp.result();
  QJsonArray layerBits;
  for (int l = 0; l < m_fp.layers(); ++l) layerBits.append(m_fp.layerAverageBits(l));
  ++m_runCounter;
  // Named after the last fit when nothing was edited since, else after the recipe.
  const QString what = !m_fitLabel.isEmpty() && m_undo->index() == m_fitUndoIndex
                           ? m_fitLabel
                           : QString::fromStdString(m_fp.recipe().name) + (m_undo->index() > 0 ? tr(" (edited)") : QString());
  m_measureRun = QJsonObject{{QStringLiteral("name"), QStringLiteral("%1 #%2").arg(what).arg(m_runCounter)},
                             {QStringLiteral("recipe_name"), QString::fromStdString(m_fp.recipe().name)},
                             {QStringLiteral("recipe"), recipeJson()},
                             {QStringLiteral("file_bytes"), double(f.packed_bytes())},
                             {QStringLiteral("effective_bits"), f.seed_effective_bits()},
                             {QStringLiteral("expert_bits"), f.expert_avg_bits()},
                             {QStringLiteral("layer_bits"), layerBits},
                             {QStringLiteral("how"), tr("fake-quant in memory (eval-ppl --recipe)")}};
  if (!m_remote.isValid()) {
    submitMeasure(recipePath);
    return;
  }
  if (!m_files) {
    emit measureFailed(tr("No connection to %1 for files.").arg(m_remote.host));
    return;
  }
  m_uploadFor = Upload::Measure;
  m_uploadId = m_files->upload(recipePath);
  updateMeasureButton();
}

void AllocationEditor::submitMeasure(const QString& path, bool gguf) {
  QJsonObject params{{QStringLiteral("model"), m_modelPath},
                     {gguf ? QStringLiteral("gguf") : QStringLiteral("recipe"), path},
                     {QStringLiteral("windows"), m_measureWindows->value()},
                     {QStringLiteral("ctx"), m_measureCtx->value()},
                     {QStringLiteral("offset"), m_measureOffset->value()}};
  if (!m_measureText->text().trimmed().isEmpty()) params[QStringLiteral("text")] = m_measureText->text().trimmed();
  WorkerPool::JobOptions opt;
  opt.key = QStringLiteral("allocation.measure");
  m_measureJob = m_pool->submit(QStringLiteral("eval-ppl"), params, opt);
  m_measureResult->setText(tr("measuring ..."));
  updateMeasureButton();
}

void AllocationEditor::setStudy(const QString& strategies, const QString& budgets) {
  m_studyStrategies->setText(strategies);
  m_studyBudgets->setText(budgets);
}

void AllocationEditor::runStudy() {
  const QString probe = probePath();
  if (!m_pool || !m_studyAvailable || !m_hasModel || probe.isEmpty() || !m_studyJob.isEmpty()) return;
  static QTemporaryDir tmp;
  const QString base = tmp.filePath(QStringLiteral("study-base-%1.json").arg(QDateTime::currentMSecsSinceEpoch()));
  QString err;
  if (!saveRecipe(base, &err)) {
    emit measureFailed(err);
    return;
  }
  if (m_remote.isValid()) {  // the probe and the base would have to be the server's: not offered remotely yet
    emit measureFailed(tr("Study runs on local workers only (use `razor study` on the server)"));
    return;
  }
  QJsonObject params{{QStringLiteral("model"), m_modelPath},
                     {QStringLiteral("probe"), probe},
                     {QStringLiteral("base"), base},
                     {QStringLiteral("strategies"), m_studyStrategies->text().simplified().remove(QLatin1Char(' '))},
                     {QStringLiteral("budgets"), m_studyBudgets->text().simplified().remove(QLatin1Char(' '))},
                     {QStringLiteral("windows"), m_measureWindows->value()},
                     {QStringLiteral("ctx"), m_measureCtx->value()}};
  if (m_measureOffset->value() > 0) params[QStringLiteral("eval_offset")] = m_measureOffset->value();
  if (!m_measureText->text().trimmed().isEmpty()) params[QStringLiteral("text")] = m_measureText->text().trimmed();
  WorkerPool::JobOptions opt;
  opt.key = QStringLiteral("allocation.study");
  m_studyJob = m_pool->submit(QStringLiteral("study"), params, opt);
  m_measureResult->setText(tr("studying ..."));
  updateStudyButton();
}

// Every row of the study is a run: its expert bits in the current recipe, sized by this footprint.
void AllocationEditor::onStudyFinished(const QJsonObject& result) {
  int n = 0;
  for (const auto& rv : result.value(QStringLiteral("rows")).toArray()) {
    const QJsonObject row = rv.toObject();
    razor::recipe r = m_fp.recipe();
    r.expert_bits.clear();
    // razor.study/1 writes the map layer -> bits as [[layer, [bits...]], ...] (an object in older files).
    auto bitsOf = [](const QJsonValue& v) {
      std::vector<double> bits;
      for (const auto& b : v.toArray()) bits.push_back(b.toDouble());
      return bits;
    };
    const QJsonValue byLayer = row.value(QStringLiteral("expert_bits_by_layer"));
    for (const auto& pair : byLayer.toArray())
      if (pair.toArray().size() == 2) r.expert_bits[pair.toArray()[0].toInt()] = bitsOf(pair.toArray()[1]);
    const QJsonObject byKey = byLayer.toObject();
    for (auto it = byKey.begin(); it != byKey.end(); ++it) r.expert_bits[it.key().toInt()] = bitsOf(it.value());
    r.name = QStringLiteral("%1-%2").arg(row.value(QStringLiteral("strategy")).toString(), row.value(QStringLiteral("budget")).toString()).toStdString();
    FootprintModel fp = m_fp;
    if (!fp.setRecipe(r)) continue;
    const razor::footprint f = fp.result();
    QJsonArray layerBits;
    for (int l = 0; l < fp.layers(); ++l) layerBits.append(fp.layerAverageBits(l));
    const QJsonObject recipe = QJsonDocument::fromJson(QByteArray::fromStdString(r.to_json().dump())).object();
    QJsonObject run{{QStringLiteral("name"), QStringLiteral("study %1 %2 #%3")
                                                 .arg(row.value(QStringLiteral("strategy")).toString(),
                                                      row.value(QStringLiteral("budget")).toString())
                                                 .arg(++m_runCounter)},
                    {QStringLiteral("recipe_name"), QString::fromStdString(r.name)},
                    {QStringLiteral("recipe"), recipe},
                    {QStringLiteral("file_bytes"), double(f.packed_bytes())},
                    {QStringLiteral("effective_bits"), f.seed_effective_bits()},
                    {QStringLiteral("expert_bits"), f.expert_avg_bits()},
                    {QStringLiteral("layer_bits"), layerBits},
                    {QStringLiteral("how"), tr("study: fake-quant in memory")},
                    {QStringLiteral("text"), result.value(QStringLiteral("text"))},
                    {QStringLiteral("offset"), result.value(QStringLiteral("eval_offset_tokens"))},
                    {QStringLiteral("windows"), result.value(QStringLiteral("windows"))},
                    {QStringLiteral("ctx"), result.value(QStringLiteral("ctx"))},
                    {QStringLiteral("ref_ppl"), result.value(QStringLiteral("ref_ppl"))},
                    {QStringLiteral("time"), QDateTime::currentDateTimeUtc().toString(Qt::ISODate)}};
    for (const char* k : {"kl_mean", "kl_p99", "ppl", "same_top1", "topk_kl"}) run[QLatin1String(k)] = row.value(QLatin1String(k));
    ++n;
    emit measureFinished(run);
  }
  m_measureResult->setText(tr("Study: %n run(s)", nullptr, n));
  emit studyFinished(n);
}

void AllocationEditor::onJobFinished(const QString& id, const QJsonObject& result) {
  if (!id.isEmpty() && id == m_studyJob) {
    m_studyJob.clear();
    updateStudyButton();
    onStudyFinished(result);
    return;
  }
  if (!id.isEmpty() && id == m_fitJob) {
    m_fitJob.clear();
    if (m_fitGguf) {
      m_ggufRecipe = m_fitOut;
      const QJsonObject size = result.value(QStringLiteral("size")).toObject();
      m_measureResult->setText(tr("GGUF fit: %1 bytes, %2 bits per weight, predicted KL %3 \u2014 recipe %4 (Export GGUF uses it)")
                                   .arg(qint64(size.value(QStringLiteral("file_bytes")).toDouble()))
                                   .arg(size.value(QStringLiteral("bpw")).toDouble(), 0, 'f', 3)
                                   .arg(result.value(QStringLiteral("predicted_kl")).toDouble(), 0, 'g', 4)
                                   .arg(m_fitOut));
      m_fitLabel = QStringLiteral("%1%2").arg(m_targetValue).arg(m_targetGb ? QStringLiteral("GB") : QStringLiteral("bits"));
      updateFitButton();
      updateMeasureButton();
      emit ggufAllocateFinished(m_fitOut, result);
      return;
    }
    if (!m_remote.isValid()) {
      applyAllocated(m_fitOut);
      return;
    }
    m_fetchId = m_files ? m_files->fetch(m_fitOut) : -1;
    if (m_fetchId < 0) emit allocateFailed(tr("No connection to %1 for files.").arg(m_remote.host));
    updateFitButton();
  } else if (!id.isEmpty() && id == m_measurePackJob) {
    m_measurePackJob.clear();
    // The file's own size and bits; per layer, the bits of its blk.L tensors.
    m_measureRun[QStringLiteral("file_bytes")] = result.value(QStringLiteral("file_bytes")).toDouble();
    m_measureRun[QStringLiteral("effective_bits")] = result.value(QStringLiteral("bpw")).toDouble();
    QVector<double> bytes(m_fp.layers(), 0), elems(m_fp.layers(), 0);
    static const QRegularExpression kBlk(QStringLiteral("^blk\\.(\\d+)\\."));
    for (const auto& v : result.value(QStringLiteral("tensors")).toArray()) {
      const QJsonObject t = v.toObject();
      const auto m = kBlk.match(t.value(QStringLiteral("name")).toString());
      const int l = m.hasMatch() ? m.captured(1).toInt() : -1;
      if (l < 0 || l >= m_fp.layers()) continue;
      double n = 1;
      for (const auto& d : t.value(QStringLiteral("ne")).toArray()) n *= d.toDouble();
      bytes[l] += t.value(QStringLiteral("bytes")).toDouble();
      elems[l] += n;
    }
    QJsonArray layerBits;
    for (int l = 0; l < m_fp.layers(); ++l) layerBits.append(elems[l] > 0 ? 8.0 * bytes[l] / elems[l] : 0.0);
    m_measureRun[QStringLiteral("layer_bits")] = layerBits;
    const QJsonArray paths = result.value(QStringLiteral("paths")).toArray();
    const QString file = paths.isEmpty() ? result.value(QStringLiteral("out")).toString() : paths.first().toString();
    m_measureRun[QStringLiteral("gguf")] = file;
    submitMeasure(file, true);
  } else if (!id.isEmpty() && id == m_measureJob) {
    m_measureJob.clear();
    QJsonObject run = m_measureRun;
    for (const char* k : {"kl_mean", "kl_p99", "ppl", "ref_ppl", "same_top1", "text", "offset", "windows", "ctx",
                          "n_predictions", "topk_kl"})
      run[QLatin1String(k)] = result.value(QLatin1String(k));
    run[QStringLiteral("time")] = QDateTime::currentDateTimeUtc().toString(Qt::ISODate);
    m_measureResult->setText(tr("KL mean %1, p99 %2, same top-1 %3, ppl %4 (source %5)")
                                 .arg(run.value(QStringLiteral("kl_mean")).toDouble(), 0, 'g', 4)
                                 .arg(run.value(QStringLiteral("kl_p99")).toDouble(), 0, 'g', 4)
                                 .arg(run.value(QStringLiteral("same_top1")).toDouble(), 0, 'f', 4)
                                 .arg(run.value(QStringLiteral("ppl")).toDouble(), 0, 'f', 3)
                                 .arg(run.value(QStringLiteral("ref_ppl")).toDouble(), 0, 'f', 3));
    updateMeasureButton();
    emit measureFinished(run);
  }
}

void AllocationEditor::onJobFailed(const QString& id, const QString& code, const QString& message) {
  if (id.isEmpty()) return;
  if (id == m_studyJob) {
    m_studyJob.clear();
    updateStudyButton();
    m_measureResult->setText(tr("Study failed: %1").arg(message));
    if (code != ErrorCode::superseded) emit measureFailed(message);
    return;
  }
  if (id == m_fitJob) {
    m_fitJob.clear();
    updateFitButton();
    if (code != ErrorCode::superseded) emit allocateFailed(message);
  } else if (id == m_measureJob || id == m_measurePackJob) {
    m_measureJob.clear();
    m_measurePackJob.clear();
    m_measureResult->setText(tr("Measure failed: %1").arg(message));
    updateMeasureButton();
    if (code != ErrorCode::superseded) emit measureFailed(message);
  }
}
