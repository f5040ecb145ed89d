#include "MethodCompareData.h"

#include <QCoreApplication>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <algorithm>
#include <cmath>
#include <limits>

namespace {
constexpr int kMaxLayers = 4096, kMaxExperts = 65536;  // bounds a grid by what a real checkpoint can hold

double num(const QJsonObject& o, const char* key) {
  const QJsonValue v = o.value(QLatin1String(key));
  return v.isDouble() ? v.toDouble() : qQNaN();
}
QString tr(const char* s) { return QCoreApplication::translate("MethodCompareResult", s); }
}  // namespace

const QStringList& MethodCompareResult::metrics() {
  static const QStringList m = {QStringLiteral("expert"), QStringLiteral("gate"), QStringLiteral("up"),
                                QStringLiteral("down")};
  return m;
}

HeatmapGrid MethodCompareResult::grid(const QString& method, const QString& metric) const {
  HeatmapGrid g;
  g.name = QStringLiteral("%1 NMSE (%2)").arg(method, metric);
  g.rows = layers;
  g.cols = experts;
  g.values = nmse.value(method).value(metric);
  if (g.values.size() != qsizetype(layers) * experts) g.values = QVector<double>(qsizetype(layers) * experts, qQNaN());
  return g;
}

QString MethodCompareResult::bestMethod(int layer) const {
  QString best;
  double bestV = std::numeric_limits<double>::infinity();
  for (const QString& m : methods) {
    const QVector<double>& v = perLayer[m];
    if (layer < 0 || layer >= v.size() || std::isnan(v[layer])) continue;
    if (v[layer] < bestV) bestV = v[layer], best = m;
  }
  return best;
}

QString MethodCompareResult::bestOverall() const {
  QString best;
  double bestV = std::numeric_limits<double>::infinity();
  for (const QString& m : methods) {
    const double v = summary.value(m).meanNmse;
    if (!std::isnan(v) && v < bestV) bestV = v, best = m;
  }
  return best;
}

MethodCompareResult MethodCompareResult::fromJson(const QJsonObject& o, const QString& path) {
  MethodCompareResult r;
  r.path = path;
  const QString name = path.isEmpty() ? tr("the result") : path;
  if (!o.value(QLatin1String("format")).toString().startsWith(QLatin1String("razor.method_compare/"))) {
    r.error = tr("%1: not a razor.method_compare/1 file (razor compare-methods --out)").arg(name);
    return r;
  }
  r.model = o.value(QLatin1String("model")).toString();
  r.bits = num(o, "bits");
  r.group = o.value(QLatin1String("group")).toInt();
  r.refPpl = num(o, "ref_ppl");
  r.seconds = num(o, "seconds");
  for (const QJsonValue& m : o.value(QLatin1String("methods")).toArray())
    if (m.isString() && !r.methods.contains(m.toString())) r.methods << m.toString();
  const QJsonObject sums = o.value(QLatin1String("summary")).toObject();
  if (r.methods.isEmpty()) r.methods = sums.keys();
  if (r.methods.isEmpty()) {
    r.error = tr("%1: no methods").arg(name);
    return r;
  }
  for (const QString& m : r.methods) {
    const QJsonObject s = sums.value(m).toObject();
    Summary& x = r.summary[m];
    x.meanNmse = num(s, "mean_nmse");
    x.medianNmse = num(s, "median_nmse");
    x.meanGate = num(s, "mean_nmse_gate");
    x.meanUp = num(s, "mean_nmse_up");
    x.meanDown = num(s, "mean_nmse_down");
    x.klMean = num(s, "kl_mean");
    x.klP99 = num(s, "kl_p99");
    x.topkKl = num(s, "topk_kl");
    x.sameTop1 = num(s, "same_top1");
    x.ppl = num(s, "ppl");
    x.quantizeSeconds = num(s, "quantize_seconds");
    x.nExperts = s.value(QLatin1String("n_experts")).toInt();
    x.slices = s.value(QLatin1String("slices")).toInt();
    // fallbacks: a count, or an object of counts per reason
    const QJsonValue fb = s.value(QLatin1String("fallbacks"));
    if (fb.isObject()) {
      for (const QJsonValue& c : fb.toObject()) x.fallbacks += c.toInt();
    } else {
      x.fallbacks = fb.toInt();
    }
  }
  // The grid's shape: the largest layer / expert index named.
  const QJsonArray ex = o.value(QLatin1String("experts")).toArray();
  const QJsonObject perLayer = o.value(QLatin1String("per_layer")).toObject();
  int maxL = -1, maxE = -1;
  for (const QJsonValue& v : ex) {
    const QJsonObject e = v.toObject();
    const int l = e.value(QLatin1String("layer")).toInt(-1), x = e.value(QLatin1String("expert")).toInt(-1);
    if (l < 0 || x < 0 || l >= kMaxLayers || x >= kMaxExperts) {
      r.error = tr("%1: an experts[] entry has layer %2, expert %3 (0..%4, 0..%5)")
                    .arg(name).arg(l).arg(x).arg(kMaxLayers - 1).arg(kMaxExperts - 1);
      return r;
    }
    maxL = std::max(maxL, l);
    maxE = std::max(maxE, x);
  }
  for (auto it = perLayer.begin(); it != perLayer.end(); ++it) {
    bool okL = false;
    const int l = it.key().toInt(&okL);
    if (okL && l >= 0 && l < kMaxLayers) maxL = std::max(maxL, l);
  }
  r.layers = maxL + 1;
  r.experts = maxE + 1;
  const qsizetype cells = qsizetype(r.layers) * r.experts;
  for (const QString& m : r.methods) {
    for (const QString& k : metrics()) r.nmse[m][k] = QVector<double>(cells, qQNaN());
    r.perLayer[m] = QVector<double>(r.layers, qQNaN());
  }
  for (const QJsonValue& v : ex) {
    const QJsonObject e = v.toObject();
    const qsizetype i = qsizetype(e.value(QLatin1String("layer")).toInt()) * r.experts + e.value(QLatin1String("expert")).toInt();
    const QJsonObject n = e.value(QLatin1String("nmse")).toObject();
    bool any = false;
    for (const QString& m : r.methods) {
      const QJsonObject pm = n.value(m).toObject();
      for (const QString& k : metrics()) {
        const double x = num(pm, k.toLatin1().constData());
        r.nmse[m][k][i] = x;
        any |= !std::isnan(x);
      }
    }
    r.scored += any;
  }
  for (auto it = perLayer.begin(); it != perLayer.end(); ++it) {
    bool okL = false;
    const int l = it.key().toInt(&okL);
    if (!okL || l < 0 || l >= r.layers) continue;
    const QJsonObject pm = it.value().toObject();
    for (const QString& m : r.methods) r.perLayer[m][l] = num(pm, m.toLatin1().constData());
  }
  return r;
}

MethodCompareResult MethodCompareResult::load(const QString& path) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) {
    MethodCompareResult r;
    r.path = path;
    r.error = tr("%1: cannot open (%2)").arg(path, f.errorString());
    return r;
  }
  QJsonParseError pe;
  const QJsonDocument doc = QJsonDocument::fromJson(f.readAll(), &pe);
  if (pe.error != QJsonParseError::NoError || !doc.isObject()) {
    MethodCompareResult r;
    r.path = path;
    r.error = tr("%1: not JSON (%2 at byte %3)").arg(path, pe.errorString()).arg(pe.offset);
    return r;
  }
  return fromJson(doc.object(), path);
}
