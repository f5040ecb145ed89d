#include "JobsDock.h"

#include <QApplication>
#include <QDateTime>
#include <QDesktopServices>
#include <QFileInfo>
#include <QFontDatabase>
#include <QMetaMethod>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QPainter>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSplitter>
#include <QStyleOptionProgressBar>
#include <QStyledItemDelegate>
#include <QTableView>
#include <QUrl>
#include <QVBoxLayout>

#include "JobStore.h"
#include "JobsModel.h"
#include "WorkerPool.h"

namespace {

// Draws the Progress column as a progress bar (with the model's text on it).
class ProgressDelegate : public QStyledItemDelegate {
 public:
  using QStyledItemDelegate::QStyledItemDelegate;
  void paint(QPainter* p, const QStyleOptionViewItem& option, const QModelIndex& index) const override {
    QVariant frac = index.data(JobsModel::ProgressRole);
    if (!frac.isValid()) {
      QStyledItemDelegate::paint(p, option, index);
      return;
    }
    QStyleOptionProgressBar bar;
    bar.rect = option.rect.adjusted(2, 2, -2, -2);
    bar.minimum = 0;
    bar.maximum = 1000;
    bar.progress = int(frac.toDouble() * 1000.0);
    bar.text = index.data(Qt::DisplayRole).toString();
    bar.textVisible = true;
    bar.textAlignment = Qt::AlignCenter;
    bar.state = option.state | QStyle::State_Horizontal;
    bar.palette = option.palette;
    const QWidget* w = option.widget;
    QStyle* style = w ? w->style() : QApplication::style();
    style->drawControl(QStyle::CE_ProgressBar, &bar, p, w);
  }
  QSize sizeHint(const QStyleOptionViewItem& option, const QModelIndex& index) const override {
    QSize s = QStyledItemDelegate::sizeHint(option, index);
    return {std::max(s.width(), 220), s.height()};
  }
};

}  // namespace

JobsDock::JobsDock(QWidget* parent) : QDockWidget(tr("Jobs"), parent), m_model(new JobsModel(this)) {
  setObjectName(QStringLiteral("JobsDock"));
  m_table = new QTableView;
  m_table->setModel(m_model);
  m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_table->setSelectionMode(QAbstractItemView::SingleSelection);
  m_table->setItemDelegateForColumn(JobsModel::ProgressColumn, new ProgressDelegate(m_table));
  m_table->verticalHeader()->setVisible(false);
  m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  m_table->horizontalHeader()->setSectionResizeMode(JobsModel::ProgressColumn, QHeaderView::Stretch);

  m_cancel = new QPushButton(tr("Cancel"));
  m_open = new QPushButton(tr("Open output"));
  m_clear = new QPushButton(tr("Clear ended"));
  m_detail = new QLabel;
  m_detail->setTextInteractionFlags(Qt::TextSelectableByMouse);
  m_detail->setWordWrap(true);
  m_connection = new QLabel;
  m_connection->setStyleSheet(QStringLiteral("color: #b3261e;"));
  m_connection->hide();
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(m_cancel);
  buttons->addWidget(m_open);
  buttons->addWidget(m_clear);
  buttons->addWidget(m_detail, 1);
  buttons->addWidget(m_connection);

  m_log = new QPlainTextEdit;
  m_log->setReadOnly(true);
  m_log->setMaximumBlockCount(JobsModel::kMaxLogLines);
  m_log->setPlaceholderText(tr("The selected job's log"));
  m_log->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));

  auto* upper = new QWidget;
  auto* ul = new QVBoxLayout(upper);
  ul->setContentsMargins(0, 0, 0, 0);
  ul->addWidget(m_table, 1);
  ul->addLayout(buttons);
  auto* split = new QSplitter(Qt::Vertical);
  split->addWidget(upper);
  split->addWidget(m_log);
  split->setStretchFactor(0, 2);
  split->setStretchFactor(1, 1);
  setWidget(split);

  connect(m_table->selectionModel(), &QItemSelectionModel::selectionChanged, this, &JobsDock::onSelectionChanged);
  connect(m_model, &JobsModel::logLineAvailable, this, &JobsDock::onLogLine);
  connect(m_model, &JobsModel::jobStateChanged, this, [this](const QString& id) {
    if (id == selectedJobId()) onSelectionChanged();
  });
  connect(m_model, &QAbstractItemModel::modelReset, this, &JobsDock::updateButtons);
  connect(m_cancel, &QPushButton::clicked, this, [this] {
    QString id = selectedJobId();
    if (id.isEmpty()) return;
    if (m_pool) m_pool->cancel(id);
    emit cancelRequested(id);
  });
  connect(m_open, &QPushButton::clicked, this, [this] {
    const JobsModel::Job* j = m_model->job(selectedJobId());
    if (!j || j->outputs.isEmpty()) return;
    const QString path = j->outputs.first();
    if (isSignalConnected(QMetaMethod::fromSignal(&JobsDock::outputOpenRequested))) {
      emit outputOpenRequested(path);
      return;
    }
    QFileInfo fi(path);
    QDesktopServices::openUrl(QUrl::fromLocalFile(fi.isDir() ? fi.absoluteFilePath() : fi.absolutePath()));
  });
  connect(m_clear, &QPushButton::clicked, m_model, &JobsModel::removeEnded);
  updateButtons();
}

void JobsDock::attachPool(WorkerPool* pool) {
  m_pool = pool;
  m_model->attachPool(pool);
}

void JobsDock::attachStore(JobStore* store) {
  m_store = store;
  m_model->attachStore(store);
}

void JobsDock::setHostLabel(const QString& label) {
  setWindowTitle(label.isEmpty() ? tr("Jobs") : tr("Jobs on %1").arg(label));
}

void JobsDock::setConnectionNote(const QString& note) {
  m_connection->setText(note);
  m_connection->setVisible(!note.isEmpty());
}

QString JobsDock::connectionNote() const { return m_connection->text(); }

QString JobsDock::selectedJobId() const {
  const QModelIndexList rows = m_table->selectionModel()->selectedRows();
  return rows.isEmpty() ? QString() : rows.first().data(JobsModel::JobIdRole).toString();
}

void JobsDock::selectJob(const QString& id) {
  int r = m_model->rowOf(id);
  if (r >= 0) m_table->selectRow(r);
}

void JobsDock::onSelectionChanged() {
  const JobsModel::Job* j = m_model->job(selectedJobId());
  m_log->clear();
  if (j) {
    QStringList lines = j->log;
    // Jobs of an earlier session: their log lives in the store.
    if (lines.isEmpty() && m_store) lines = m_store->logText(j->id).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    m_log->setPlainText(lines.join(QLatin1Char('\n')));
    m_detail->setText(j->errorMessage.isEmpty() ? j->id : j->errorCode + QStringLiteral(": ") + j->errorMessage);
  } else {
    m_detail->clear();
  }
  updateButtons();
}

void JobsDock::onLogLine(const QString& id, const QString& line) {
  if (id == selectedJobId()) m_log->appendPlainText(line);
}

void JobsDock::updateButtons() {
  const JobsModel::Job* j = m_model->job(selectedJobId());
  const bool active = j && (j->state == JobsModel::State::Queued || j->state == JobsModel::State::Running);
  m_cancel->setEnabled(active);
  m_open->setEnabled(j && !j->outputs.isEmpty());
}

JobsDock* JobsDock::createDemo(QWidget* parent) {
  auto* d = new JobsDock(parent);
  JobsModel* m = d->model();
  qint64 fakeNow = 1'700'000'000'000;
  m->setClock([&fakeNow] { return fakeNow; });
  m->addJob(QStringLiteral("demo-1"), QStringLiteral("inspect"), {{QStringLiteral("model"), QStringLiteral("resources/models/tiny-qwen3-5-moe")}});
  m->markStarted(QStringLiteral("demo-1"), 0);
  m->addArtifact(QStringLiteral("demo-1"), {{QStringLiteral("path"), QStringLiteral("/tmp/razor/tiny-qwen3-5-moe.inventory.json")}});
  m->markFinished(QStringLiteral("demo-1"), {});
  m->addJob(QStringLiteral("demo-2"), QStringLiteral("pack"), {{QStringLiteral("out"), QStringLiteral("/data/q122-iq3xxs.gguf")}});
  m->markStarted(QStringLiteral("demo-2"), 1);
  const double total = 51.6e9;
  for (int i = 0; i <= 10; ++i) {
    fakeNow += 2000;
    m->updateProgress(QStringLiteral("demo-2"), i * 0.042 * total, total, QStringLiteral("blk.%1.ffn_down_exps.weight").arg(i * 2));
  }
  m->appendLog(QStringLiteral("demo-2"), QStringLiteral("info"), QStringLiteral("recipe recipes/gguf/instinct-iq3.txt: 24 rules"));
  m->appendLog(QStringLiteral("demo-2"), QStringLiteral("info"), QStringLiteral("imatrix q122.imatrix: 1440 entries"));
  m->appendLog(QStringLiteral("demo-2"), QStringLiteral("warn"), QStringLiteral("blk.0.ssm_conv1d.weight: kept f32 (recipe line ignored)"));
  m->addJob(QStringLiteral("demo-3"), QStringLiteral("eval-ppl"), {{QStringLiteral("model"), QStringLiteral("/data/q122-iq3xxs.gguf")}});
  m->addJob(QStringLiteral("demo-4"), QStringLiteral("quantize"), {{QStringLiteral("out"), QStringLiteral("/data/q36_clip")}});
  m->markStarted(QStringLiteral("demo-4"), 2);
  m->markFailed(QStringLiteral("demo-4"), QStringLiteral("disk_full"), QStringLiteral("/data: no space left on device (needs 13.5 GB)"));
  m->setClock([] { return QDateTime::currentMSecsSinceEpoch(); });
  d->selectJob(QStringLiteral("demo-2"));
  d->resize(900, 420);
  return d;
}
