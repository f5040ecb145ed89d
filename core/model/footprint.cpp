#include "model/footprint.h"

#include "model/checkpoint.h"
#include "model/recipe.h"
#include "util/json_limits.h"

namespace razor {

static void add_quantized(footprint_totals& t, int64_t params, double bits, double scale_bits_per_param) {
  t.params += params;
  if (bits >= kKeepBits) return;
  t.params_quantized += params;
  t.weight_bits += double(params) * bits;
  t.scale_bits += double(params) * scale_bits_per_param;
}

result<footprint> compute_footprint(const checkpoint& ck, const recipe& rin) {
  recipe resolved;
  const bool needs = rin.two_level_target > 0;
  if (needs) {
    resolved = rin;
    resolved.resolve(ck.config());
  }
  const recipe& r = needs ? resolved : rin;
  footprint f;
  f.by_layer.resize(size_t(std::max<int64_t>(ck.config().num_layers, 0)));
  for (const auto& t : ck.tensors()) {
    const int64_t n = t.numel();
    const int64_t cols = t.cols();
    const int64_t g = (r.group > 0 && cols % r.group == 0) ? r.group : cols;
    const double scale_per_param = g > 0 ? r.scale_bits / double(g) : 0.0;
    auto& role = f.by_role[t.cls.role];
    auto account = [&](int64_t params, double bits) {
      for (footprint_totals* tot : {&f.all, &role}) {
        add_quantized(*tot, params, bits, scale_per_param);
        if (bits >= kKeepBits) tot->kept_bits += double(params) * dtype_bits(t.dt);
      }
      if (t.cls.role == tensor_role::routed_expert && t.cls.layer >= 0 && size_t(t.cls.layer) < f.by_layer.size())
        add_quantized(f.by_layer[size_t(t.cls.layer)], params, bits, scale_per_param);
      f.params_by_bits[bits >= kKeepBits ? kKeepBits : bits] += params;
    };
    if (t.cls.role == tensor_role::routed_expert && t.cls.fused && t.shape.size() == 3 &&
        r.expert_bits.count(t.cls.layer)) {
      const int64_t E = t.shape[0];
      for (int64_t e = 0; e < E; ++e) {
        RAZOR_ASSIGN_OR_RETURN(double bits, r.expert_tag(t, int(e)));
        account(n / E, bits);
      }
    } else {
      RAZOR_ASSIGN_OR_RETURN(double bits, r.tensor_bits(t));
      account(n, bits);
    }
  }
  return f;
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
