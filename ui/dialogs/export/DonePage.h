// Export wizard: Where the file is, and the run's report.
#pragma once
#include "ExportPageCommon.h"

class WizDonePage : public QWizardPage {
 public:
  explicit WizDonePage(ExportWizard* w) : m_w(w) {
    setTitle(tr("Done"));
    file = wrapLabel();
    file->setObjectName(QStringLiteral("doneFile"));
    report = new QPlainTextEdit;
    report->setObjectName(QStringLiteral("reportView"));
    report->setReadOnly(true);
    auto* save = new QPushButton(tr("Save report…"));
    auto* open = new QPushButton(tr("Open folder"));
    auto* row = new QHBoxLayout;
    row->addWidget(save);
    row->addWidget(open);
    row->addStretch(1);
    auto* lay = new QVBoxLayout(this);
    lay->addWidget(file);
    lay->addWidget(report, 1);
    lay->addLayout(row);
    connect(save, &QPushButton::clicked, this, [this] {
      QString f = QFileDialog::getSaveFileName(this, tr("Save report"), m_w->outputPath() + QStringLiteral(".report.txt"));
      if (f.isEmpty()) return;
      QSaveFile s(f);
      if (s.open(QIODevice::WriteOnly | QIODevice::Text)) {
        s.write(m_w->report().toUtf8());
        s.commit();
      }
    });
    connect(open, &QPushButton::clicked, this, [this] {
      QDesktopServices::openUrl(QUrl::fromLocalFile(QFileInfo(m_w->outputPath()).absolutePath()));
    });
  }
  void initializePage() override {
    QFileInfo fi(m_w->outputPath());
    file->setText(tr("%1 (%2)").arg(fi.absoluteFilePath(), fi.exists() ? fmtBytes(double(fi.size())) : tr("missing")));
    report->setPlainText(m_w->report());
  }
  QLabel* file;
  QPlainTextEdit* report;
  ExportWizard* m_w;
};
