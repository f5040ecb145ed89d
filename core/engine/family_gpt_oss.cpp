// gpt-oss (model_type gpt_oss): the config's windows / YaRN / SwiGLU limit, the layer's biases and sinks, and the
// routing (engine/families.h has the math). The shared attention_block and moe_block apply them.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/families.h"

namespace razor::engine {

namespace {

using nlohmann::json;

status bad(const std::string& key, const std::string& what) {
  return make_error(errc::bad_config, "config.json: " + key + " " + what);
}

result<double> positive_number(const json& o, const std::string& path, const char* key, double fallback) {
  if (!o.contains(key) || o[key].is_null()) return fallback;
  if (!o[key].is_number() || !(o[key].get<double>() > 0.0) || !std::isfinite(o[key].get<double>()))
    return bad(path + key, "must be a positive number, got " + o[key].dump());
  return o[key].get<double>();
}

result<std::vector<float>> vec_of(weight_provider& wp, const std::string& name, int64_t n) {
  RAZOR_ASSIGN_OR_RETURN(tensor_f32 t, matrix_of_shape(wp, name, 1, n));
  return std::move(t.data);
}

}  // namespace

status gpt_oss_dims(const model_config& cfg, model_dims& d) {
  const json& t = cfg.text;
  d.qkv_bias = true;
  d.qk_norm = qk_norm_kind::none;
  d.sliding_layer.assign(size_t(d.n_layers), false);
  if (t.contains("sliding_window") && !t["sliding_window"].is_null()) {
    if (!t["sliding_window"].is_number_integer() || t["sliding_window"].get<int64_t>() < 1)
      return bad("sliding_window", "must be a positive integer, got " + t["sliding_window"].dump());
    d.sliding_window = t["sliding_window"].get<int64_t>();
  }
  for (int64_t l = 0; l < d.n_layers; ++l) {
    // layer_types as written, else transformers' default: sliding on the even layers
    const bool sliding = cfg.layer_types.empty() ? l % 2 == 0 : cfg.layer_types[size_t(l)] == "sliding_attention";
    if (!cfg.layer_types.empty() && !sliding && cfg.layer_types[size_t(l)] != "full_attention")
      return bad("layer_types[" + std::to_string(l) + "]", "must be sliding_attention or full_attention, got " +
                                                               cfg.layer_types[size_t(l)]);
    d.sliding_layer[size_t(l)] = sliding && d.sliding_window > 0;
  }
  const json* rs = nullptr;
  for (const char* k : {"rope_scaling", "rope_parameters"})
    if (t.contains(k) && t[k].is_object()) rs = &t[k];
  if (rs) {
    const std::string path = std::string(rs == &t["rope_scaling"] ? "rope_scaling" : "rope_parameters") + ".";
    std::string type;
    for (const char* k : {"rope_type", "type"})
      if (rs->contains(k) && (*rs)[k].is_string()) type = (*rs)[k].get<std::string>();
    if (type == "yarn") {
      RAZOR_ASSIGN_OR_RETURN(d.yarn_factor, positive_number(*rs, path, "factor", 1.0));
      RAZOR_ASSIGN_OR_RETURN(d.yarn_beta_fast, positive_number(*rs, path, "beta_fast", 32.0));
      RAZOR_ASSIGN_OR_RETURN(d.yarn_beta_slow, positive_number(*rs, path, "beta_slow", 1.0));
      const char* k = "original_max_position_embeddings";
      if (!rs->contains(k) || !(*rs)[k].is_number_integer() || (*rs)[k].get<int64_t>() < 1)
        return bad(path + k, "must be a positive integer with YaRN");
      d.yarn_orig_ctx = (*rs)[k].get<int64_t>();
    } else if (!type.empty() && type != "default") {
      return make_error(errc::unsupported, "config.json: " + path + "rope_type " + type +
                                               ": gpt_oss runs with YaRN or plain RoPE only");
    }
  }
  RAZOR_ASSIGN_OR_RETURN(double limit, positive_number(t, "", "swiglu_limit", 7.0));
  d.swiglu_limit = float(limit);
  return {};
}

status load_gpt_oss_extras(weight_provider& wp, const model_dims& d, int L, layer_weights& w) {
  auto& a = w.attn;
  RAZOR_ASSIGN_OR_RETURN(a.o_bias, vec_of(wp, layer_tensor(L, "self_attn.o_proj.bias"), d.hidden));
  RAZOR_ASSIGN_OR_RETURN(a.sinks, vec_of(wp, layer_tensor(L, "self_attn.sinks"), d.n_heads));
  a.window = d.sliding_layer[size_t(L)] ? d.sliding_window : 0;
  auto& m = w.moe;
  RAZOR_ASSIGN_OR_RETURN(m.router_bias, vec_of(wp, layer_tensor(L, "mlp.router.bias"), d.n_experts));
  const int64_t E = d.n_experts, F = d.moe_ff, H = d.hidden;
  m.gate_up_bias.assign(size_t(E), std::vector<float>(size_t(2 * F)));
  m.down_bias.assign(size_t(E), std::vector<float>(size_t(H)));
  const std::string fused = layer_tensor(L, "mlp.experts.gate_up_proj_bias");
  if (wp.has(fused)) {  // the Hub's: [E, 2F], gate and up interleaved
    RAZOR_ASSIGN_OR_RETURN(tensor_f32 b, matrix_of_shape(wp, fused, E, 2 * F));
    for (int64_t e = 0; e < E; ++e)
      for (int64_t j = 0; j < F; ++j) {
        m.gate_up_bias[size_t(e)][size_t(j)] = b.data[size_t(e * 2 * F + 2 * j)];
        m.gate_up_bias[size_t(e)][size_t(F + j)] = b.data[size_t(e * 2 * F + 2 * j + 1)];
      }
  } else {  // a gpt-oss GGUF read back: ffn_gate_exps.bias / ffn_up_exps.bias
    RAZOR_ASSIGN_OR_RETURN(tensor_f32 g, matrix_of_shape(wp, layer_tensor(L, "mlp.experts.gate_proj.bias"), E, F));
    RAZOR_ASSIGN_OR_RETURN(tensor_f32 u, matrix_of_shape(wp, layer_tensor(L, "mlp.experts.up_proj.bias"), E, F));
    for (int64_t e = 0; e < E; ++e) {
      std::copy_n(g.data.data() + e * F, F, m.gate_up_bias[size_t(e)].data());
      std::copy_n(u.data.data() + e * F, F, m.gate_up_bias[size_t(e)].data() + F);
    }
  }
  std::string down = layer_tensor(L, "mlp.experts.down_proj_bias");
  if (!wp.has(down)) down = layer_tensor(L, "mlp.experts.down_proj.bias");
  RAZOR_ASSIGN_OR_RETURN(tensor_f32 db, matrix_of_shape(wp, down, E, H));
  for (int64_t e = 0; e < E; ++e) std::copy_n(db.data.data() + e * H, H, m.down_bias[size_t(e)].data());
  return {};
}

std::vector<float> attention_inv_freq(const model_dims& d) {
  if (d.a == arch::gpt_oss && d.yarn_factor > 1.0)
    return rope_inv_freq_yarn(d.rot_dims, d.rope_theta, d.yarn_factor, d.yarn_orig_ctx, d.yarn_beta_fast, d.yarn_beta_slow);
  return rope_inv_freq(d.rot_dims, d.rope_theta);
}

float attention_score_mscale2(const model_dims& d) {
  if (d.a != arch::gpt_oss || d.yarn_factor <= 1.0) return 1.0f;
  const float m = 1.0f + 0.1f * std::log(float(d.yarn_factor));
  return m * m;
}

}  // namespace razor::engine
