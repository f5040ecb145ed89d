#include "ExportWizard.h"

#include <QCheckBox>
#include <QComboBox>
#include <QCoreApplication>
#include <QDesktopServices>
#include <QDir>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QRegularExpression>
#include <QSpinBox>
#include <QSaveFile>
#include <QStandardPaths>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QUrl>
#include <QVBoxLayout>
#include <QWizardPage>
#include <set>

#include "RemoteFiles.h"
#include "WorkerClient.h"
#include "WorkerPool.h"
#include "util/paths.h"
#include "dialogs/export/DonePage.h"
#include "dialogs/export/ImatrixPage.h"
#include "dialogs/export/RecipePage.h"
#include "dialogs/export/ReviewPage.h"
#include "dialogs/export/RunPage.h"
#include "dialogs/export/SourcePage.h"
#include "dialogs/export/ValidatePage.h"


namespace {
WizSourcePage* sourcePage(const ExportWizard* w) { return static_cast<WizSourcePage*>(w->page(ExportWizard::SourcePage)); }
WizRecipePage* recipePage(const ExportWizard* w) { return static_cast<WizRecipePage*>(w->page(ExportWizard::RecipePage)); }
WizImatrixPage* imatrixPage(const ExportWizard* w) { return static_cast<WizImatrixPage*>(w->page(ExportWizard::ImatrixPage)); }
WizReviewPage* reviewPage(const ExportWizard* w) { return static_cast<WizReviewPage*>(w->page(ExportWizard::ReviewPage)); }
WizRunPage* runPage(const ExportWizard* w) { return static_cast<WizRunPage*>(w->page(ExportWizard::RunPage)); }
WizValidatePage* validatePage(const ExportWizard* w) { return static_cast<WizValidatePage*>(w->page(ExportWizard::ValidatePage)); }
}  // namespace

ExportWizard::ExportWizard(QWidget* parent) : QWizard(parent) {
  setWindowTitle(tr("Export GGUF"));
  setWizardStyle(QWizard::ClassicStyle);
  setOption(QWizard::NoBackButtonOnLastPage, true);
  setPage(SourcePage, new WizSourcePage(this));
  setPage(RecipePage, new WizRecipePage(this));
  setPage(ImatrixPage, new WizImatrixPage(this));
  setPage(ReviewPage, new WizReviewPage(this));
  setPage(RunPage, new WizRunPage(this));
  setPage(ValidatePage, new WizValidatePage(this));
  setPage(DonePage, new WizDonePage(this));
  m_razor = findRazorProgram();
  QString recipes = QCoreApplication::applicationDirPath() + QStringLiteral("/../share/razor/recipes/gguf");
  if (!QFileInfo(recipes).isDir()) recipes = QString::fromStdString(razor::source_dir()) + QStringLiteral("/recipes/gguf");
  setRecipesDir(recipes);
  resize(860, 640);
}

ExportWizard::~ExportWizard() {
  // A running pack is cancelled; the worker removes its partial output.
  if (m_runStarted && !m_runDone) cancelRun();
  if (allocationRunning()) cancelJob(m_allocJob);
  delete m_allocDir;
}

// ---- fit a file size: `allocate-gguf` --------------------------------------------------------------------------
QStringList ExportWizard::allocationRoles() {
  // gguf::gguf_role's names of the tensors llama.cpp quantizes (core/gguf/convert.cpp); the allocation report
  // names the same roles.
  return {QStringLiteral("embedding"),      QStringLiteral("output_head"),   QStringLiteral("attention"),
          QStringLiteral("linear_attention"), QStringLiteral("shared_expert"), QStringLiteral("routed_expert")};
}

void ExportWizard::setAllocationTarget(const QString& target) { recipePage(this)->target->setText(target); }

void ExportWizard::setRoleTypes(const QString& role, const QString& types) {
  QTableWidget* t = recipePage(this)->roles;
  for (int r = 0; r < t->rowCount(); ++r)
    if (t->item(r, 0)->text() == role) t->item(r, 1)->setText(types);
}

QJsonObject ExportWizard::allocationParams() const {
  const WizRecipePage* p = recipePage(this);
  if (!m_allocDir) m_allocDir = new QTemporaryDir(QDir::tempPath() + QStringLiteral("/razor-alloc-XXXXXX"));
  QJsonObject params{{QStringLiteral("model"), modelDir()},
                     {QStringLiteral("mode"), QStringLiteral("gguf")},
                     {QStringLiteral("target"), p->target->text().trimmed()},
                     {QStringLiteral("out"), m_allocDir->filePath(QStringLiteral("allocated.txt"))},
                     {QStringLiteral("sensitivity"), p->sensitivity->currentData().toString()},
                     {QStringLiteral("calib_windows"), p->windows->value()},
                     {QStringLiteral("measure"), true},
                     {QStringLiteral("windows"), 8}};
  if (!p->imatrix->text().trimmed().isEmpty()) params[QStringLiteral("imatrix")] = p->imatrix->text().trimmed();
  QJsonObject roles;
  for (int r = 0; r < p->roles->rowCount(); ++r) {
    const QString types = p->roles->item(r, 1)->text().simplified().remove(QLatin1Char(' '));
    if (!types.isEmpty()) roles[p->roles->item(r, 0)->text()] = types;
  }
  if (!roles.isEmpty()) params[QStringLiteral("role_types")] = roles;
  return params;
}

void ExportWizard::startAllocation() {
  if (allocationRunning()) return;
  WizRecipePage* page = recipePage(this);
  m_allocStarted = true;
  m_allocDone = m_allocOk = false;
  m_allocReport = {};
  page->allocBar->setValue(0);
  page->allocResult->setText(tr("Measuring each tensor's sensitivity in a worker …"));
  page->refresh();
  // The pack uses the importance matrix the allocation quantized with.
  if (!page->imatrix->text().trimmed().isEmpty()) setImatrixPath(page->imatrix->text().trimmed());
  JobCallbacks cb;
  cb.progress = [this](double d, double t, const QString& what) {
    WizRecipePage* p = recipePage(this);
    p->allocBar->setValue(t > 0 ? int(1000.0 * d / t) : 0);
    p->allocBar->setFormat(QStringLiteral("%p% ") + what);
  };
  cb.finished = [this](const QJsonObject& r) { finishAllocation(true, r, {}); };
  cb.failed = [this](const QString& code, const QString& msg) { finishAllocation(false, {}, code + QStringLiteral(": ") + msg); };
  m_allocJob = runJob(QStringLiteral("allocate"), allocationParams(), QStringLiteral("export-wizard-allocate"), cb);
}

void ExportWizard::finishAllocation(bool ok, const QJsonObject& report, const QString& message) {
  m_allocDone = true;
  m_allocOk = ok;
  m_allocReport = report;
  m_allocJob = {};
  WizRecipePage* page = recipePage(this);
  if (ok) {
    page->allocBar->setValue(1000);
    page->allocBar->setFormat(QStringLiteral("%p%"));
    const QJsonObject size = report.value(QLatin1String("size")).toObject();
    QString text = tr("%1 (%2 bits per weight), predicted KL %3")
                       .arg(fmtBytes(size.value(QLatin1String("file_bytes")).toDouble()))
                       .arg(size.value(QLatin1String("bpw")).toDouble(), 0, 'f', 3)
                       .arg(report.value(QLatin1String("predicted_kl")).toDouble(), 0, 'g', 4);
    const QJsonObject measured = report.value(QLatin1String("measured")).toObject();
    if (!measured.isEmpty())
      text += tr("; measured KL %1 (p99 %2, same top-1 %3 %) on held-out text")
                  .arg(measured.value(QLatin1String("kl_mean")).toDouble(), 0, 'g', 4)
                  .arg(measured.value(QLatin1String("kl_p99")).toDouble(), 0, 'g', 4)
                  .arg(100.0 * measured.value(QLatin1String("same_top1")).toDouble(), 0, 'f', 1);
    QStringList byRole;
    const QJsonObject roles = report.value(QLatin1String("roles")).toObject();
    for (auto it = roles.begin(); it != roles.end(); ++it)
      byRole << QStringLiteral("%1 %2").arg(it.key()).arg(it.value().toObject().value(QLatin1String("bpw")).toDouble(), 0, 'f', 2);
    page->allocResult->setText(text + tr("\nBits per weight by role: ") + byRole.join(QStringLiteral(", ")));
  } else {
    page->allocResult->setText(message);
  }
  page->refresh();
  emit allocationFinished(ok);
}

ExportWizard* ExportWizard::createDemo(QWidget* parent) {
  auto* w = new ExportWizard(parent);
  w->setModelDir(QString::fromStdString(razor::source_dir()) + QStringLiteral("/resources/models/tiny-qwen3-5-moe"));
  return w;
}

QString ExportWizard::findRazorProgram() { return WorkerPool::defaultProgram(); }

void ExportWizard::setRazorProgram(const QString& path) { m_razor = path; }
void ExportWizard::setRemote(const RemoteHost& host) { m_remote = host; }

void ExportWizard::setRecipesDir(const QString& dir) {
  m_recipesDir = dir;
  recipePage(this)->fillPresets(dir);
}

void ExportWizard::setWorkerPool(WorkerPool* pool) { m_pool = pool; }

void ExportWizard::setModelDir(const QString& dir) { sourcePage(this)->edit->setText(dir); }
QString ExportWizard::modelDir() const { return sourcePage(this)->edit->text(); }

QStringList ExportWizard::presetNames() const {
  QStringList n;
  QComboBox* c = recipePage(this)->preset;
  for (int i = 0; i < c->count(); ++i) n << c->itemText(i);
  return n;
}

void ExportWizard::selectPreset(const QString& name) {
  QComboBox* c = recipePage(this)->preset;
  for (int i = 0; i < c->count(); ++i) {
    const QString data = c->itemData(i).toString();
    if (c->itemText(i) == name || data == name || QFileInfo(data).fileName() == name) {
      c->setCurrentIndex(i);
      return;
    }
  }
}

void ExportWizard::setRecipeFile(const QString& path) { recipePage(this)->fileEdit->setText(path); }

void ExportWizard::setDefaultType(const QString& type) {
  QComboBox* c = recipePage(this)->defType;
  int i = c->findData(type.isEmpty() ? QString() : (typeRow(type) ? typeName(*typeRow(type)) : QString()));
  c->setCurrentIndex(std::max(0, i));
}

QString ExportWizard::recipePath() const { return recipePage(this)->recipePath(); }
QString ExportWizard::defaultType() const { return recipePage(this)->effectiveDefault(); }
void ExportWizard::setImatrixPath(const QString& path) { imatrixPage(this)->edit->setText(path); }
QString ExportWizard::imatrixPath() const { return imatrixPage(this)->edit->text(); }
void ExportWizard::setOutputPath(const QString& path) { reviewPage(this)->out->setText(path); }
QString ExportWizard::outputPath() const { return reviewPage(this)->out->text(); }

QStringList ExportWizard::typesNeedingImatrix() const {
  // llama.cpp exempts token_embd and output from the imatrix requirement, so only the rules and the default count.
  std::set<QString> types;
  const WizRecipePage* p = recipePage(this);
  for (auto& r : p->view().rules) types.insert(r.second);
  QString def = p->effectiveDefault();
  if (!def.isEmpty()) types.insert(def);
  QStringList out;
  for (const QString& t : types)
    if (const razor::ggml::type_info* row = typeRow(t); row && row->needs_imatrix) out << typeName(*row);
  return out;
}

QString ExportWizard::imatrixWarning() const {
  const QStringList t = typesNeedingImatrix();
  if (t.isEmpty()) return {};
  // Remote: the imatrix is a server path (the probe wrote it there); the server's pack checks it.
  if (m_remote.isValid() ? !imatrixPath().isEmpty() : QFileInfo(imatrixPath()).isFile()) return {};
  return tr("The chosen types %1 need an importance matrix: llama.cpp refuses to quantize to them without one, "
            "and so does `razor pack`. Choose an imatrix file, or go back and pick types that do not need one "
            "(q3_K, q4_K, iq4_xs...).")
      .arg(t.join(QStringLiteral(", ")));
}

QJsonObject ExportWizard::packParams(bool dryRun) const {
  QJsonObject params{{QStringLiteral("model"), modelDir()}, {QStringLiteral("out"), outputPath()}};
  const WizRecipePage* p = recipePage(this);
  // Remote: the recipe file chosen here was uploaded to the server (startReview); pass its server path.
  const bool uploaded = m_remote.isValid() && !recipePath().isEmpty() && m_remoteRecipeFor == recipePath();
  if (!recipePath().isEmpty()) params[QStringLiteral("recipe")] = uploaded ? m_remoteRecipe : recipePath();
  // The recipe's "#@" directives are passed explicitly, so that the plan, the job and the report all say the
  // same types whatever the job does with the directives.
  const RecipeView v = p->view();
  auto pick = [](const QString& chosen, const QString& fromRecipe) { return chosen.isEmpty() ? fromRecipe : chosen; };
  const QString def = pick(p->defType->currentData().toString(), v.defaultType);
  const QString outT = pick(p->outType->currentData().toString(), v.outputType);
  const QString embT = pick(p->embType->currentData().toString(), v.embdType);
  if (!def.isEmpty()) params[QStringLiteral("type")] = def;
  if (!outT.isEmpty()) params[QStringLiteral("output_tensor_type")] = outT;
  if (!embT.isEmpty()) params[QStringLiteral("token_embedding_type")] = embT;
  if (!imatrixPath().isEmpty()) params[QStringLiteral("imatrix")] = imatrixPath();
  if (dryRun) params[QStringLiteral("dry_run")] = true;
  return params;
}

// The same job as a `razor pack` command line (the registry names each option after its param: --a-b for a_b).
QStringList ExportWizard::packArguments(bool dryRun) const {
  const QJsonObject params = packParams(dryRun);
  QStringList a{QStringLiteral("pack"), params.value(QStringLiteral("model")).toString()};
  for (auto it = params.begin(); it != params.end(); ++it) {
    if (it.key() == QLatin1String("model")) continue;
    const QString opt = QStringLiteral("--") + QString(it.key()).replace(QLatin1Char('_'), QLatin1Char('-'));
    if (it.value().isBool()) {
      if (it.value().toBool()) a << opt;
    } else {
      a << opt << it.value().toString();
    }
  }
  return a;
}

// ---- review: `razor pack --dry-run [--json]` ---------------------------------------------------------------
void ExportWizard::startReview() {
  const int gen = ++m_reviewGeneration;
  m_reviewDone = m_reviewOk = false;
  m_reviewText.clear();
  m_reviewBytes = m_reviewBpw = m_reviewFileBytes = 0;
  WizReviewPage* page = reviewPage(this);
  page->status->setText(tr("Planning with %1 …").arg(m_razor));
  page->table->setRowCount(0);
  page->notes->clear();
  page->byRole->clear();
  emit page->completeChanged();

  if (m_remote.isValid() && !recipePath().isEmpty() && m_remoteRecipeFor != recipePath()) {
    // The recipe is a file on this machine: upload it first (once per content), then plan with its server path.
    if (!m_files) {
      m_files = new RemoteFiles(this);
      connect(m_files, &RemoteFiles::uploaded, this, [this](int, const QString& local, const QString& remote, bool) {
        m_remoteRecipe = remote;
        m_remoteRecipeFor = local;
        if (currentId() == ReviewPage) startReview();
      });
      connect(m_files, &RemoteFiles::uploadFailed, this, [this](int, const QString&, const QString& msg) {
        m_reviewDone = true;
        reviewPage(this)->status->setText(tr("The recipe could not be uploaded to the server: %1").arg(msg));
        emit reviewFinished(false);
      });
    }
    m_files->setHost(m_remote);
    page->status->setText(tr("Uploading %1 to %2 …").arg(QFileInfo(recipePath()).fileName(), m_remote.host));
    m_files->upload(recipePath());
    return;
  }

  // The pack job with dry_run in a worker (the pool's, or a private one): the plan, nothing written.
  page->status->setText(tr("Planning in a worker …"));
  auto notes = std::make_shared<QStringList>();
  QPointer<ExportWizard> self(this);
  JobCallbacks cb;
  cb.log = [notes](const QString&, const QString& msg) { *notes << (msg.startsWith(QLatin1String("note: ")) ? msg.mid(6) : msg); };
  cb.failed = [this, self, gen, notes](const QString& code, const QString& message) {
    if (!self || gen != m_reviewGeneration) return;  // superseded
    WizReviewPage* page = reviewPage(this);
    m_reviewDone = true;
    m_reviewOk = false;
    m_reviewText = code + QStringLiteral(": ") + message;
    page->status->setText(code == QLatin1String("worker_failed") ? tr("%1 could not be started: %2").arg(m_razor, message)
                                                                 : tr("The dry run failed: %1").arg(message));
    page->notes->setPlainText((*notes + QStringList{message}).join(QLatin1Char('\n')));
    emit page->completeChanged();
    emit reviewFinished(false);
  };
  cb.finished = [this, self, gen, notes](const QJsonObject& o) {
    if (!self || gen != m_reviewGeneration) return;  // superseded
    WizReviewPage* page = reviewPage(this);
    m_reviewDone = true;
    m_reviewOk = true;
    QStringList noteLines = *notes;
    struct Row {
      QString type;
      double bytes, bpw;
    };
    QList<Row> rows;
    const QJsonObject bt = o.value(QLatin1String("by_type")).toObject();
    for (auto it = bt.begin(); it != bt.end(); ++it) {
      QJsonObject e = it.value().toObject();
      rows << Row{it.key(), e.value(QLatin1String("bytes")).toDouble(), e.value(QLatin1String("bpw")).toDouble()};
    }
    const QJsonObject br = o.value(QLatin1String("by_role")).toObject();
    QStringList parts;
    for (auto it = br.begin(); it != br.end(); ++it)
      parts << QStringLiteral("%1 %2 bpw").arg(it.key()).arg(it.value().toObject().value(QLatin1String("bpw")).toDouble(), 0, 'f', 2);
    m_reviewBytes = o.value(QLatin1String("tensor_bytes")).toDouble();
    m_reviewFileBytes = o.value(QLatin1String("file_bytes")).toDouble();
    m_reviewBpw = o.value(QLatin1String("bpw")).toDouble();
    for (const QJsonValue& n : o.value(QLatin1String("notes")).toArray())
      if (!noteLines.contains(n.toString())) noteLines << n.toString();
    QStringList text;
    for (const Row& r : rows) text << QStringLiteral("%1 %2 bytes %3 bpw").arg(r.type).arg(qint64(r.bytes)).arg(r.bpw, 0, 'f', 3);
    text << QStringLiteral("%1: %2 tensors, %3 tensor bytes, %4 bpw (dry run), %5 file bytes")
                .arg(o.value(QLatin1String("arch")).toString())
                .arg(o.value(QLatin1String("n_tensors")).toInt())
                .arg(qint64(m_reviewBytes))
                .arg(m_reviewBpw, 0, 'f', 3)
                .arg(qint64(m_reviewFileBytes));
    m_reviewText = text.join(QLatin1Char('\n'));
    page->table->setRowCount(int(rows.size()));
    for (int i = 0; i < rows.size(); ++i) {
      page->table->setItem(i, 0, new QTableWidgetItem(rows[i].type));
      page->table->setItem(i, 1, new QTableWidgetItem(fmtBytes(rows[i].bytes)));
      page->table->setItem(i, 2, new QTableWidgetItem(QString::number(rows[i].bpw, 'f', 3)));
      page->table->setItem(i, 3, new QTableWidgetItem(m_reviewBytes > 0 ? QStringLiteral("%1%").arg(100.0 * rows[i].bytes / m_reviewBytes, 0, 'f', 1) : QString()));
    }
    page->byRole->setText(parts.isEmpty() ? QString() : tr("Bits per weight by role: %1").arg(parts.join(QStringLiteral(" · "))));
    page->status->setText(tr("%1 of tensor data, %2 bits per weight overall, %n note(s).", nullptr, int(noteLines.size()))
                              .arg(fmtBytes(m_reviewBytes))
                              .arg(m_reviewBpw, 0, 'f', 3));
    page->notes->setPlainText(noteLines.isEmpty() ? tr("(none)") : noteLines.join(QLatin1Char('\n')));
    emit page->completeChanged();
    emit reviewFinished(true);
  };
  cancelJob(m_reviewJob);
  m_reviewJob = runJob(QStringLiteral("pack"), packParams(true), QStringLiteral("export-wizard-review"), cb);
}

// ---- run: the pack job in a worker ---------------------------------------------------------------------------
void ExportWizard::startRun() {
  if (m_runStarted && !m_runDone) return;
  WizRunPage* page = runPage(this);
  m_runStarted = true;
  m_runDone = m_runOk = false;
  page->start->setEnabled(false);
  page->cancel->setEnabled(true);
  page->bar->setValue(0);
  page->log->clear();

  const QJsonObject params = packParams(false);
  page->log->appendPlainText(tr("pack %1").arg(QString::fromUtf8(QJsonDocument(params).toJson(QJsonDocument::Compact))));

  JobCallbacks cb;
  cb.progress = [this](double done, double total, const QString& what) {
    WizRunPage* p = runPage(this);
    p->bar->setValue(total > 0 ? int(1000.0 * done / total) : 0);
    p->what->setText(what);
  };
  cb.log = [this](const QString& level, const QString& msg) {
    runPage(this)->log->appendPlainText(level == QLatin1String("info") ? msg : QStringLiteral("[%1] %2").arg(level, msg));
  };
  cb.finished = [this](const QJsonObject& result) {
    m_runFileBytes = result.value(QLatin1String("file_bytes")).toDouble();
    finishRun(true, tr("Wrote %1 (%2, %3 bpw)")
                        .arg(outputPath(), fmtBytes(m_runFileBytes))
                        .arg(result.value(QLatin1String("bpw")).toDouble(), 0, 'f', 3));
  };
  cb.failed = [this](const QString& code, const QString& message) { finishRun(false, code + QStringLiteral(": ") + message); };
  m_runJob = runJob(QStringLiteral("pack"), params, QStringLiteral("export-wizard"), cb);
}

ExportWizard::JobHandle ExportWizard::runJob(const QString& method, const QJsonObject& params, const QString& key,
                                             JobCallbacks cb) {
  JobHandle h;
  if (m_pool) {
    WorkerPool::JobOptions opt;
    opt.key = key;
    opt.target = WorkerPool::Target::Cpu;
    h.poolJob = m_pool->submit(method, params, opt);
    const QString id = h.poolJob;
    // One-shot connections: dropped with the job's end (a later job of the same wizard has another id).
    auto conns = std::make_shared<QList<QMetaObject::Connection>>();
    auto drop = [conns] {
      for (auto& c : *conns) QObject::disconnect(c);
    };
    *conns << connect(m_pool, &WorkerPool::jobProgressAvailable, this,
                      [id, cb](const QString& j, double d, double t, const QString& w) { if (j == id && cb.progress) cb.progress(d, t, w); });
    *conns << connect(m_pool, &WorkerPool::jobLogAvailable, this,
                      [id, cb](const QString& j, const QString& l, const QString& m) { if (j == id && cb.log) cb.log(l, m); });
    *conns << connect(m_pool, &WorkerPool::jobFinished, this, [id, cb, drop](const QString& j, const QJsonObject& r) {
      if (j != id) return;
      drop();
      cb.finished(r);
    });
    *conns << connect(m_pool, &WorkerPool::jobFailed, this, [id, cb, drop](const QString& j, const QString& c, const QString& m) {
      if (j != id) return;
      drop();
      cb.failed(c, m);
    });
    return h;
  }
  // No pool: a private CPU worker for this one job, shut down when it ends.
  auto* client = new WorkerClient(this);
  h.client = client;
  client->setProgram(m_razor, {QStringLiteral("worker"), QStringLiteral("--cpu"), QStringLiteral("--telemetry-ms"), QStringLiteral("0")});
  auto done = [client] {
    client->shutdown();
    client->deleteLater();
  };
  connect(client, &WorkerClient::progressAvailable, this, [cb](qint64, double d, double t, const QString& w) { if (cb.progress) cb.progress(d, t, w); });
  connect(client, &WorkerClient::logAvailable, this, [cb](qint64, const QString& l, const QString& m) { if (cb.log) cb.log(l, m); });
  connect(client, &WorkerClient::stderrAvailable, this, [cb](const QString& l) { if (cb.log) cb.log(QStringLiteral("stderr"), l); });
  connect(client, &WorkerClient::jobFinished, this, [cb, done](qint64, const QJsonObject& r) {
    done();
    cb.finished(r);
  });
  connect(client, &WorkerClient::jobFailed, this, [cb, done](qint64, const QString& c, const QString& m) {
    done();
    cb.failed(c, m);
  });
  connect(client, &WorkerClient::workerFailed, this, [cb, done](const QString& m) {
    done();
    cb.failed(QStringLiteral("worker_failed"), m);
  });
  client->start();
  h.clientJob = client->sendRequest(method, params);
  return h;
}

void ExportWizard::cancelJob(const JobHandle& job) {
  if (m_pool && !job.poolJob.isEmpty()) m_pool->cancel(job.poolJob);
  if (auto* c = qobject_cast<WorkerClient*>(job.client.data()); c && job.clientJob >= 0) c->cancel(job.clientJob);
}

void ExportWizard::cancelRun() {
  if (!m_runStarted || m_runDone) return;
  runPage(this)->log->appendPlainText(tr("Cancelling…"));
  cancelJob(m_runJob);
}

void ExportWizard::finishRun(bool ok, const QString& message) {
  if (m_runDone) return;
  m_runDone = true;
  m_runOk = ok;
  m_runMessage = message;
  WizRunPage* page = runPage(this);
  page->cancel->setEnabled(false);
  page->start->setEnabled(!ok);
  page->start->setText(tr("Retry"));
  if (ok) page->bar->setValue(1000);
  page->what->setText(message);
  page->log->appendPlainText(message);
  m_runJob = {};
  if (!ok) m_runStarted = false;
  emit page->completeChanged();
  emit runFinished(ok);
}

// ---- validate: `razor validate-gguf FILE` ------------------------------------------------------------------
void ExportWizard::startValidation() {
  m_validateDone = m_validateOk = false;
  WizValidatePage* page = validatePage(this);
  page->status->setText(tr("Loading %1 in llama.cpp …").arg(outputPath()));
  page->output->clear();
  QPointer<ExportWizard> self(this);
  auto lines = std::make_shared<QStringList>();
  JobCallbacks cb;
  cb.log = [lines](const QString&, const QString& msg) { *lines << msg; };
  cb.finished = [this, self, lines](const QJsonObject& r) {
    if (!self) return;
    WizValidatePage* page = validatePage(this);
    *lines << tr("%1: loads in llama.cpp; perplexity %2 over %3 windows (%4 predictions), load %5 ms, eval %6 s")
                  .arg(r.value(QLatin1String("file")).toString())
                  .arg(r.value(QLatin1String("ppl")).toDouble(), 0, 'f', 4)
                  .arg(r.value(QLatin1String("windows")).toInt())
                  .arg(r.value(QLatin1String("predictions")).toInt())
                  .arg(r.value(QLatin1String("load_ms")).toDouble(), 0, 'f', 0)
                  .arg(r.value(QLatin1String("eval_ms")).toDouble() / 1000.0, 0, 'f', 1);
    m_validateText = lines->join(QLatin1Char('\n'));
    m_validateDone = m_validateOk = true;
    m_validatePpl = r.value(QLatin1String("ppl")).toDouble();
    page->status->setText(tr("llama.cpp loaded the file: valid (perplexity %1).").arg(m_validatePpl, 0, 'f', 3));
    page->output->setPlainText(m_validateText);
    emit page->completeChanged();
    emit validationFinished(true);
  };
  cb.failed = [this, self, lines](const QString& code, const QString& message) {
    if (!self) return;
    WizValidatePage* page = validatePage(this);
    *lines << code + QStringLiteral(": ") + message;
    m_validateText = lines->join(QLatin1Char('\n'));
    m_validateDone = true;
    m_validateOk = false;
    page->status->setText(code == QLatin1String("not_found") ? tr("Not validated: %1").arg(message)
                                                             : tr("Validation FAILED: %1").arg(message));
    page->output->setPlainText(m_validateText);
    emit page->completeChanged();
    emit validationFinished(false);
  };
  // A check that llama.cpp loads the file and scores a few held-out windows (the full 200-window protocol is
  // `razor validate-gguf FILE --ref F32.gguf`).
  m_validateJob = runJob(QStringLiteral("validate-gguf"),
                         QJsonObject{{QStringLiteral("file"), outputPath()}, {QStringLiteral("windows"), 8}},
                         QStringLiteral("export-wizard-validate"), cb);
}

QString ExportWizard::report() const {
  QStringList r;
  r << tr("GGUF export report");
  r << tr("source:       %1").arg(modelDir());
  r << tr("recipe:       %1").arg(recipePath().isEmpty() ? tr("(uniform)") : recipePath());
  r << tr("default type: %1").arg(defaultType().isEmpty() ? tr("(none)") : defaultType());
  r << tr("imatrix:      %1").arg(imatrixPath().isEmpty() ? tr("(none)") : imatrixPath());
  r << tr("output:       %1").arg(outputPath());
  QFileInfo fi(outputPath());
  r << tr("file size:    %1").arg(fi.exists() ? fmtBytes(double(fi.size())) : tr("(not written)"));
  r << tr("plan:         %1 tensor data, %2 bpw").arg(fmtBytes(m_reviewBytes)).arg(m_reviewBpw, 0, 'f', 3);
  r << tr("pack:         %1").arg(m_runDone ? m_runMessage : tr("not run"));
  QString v = !m_validateDone ? tr("not run") : m_validateOk ? tr("passed") : validatePage(this)->status->text();
  r << tr("validation:   %1").arg(v);
  r << QString() << tr("command: %1 %2").arg(m_razor, packArguments(false).join(QLatin1Char(' ')));
  r << QString() << tr("dry run:") << m_reviewText.trimmed();
  if (m_validateDone) r << QString() << tr("validate-gguf output:") << m_validateText.trimmed();
  return r.join(QLatin1Char('\n')) + QLatin1Char('\n');
}
