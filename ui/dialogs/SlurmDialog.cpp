#include "SlurmDialog.h"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QFormLayout>
#include <QJsonArray>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QVBoxLayout>

#include "WorkerPool.h"

SlurmDialog::SlurmDialog(WorkerPool* pool, const QString& where, QWidget* parent) : QDialog(parent), m_pool(pool) {
  setWindowTitle(tr("Submit to Slurm"));
  auto* top = new QVBoxLayout(this);
  auto* intro = new QLabel(tr("Runs the quantize or pack as a Slurm array job, one layer range per task, and merges "
                              "the parts in a job that starts when every task succeeded. %1 submits it with sbatch "
                              "and follows it; paths are %1's and must be on a filesystem every compute node sees.")
                               .arg(where));
  intro->setWordWrap(true);
  top->addWidget(intro);
  auto* form = new QFormLayout;
  m_kind = new QComboBox;
  m_kind->addItem(tr("Quantize (checkpoint)"), QStringLiteral("quantize"));
  m_kind->addItem(tr("Pack (GGUF)"), QStringLiteral("pack"));
  m_model = new QLineEdit;
  m_model->setPlaceholderText(tr("source checkpoint folder"));
  m_out = new QLineEdit;
  m_out->setPlaceholderText(tr("output checkpoint folder (quantize) or .gguf file (pack)"));
  m_workDir = new QLineEdit;
  m_workDir->setPlaceholderText(tr("scripts, parts and logs"));
  m_tasks = new QSpinBox;
  m_tasks->setRange(1, 4096);
  m_tasks->setValue(4);
  m_recipe = new QLineEdit;
  m_recipe->setPlaceholderText(tr("quantize: recipe name or file (default seed-default); pack: tensor-type recipe"));
  m_type = new QLineEdit;
  m_type->setPlaceholderText(tr("pack: default ggml type (q4_K, q8_0, ...)"));
  m_partition = new QLineEdit;
  m_partition->setPlaceholderText(tr("cluster default"));
  m_gres = new QLineEdit;
  m_gres->setPlaceholderText(tr("e.g. gpu:1 (array tasks only)"));
  m_time = new QLineEdit;
  m_time->setPlaceholderText(tr("e.g. 04:00:00"));
  m_kind->setObjectName(QStringLiteral("slurmKind"));
  m_tasks->setObjectName(QStringLiteral("slurmTasks"));
  for (auto [name, e] : {std::pair{"slurmModel", m_model}, {"slurmOut", m_out}, {"slurmWorkDir", m_workDir},
                         {"slurmRecipe", m_recipe}, {"slurmType", m_type}, {"slurmPartition", m_partition},
                         {"slurmGres", m_gres}, {"slurmTime", m_time}})
    e->setObjectName(QLatin1String(name));
  form->addRow(tr("Kind:"), m_kind);
  form->addRow(tr("Model:"), m_model);
  form->addRow(tr("Output:"), m_out);
  form->addRow(tr("Work folder:"), m_workDir);
  form->addRow(tr("Tasks:"), m_tasks);
  form->addRow(tr("Recipe:"), m_recipe);
  form->addRow(tr("Type:"), m_type);
  form->addRow(tr("Partition:"), m_partition);
  form->addRow(tr("GRES:"), m_gres);
  form->addRow(tr("Time limit:"), m_time);
  top->addLayout(form);
  m_status = new QLabel;
  m_status->setObjectName(QStringLiteral("slurmStatus"));
  m_status->setWordWrap(true);
  top->addWidget(m_status);
  auto* buttons = new QDialogButtonBox;
  m_submit = buttons->addButton(tr("Submit"), QDialogButtonBox::ActionRole);
  m_submit->setObjectName(QStringLiteral("slurmSubmit"));
  buttons->addButton(QDialogButtonBox::Close);
  top->addWidget(buttons);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  connect(m_submit, &QPushButton::clicked, this, &SlurmDialog::submit);
  for (QLineEdit* e : {m_model, m_out, m_workDir, m_type, m_recipe})
    connect(e, &QLineEdit::textChanged, this, &SlurmDialog::updateSubmit);
  connect(m_kind, &QComboBox::currentIndexChanged, this, [this] {
    m_type->setEnabled(m_kind->currentData().toString() == QLatin1String("pack"));
    updateSubmit();
  });

  QSettings s;
  s.beginGroup(QStringLiteral("slurm"));
  m_tasks->setValue(s.value(QStringLiteral("tasks"), m_tasks->value()).toInt());
  m_partition->setText(s.value(QStringLiteral("partition")).toString());
  m_gres->setText(s.value(QStringLiteral("gres")).toString());
  m_time->setText(s.value(QStringLiteral("time")).toString());
  s.endGroup();
  m_type->setEnabled(false);
  updateSubmit();
}

SlurmDialog* SlurmDialog::open(WorkerPool* pool, const QString& where, const QString& model, QWidget* parent) {
  auto* d = new SlurmDialog(pool, where, parent);
  d->setAttribute(Qt::WA_DeleteOnClose);
  if (!model.isEmpty()) d->setModel(model);
  d->show();
  return d;
}

void SlurmDialog::setModel(const QString& path) { m_model->setText(path); }

QJsonObject SlurmDialog::params() const {
  const QString kind = m_kind->currentData().toString();
  QJsonArray jobArgs;
  const QString recipe = m_recipe->text().trimmed();
  if (!recipe.isEmpty()) jobArgs << QStringLiteral("--recipe") << recipe;
  if (kind == QLatin1String("pack") && !m_type->text().trimmed().isEmpty())
    jobArgs << QStringLiteral("--type") << m_type->text().trimmed();
  QJsonObject p{{QStringLiteral("kind"), kind},
                {QStringLiteral("model"), m_model->text().trimmed()},
                {QStringLiteral("out"), m_out->text().trimmed()},
                {QStringLiteral("work_dir"), m_workDir->text().trimmed()},
                {QStringLiteral("tasks"), m_tasks->value()},
                {QStringLiteral("job_args"), jobArgs}};
  for (auto [key, edit] : {std::pair{"partition", m_partition}, {"gres", m_gres}, {"time", m_time}})
    if (!edit->text().trimmed().isEmpty()) p[QLatin1String(key)] = edit->text().trimmed();
  return p;
}

QString SlurmDialog::submit() {
  if (!m_pool || !m_submit->isEnabled()) return QString();
  QSettings s;
  s.beginGroup(QStringLiteral("slurm"));
  s.setValue(QStringLiteral("tasks"), m_tasks->value());
  s.setValue(QStringLiteral("partition"), m_partition->text());
  s.setValue(QStringLiteral("gres"), m_gres->text());
  s.setValue(QStringLiteral("time"), m_time->text());
  s.endGroup();
  m_jobId = m_pool->submit(QStringLiteral("slurm"), params());
  m_status->setText(tr("Submitted as job %1: its progress and the Slurm job ids are in the jobs dock; cancel it "
                       "there to scancel the Slurm jobs.").arg(m_jobId));
  return m_jobId;
}

void SlurmDialog::updateSubmit() {
  const bool pack = m_kind->currentData().toString() == QLatin1String("pack");
  QString missing;
  if (m_model->text().trimmed().isEmpty() || m_out->text().trimmed().isEmpty() || m_workDir->text().trimmed().isEmpty())
    missing = tr("Model, output and work folder are needed");
  else if (pack && m_type->text().trimmed().isEmpty() && m_recipe->text().trimmed().isEmpty())
    missing = tr("Pack needs a type or a recipe");
  m_submit->setEnabled(missing.isEmpty());
  m_submit->setToolTip(missing);
}
