// A method comparison (`razor compare-methods`, razor.method_compare/1, docs/methods.md) as plain data for the
// workbench's Methods view: each method's summary, per-expert held-out NMSE as layer x expert grids (one per
// projection metric), the per-layer mean expert NMSE and the best method of each layer.
//
// The loader is a plain function (no widgets), safe on a worker thread; errors come back in `error`, naming the file.
#pragma once
#include <QHash>
#include <QJsonObject>
#include <QString>
#include <QStringList>
#include <QVector>
#include <QtNumeric>

#include "HeatmapData.h"

struct MethodCompareResult {
  struct Summary {
    double meanNmse = qQNaN(), medianNmse = qQNaN();
    double meanGate = qQNaN(), meanUp = qQNaN(), meanDown = qQNaN();
    double klMean = qQNaN(), klP99 = qQNaN(), topkKl = qQNaN(), sameTop1 = qQNaN(), ppl = qQNaN();
    double quantizeSeconds = qQNaN();
    int nExperts = 0, slices = 0, fallbacks = 0;
  };
  // The NMSE metrics of each expert entry: the expert output (the seed's metric) and each projection.
  static const QStringList& metrics();  // "expert", "gate", "up", "down"

  QString path, error;
  QString model;
  double bits = qQNaN(), refPpl = qQNaN(), seconds = qQNaN();
  int group = 0, layers = 0, experts = 0, scored = 0;
  QStringList methods;
  QHash<QString, Summary> summary;
  // method -> metric -> layers x experts, row-major; NaN where not scored.
  QHash<QString, QHash<QString, QVector<double>>> nmse;
  // method -> per layer mean expert NMSE (per_layer), NaN where absent.
  QHash<QString, QVector<double>> perLayer;

  bool ok() const { return error.isEmpty(); }
  HeatmapGrid grid(const QString& method, const QString& metric = QStringLiteral("expert")) const;
  // The method of lowest per-layer NMSE in `layer` ("" when no method has a value there).
  QString bestMethod(int layer) const;
  // The method of lowest summary mean NMSE ("" when none).
  QString bestOverall() const;

  static MethodCompareResult fromJson(const QJsonObject& o, const QString& path = QString());
  static MethodCompareResult load(const QString& path);
};
