// Export wizard: `razor validate-gguf` on the written file.
#pragma once
#include "ExportPageCommon.h"

class WizValidatePage : public QWizardPage {
 public:
  explicit WizValidatePage(ExportWizard* w) : m_w(w) {
    setTitle(tr("Validate in llama.cpp"));
    setSubTitle(tr("The validate-gguf job (`razor validate-gguf`) loads the file in a real llama.cpp and checks it."));
    status = wrapLabel();
    status->setObjectName(QStringLiteral("validateStatus"));
    output = new QPlainTextEdit;
    output->setObjectName(QStringLiteral("validateOutput"));
    output->setReadOnly(true);
    auto* lay = new QVBoxLayout(this);
    lay->addWidget(status);
    lay->addWidget(output, 1);
  }
  void initializePage() override { m_w->startValidation(); }
  bool isComplete() const override { return m_w->validationDone(); }
  QLabel* status;
  QPlainTextEdit* output;
  ExportWizard* m_w;
};

