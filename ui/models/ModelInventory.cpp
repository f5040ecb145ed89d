#include "ModelInventory.h"

#include <nlohmann/json.hpp>

qint64 TensorInfo::params() const {
  qint64 n = 1;
  for (qint64 d : shape) n *= d;
  return shape.isEmpty() ? 0 : n;
}

QString TensorInfo::shapeText() const {
  QStringList parts;
  for (qint64 d : shape) parts << QString::number(d);
  return QLatin1Char('[') + parts.join(QStringLiteral(", ")) + QLatin1Char(']');
}

static QString qs(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? QString::fromStdString(it->get<std::string>()) : QString();
}

template <typename T>
static T num(const nlohmann::json& j, const char* key, T def = 0) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<T>() : def;
}

ModelInventory ModelInventory::fromJson(const QByteArray& json, QString* error) {
  ModelInventory inv;
  auto j = nlohmann::json::parse(json.constData(), json.constData() + json.size(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    if (error) *error = QStringLiteral("the inventory is not valid JSON");
    return {};
  }
  if (j.value("format", std::string()) != "razor.inventory/1") {
    if (error) *error = QStringLiteral("not a razor.inventory/1 document (output of `razor inspect --json`)");
    return {};
  }
  inv.path = qs(j, "path");
  inv.modelType = qs(j, "model_type");
  inv.adapter = qs(j, "adapter");
  inv.ggufArch = qs(j, "gguf_arch");
  const nlohmann::json archs = j.value("architectures", nlohmann::json::array());
  const nlohmann::json shards = j.value("shards", nlohmann::json::array());
  for (auto& a : archs)
    if (a.is_string()) inv.architectures << QString::fromStdString(a.get<std::string>());
  for (auto& s : shards)
    if (s.is_string()) inv.shards << QString::fromStdString(s.get<std::string>());
  inv.layers = num<int>(j, "layers");
  inv.hiddenSize = num<int>(j, "hidden_size");
  inv.vocabSize = num<int>(j, "vocab_size");
  const nlohmann::json layerTypes = j.value("layer_types", nlohmann::json::object());
  const nlohmann::json byRole = j.value("by_role", nlohmann::json::object());
  const nlohmann::json dtypes = j.value("dtypes", nlohmann::json::object());
  for (auto& [k, v] : layerTypes.items())
    if (v.is_number()) inv.layerTypes[QString::fromStdString(k)] = v.get<int>();
  const auto ex = j.value("experts", nlohmann::json::object());
  inv.expertsTotal = num<int>(ex, "total");
  inv.expertsActive = num<int>(ex, "active");
  inv.expertsShared = num<int>(ex, "shared");
  inv.moeIntermediate = num<int>(ex, "moe_intermediate_size");
  inv.expertLayout = qs(ex, "layout");
  inv.paramsTotal = num<qint64>(j, "params_total");
  inv.bytesTotal = num<qint64>(j, "bytes_total");
  for (auto& [k, v] : byRole.items())
    inv.byRole[QString::fromStdString(k)] = {num<qint64>(v, "tensors"), num<qint64>(v, "params"), num<qint64>(v, "bytes")};
  for (auto& [k, v] : dtypes.items())
    if (v.is_number()) inv.dtypes[QString::fromStdString(k)] = v.get<qint64>();
  if (auto it = j.find("stale_partials"); it != j.end() && it->is_array())
    for (auto& p : *it)
      if (p.is_object()) inv.stalePartials << qs(p, "path");
  if (auto it = j.find("tensors"); it != j.end() && it->is_array()) {
    inv.tensors.reserve(qsizetype(it->size()));
    for (auto& t : *it) {
      TensorInfo ti;
      ti.name = qs(t, "name");
      ti.role = qs(t, "role");
      ti.dtype = qs(t, "dtype");
      ti.proj = qs(t, "proj");
      ti.layer = num<int>(t, "layer", -1);
      ti.expert = num<int>(t, "expert", -1);
      ti.fused = t.value("fused", false);
      if (auto sh = t.find("shape"); sh != t.end() && sh->is_array())
        for (auto& d : *sh)
          if (d.is_number()) ti.shape << d.get<qint64>();
      ti.bytes = num<qint64>(t, "bytes");
      inv.tensors.push_back(std::move(ti));
    }
  }
  return inv;
}
