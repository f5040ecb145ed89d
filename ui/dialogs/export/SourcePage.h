// Export wizard: The source checkpoint: a Hugging Face folder (config.json and *.safetensors).
#pragma once
#include "ExportPageCommon.h"

class WizSourcePage : public QWizardPage {
 public:
  explicit WizSourcePage(ExportWizard* w) : m_w(w) {
    setTitle(tr("Source checkpoint"));
    setSubTitle(tr("A Hugging Face checkpoint folder: config.json and *.safetensors."));
    edit = new QLineEdit;
    edit->setObjectName(QStringLiteral("modelEdit"));
    auto* browse = new QPushButton(tr("Browse…"));
    info = wrapLabel();
    info->setObjectName(QStringLiteral("modelInfo"));
    auto* row = new QHBoxLayout;
    row->addWidget(edit, 1);
    row->addWidget(browse);
    auto* lay = new QVBoxLayout(this);
    lay->addWidget(new QLabel(tr("Checkpoint folder:")));
    lay->addLayout(row);
    lay->addWidget(info);
    lay->addStretch(1);
    connect(browse, &QPushButton::clicked, this, [this] {
      QString d = QFileDialog::getExistingDirectory(this, tr("Checkpoint folder"), edit->text());
      if (!d.isEmpty()) edit->setText(d);
    });
    connect(edit, &QLineEdit::textChanged, this, [this] {
      check();
      emit completeChanged();
    });
    check();
  }
  void check() {
    QDir d(edit->text());
    if (edit->text().isEmpty()) {
      info->setText(tr("Choose a folder."));
      return;
    }
    if (!d.exists(QStringLiteral("config.json"))) {
      info->setText(tr("No config.json in this folder."));
      return;
    }
    const QStringList st = d.entryList({QStringLiteral("*.safetensors")}, QDir::Files);
    qint64 bytes = 0;
    for (const QString& s : st) bytes += QFileInfo(d.filePath(s)).size();
    info->setText(st.isEmpty() ? tr("config.json found, but no *.safetensors file.")
                               : tr("config.json and %n safetensors file(s), %1.", nullptr, int(st.size())).arg(fmtBytes(double(bytes))));
  }
  bool isComplete() const override {
    QDir d(edit->text());
    return !edit->text().isEmpty() && d.exists(QStringLiteral("config.json")) &&
           !d.entryList({QStringLiteral("*.safetensors")}, QDir::Files).isEmpty();
  }
  QLineEdit* edit;
  QLabel* info;
  ExportWizard* m_w;
};

