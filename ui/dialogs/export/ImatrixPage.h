// Export wizard: The importance matrix, and which of the chosen types need one.
#pragma once
#include "ExportPageCommon.h"

class WizImatrixPage : public QWizardPage {
 public:
  explicit WizImatrixPage(ExportWizard* w) : m_w(w) {
    setTitle(tr("Importance matrix"));
    setSubTitle(tr("Optional for most types; llama.cpp refuses i-quants such as IQ3_XXS without one "
                   "(`razor probe` writes one)."));
    edit = new QLineEdit;
    edit->setObjectName(QStringLiteral("imatrixEdit"));
    auto* browse = new QPushButton(tr("Browse…"));
    warning = wrapLabel();
    warning->setObjectName(QStringLiteral("imatrixWarning"));
    warning->setStyleSheet(QStringLiteral("color: #a04000;"));
    auto* row = new QHBoxLayout;
    row->addWidget(edit, 1);
    row->addWidget(browse);
    auto* lay = new QVBoxLayout(this);
    lay->addWidget(new QLabel(tr("imatrix file (.gguf or legacy .dat):")));
    lay->addLayout(row);
    lay->addWidget(warning);
    lay->addStretch(1);
    connect(browse, &QPushButton::clicked, this, [this] {
      QString f = QFileDialog::getOpenFileName(this, tr("imatrix"), edit->text(), tr("imatrix (*.gguf *.dat);;All files (*)"));
      if (!f.isEmpty()) edit->setText(f);
    });
    connect(edit, &QLineEdit::textChanged, this, [this] {
      refresh();
      emit completeChanged();
    });
  }
  void initializePage() override { refresh(); }
  void refresh() {
    QString w = m_w->imatrixWarning();
    warning->setText(w);
    warning->setVisible(!w.isEmpty());
  }
  bool isComplete() const override {
    if (!edit->text().isEmpty() && !QFileInfo(edit->text()).isFile()) return false;
    return m_w->typesNeedingImatrix().isEmpty() || QFileInfo(edit->text()).isFile();
  }
  QLineEdit* edit;
  QLabel* warning;
  ExportWizard* m_w;
};

