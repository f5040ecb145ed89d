#include "EvaluateDialog.h"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QFormLayout>
#include <QJsonArray>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QProgressBar>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QVBoxLayout>

#include "ServeEvalRun.h"
#include "results/benchmarks.h"

namespace {
constexpr int kKeyRole = Qt::UserRole;
}

EvaluateDialog::EvaluateDialog(WorkerPool* pool, const QString& where, QWidget* parent)
    : QDialog(parent), m_run(new ServeEvalRun(pool, this)) {
  setWindowTitle(tr("Evaluate"));
  auto* top = new QVBoxLayout(this);
  auto* intro = new QLabel(tr("Runs benchmarks on %1 through the worker, against a server started for the run "
                              "(stopped when the run ends) or one that is already running. Paths are %1's.")
                               .arg(where));
  intro->setWordWrap(true);
  top->addWidget(intro);
  m_form = new QFormLayout;
  m_source = new QComboBox;
  m_source->setObjectName(QStringLiteral("evalSource"));
  m_source->addItem(tr("Start a server for this run"), QStringLiteral("serve"));
  m_source->addItem(tr("An existing endpoint"), QStringLiteral("endpoint"));
  m_engine = new QComboBox;
  m_engine->addItem(tr("vLLM (tensor parallel)"), QStringLiteral("vllm"));
  m_engine->addItem(tr("llama-server (GGUF)"), QStringLiteral("llama-server"));
  m_model = new QLineEdit;
  m_model->setPlaceholderText(tr("checkpoint folder (vLLM) or .gguf file (llama-server)"));
  m_name = new QLineEdit;
  m_name->setPlaceholderText(tr("served model name (default: the engine's)"));
  m_tp = new QSpinBox;
  m_tp->setRange(0, 64);
  m_tp->setSpecialValueText(tr("all visible GPUs"));
  m_ctx = new QSpinBox;
  m_ctx->setRange(0, 1 << 20);
  m_ctx->setSpecialValueText(tr("engine default"));
  m_endpoint = new QLineEdit;
  m_endpoint->setPlaceholderText(QStringLiteral("http://127.0.0.1:8080/v1"));
  m_servedModel = new QLineEdit;
  m_servedModel->setPlaceholderText(tr("model name (default: the first of /v1/models)"));
  m_benchmarks = new QListWidget;
  m_benchmarks->setObjectName(QStringLiteral("evalBenchmarks"));
  for (const auto& b : razor::results::benchmark_table()) {
    if (!b.runnable()) continue;
    auto* item = new QListWidgetItem(tr("%1 — %2, %3 questions by default")
                                         .arg(QString::fromUtf8(b.name.data(), int(b.name.size())),
                                              QString::fromUtf8(b.group.data(), int(b.group.size())))
                                         .arg(b.default_n));
    item->setData(kKeyRole, QString::fromUtf8(b.key.data(), int(b.key.size())));
    item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
    item->setCheckState(Qt::Unchecked);
    m_benchmarks->addItem(item);
  }
  m_benchmarks->setMinimumHeight(m_benchmarks->sizeHintForRow(0) * 7);
  m_data = new QLineEdit;
  m_data->setPlaceholderText(tr("folder with the benchmark files (see docs/eval.md)"));
  m_n = new QSpinBox;
  m_n->setRange(0, 1 << 24);
  m_n->setSpecialValueText(tr("each benchmark's default"));
  m_budget = new QSpinBox;
  m_budget->setRange(0, 1 << 20);
  m_budget->setSingleStep(1024);
  m_budget->setSpecialValueText(tr("32768 (the seed's)"));
  m_out = new QLineEdit;
  m_out->setPlaceholderText(tr("result JSON to write"));
  m_speed = new QLineEdit;
  m_speed->setObjectName(QStringLiteral("evalSpeed"));
  m_speed->setPlaceholderText(tr("prompt lengths, e.g. 512,4k,16k (empty: not measured)"));
  m_form->addRow(tr("Against:"), m_source);
  m_form->addRow(tr("Engine:"), m_engine);
  m_form->addRow(tr("Model:"), m_model);
  m_form->addRow(tr("Name:"), m_name);
  m_form->addRow(tr("Tensor parallel:"), m_tp);
  m_form->addRow(tr("Context:"), m_ctx);
  m_form->addRow(tr("Endpoint:"), m_endpoint);
  m_form->addRow(tr("Served model:"), m_servedModel);
  m_form->addRow(tr("Benchmarks:"), m_benchmarks);
  m_form->addRow(tr("Data:"), m_data);
  m_form->addRow(tr("Questions per benchmark:"), m_n);
  m_form->addRow(tr("Token budget:"), m_budget);
  m_form->addRow(tr("Speed at:"), m_speed);
  m_form->addRow(tr("Result:"), m_out);
  top->addLayout(m_form);
  m_stage = new QLabel(tr("Not started."));
  m_stage->setObjectName(QStringLiteral("serveEvalStage"));
  m_stage->setWordWrap(true);
  m_question = new QLabel;
  m_question->setObjectName(QStringLiteral("evalQuestion"));
  m_bar = new QProgressBar;
  m_bar->setRange(0, 1);
  m_bar->setValue(0);
  m_bar->setFormat(tr("%v / %m questions"));
  top->addWidget(m_stage);
  top->addWidget(m_bar);
  top->addWidget(m_question);
  auto* buttons = new QDialogButtonBox;
  m_start = buttons->addButton(tr("Start"), QDialogButtonBox::ActionRole);
  m_stop = buttons->addButton(tr("Stop"), QDialogButtonBox::ActionRole);
  buttons->addButton(QDialogButtonBox::Close);
  top->addWidget(buttons);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  connect(m_start, &QPushButton::clicked, this, &EvaluateDialog::start);
  connect(m_stop, &QPushButton::clicked, m_run, &ServeEvalRun::cancel);
  for (QLineEdit* e : {m_model, m_endpoint, m_data, m_out})
    connect(e, &QLineEdit::textChanged, this, &EvaluateDialog::updateStart);
  connect(m_benchmarks, &QListWidget::itemChanged, this, &EvaluateDialog::updateStart);
  connect(m_source, &QComboBox::currentIndexChanged, this, &EvaluateDialog::updateSource);

  connect(m_run, &ServeEvalRun::stageChanged, m_stage, &QLabel::setText);
  connect(m_run, &ServeEvalRun::progressAvailable, this, [this](double d, double t, const QString& what) {
    if (t > 0) {
      m_bar->setRange(0, int(t));
      m_bar->setValue(int(d));
    } else {
      m_bar->setRange(0, 0);  // no total yet: indeterminate
    }
    if (!what.isEmpty() && what != QLatin1String("starting")) m_question->setText(tr("Last answered: %1").arg(what));
  });
  connect(m_run, &ServeEvalRun::runFinished, this, [this](const QString& path, const QJsonObject&) {
    if (m_bar->maximum() == 0) m_bar->setRange(0, 1);
    m_bar->setValue(m_bar->maximum());
    updateStart();
    emit resultAvailable(path);
  });
  connect(m_run, &ServeEvalRun::runFailed, this, [this](const QString&) {
    if (m_bar->maximum() == 0) m_bar->setRange(0, 1);
    updateStart();
  });

  QSettings s;
  s.beginGroup(QStringLiteral("evaluate"));
  setSource(s.value(QStringLiteral("source"), QStringLiteral("serve")).toString());
  m_engine->setCurrentIndex(qMax(0, m_engine->findData(s.value(QStringLiteral("engine"), QStringLiteral("vllm")))));
  setBenchmarks(s.value(QStringLiteral("benchmarks"), QStringList{QStringLiteral("mmlu_pro"), QStringLiteral("gpqa")})
                    .toStringList());
  m_endpoint->setText(s.value(QStringLiteral("endpoint")).toString());
  m_data->setText(s.value(QStringLiteral("data")).toString());
  m_tp->setValue(s.value(QStringLiteral("tp"), 0).toInt());
  m_budget->setValue(s.value(QStringLiteral("budget"), 0).toInt());
  m_speed->setText(s.value(QStringLiteral("speed")).toString());
  s.endGroup();
  updateSource();
}

void EvaluateDialog::setModel(const QString& path) { m_model->setText(path); }

void EvaluateDialog::setSource(const QString& source) {
  m_source->setCurrentIndex(qMax(0, m_source->findData(source)));
}

QString EvaluateDialog::source() const { return m_source->currentData().toString(); }

void EvaluateDialog::setEndpoint(const QString& url, const QString& servedModel) {
  m_endpoint->setText(url);
  m_servedModel->setText(servedModel);
}

void EvaluateDialog::setBenchmarks(const QStringList& keys) {
  for (int i = 0; i < m_benchmarks->count(); ++i) {
    QListWidgetItem* it = m_benchmarks->item(i);
    it->setCheckState(keys.contains(it->data(kKeyRole).toString()) ? Qt::Checked : Qt::Unchecked);
  }
}

QStringList EvaluateDialog::benchmarks() const {
  QStringList keys;
  for (int i = 0; i < m_benchmarks->count(); ++i)
    if (m_benchmarks->item(i)->checkState() == Qt::Checked) keys << m_benchmarks->item(i)->data(kKeyRole).toString();
  return keys;
}

void EvaluateDialog::setDataDir(const QString& dir) { m_data->setText(dir); }
void EvaluateDialog::setResultPath(const QString& path) { m_out->setText(path); }
void EvaluateDialog::setQuestions(int n) { m_n->setValue(n); }
void EvaluateDialog::setSpeedContexts(const QString& list) { m_speed->setText(list); }

QJsonObject EvaluateDialog::serveParams() const {
  QJsonObject p{{QStringLiteral("engine"), m_engine->currentData().toString()}, {QStringLiteral("model"), m_model->text().trimmed()}};
  if (m_tp->value() > 0) p[QStringLiteral("tensor_parallel")] = m_tp->value();
  if (m_ctx->value() > 0) p[QStringLiteral("ctx")] = m_ctx->value();
  if (!m_name->text().trimmed().isEmpty()) p[QStringLiteral("name")] = m_name->text().trimmed();
  return p;
}

QJsonObject EvaluateDialog::evalParams() const {
  QJsonObject p{{QStringLiteral("benchmarks"), QJsonArray::fromStringList(benchmarks())},
                {QStringLiteral("data"), m_data->text().trimmed()},
                {QStringLiteral("out"), m_out->text().trimmed()}};
  if (m_n->value() > 0) p[QStringLiteral("n")] = m_n->value();
  if (m_budget->value() > 0) p[QStringLiteral("budget")] = m_budget->value();
  const QStringList speed = m_speed->text().split(QLatin1Char(','), Qt::SkipEmptyParts);
  if (!speed.isEmpty()) {
    QJsonArray a;
    for (const QString& c : speed) a.append(c.trimmed());
    p[QStringLiteral("speed_contexts")] = a;
  }
  if (source() == QLatin1String("endpoint")) {
    p[QStringLiteral("endpoint")] = m_endpoint->text().trimmed();
    if (!m_servedModel->text().trimmed().isEmpty()) p[QStringLiteral("model")] = m_servedModel->text().trimmed();
    // What is measured, for the result's provenance: the artifact behind the endpoint when the user named it.
    if (!m_model->text().trimmed().isEmpty()) p[QStringLiteral("artifact")] = m_model->text().trimmed();
  }
  return p;
}

void EvaluateDialog::start() {
  if (m_run->isRunning() || !m_start->isEnabled()) return;
  QSettings s;
  s.beginGroup(QStringLiteral("evaluate"));
  s.setValue(QStringLiteral("source"), source());
  s.setValue(QStringLiteral("engine"), m_engine->currentData());
  s.setValue(QStringLiteral("benchmarks"), benchmarks());
  s.setValue(QStringLiteral("endpoint"), m_endpoint->text());
  s.setValue(QStringLiteral("data"), m_data->text());
  s.setValue(QStringLiteral("tp"), m_tp->value());
  s.setValue(QStringLiteral("budget"), m_budget->value());
  s.setValue(QStringLiteral("speed"), m_speed->text());
  s.endGroup();
  m_bar->setRange(0, 0);
  m_question->clear();
  if (source() == QLatin1String("endpoint")) m_run->startOnEndpoint(evalParams());
  else m_run->start(serveParams(), evalParams());
  updateStart();
}

void EvaluateDialog::updateSource() {
  const bool serve = source() == QLatin1String("serve");
  for (QWidget* w : {static_cast<QWidget*>(m_engine), static_cast<QWidget*>(m_name), static_cast<QWidget*>(m_tp),
                     static_cast<QWidget*>(m_ctx)})
    m_form->setRowVisible(w, serve);
  for (QWidget* w : {m_endpoint, m_servedModel}) m_form->setRowVisible(w, !serve);
  m_model->setPlaceholderText(serve ? tr("checkpoint folder (vLLM) or .gguf file (llama-server)")
                                    : tr("optional: what the endpoint serves (GGUF, checkpoint), for the provenance"));
  updateStart();
}

void EvaluateDialog::updateStart() {
  const bool running = m_run->isRunning();
  const bool serve = source() == QLatin1String("serve");
  QString missing;
  if (serve && m_model->text().trimmed().isEmpty()) missing = tr("the model to serve");
  else if (!serve && m_endpoint->text().trimmed().isEmpty()) missing = tr("the endpoint");
  else if (benchmarks().isEmpty()) missing = tr("a benchmark");
  else if (m_data->text().trimmed().isEmpty()) missing = tr("the data folder");
  else if (m_out->text().trimmed().isEmpty()) missing = tr("the result path");
  m_start->setEnabled(!running && missing.isEmpty());
  m_stop->setEnabled(running);
  m_start->setToolTip(missing.isEmpty() ? QString() : tr("Needs %1").arg(missing));
}
