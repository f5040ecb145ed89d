#include "RecoverDialog.h"

#include <QChart>
#include <QChartView>
#include <QDialogButtonBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLegend>
#include <QLineSeries>
#include <QPen>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QSettings>
#include <QTableWidget>
#include <QVBoxLayout>
#include <QValueAxis>
#include <algorithm>

#include "ParamForm.h"
#include "RecoverRun.h"
#include "WorkerPool.h"

namespace {

QString phaseName(int i) {
  switch (i) {
    case 0: return RecoverDialog::tr("Student rollouts");
    case 1: return RecoverDialog::tr("Teacher top-k");
    case 2: return RecoverDialog::tr("LoRA training");
    case 3: return RecoverDialog::tr("Merge + re-quantize");
    case 4: return RecoverDialog::tr("Evaluate before / after");
  }
  return {};
}

// Params the dialog remembers between runs (paths and the main knobs; not the output).
const QStringList kRemembered = {QStringLiteral("teacher"), QStringLiteral("student"), QStringLiteral("recipe"),
                                 QStringLiteral("phases"),  QStringLiteral("prompts"), QStringLiteral("k"),
                                 QStringLiteral("max_new"), QStringLiteral("epochs"),  QStringLiteral("lr"),
                                 QStringLiteral("device")};

}  // namespace

const QStringList& RecoverDialog::primaryParams() {
  static const QStringList p = {QStringLiteral("teacher"), QStringLiteral("student"), QStringLiteral("recipe"),
                                QStringLiteral("out"),     QStringLiteral("phases"),  QStringLiteral("prompts"),
                                QStringLiteral("k"),       QStringLiteral("max_new"), QStringLiteral("epochs"),
                                QStringLiteral("lr"),      QStringLiteral("device")};
  return p;
}

RecoverDialog::RecoverDialog(WorkerPool* pool, const QString& where, QWidget* parent)
    : QDialog(parent), m_run(new RecoverRun(pool, this)) {
  setWindowTitle(tr("Recover"));
  auto* top = new QVBoxLayout(this);
  auto* intro = new QLabel(tr("On-policy distillation of a quantized student toward its BF16 teacher on %1: A student "
                              "rollouts, B the teacher's top-k, C LoRA training (PyTorch), D merge and re-quantize "
                              "with the student's recipe (same footprint), E KL / perplexity before and after. Paths "
                              "are %1's.")
                               .arg(where));
  intro->setWordWrap(true);
  top->addWidget(intro);

  auto* cols = new QHBoxLayout;
  auto* left = new QVBoxLayout;
  m_waiting = new QLabel(tr("Waiting for the worker's list of parameters …"));
  left->addWidget(m_waiting);
  m_form = new ParamForm;
  auto* scroll = new QScrollArea;
  scroll->setWidget(m_form);
  scroll->setWidgetResizable(true);
  scroll->setFrameShape(QFrame::NoFrame);
  scroll->setMinimumWidth(430);
  left->addWidget(scroll, 1);
  cols->addLayout(left, 2);

  auto* right = new QVBoxLayout;
  m_phases = new QTableWidget(5, 3);
  m_phases->setObjectName(QStringLiteral("recoverPhases"));
  m_phases->setHorizontalHeaderLabels({tr("Phase"), tr("Progress"), tr("Now")});
  m_phases->verticalHeader()->hide();
  m_phases->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_phases->setSelectionMode(QAbstractItemView::NoSelection);
  m_phases->horizontalHeader()->setSectionResizeMode(0, QHeaderView::ResizeToContents);
  m_phases->horizontalHeader()->setSectionResizeMode(1, QHeaderView::Fixed);
  m_phases->horizontalHeader()->resizeSection(1, 170);
  m_phases->horizontalHeader()->setStretchLastSection(true);
  for (int i = 0; i < 5; ++i) {
    m_phases->setItem(i, 0, new QTableWidgetItem(QStringLiteral("%1  %2").arg(QString(QChar::fromLatin1(RecoverRun::kPhases[i])), phaseName(i))));
    auto* bar = new QProgressBar;
    bar->setRange(0, 1000);
    bar->setValue(0);
    bar->setFormat(tr("waiting"));
    bar->setTextVisible(true);
    m_phases->setCellWidget(i, 1, bar);
    m_phases->setItem(i, 2, new QTableWidgetItem);
  }
  m_phases->setFixedHeight(m_phases->horizontalHeader()->height() + 5 * m_phases->rowHeight(0) + 4);
  right->addWidget(m_phases);

  auto* chart = new QChart;
  chart->setTitle(tr("Phase C: training loss and KL to the teacher per step"));
  chart->setAnimationOptions(QChart::NoAnimation);
  chart->legend()->setAlignment(Qt::AlignBottom);
  m_loss = new QLineSeries;
  m_loss->setName(tr("loss"));
  m_kl = new QLineSeries;
  m_kl->setName(tr("KL"));
  m_klEma = new QLineSeries;
  m_klEma->setName(tr("KL (moving average)"));
  // The loss is the KL of the chosen direction (reverse by default): the same numbers, so KL is drawn dashed over it.
  m_loss->setPen(QPen(QColor(31, 119, 180), 4));
  m_kl->setPen(QPen(QColor(255, 127, 14), 2, Qt::DashLine));
  m_klEma->setPen(QPen(QColor(44, 160, 44), 2));
  chart->addSeries(m_loss);
  chart->addSeries(m_kl);
  chart->addSeries(m_klEma);
  m_ax = new QValueAxis;
  m_ax->setTitleText(tr("step"));
  m_ax->setLabelFormat(QStringLiteral("%d"));
  m_ax->setRange(0, 1);
  m_ay = new QValueAxis;
  m_ay->setTitleText(tr("nats per token"));
  m_ay->setRange(0, 1);
  chart->addAxis(m_ax, Qt::AlignBottom);
  chart->addAxis(m_ay, Qt::AlignLeft);
  for (QLineSeries* s : {m_loss, m_kl, m_klEma}) {
    s->attachAxis(m_ax);
    s->attachAxis(m_ay);
  }
  m_chartView = new QChartView(chart);
  m_chartView->setObjectName(QStringLiteral("recoverChart"));
  m_chartView->setRenderHint(QPainter::Antialiasing);
  m_chartView->setMinimumSize(480, 300);
  right->addWidget(m_chartView, 1);
  m_summary = new QLabel;
  m_summary->setObjectName(QStringLiteral("recoverSummary"));
  m_summary->setWordWrap(true);
  m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
  right->addWidget(m_summary);
  cols->addLayout(right, 3);
  top->addLayout(cols, 1);

  m_stage = new QLabel(tr("Not started."));
  m_stage->setObjectName(QStringLiteral("recoverStage"));
  m_stage->setWordWrap(true);
  top->addWidget(m_stage);
  auto* buttons = new QDialogButtonBox;
  m_start = buttons->addButton(tr("Start"), QDialogButtonBox::ActionRole);
  m_stop = buttons->addButton(tr("Stop"), QDialogButtonBox::ActionRole);
  buttons->addButton(QDialogButtonBox::Close);
  top->addWidget(buttons);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  connect(m_start, &QPushButton::clicked, this, &RecoverDialog::start);
  connect(m_stop, &QPushButton::clicked, m_run, &RecoverRun::cancel);
  connect(m_form, &ParamForm::changed, this, &RecoverDialog::updateStart);

  connect(m_run, &RecoverRun::phaseChanged, this, &RecoverDialog::updatePhases);
  connect(m_run, &RecoverRun::phaseProgress, this, [this](QChar phase, double, double, const QString& what) {
    updatePhases();
    m_stage->setText(tr("Phase %1 running: %2").arg(phase).arg(what));
  });
  connect(m_run, &RecoverRun::trainPointAvailable, this,
          [this](const RecoverRun::TrainPoint& p) {
            addPoint(p.step, p.loss, p.kl, p.klEma);
            updatePhases();
          });
  connect(m_run, &RecoverRun::runFinished, this, [this](const QJsonObject& r) {
    updatePhases();
    updateStart();
    showResult(r);
  });
  connect(m_run, &RecoverRun::runFailed, this, [this](const QString& m) {
    updatePhases();
    updateStart();
    m_stage->setText(m);
  });

  if (pool) {
    if (!pool->lastHello().isEmpty()) setHello(pool->lastHello());
    connect(pool, &WorkerPool::workerAvailable, this, [this](int, const QJsonObject& hello) {
      if (m_form->fieldNames().isEmpty()) setHello(hello);
    });
  }
  updatePhases();
  updateStart();
  resize(1180, 760);
}

bool RecoverDialog::setHello(const QJsonObject& hello) {
  const QJsonObject schema = ParamForm::methodSchema(hello, QStringLiteral("recover"));
  if (schema.isEmpty()) {
    m_waiting->setText(tr("This worker has no `recover` job (an older razor?)."));
    m_waiting->show();
    return false;
  }
  // Keep what was typed before a (re)build; then the remembered values of the last run.
  const QJsonObject typed = m_form->params();
  m_form->build(schema, hello.value(QLatin1String("enums")).toObject(), primaryParams());
  QSettings s;
  s.beginGroup(QStringLiteral("recover"));
  for (const QString& k : kRemembered)
    if (s.contains(k)) m_form->setValue(k, QJsonValue::fromVariant(s.value(k)));
  s.endGroup();
  for (auto it = m_presets.begin(); it != m_presets.end(); ++it) m_form->setValue(it.key(), it.value());
  for (auto it = typed.begin(); it != typed.end(); ++it) m_form->setValue(it.key(), it.value());
  m_waiting->hide();
  updateStart();
  return true;
}

void RecoverDialog::presetValue(const QString& name, const QJsonValue& value) {
  m_presets[name] = value;
  m_form->setValue(name, value);
}

QJsonObject RecoverDialog::params() const { return m_form->params(); }

void RecoverDialog::start() {
  if (m_run->isRunning() || !m_start->isEnabled()) return;
  const QJsonObject p = params();
  QSettings s;
  s.beginGroup(QStringLiteral("recover"));
  for (const QString& k : kRemembered) {
    const QJsonValue v = m_form->value(k);
    if (v.isNull() || v.isUndefined()) s.remove(k);
    else s.setValue(k, v.toVariant());
  }
  s.endGroup();
  m_loss->clear();
  m_kl->clear();
  m_klEma->clear();
  m_ax->setRange(0, 1);
  m_ay->setRange(0, 1);
  m_summary->clear();
  m_run->start(p);
  m_stage->setText(tr("Submitted: recover %1").arg(m_run->jobId()));
  updatePhases();
  updateStart();
}

void RecoverDialog::updatePhases() {
  for (int i = 0; i < 5; ++i) {
    const QChar ph = QLatin1Char(RecoverRun::kPhases[i]);
    auto* bar = static_cast<QProgressBar*>(m_phases->cellWidget(i, 1));
    const double f = m_run->phaseDone(ph);
    QString fmt;
    switch (m_run->phaseState(ph)) {
      case RecoverRun::PhaseState::Skipped: fmt = tr("not run"); break;
      case RecoverRun::PhaseState::Waiting: fmt = tr("waiting"); break;
      case RecoverRun::PhaseState::Running: fmt = f >= 0 ? tr("running %p%") : tr("running"); break;
      case RecoverRun::PhaseState::Done: fmt = tr("done"); break;
      case RecoverRun::PhaseState::Failed: fmt = tr("failed"); break;
    }
    if (m_run->phaseState(ph) == RecoverRun::PhaseState::Running && f < 0) {
      bar->setRange(0, 0);  // no total (phase C reports steps only): busy
    } else {
      bar->setRange(0, 1000);
      bar->setValue(int(1000 * std::max(0.0, f)));
    }
    bar->setFormat(fmt);
    QFont font = m_phases->item(i, 0)->font();
    font.setBold(m_run->phaseState(ph) == RecoverRun::PhaseState::Running);
    m_phases->item(i, 0)->setFont(font);
    QString now = m_run->phaseWhat(ph);
    if (ph == QLatin1Char('C') && !m_run->trainPoints().isEmpty()) {  // the trainer's figures, rounded
      const RecoverRun::TrainPoint& p = m_run->trainPoints().back();
      now = tr("step %1: loss %2, KL %3 (average %4)")
                .arg(p.step)
                .arg(p.loss, 0, 'f', 4)
                .arg(p.kl, 0, 'f', 4)
                .arg(p.klEma, 0, 'f', 4);
    }
    m_phases->item(i, 2)->setText(now);
  }
}

void RecoverDialog::addPoint(double step, double loss, double kl, double klEma) {
  m_loss->append(step, loss);
  m_kl->append(step, kl);
  if (klEma > 0) m_klEma->append(step, klEma);
  double ymax = 0;
  for (QLineSeries* s : {m_loss, m_kl, m_klEma})
    for (const QPointF& p : s->points()) ymax = std::max(ymax, p.y());
  m_ax->setRange(0, std::max(1.0, step));
  m_ay->setRange(0, ymax > 0 ? ymax * 1.1 : 1.0);
}

void RecoverDialog::showResult(const QJsonObject& r) {
  const QJsonObject e = r.value(QLatin1String("E")).toObject();
  if (e.isEmpty()) {
    m_stage->setText(tr("Done (phases %1; no evaluation: phase E did not run).").arg(RecoverRun::normalizePhases(
        m_run->params().value(QLatin1String("phases")).toString())));
    return;
  }
  const QJsonObject b = e.value(QLatin1String("baseline")).toObject(), a = e.value(QLatin1String("recovered")).toObject();
  auto num = [](const QJsonObject& o, const char* k) { return o.value(QLatin1String(k)).toDouble(); };
  const double reduction = e.value(QLatin1String("kl_reduction")).toDouble();
  m_summary->setText(tr("<b>KL to the teacher</b> %1 → %2 (%3) &nbsp; <b>perplexity</b> %4 → %5 "
                        "(teacher %6) on %7 windows of %8 tokens of held-apart text")
                         .arg(num(b, "kl_mean"), 0, 'g', 4)
                         .arg(num(a, "kl_mean"), 0, 'g', 4)
                         .arg(reduction >= 0 ? tr("%1% lower").arg(100.0 * reduction, 0, 'f', 1)
                                             : tr("%1% higher").arg(-100.0 * reduction, 0, 'f', 1))
                         .arg(num(b, "ppl"), 0, 'f', 2)
                         .arg(num(a, "ppl"), 0, 'f', 2)
                         .arg(e.value(QLatin1String("teacher_ppl")).toDouble(), 0, 'f', 2)
                         .arg(e.value(QLatin1String("windows")).toInt())
                         .arg(e.value(QLatin1String("ctx")).toInt()));
  m_stage->setText(tr("Done: %1 (the two runs are in the Runs view)").arg(r.value(QLatin1String("out")).toString()));
  QJsonArray runs;
  for (const QJsonObject& run : RecoverRun::runsOfResult(r, m_run->params())) runs.append(run);
  if (!runs.isEmpty()) emit runsAvailable(runs);
}

void RecoverDialog::updateStart() {
  const bool running = m_run->isRunning();
  const QStringList problems = m_form->problems();
  const bool built = !m_form->fieldNames().isEmpty();
  m_start->setEnabled(!running && built && problems.isEmpty());
  m_stop->setEnabled(running);
  m_start->setToolTip(!built ? tr("Waiting for the worker") : problems.join(QLatin1Char('\n')));
}
