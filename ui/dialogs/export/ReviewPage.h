// Export wizard: The output path and the dry-run plan (`razor pack --dry-run`).
#pragma once
#include "ExportPageCommon.h"

class WizReviewPage : public QWizardPage {
 public:
  explicit WizReviewPage(ExportWizard* w) : m_w(w) {
    setTitle(tr("Review"));
    setSubTitle(tr("The plan of the pack job with dry_run (`razor pack --dry-run`: shapes only; nothing is written)."));
    out = new QLineEdit;
    out->setObjectName(QStringLiteral("outEdit"));
    auto* browse = new QPushButton(tr("Browse…"));
    auto* rerun = new QPushButton(tr("Re-check"));
    status = wrapLabel();
    status->setObjectName(QStringLiteral("reviewStatus"));
    table = new QTableWidget(0, 4);
    table->setObjectName(QStringLiteral("reviewTable"));
    table->setHorizontalHeaderLabels({tr("type"), tr("bytes"), tr("bits per weight"), tr("share")});
    table->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    table->verticalHeader()->setVisible(false);
    table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    byRole = wrapLabel();
    byRole->setObjectName(QStringLiteral("reviewByRole"));
    notes = new QPlainTextEdit;
    notes->setObjectName(QStringLiteral("reviewNotes"));
    notes->setReadOnly(true);
    notes->setMaximumBlockCount(2000);
    auto* row = new QHBoxLayout;
    row->addWidget(new QLabel(tr("Output:")));
    row->addWidget(out, 1);
    row->addWidget(browse);
    row->addWidget(rerun);
    auto* lay = new QVBoxLayout(this);
    lay->addLayout(row);
    lay->addWidget(status);
    lay->addWidget(table, 2);
    lay->addWidget(byRole);
    lay->addWidget(new QLabel(tr("Fallbacks, ignored recipe lines and warnings:")));
    lay->addWidget(notes, 1);
    connect(browse, &QPushButton::clicked, this, [this] {
      QString f = QFileDialog::getSaveFileName(this, tr("Output GGUF"), out->text(), tr("GGUF (*.gguf)"));
      if (!f.isEmpty()) out->setText(f);
    });
    connect(rerun, &QPushButton::clicked, this, [this] { m_w->startReview(); });
    connect(out, &QLineEdit::textChanged, this, [this] { emit completeChanged(); });
  }
  void initializePage() override {
    if (out->text().isEmpty()) {
      QFileInfo src(m_w->modelDir());
      QString tag = m_w->recipePath().isEmpty() ? m_w->defaultType() : QFileInfo(m_w->recipePath()).completeBaseName();
      out->setText(src.absoluteDir().filePath(src.fileName() + QLatin1Char('-') + tag + QStringLiteral(".gguf")));
    }
    m_w->startReview();
  }
  bool isComplete() const override { return m_w->reviewOk() && !out->text().isEmpty(); }
  QLineEdit* out;
  QLabel *status, *byRole;
  QTableWidget* table;
  QPlainTextEdit* notes;
  ExportWizard* m_w;
};

