// A workspace: everything needed to reopen the workbench as it was, as one JSON file (*.razorproj).
//
//   {"format": "razor.workspace/1",
//    "model": "resources/models/tiny-qwen3-5-moe",        paths relative to the workspace file when below it
//    "recipes": ["recipes/seed-default.json"],             recipe files used
//    "active_recipe": {razor.recipe/1 ...},               the allocation being edited, inline
//    "statistics": ["probe.h5", "imatrix.gguf", ...],      probe results, imatrices, quant summaries
//    "jobs_folder": "jobs", "result_files": ["eval.json"],
//    "views": {"open": ["model", "salience", ...], "current": "salience",
//              "state": {"model": {...}, "salience": {...}, "allocation": {...}}},
//    "window": {"geometry": base64, "state": base64},
//    "remote": {"host": "gpu-box", "ssh_options": [...], "razor": "razor", "workspace": "/data/razor"}}
//                                                         only when the model and statistics are that server's
//                                                         paths (kept verbatim; docs/remote.md)
//
// Saving goes through QSaveFile (temporary name, renamed when complete).
#pragma once
#include <QByteArray>
#include <QDir>
#include <QJsonObject>
#include <QString>
#include <QStringList>

struct Workspace {
  static constexpr const char* kFormat = "razor.workspace/1";
  static constexpr const char* kSuffix = "razorproj";

  QString modelPath;
  QStringList recipes;
  QJsonObject activeRecipe;
  QStringList statistics;
  QString jobsFolder;
  QStringList resultFiles;
  QStringList openViews;
  QString currentView;
  QJsonObject viewState;  // view id -> state object
  QByteArray windowGeometry, windowState;
  QJsonObject remote;     // RemoteHost::toJson() of the GPU server whose paths model and statistics are; or {}

  // Relative paths in the file are resolved against `base` (the workspace file's folder).
  QJsonObject toJson(const QDir& base) const;
  static Workspace fromJson(const QJsonObject& o, const QDir& base, QString* error);
  bool save(const QString& path, QString* error) const;
  static bool load(const QString& path, Workspace* out, QString* error);
  bool operator==(const Workspace& o) const;
};
