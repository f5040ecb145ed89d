#include "FootprintModel.h"

#include <cmath>
#include <limits>

#include "ModelInventory.h"

using razor::kKeepBits;
using razor::tensor_role;

namespace {

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
    // Is this tensor's bit count decided by expert_bits / the routed_expert role alone? Then it is a cell.
    const bool routed = t.cls.role == tensor_role::routed_expert && t.cls.layer >= 0 && t.cls.layer < m_layers;
    bool editable = routed && t.shape.size() >= 2 &&
                    ((t.cls.fused && t.shape.size() == 3) || (!t.cls.fused && t.cls.expert >= 0 && t.cls.expert < m_experts));
    if (editable) {
      auto pinned = r.pinned(t.name);
      note(pinned.error());
      if (!pinned.ok() || *pinned) editable = false;
    }
    if (editable && t.cls.fused && t.shape[0] > m_experts) editable = false;
    if (editable) {
      const int64_t n = t.numel();
      const double spp = razor::scale_bits_per_param(t, r);
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
    // every other tensor: compute_footprint's own accounting; a pattern past the regex limits counts it as kept
    auto st = razor::add_tensor_footprint(m_fixed, t, r);
    if (!st.ok()) {
      note(st);
      m_fixed.add({t.cls.role, t.cls.layer, t.numel(), kKeepBits, 0.0, double(t.numel()) * razor::dtype_bits(t.dt)});
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
  const double def = defaultExpertBits();
  for (int l = 0; l < m_layers; ++l) {
    auto lit = m_recipe.expert_bits.find(l);
    const std::vector<double>* lv = lit == m_recipe.expert_bits.end() ? nullptr : &lit->second;
    for (int e = 0; e < m_experts; ++e) {
      const Cell& c = m_cells[size_t(l) * size_t(m_experts) + size_t(e)];
      if (c.params == 0) continue;
      const double b = keepNorm(lv && size_t(e) < lv->size() ? (*lv)[size_t(e)] : def);
      f.add({tensor_role::routed_expert, l, c.params, b, c.scaleBits, c.keptBits});
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
