#include "model/footprint.h"

#include "model/checkpoint.h"
#include "model/recipe.h"
#include "util/json_limits.h"

namespace razor {

void footprint::add(const footprint_share& s) {
  const bool kept = s.bits >= kKeepBits;
  auto add_to = [&](footprint_totals& t, bool with_kept) {
    t.params += s.params;
    if (kept) {
      if (with_kept) t.kept_bits += s.kept_bits;
      return;
    }
    t.params_quantized += s.params;
    t.weight_bits += double(s.params) * s.bits;
    t.scale_bits += s.scale_bits;
  };
  add_to(all, true);
  add_to(by_role[s.role], true);
  if (s.role == tensor_role::routed_expert && s.layer >= 0 && size_t(s.layer) < by_layer.size())
    add_to(by_layer[size_t(s.layer)], false);  // by_layer: the experts' quantized weights and scales
  params_by_bits[kept ? kKeepBits : s.bits] += s.params;
}

double scale_bits_per_param(const tensor_entry& t, const recipe& r) {
  const int64_t cols = t.cols();
  const int64_t g = (r.group > 0 && cols % r.group == 0) ? r.group : cols;
  return g > 0 ? r.scale_bits / double(g) : 0.0;
}

status add_tensor_footprint(footprint& f, const tensor_entry& t, const recipe& r) {
  const int64_t n = t.numel();
  const double spp = scale_bits_per_param(t, r);
  const double stored = dtype_bits(t.dt);
  auto share = [&](int64_t params, double bits) {
    return footprint_share{t.cls.role, t.cls.layer, params, bits, double(params) * spp, double(params) * stored};
  };
  if (t.cls.role == tensor_role::routed_expert && t.cls.fused && t.shape.size() == 3 &&
      r.expert_bits.count(t.cls.layer)) {
    const int64_t E = t.shape[0];
    std::vector<double> bits(size_t(std::max<int64_t>(E, 0)));
    for (int64_t e = 0; e < E; ++e) {
      RAZOR_ASSIGN_OR_RETURN(bits[size_t(e)], r.expert_tag(t, int(e)));
    }
    for (int64_t e = 0; e < E; ++e) f.add(share(n / E, bits[size_t(e)]));
  } else {
    RAZOR_ASSIGN_OR_RETURN(const double bits, r.tensor_bits(t));
    f.add(share(n, bits));
  }
  return {};
}

result<footprint> compute_footprint(std::span<const tensor_entry> tensors, int64_t num_layers, const recipe& r) {
  footprint f;
  f.by_layer.resize(size_t(std::max<int64_t>(num_layers, 0)));
  for (const auto& t : tensors) RAZOR_TRY(add_tensor_footprint(f, t, r));
  return f;
}

result<footprint> compute_footprint(const checkpoint& ck, const recipe& rin) {
  if (rin.two_level_target <= 0) return compute_footprint(ck.tensors(), ck.config().num_layers, rin);
  recipe resolved = rin;
  resolved.resolve(ck.config());
  return compute_footprint(ck.tensors(), ck.config().num_layers, resolved);
}

double footprint::seed_effective_bits() const {
  return all.params_quantized ? all.weight_bits / double(all.params_quantized) : 16.0;
}
double footprint::effective_bits_with_scales() const {
  return all.params_quantized ? (all.weight_bits + all.scale_bits) / double(all.params_quantized) : 16.0;
}
double footprint::seed_footprint_gb() const { return double(all.params) * seed_effective_bits() / 8e9; }
double footprint::bits_per_weight() const { return all.params ? all.packed_bits() / double(all.params) : 0.0; }
double footprint::expert_avg_bits() const {
  auto it = by_role.find(tensor_role::routed_expert);
  if (it == by_role.end() || it->second.params_quantized == 0) return 16.0;
  return it->second.weight_bits / double(it->second.params_quantized);
}

nlohmann::json footprint::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = "razor.footprint/1";
  j["params_total"] = all.params;
  j["params_quantized"] = all.params_quantized;
  j["seed_effective_bits"] = seed_effective_bits();
  j["effective_bits_with_scales"] = effective_bits_with_scales();
  j["seed_footprint_gb"] = seed_footprint_gb();
  j["packed_bytes"] = packed_bytes();
  j["packed_gb"] = packed_bytes() / 1e9;
  j["packed_gib"] = packed_bytes() / 1073741824.0;
  j["bits_per_weight"] = bits_per_weight();
  j["expert_avg_bits"] = expert_avg_bits();
  nlohmann::ordered_json roles = nlohmann::ordered_json::object();
  for (auto& [r, t] : by_role) {
    roles[std::string(role_name(r))] = {{"params", t.params},
                                        {"params_quantized", t.params_quantized},
                                        {"avg_bits", t.params_quantized ? t.weight_bits / double(t.params_quantized) : 16.0},
                                        {"packed_bytes", t.packed_bits() / 8.0}};
  }
  j["by_role"] = roles;
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (auto& t : by_layer)
    layers.push_back({{"expert_params", t.params},
                      {"expert_avg_bits", t.params_quantized ? t.weight_bits / double(t.params_quantized) : 16.0},
                      {"packed_bytes", (t.weight_bits + t.scale_bits) / 8.0}});
  j["experts_by_layer"] = layers;
  nlohmann::ordered_json bits = nlohmann::ordered_json::object();
  for (auto& [b, p] : params_by_bits) {
    char key[32];
    std::snprintf(key, sizeof key, "%g", b);
    bits[key] = p;
  }
  j["params_by_bits"] = bits;
  return nlohmann::json::parse(dump_json(j));
}

}  // namespace razor
