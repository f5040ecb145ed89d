// Export wizard: The pack job, with progress.
#pragma once
#include "ExportPageCommon.h"

class WizRunPage : public QWizardPage {
 public:
  explicit WizRunPage(ExportWizard* w) : m_w(w) {
    setTitle(tr("Write the GGUF"));
    setSubTitle(tr("The pack job runs in a worker process; the file appears under its name only when complete."));
    setCommitPage(true);
    setButtonText(QWizard::CommitButton, tr("Validate"));
    bar = new QProgressBar;
    bar->setObjectName(QStringLiteral("runProgress"));
    bar->setRange(0, 1000);
    what = wrapLabel();
    cancel = new QPushButton(tr("Cancel"));
    start = new QPushButton(tr("Start"));
    log = new QPlainTextEdit;
    log->setObjectName(QStringLiteral("runLog"));
    log->setReadOnly(true);
    log->setMaximumBlockCount(5000);
    auto* row = new QHBoxLayout;
    row->addWidget(bar, 1);
    row->addWidget(start);
    row->addWidget(cancel);
    auto* lay = new QVBoxLayout(this);
    lay->addLayout(row);
    lay->addWidget(what);
    lay->addWidget(log, 1);
    connect(cancel, &QPushButton::clicked, this, [this] { m_w->cancelRun(); });
    connect(start, &QPushButton::clicked, this, [this] { m_w->startRun(); });
  }
  void initializePage() override {
    start->setEnabled(true);
    cancel->setEnabled(false);
    what->setText(tr("Press Start to write %1.").arg(m_w->outputPath()));
  }
  bool isComplete() const override { return m_w->runOk(); }
  QProgressBar* bar;
  QLabel* what;
  QPushButton *cancel, *start;
  QPlainTextEdit* log;
  ExportWizard* m_w;
};

