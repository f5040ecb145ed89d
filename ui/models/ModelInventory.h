// The model inventory as the GUI holds it: parsed once (off the GUI thread) from `razor inspect MODEL --json`
// (razor.inventory/1, docs/inventory-format.md). The GUI never opens weights itself.
#pragma once
#include <QByteArray>
#include <QMap>
#include <QString>
#include <QStringList>
#include <QVector>

struct TensorInfo {
  QString name, role, dtype, proj;
  int layer = -1, expert = -1;
  bool fused = false;
  QVector<qint64> shape;
  qint64 bytes = 0;
  qint64 params() const;
  QString shapeText() const;  // "[256, 1024]"
};

struct ModelInventory {
  QString path, modelType, adapter, ggufArch;
  QStringList architectures, shards;
  int layers = 0, hiddenSize = 0, vocabSize = 0;
  QMap<QString, int> layerTypes;
  int expertsTotal = 0, expertsActive = 0, expertsShared = 0, moeIntermediate = 0;
  QString expertLayout;
  qint64 paramsTotal = 0, bytesTotal = 0;
  struct RoleStat {
    qint64 tensors = 0, params = 0, bytes = 0;
  };
  QMap<QString, RoleStat> byRole;
  QMap<QString, qint64> dtypes;
  QVector<TensorInfo> tensors;
  // Temporaries razor processes that no longer run left in and beside the model folder ("stale_partials").
  QStringList stalePartials;

  bool isEmpty() const { return path.isEmpty() && tensors.isEmpty(); }
  // Parses razor.inventory/1; on failure returns an empty inventory and sets *error.
  static ModelInventory fromJson(const QByteArray& json, QString* error);
};
