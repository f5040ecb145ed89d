#include "ServeEvalDialog.h"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QVBoxLayout>

#include "ServeEvalRun.h"

ServeEvalDialog::ServeEvalDialog(WorkerPool* pool, const QString& where, QWidget* parent)
    : QDialog(parent), m_run(new ServeEvalRun(pool, this)) {
  setWindowTitle(tr("Serve and evaluate"));
  auto* top = new QVBoxLayout(this);
  auto* intro = new QLabel(tr("Starts an inference server on %1 through the worker, runs the benchmarks against it "
                              "there, then stops it. Paths are %1's.").arg(where));
  intro->setWordWrap(true);
  top->addWidget(intro);
  auto* form = new QFormLayout;
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
  m_benchmarks = new QLineEdit(QStringLiteral("mmlu_pro,gpqa"));
  m_data = new QLineEdit;
  m_data->setPlaceholderText(tr("folder with the benchmark files (see docs/eval.md)"));
  m_n = new QSpinBox;
  m_n->setRange(0, 1 << 24);
  m_n->setSpecialValueText(tr("all questions"));
  m_out = new QLineEdit;
  m_out->setPlaceholderText(tr("result JSON to write"));
  form->addRow(tr("Engine:"), m_engine);
  form->addRow(tr("Model:"), m_model);
  form->addRow(tr("Name:"), m_name);
  form->addRow(tr("Tensor parallel:"), m_tp);
  form->addRow(tr("Context:"), m_ctx);
  form->addRow(tr("Benchmarks:"), m_benchmarks);
  form->addRow(tr("Data:"), m_data);
  form->addRow(tr("Questions per benchmark:"), m_n);
  form->addRow(tr("Result:"), m_out);
  top->addLayout(form);
  m_stage = new QLabel(tr("Not started."));
  m_stage->setObjectName(QStringLiteral("serveEvalStage"));
  m_stage->setWordWrap(true);
  m_bar = new QProgressBar;
  m_bar->setRange(0, 1000);
  m_bar->setValue(0);
  top->addWidget(m_stage);
  top->addWidget(m_bar);
  auto* buttons = new QDialogButtonBox;
  m_start = buttons->addButton(tr("Start"), QDialogButtonBox::ActionRole);
  m_stop = buttons->addButton(tr("Stop"), QDialogButtonBox::ActionRole);
  buttons->addButton(QDialogButtonBox::Close);
  top->addWidget(buttons);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  connect(m_start, &QPushButton::clicked, this, &ServeEvalDialog::start);
  connect(m_stop, &QPushButton::clicked, m_run, &ServeEvalRun::cancel);
  for (QLineEdit* e : {m_model, m_data, m_out}) connect(e, &QLineEdit::textChanged, this, &ServeEvalDialog::updateStart);

  connect(m_run, &ServeEvalRun::stageChanged, m_stage, &QLabel::setText);
  connect(m_run, &ServeEvalRun::progressAvailable, this, [this](double d, double t, const QString&) {
    m_bar->setRange(0, t > 0 ? 1000 : 0);  // no total: indeterminate
    if (t > 0) m_bar->setValue(int(1000.0 * d / t));
  });
  connect(m_run, &ServeEvalRun::runFinished, this, [this](const QString& path, const QJsonObject&) {
    m_bar->setRange(0, 1000);
    m_bar->setValue(1000);
    updateStart();
    emit resultAvailable(path);
  });
  connect(m_run, &ServeEvalRun::runFailed, this, [this](const QString&) {
    m_bar->setRange(0, 1000);
    updateStart();
  });

  QSettings s;
  s.beginGroup(QStringLiteral("serveEval"));
  m_engine->setCurrentIndex(qMax(0, m_engine->findData(s.value(QStringLiteral("engine"), QStringLiteral("vllm")))));
  m_benchmarks->setText(s.value(QStringLiteral("benchmarks"), m_benchmarks->text()).toString());
  m_data->setText(s.value(QStringLiteral("data")).toString());
  m_tp->setValue(s.value(QStringLiteral("tp"), 0).toInt());
  s.endGroup();
  updateStart();
}

void ServeEvalDialog::setModel(const QString& path) { m_model->setText(path); }

QJsonObject ServeEvalDialog::serveParams() const {
  QJsonObject p{{QStringLiteral("engine"), m_engine->currentData().toString()}, {QStringLiteral("model"), m_model->text().trimmed()}};
  if (m_tp->value() > 0) p[QStringLiteral("tensor_parallel")] = m_tp->value();
  if (m_ctx->value() > 0) p[QStringLiteral("ctx")] = m_ctx->value();
  if (!m_name->text().trimmed().isEmpty()) p[QStringLiteral("name")] = m_name->text().trimmed();
  return p;
}

QJsonObject ServeEvalDialog::evalParams() const {
  QJsonObject p{{QStringLiteral("benchmarks"), m_benchmarks->text().trimmed()},
                {QStringLiteral("data"), m_data->text().trimmed()},
                {QStringLiteral("out"), m_out->text().trimmed()}};
  if (m_n->value() > 0) p[QStringLiteral("n")] = m_n->value();
  return p;
}

void ServeEvalDialog::start() {
  if (m_run->isRunning() || !m_start->isEnabled()) return;
  QSettings s;
  s.beginGroup(QStringLiteral("serveEval"));
  s.setValue(QStringLiteral("engine"), m_engine->currentData());
  s.setValue(QStringLiteral("benchmarks"), m_benchmarks->text());
  s.setValue(QStringLiteral("data"), m_data->text());
  s.setValue(QStringLiteral("tp"), m_tp->value());
  s.endGroup();
  m_bar->setRange(0, 0);
  m_run->start(serveParams(), evalParams());
  updateStart();
}

void ServeEvalDialog::updateStart() {
  const bool running = m_run->isRunning();
  const bool filled = !m_model->text().trimmed().isEmpty() && !m_data->text().trimmed().isEmpty() &&
                      !m_out->text().trimmed().isEmpty();
  m_start->setEnabled(!running && filled);
  m_stop->setEnabled(running);
  m_start->setToolTip(filled ? QString() : tr("Model, data and result are needed"));
}
