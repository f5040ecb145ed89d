// What the export wizard's pages share (one page per file in this folder; ExportWizard.cpp builds them):
// the ggml type table (core/ggml/types.h) by name, the recipe as the pages show it (parsed by core's tensor-type
// recipe parser, gguf::load_type_recipe: the same rules the pack applies), byte sizes and labels.
#pragma once
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
#include <optional>

#include "ExportWizard.h"
#include "ggml/types.h"
#include "gguf/type_recipe.h"

// The type table's row named `name` (case-insensitive), nullptr when ggml has no such type.
inline const razor::ggml::type_info* typeRow(const QString& name) {
  for (const auto& t : razor::ggml::all_types())
    if (name.compare(QString::fromLatin1(t.name.data(), qsizetype(t.name.size())), Qt::CaseInsensitive) == 0) return &t;
  return nullptr;
}

inline QString typeName(const razor::ggml::type_info& t) { return QString::fromLatin1(t.name.data(), qsizetype(t.name.size())); }

inline QString fmtBytes(double b) {
  if (b >= 1e9) return QStringLiteral("%1 GB").arg(b / 1e9, 0, 'f', 2);
  if (b >= 1e6) return QStringLiteral("%1 MB").arg(b / 1e6, 0, 'f', 2);
  if (b >= 1e3) return QStringLiteral("%1 kB").arg(b / 1e3, 0, 'f', 1);
  return QStringLiteral("%1 B").arg(b, 0, 'f', 0);
}

// A tensor-type recipe as the wizard shows it: its pattern=type rules and its "#@ default=... output=...
// token_embd=..." directives, from core's parser; `error` names the file and line of what the pack would refuse.
struct RecipeView {
  QList<QPair<QString, QString>> rules;
  QString defaultType, outputType, embdType;
  QString error;
};

inline RecipeView readRecipe(const QString& path) {
  RecipeView v;
  auto r = razor::gguf::load_type_recipe(path.toStdString());
  if (!r.ok()) {
    v.error = QString::fromStdString(r.error().message());
    return v;
  }
  auto name = [](const std::optional<razor::ggml::type>& t) {
    return t ? QString::fromLatin1(razor::ggml::type_name(*t).data(), qsizetype(razor::ggml::type_name(*t).size())) : QString();
  };
  for (const auto& rule : r->rules) v.rules << qMakePair(QString::fromStdString(rule.pattern), name(rule.type));
  v.defaultType = name(r->default_type);
  v.outputType = name(r->output_type);
  v.embdType = name(r->token_embedding_type);
  return v;
}

inline QLabel* wrapLabel(const QString& text = {}) {
  auto* l = new QLabel(text);
  l->setWordWrap(true);
  l->setTextInteractionFlags(Qt::TextSelectableByMouse);
  return l;
}
