#include "model/deepseek_config.h"

#include <cmath>

#include "model/json_value.h"

namespace razor {

bool is_deepseek(const std::string& mt) { return mt == "deepseek_v3" || mt == "deepseek_v2" || mt == "kimi_k2"; }

namespace {

status bad(const model_config& c, const std::string& msg) { return make_error(errc::bad_config, c.source + ": " + msg); }

std::string at(const model_config& c, const char* key) { return std::string(c.nested ? "text_config." : "") + key; }

// An integer key in [lo, hi]; `def` when absent or null (allow_null) — else an error naming it.
result<int64_t> int_key(const model_config& c, const char* key, int64_t lo, int64_t hi, bool required, int64_t def = 0) {
  auto it = c.text.find(key);
  if (it == c.text.end() || it->is_null()) {
    if (required) return bad(c, at(c, key) + " is missing (needed by " + c.model_type + ")");
    return def;
  }
  return json_integer(*it, lo, hi, errc::bad_config, c.source + ": " + at(c, key));
}

result<std::string> str_key(const model_config& c, const char* key, const std::string& def) {
  auto it = c.text.find(key);
  if (it == c.text.end() || it->is_null()) return def;
  if (!it->is_string()) return bad(c, at(c, key) + " = " + json_excerpt(*it) + " is not a string");
  return it->get<std::string>();
}

// rope_scaling: null, or YaRN as the releases write it. llama.cpp's deepseek2 scales the scores by mscale^2 and
// leaves RoPE's cos / sin unscaled only when mscale equals mscale_all_dim (its converter writes mscale_all_dim
// alone); transformers does the same then, so other combinations are refused rather than run differently.
status read_yarn(const model_config& c, deepseek_dims& s) {
  auto it = c.text.find("rope_scaling");
  if (it == c.text.end() || it->is_null()) return {};
  const std::string where = at(c, "rope_scaling");
  if (!it->is_object()) return bad(c, where + " = " + json_excerpt(*it) + " is not an object");
  const nlohmann::json& r = *it;
  const std::string type = r.contains("rope_type") && r["rope_type"].is_string() ? r["rope_type"].get<std::string>()
                           : r.contains("type") && r["type"].is_string()         ? r["type"].get<std::string>()
                                                                                  : "";
  if (type != "yarn")
    return bad(c, where + ".type = \"" + type + "\": only yarn is supported for " + c.model_type);
  auto num = [&](const char* k, double def, bool required) -> result<double> {
    auto v = r.find(k);
    if (v == r.end() || v->is_null()) {
      if (required) return bad(c, where + "." + k + " is missing (needed by YaRN)");
      return def;
    }
    if (!v->is_number() || !std::isfinite(v->get<double>()))
      return bad(c, where + "." + k + " = " + json_excerpt(*v) + " is not a number");
    return v->get<double>();
  };
  for (const char* k : {"attention_factor", "attn_factor", "extrapolation_factor"})
    if (r.contains(k) && !r[k].is_null())
      return bad(c, where + "." + k + ": not supported for " + c.model_type + " (the released configs leave it out)");
  RAZOR_ASSIGN_OR_RETURN(s.yarn_factor, num("factor", 1.0, true));
  if (!(s.yarn_factor >= 1.0)) return bad(c, where + ".factor = " + std::to_string(s.yarn_factor) + " must be at least 1");
  RAZOR_ASSIGN_OR_RETURN(double orig, num("original_max_position_embeddings", 0.0, true));
  if (!(orig >= 1.0 && orig <= double(UINT32_MAX)) || orig != std::floor(orig))
    return bad(c, where + ".original_max_position_embeddings must be a positive integer");
  s.yarn_orig_ctx = int64_t(orig);
  RAZOR_ASSIGN_OR_RETURN(s.yarn_beta_fast, num("beta_fast", 32.0, false));
  RAZOR_ASSIGN_OR_RETURN(s.yarn_beta_slow, num("beta_slow", 1.0, false));
  if (!(s.yarn_beta_fast > 0 && s.yarn_beta_slow > 0)) return bad(c, where + ": beta_fast and beta_slow must be positive");
  RAZOR_ASSIGN_OR_RETURN(double mscale, num("mscale", 1.0, false));
  RAZOR_ASSIGN_OR_RETURN(s.yarn_mscale_all_dim, num("mscale_all_dim", 0.0, false));
  if (s.yarn_mscale_all_dim <= 0 || mscale != s.yarn_mscale_all_dim)
    return bad(c, where + ": mscale (" + json_excerpt(r.value("mscale", nlohmann::json(1.0))) + ") and mscale_all_dim (" +
                      json_excerpt(r.value("mscale_all_dim", nlohmann::json())) +
                      ") must be equal and positive (as released; llama.cpp's deepseek2 assumes it)");
  s.yarn = true;
  s.mscale = s.yarn_factor <= 1.0 ? 1.0 : 1.0 + 0.1 * s.yarn_mscale_all_dim * std::log(s.yarn_factor);
  return {};
}

}  // namespace

result<deepseek_dims> deepseek_dims_from_config(const model_config& c) {
  deepseek_dims s;
  const int64_t H = kMaxConfigHeads, W = kMaxConfigWidth;
  RAZOR_ASSIGN_OR_RETURN(s.q_lora_rank, int_key(c, "q_lora_rank", 1, W, false));
  RAZOR_ASSIGN_OR_RETURN(s.kv_lora_rank, int_key(c, "kv_lora_rank", 1, W, true));
  RAZOR_ASSIGN_OR_RETURN(s.qk_nope, int_key(c, "qk_nope_head_dim", 1, H, true));
  RAZOR_ASSIGN_OR_RETURN(s.qk_rope, int_key(c, "qk_rope_head_dim", 2, H, true));
  RAZOR_ASSIGN_OR_RETURN(s.v_head_dim, int_key(c, "v_head_dim", 1, H, true));
  if (s.qk_rope % 2) return bad(c, at(c, "qk_rope_head_dim") + " = " + std::to_string(s.qk_rope) + ": RoPE needs an even number");
  RAZOR_ASSIGN_OR_RETURN(s.n_group, int_key(c, "n_group", 1, kMaxConfigExperts, false, 1));
  RAZOR_ASSIGN_OR_RETURN(s.topk_group, int_key(c, "topk_group", 1, kMaxConfigExperts, false, 1));
  s.first_dense = c.first_k_dense_replace;
  s.dense_ff = c.intermediate_size;
  s.n_shared = c.n_shared_experts;
  if (s.first_dense > c.num_layers)
    return bad(c, at(c, "first_k_dense_replace") + " = " + std::to_string(s.first_dense) + " is more than " +
                      at(c, "num_hidden_layers") + " = " + std::to_string(c.num_layers));
  if (s.first_dense > 0 && s.dense_ff <= 0)
    return bad(c, at(c, "intermediate_size") + " is needed for the dense layers (first_k_dense_replace = " +
                      std::to_string(s.first_dense) + ")");
  if (c.num_experts % s.n_group)
    return bad(c, at(c, "n_routed_experts") + " = " + std::to_string(c.num_experts) + " is not a multiple of " +
                      at(c, "n_group") + " = " + std::to_string(s.n_group));
  if (s.topk_group > s.n_group)
    return bad(c, at(c, "topk_group") + " = " + std::to_string(s.topk_group) + " is more than " + at(c, "n_group") +
                      " = " + std::to_string(s.n_group));
  // Every chosen group must hold enough experts for the top-k.
  if (s.topk_group * (c.num_experts / s.n_group) < c.num_experts_per_tok)
    return bad(c, at(c, "topk_group") + " x experts per group < " + at(c, "num_experts_per_tok") + " = " +
                      std::to_string(c.num_experts_per_tok));
  RAZOR_ASSIGN_OR_RETURN(std::string scoring, str_key(c, "scoring_func", "softmax"));
  if (scoring != "sigmoid" && scoring != "softmax")
    return bad(c, at(c, "scoring_func") + " = " + scoring + ": expected \"sigmoid\" or \"softmax\"");
  s.sigmoid = scoring == "sigmoid";
  RAZOR_ASSIGN_OR_RETURN(std::string method, str_key(c, "topk_method", c.model_type == "deepseek_v2" ? "greedy" : "noaux_tc"));
  if (method != "noaux_tc" && method != "greedy" && method != "group_limited_greedy")
    return bad(c, at(c, "topk_method") + " = " + method + ": expected noaux_tc, greedy or group_limited_greedy");
  s.score_bias = method == "noaux_tc";
  s.group_max = method == "group_limited_greedy";
  if (method == "greedy") s.n_group = s.topk_group = 1;  // greedy ignores the groups
  if (auto it = c.text.find("routed_scaling_factor"); it != c.text.end() && !it->is_null()) {
    if (!it->is_number() || !(it->get<double>() > 0) || !std::isfinite(it->get<double>()))
      return bad(c, at(c, "routed_scaling_factor") + " = " + json_excerpt(*it) + " must be a positive number");
    s.routed_scale = it->get<double>();
  }
  RAZOR_TRY(read_yarn(c, s));
  return s;
}

}  // namespace razor
