// Export wizard: The tensor types: uniform, a preset or file recipe (tensor-type syntax, parsed by core: gguf::load_type_recipe),
// or a recipe fitted to a file size (`allocate --mode gguf`); the default / output / token_embd types.
#pragma once
#include "ExportPageCommon.h"

class WizRecipePage : public QWizardPage {
 public:
  explicit WizRecipePage(ExportWizard* w) : m_w(w) {
    setTitle(tr("Tensor types"));
    setSubTitle(tr("A GGUF recipe (pattern=type per tensor role), one type for everything, or a recipe file "
                   "(e.g. written from the allocation)."));
    preset = new QComboBox;
    preset->setObjectName(QStringLiteral("presetCombo"));
    fileEdit = new QLineEdit;
    fileEdit->setObjectName(QStringLiteral("recipeFileEdit"));
    auto* browse = new QPushButton(tr("Browse…"));
    auto* fileRow = new QHBoxLayout;
    fileRow->addWidget(fileEdit, 1);
    fileRow->addWidget(browse);
    fileBox = new QWidget;
    fileBox->setLayout(fileRow);
    fileRow->setContentsMargins(0, 0, 0, 0);
    auto typeCombo = [](const QString& objectName, const QString& none) {
      auto* c = new QComboBox;
      c->setObjectName(objectName);
      c->addItem(none, QString());
      for (const auto& t : razor::ggml::all_types())
        c->addItem(QStringLiteral("%1  (%2 bpw%3)")
                       .arg(typeName(t))
                       .arg(8.0 * t.type_size / t.block_size, 0, 'f', 2)
                       .arg(t.needs_imatrix ? QStringLiteral(", needs imatrix") : QString()),
                   typeName(t));
      return c;
    };
    defType = typeCombo(QStringLiteral("typeCombo"), tr("(the recipe's default)"));
    outType = typeCombo(QStringLiteral("outputTypeCombo"), tr("(the recipe's, else the default)"));
    embType = typeCombo(QStringLiteral("embdTypeCombo"), tr("(the recipe's, else the default)"));
    rules = new QTableWidget(0, 3);
    rules->setObjectName(QStringLiteral("rulesTable"));
    rules->setHorizontalHeaderLabels({tr("pattern"), tr("type"), tr("bpw")});
    rules->horizontalHeader()->setSectionResizeMode(0, QHeaderView::Stretch);
    rules->verticalHeader()->setVisible(false);
    rules->setEditTriggers(QAbstractItemView::NoEditTriggers);
    note = wrapLabel();
    buildFitBox();
    auto* form = new QFormLayout;
    form->addRow(tr("Recipe:"), preset);
    form->addRow(tr("Recipe file:"), fileBox);
    form->addRow(fitBox);
    form->addRow(tr("Default type:"), defType);
    form->addRow(tr("output.weight:"), outType);
    form->addRow(tr("token_embd.weight:"), embType);
    auto* lay = new QVBoxLayout(this);
    lay->addLayout(form);
    lay->addWidget(rules, 1);
    lay->addWidget(note);
    connect(preset, &QComboBox::currentIndexChanged, this, [this] { refresh(); });
    connect(fileEdit, &QLineEdit::textChanged, this, [this] { refresh(); });
    for (QComboBox* c : {defType, outType, embType})
      connect(c, &QComboBox::currentIndexChanged, this, [this] { refresh(); });
    connect(browse, &QPushButton::clicked, this, [this] {
      QString f = QFileDialog::getOpenFileName(this, tr("Recipe file"), fileEdit->text(), tr("Recipes (*.txt);;All files (*)"));
      if (!f.isEmpty()) fileEdit->setText(f);
    });
  }
  void fillPresets(const QString& dir) {
    preset->blockSignals(true);
    preset->clear();
    for (const QString& f : QDir(dir).entryList({QStringLiteral("*.txt")}, QDir::Files, QDir::Name))
      preset->addItem(f, QDir(dir).filePath(f));
    preset->addItem(tr("Uniform: one type for every tensor"), QStringLiteral("uniform"));
    preset->addItem(tr("Recipe file (e.g. from the allocation)…"), QStringLiteral("file"));
    preset->addItem(tr("Fit a file size: whole-file allocation…"), QStringLiteral("fit"));
    preset->blockSignals(false);
    refresh();
  }
  // "Fit a file size": the target, the imatrix, how the sensitivities are measured, the types allowed per role,
  // and the allocation's outcome (size, predicted and measured KL).
  void buildFitBox() {
    fitBox = new QWidget;
    fitBox->setObjectName(QStringLiteral("allocBox"));
    target = new QLineEdit;
    target->setObjectName(QStringLiteral("allocTargetEdit"));
    target->setPlaceholderText(tr("file size or bits per weight: 7879360B, 7.5MB, 3.5bits"));
    imatrix = new QLineEdit;
    imatrix->setObjectName(QStringLiteral("allocImatrixEdit"));
    imatrix->setPlaceholderText(tr("importance matrix (razor probe --imatrix); enables the i-quants"));
    sensitivity = new QComboBox;
    sensitivity->setObjectName(QStringLiteral("allocSensitivityCombo"));
    sensitivity->addItem(tr("KL of every tensor at every type (exact, slower)"), QStringLiteral("full"));
    sensitivity->addItem(tr("KL at 3 types per tensor, fitted curve (faster)"), QStringLiteral("fit"));
    sensitivity->addItem(tr("Weights only, no forward pass (for 100B+ models; sampled rows)"), QStringLiteral("weights"));
    windows = new QSpinBox;
    windows->setObjectName(QStringLiteral("allocWindowsSpin"));
    windows->setRange(1, 4096);
    windows->setValue(8);
    windows->setSuffix(tr(" windows of 256 tokens"));
    windows->setToolTip(tr("Calibration text the sensitivities are measured on (the bundled calibration half)"));
    roles = new QTableWidget(0, 2);
    roles->setObjectName(QStringLiteral("allocRolesTable"));
    roles->setHorizontalHeaderLabels({tr("role"), tr("allowed types (empty: any)")});
    roles->horizontalHeader()->setSectionResizeMode(1, QHeaderView::Stretch);
    roles->verticalHeader()->setVisible(false);
    for (const QString& r : ExportWizard::allocationRoles()) {
      const int row = roles->rowCount();
      roles->insertRow(row);
      auto* name = new QTableWidgetItem(r);
      name->setFlags(name->flags() & ~Qt::ItemIsEditable);
      roles->setItem(row, 0, name);
      roles->setItem(row, 1, new QTableWidgetItem());
    }
    roles->setMaximumHeight(roles->verticalHeader()->length() + roles->horizontalHeader()->height() + 4);
    allocate = new QPushButton(tr("Allocate"));
    allocate->setObjectName(QStringLiteral("allocateButton"));
    allocBar = new QProgressBar;
    allocBar->setObjectName(QStringLiteral("allocBar"));
    allocBar->setRange(0, 1000);
    allocResult = wrapLabel();
    allocResult->setObjectName(QStringLiteral("allocResult"));
    auto* row = new QHBoxLayout;
    row->addWidget(allocate);
    row->addWidget(allocBar, 1);
    auto* f = new QFormLayout(fitBox);
    f->setContentsMargins(0, 0, 0, 0);
    f->addRow(tr("Target:"), target);
    f->addRow(tr("imatrix:"), imatrix);
    f->addRow(tr("Sensitivity:"), sensitivity);
    f->addRow(tr("Calibration:"), windows);
    f->addRow(roles);
    f->addRow(row);
    f->addRow(allocResult);
    connect(allocate, &QPushButton::clicked, m_w, &ExportWizard::startAllocation);
    connect(target, &QLineEdit::textChanged, this, [this] { refresh(); });
  }
  QString mode() const { return preset->currentData().toString(); }
  QString recipePath() const {
    if (mode() == QLatin1String("uniform")) return {};
    if (mode() == QLatin1String("file")) return fileEdit->text();
    if (mode() == QLatin1String("fit")) return m_w->allocationOk() ? m_w->allocationReport().value(QLatin1String("recipe")).toString() : QString();
    return mode();
  }
  RecipeView view() const { return recipePath().isEmpty() ? RecipeView{} : readRecipe(recipePath()); }
  QString effectiveDefault() const {
    QString t = defType->currentData().toString();
    return t.isEmpty() ? view().defaultType : t;
  }
  void refresh() {
    fileBox->setEnabled(mode() == QLatin1String("file"));
    const bool fit = mode() == QLatin1String("fit");
    fitBox->setVisible(fit);
    for (QComboBox* c : {defType, outType, embType}) c->setEnabled(!fit);
    // Through ssh the recipe would be written on the server and the pack read it there: not wired yet.
    allocate->setEnabled(!target->text().trimmed().isEmpty() && !m_w->allocationRunning() && !m_w->m_remote.isValid());
    allocate->setToolTip(m_w->m_remote.isValid() ? tr("Not available through a remote connection yet: run `razor "
                                                      "allocate --mode gguf` on the server")
                                                 : tr("Measure every tensor's KL sensitivity and fit the target"));
    RecipeView v = view();
    rules->setRowCount(int(v.rules.size()));
    for (int i = 0; i < v.rules.size(); ++i) {
      rules->setItem(i, 0, new QTableWidgetItem(v.rules[i].first));
      rules->setItem(i, 1, new QTableWidgetItem(v.rules[i].second));
      const razor::ggml::type_info* t = typeRow(v.rules[i].second);
      rules->setItem(i, 2, new QTableWidgetItem(t ? QString::number(8.0 * t->type_size / t->block_size, 'f', 2) : tr("unknown type")));
    }
    QString text;
    if (fit && recipePath().isEmpty()) text = tr("Allocate to get a recipe: every tensor llama.cpp quantizes gets its own type.");
    else if (!v.error.isEmpty()) text = v.error;
    else if (recipePath().isEmpty()) text = tr("Every tensor llama.cpp quantizes gets the default type.");
    else
      text = tr("%n rule(s); first match wins. Recipe defaults: type %1, output %2, token_embd %3.", nullptr, int(v.rules.size()))
                 .arg(v.defaultType.isEmpty() ? tr("none") : v.defaultType, v.outputType.isEmpty() ? tr("default") : v.outputType,
                      v.embdType.isEmpty() ? tr("default") : v.embdType);
    if (!isCompleteNow()) text += tr("\nChoose a default type: this recipe does not name one.");
    note->setText(text);
    emit completeChanged();
  }
  bool isCompleteNow() const {
    if (mode() == QLatin1String("file") && !QFileInfo(fileEdit->text()).isFile()) return false;
    if (mode() == QLatin1String("fit") && !m_w->allocationOk()) return false;
    if (!view().error.isEmpty()) return false;
    return !effectiveDefault().isEmpty() || (!recipePath().isEmpty() && !view().rules.isEmpty());
  }
  bool isComplete() const override { return isCompleteNow(); }
  QComboBox *preset, *defType, *outType, *embType;
  QLineEdit* fileEdit;
  QWidget* fileBox;
  QTableWidget* rules;
  QLabel* note;
  // fit a file size
  QWidget* fitBox;
  QLineEdit *target, *imatrix;
  QComboBox* sensitivity;
  QSpinBox* windows;
  QTableWidget* roles;
  QPushButton* allocate;
  QProgressBar* allocBar;
  QLabel* allocResult;
  ExportWizard* m_w;
};

