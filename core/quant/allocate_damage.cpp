// The damage model: the predicted output damage of an expert at given bits (salience x relative error).
#include "quant/allocate.h"

#include <algorithm>
#include <cmath>

namespace razor::quant {

// ---- damage model -----------------------------------------------------------------------------------------------

result<salience_kind> salience_from_name(std::string_view name) {
  if (name == "output") return salience_kind::output;
  if (name == "wmass") return salience_kind::wmass;
  if (name == "asal") return salience_kind::asal;
  if (name == "freq") return salience_kind::freq;
  return make_error(errc::invalid_argument, "unknown salience '" + std::string(name) + "' (output, wmass, asal, freq)");
}

std::string_view salience_name(salience_kind k) {
  switch (k) {
    case salience_kind::output: return "output";
    case salience_kind::wmass: return "wmass";
    case salience_kind::asal: return "asal";
    case salience_kind::freq: return "freq";
  }
  return "?";
}

double damage_model::damage(int layer, int expert, double b_gu, double b_dn) const {
  auto bi = [&](double b) {
    for (size_t i = 0; i < bits.size(); ++i)
      if (std::abs(bits[i] - b) < 1e-9) return int(i);
    return -1;
  };
  const int i = bi(b_gu), j = bi(b_dn);
  if (i < 0 || j < 0) return std::numeric_limits<double>::quiet_NaN();
  const size_t e = size_t(layer) * size_t(n_experts) + size_t(expert);
  return salience[e] * (rel_gu[e * bits.size() + size_t(i)] + rel_dn[e * bits.size() + size_t(j)]);
}

result<damage_model> make_damage_model(const alloc_stats& st, const error_table& et, const damage_options& opt) {
  RAZOR_TRY(st.validate());
  if (et.n_layers != st.n_layers || et.n_experts != st.n_experts)
    return make_error(errc::invalid_argument, "error table and probe disagree on layers x experts");
  damage_model dm;
  dm.n_layers = st.n_layers;
  dm.n_experts = st.n_experts;
  dm.bits = et.bits;
  const size_t n = st.size(), nb = et.bits.size();
  const bool w = opt.weighted_error && et.weighted;
  const auto& E = w ? et.werr : et.err;
  const auto& R = w ? et.wref : et.ref;
  dm.rel_gu.assign(n * nb, 0.0);
  dm.rel_dn.assign(n * nb, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const int L = int(i / size_t(st.n_experts)), e = int(i % size_t(st.n_experts));
    for (size_t b = 0; b < nb; ++b) {
      const double eg = E[et.at(L, e, 0, int(b))] + E[et.at(L, e, 1, int(b))];
      const double rg = R[et.at(L, e, 0, int(b))] + R[et.at(L, e, 1, int(b))];
      const double ed = E[et.at(L, e, 2, int(b))], rd = R[et.at(L, e, 2, int(b))];
      dm.rel_gu[i * nb + b] = rg > 0 ? eg / rg : 0.0;
      dm.rel_dn[i * nb + b] = rd > 0 ? ed / rd : 0.0;
    }
  }
  dm.salience.assign(n, 0.0);
  const int top = et.bit_index(et.bits.back());
  (void)top;
  for (size_t i = 0; i < n; ++i) {
    const int L = int(i / size_t(st.n_experts)), e = int(i % size_t(st.n_experts));
    double s = 0;
    switch (opt.salience) {
      case salience_kind::output: {
        // sum over routed tokens of w_t^2 ||y_e(x_t)||^2 ~ freq * (wmass/freq)^2 * E||y_e||^2, with
        // E||y_e||^2 ~ sum_j E[h_j^2] ||W_down[:, j]||^2 (the imatrix-weighted norm of down_proj).
        const double y2 = w ? R[et.at(L, e, 2, 0)] : (st.wfro_down.empty() ? 1.0 : st.wfro_down[i] * st.wfro_down[i]);
        s = st.freq[i] > 0 ? st.wmass[i] * st.wmass[i] / st.freq[i] * y2 : 0.0;
        break;
      }
      case salience_kind::wmass: s = st.wmass[i]; break;
      case salience_kind::asal: s = st.asal[i]; break;
      case salience_kind::freq: s = st.freq[i]; break;
    }
    dm.salience[i] = s;
  }
  if (opt.salience == salience_kind::output) {
    // Absolute output energy grows with depth, while what the model feels is the error relative to the residual
    // stream (not measured by the probe). Each layer's saliences are scaled to sum to the layer's routing mass
    // (the same for every layer: one unit per token), keeping the within-layer shares of output energy.
    for (int L = 0; L < st.n_layers; ++L) {
      double s = 0, m = 0;
      for (int e = 0; e < st.n_experts; ++e) {
        s += dm.salience[st.idx(L, e)];
        m += st.wmass[st.idx(L, e)];
      }
      if (s > 0)
        for (int e = 0; e < st.n_experts; ++e) dm.salience[st.idx(L, e)] *= m / s;
    }
  }
  if (opt.salience_floor > 0) {
    for (int L = 0; L < st.n_layers; ++L) {
      double mean = 0;
      for (int e = 0; e < st.n_experts; ++e) mean += dm.salience[st.idx(L, e)];
      mean /= double(st.n_experts);
      for (int e = 0; e < st.n_experts; ++e)
        dm.salience[st.idx(L, e)] = std::max(dm.salience[st.idx(L, e)], opt.salience_floor * mean);
    }
  }
  return dm;
}

}  // namespace razor::quant
