#include "FootprintModel.h"

#include <cmath>
#include <limits>

#include "ModelInventory.h"

using razor::kKeepBits;
using razor::tensor_role;

namespace {

// footprint.cpp's add_quantized, the one accounting rule.
void addQuantized(razor::footprint_totals& t, int64_t params, double bits, double scalePerParam) {
  t.params += params;
  if (bits >= kKeepBits) return;
  t.params_quantized += params;
  t.weight_bits += double(params) * bits;
  t.scale_bits += double(params) * scalePerParam;
}

double keepNorm(double b) { return b >= kKeepBits ? kKeepBits : b; }

}  // namespace

bool FootprintModel::setInventory(const ModelInventory& inv, QString* error) {
  m_tensors.clear();
  m_tensors.reserve(size_t(inv.tensors.size()));
  for (const auto& t : inv.tensors) {
    razor::tensor_entry e;
    e.name = t.name.toStdString();
    e.dt = razor::dtype_from_name(t.dtype.toStdString());
    e.shape.assign(t.shape.begin(), t.shape.end());
    e.nbytes = uint64_t(t.bytes);
    tensor_role role = tensor_role::other;
    razor::role_from_name(t.role.toStdString(), &role);
    e.cls.role = role;
    e.cls.layer = t.layer;
    e.cls.expert = t.expert;
    e.cls.fused = t.fused;
    m_tensors.push_back(std::move(e));
  }
  m_layers = std::max(0, inv.layers);
  m_experts = std::max(0, inv.expertsTotal);
  if (m_tensors.empty()) {
    if (error) *error = QStringLiteral("the inventory lists no tensors (run `razor inspect --json`)");
    return false;
  }
  setRecipe(m_recipe);
  return true;
}

bool FootprintModel::setRecipe(const razor::recipe& r, QString* error) {
  razor::status failure;
  auto note = [&](const razor::status& st) {
    if (!st.ok() && failure.ok()) failure = st;
  };
  m_recipe = r;
  m_fixed = razor::footprint();
  m_fixed.by_layer.resize(size_t(m_layers));
  m_cells.assign(size_t(m_layers) * size_t(m_experts), Cell());
  for (const auto& t : m_tensors) {
    const int64_t n = t.numel();
    const int64_t cols = t.cols();
    const int64_t g = (r.group > 0 && cols % r.group == 0) ? r.group : cols;
    const double spp = g > 0 ? r.scale_bits / double(g) : 0.0;
    auto& role = m_fixed.by_role[t.cls.role];
    // Is this tensor's bit count decided by expert_bits / the routed_expert role alone? Then it is a cell.
    const bool routed = t.cls.role == tensor_role::routed_expert && t.cls.layer >= 0 && t.cls.layer < m_layers;
    bool editable = routed && t.shape.size() >= 2 && ((t.cls.fused && t.shape.size() == 3) || (!t.cls.fused && t.cls.expert >= 0 && t.cls.expert < m_experts));
    if (editable) {
      auto pinned = r.pinned(t.name);
      note(pinned.error());
      if (!pinned.ok() || *pinned) editable = false;
    }
    if (editable && t.cls.fused && t.shape[0] > m_experts) editable = false;
    if (editable) {
      const int64_t E = t.cls.fused ? t.shape[0] : 1;
      for (int64_t e = 0; e < E; ++e) {
        const int expert = t.cls.fused ? int(e) : t.cls.expert;
        Cell& c = m_cells[size_t(t.cls.layer) * size_t(m_experts) + size_t(expert)];
        const int64_t p = n / E;
        c.params += p;
        c.scaleBits += double(p) * spp;
        c.keptBits += double(p) * razor::dtype_bits(t.dt);
      }
      continue;
    }
    auto account = [&](int64_t params, double bits) {
      for (razor::footprint_totals* tot : {&m_fixed.all, &role}) {
        addQuantized(*tot, params, bits, spp);
        if (bits >= kKeepBits) tot->kept_bits += double(params) * razor::dtype_bits(t.dt);
      }
      if (t.cls.role == tensor_role::routed_expert && t.cls.layer >= 0 && size_t(t.cls.layer) < m_fixed.by_layer.size())
        addQuantized(m_fixed.by_layer[size_t(t.cls.layer)], params, bits, spp);
      m_fixed.params_by_bits[bits >= kKeepBits ? kKeepBits : bits] += params;
    };
    if (t.cls.role == tensor_role::routed_expert && t.cls.fused && t.shape.size() == 3 && r.expert_bits.count(t.cls.layer)) {
      const int64_t E = t.shape[0];
      for (int64_t e = 0; e < E; ++e) {
        auto bits = r.expert_tag(t, int(e));
        note(bits.error());
        account(n / E, bits.ok() ? *bits : kKeepBits);
      }
    } else {
      auto bits = r.tensor_bits(t);
      note(bits.error());
      account(n, bits.ok() ? *bits : kKeepBits);
    }
  }
  if (!failure.ok() && error) *error = QString::fromStdString(failure.to_string());
  return failure.ok();
}

bool FootprintModel::hasCell(int layer, int expert) const {
  return layer >= 0 && expert >= 0 && layer < m_layers && expert < m_experts &&
         m_cells[size_t(layer) * size_t(m_experts) + size_t(expert)].params > 0;
}

qint64 FootprintModel::cellParams(int layer, int expert) const {
  return hasCell(layer, expert) ? m_cells[size_t(layer) * size_t(m_experts) + size_t(expert)].params : 0;
}

double FootprintModel::defaultExpertBits() const {
  auto it = m_recipe.role_bits.find(tensor_role::routed_expert);
  return it == m_recipe.role_bits.end() ? kKeepBits : keepNorm(it->second);
}

double FootprintModel::expertBits(int layer, int expert) const {
  if (!hasCell(layer, expert)) return std::numeric_limits<double>::quiet_NaN();
  auto it = m_recipe.expert_bits.find(layer);
  if (it != m_recipe.expert_bits.end() && size_t(expert) < it->second.size()) return keepNorm(it->second[size_t(expert)]);
  return defaultExpertBits();
}

void FootprintModel::setExpertBits(int layer, int expert, double bits) {
  if (layer < 0 || expert < 0 || layer >= m_layers || expert >= m_experts) return;
  auto& v = m_recipe.expert_bits[layer];
  if (v.size() < size_t(m_experts)) {
    const double def = defaultExpertBits();
    v.resize(size_t(m_experts), def);
  }
  v[size_t(expert)] = bits;
}

void FootprintModel::setLayerBits(int layer, double bits) {
  if (layer < 0 || layer >= m_layers) return;
  m_recipe.expert_bits[layer].assign(size_t(m_experts), bits);
}

QVector<double> FootprintModel::bitsGrid() const {
  QVector<double> g(qsizetype(m_layers) * m_experts);
  for (int l = 0; l < m_layers; ++l)
    for (int e = 0; e < m_experts; ++e) g[qsizetype(l) * m_experts + e] = expertBits(l, e);
  return g;
}

razor::footprint FootprintModel::result() const {
  razor::footprint f = m_fixed;
  razor::footprint_totals* routed = nullptr;
  const double def = defaultExpertBits();
  for (int l = 0; l < m_layers; ++l) {
    auto lit = m_recipe.expert_bits.find(l);
    const std::vector<double>* lv = lit == m_recipe.expert_bits.end() ? nullptr : &lit->second;
    for (int e = 0; e < m_experts; ++e) {
      const Cell& c = m_cells[size_t(l) * size_t(m_experts) + size_t(e)];
      if (c.params == 0) continue;
      if (!routed) routed = &f.by_role[tensor_role::routed_expert];
      const double b = keepNorm(lv && size_t(e) < lv->size() ? (*lv)[size_t(e)] : def);
      for (razor::footprint_totals* t : {&f.all, routed}) {
        t->params += c.params;
        if (b >= kKeepBits) {
          t->kept_bits += c.keptBits;
        } else {
          t->params_quantized += c.params;
          t->weight_bits += double(c.params) * b;
          t->scale_bits += c.scaleBits;
        }
      }
      auto& bl = f.by_layer[size_t(l)];
      bl.params += c.params;
      if (b < kKeepBits) {
        bl.params_quantized += c.params;
        bl.weight_bits += double(c.params) * b;
        bl.scale_bits += c.scaleBits;
      }
      f.params_by_bits[b] += c.params;
    }
  }
  return f;
}

double FootprintModel::layerAverageBits(int layer) const {
  double w = 0;
  qint64 p = 0;
  for (int e = 0; e < m_experts; ++e) {
    const qint64 cp = cellParams(layer, e);
    if (!cp) continue;
    w += double(cp) * expertBits(layer, e);
    p += cp;
  }
  return p ? w / double(p) : std::numeric_limits<double>::quiet_NaN();
}

qint64 FootprintModel::layerParams(int layer) const {
  qint64 p = 0;
  for (int e = 0; e < m_experts; ++e) p += cellParams(layer, e);
  return p;
}
