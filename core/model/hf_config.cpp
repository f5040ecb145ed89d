#include "model/hf_config.h"

#include <cmath>

#include "model/json_value.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"

namespace razor {

namespace {

// A bad value inside parse_model_config_impl; turned into an error value at the API boundary below.
struct config_error {
  std::string message;
};

// Reads the first of `keys` present in `j` as an integer in [lo, hi]; `def` when none is (or it is null, or a
// list / object, which some families use for per-layer values we do not read). Records the key in c.keys.
struct reader {
  model_config& c;
  const std::string& where;

  std::string path(const nlohmann::json& j, const char* key) const {
    return (&j == &c.text && c.nested ? "text_config." : "") + std::string(key);
  }

  int64_t get_int(const char* field, const nlohmann::json& j, std::initializer_list<const char*> keys, int64_t def = 0,
                  int64_t lo = 0, int64_t hi = kMaxConfigDim, const std::string& prefix = "") {
    for (auto k : keys) {
      auto it = j.find(k);
      if (it == j.end() || it->is_null() || it->is_array() || it->is_object()) continue;
      const std::string at = prefix.empty() ? path(j, k) : prefix + k;
      auto v = json_integer(*it, lo, hi, errc::bad_config, where + ": " + at);
      if (!v.ok()) throw config_error{v.error().message()};
      if (field) c.keys[field] = at;
      return *v;
    }
    return def;
  }

  double get_double(const char* field, const nlohmann::json& j, std::initializer_list<const char*> keys, double def,
                    const std::string& prefix = "") {
    for (auto k : keys) {
      auto it = j.find(k);
      if (it == j.end() || it->is_null()) continue;
      const std::string at = prefix.empty() ? path(j, k) : prefix + k;
      if (!it->is_number()) throw config_error{where + ": " + at + " = " + json_excerpt(*it) + " is not a number"};
      if (field) c.keys[field] = at;
      return it->get<double>();
    }
    return def;
  }
};

// The limits of hf_config.h per key: every count that sizes an allocation (layer_types, the per-layer tables of
// footprint, inventory and convert, synth's plan) is finite before it is used: `num_hidden_layers: 1e9` is an
// error here, not a 32 GB vector later.
struct int_key_limit {
  const char* key;
  int64_t max;
};
constexpr int64_t kMaxLayers = kMaxConfigLayers, kMaxExperts = kMaxConfigExperts, kMaxVocab = kMaxConfigVocab,
                  kMaxWidth = kMaxConfigWidth, kMaxHidden = kMaxConfigHidden, kMaxHeads = kMaxConfigHeads;
constexpr int_key_limit kIntKeyLimits[] = {
    {"hidden_size", kMaxHidden},
    {"d_model", kMaxHidden},
    {"n_embd", kMaxHidden},
    {"num_hidden_layers", kMaxLayers},
    {"n_layer", kMaxLayers},
    {"num_layers", kMaxLayers},
    {"vocab_size", kMaxVocab},
    {"num_attention_heads", kMaxHeads},
    {"n_head", kMaxHeads},
    {"num_key_value_heads", kMaxHeads},
    {"head_dim", kMaxHeads},
    {"intermediate_size", kMaxWidth},
    {"ffn_hidden_size", kMaxWidth},
    {"moe_intermediate_size", kMaxWidth},
    {"expert_intermediate_size", kMaxWidth},
    {"shared_expert_intermediate_size", kMaxWidth},
    {"num_experts", kMaxExperts},
    {"num_local_experts", kMaxExperts},
    {"n_routed_experts", kMaxExperts},
    {"moe_num_experts", kMaxExperts},
    {"num_experts_per_tok", kMaxExperts},
    {"num_experts_per_token", kMaxExperts},
    {"moe_top_k", kMaxExperts},
    {"top_k", kMaxExperts},
    {"n_shared_experts", kMaxExperts},
    {"num_shared_experts", kMaxExperts},
    {"first_k_dense_replace", kMaxLayers},
    {"decoder_sparse_step", kMaxLayers},
    {"full_attention_interval", kMaxLayers},
    {"linear_num_key_heads", kMaxHeads},
    {"linear_num_value_heads", kMaxHeads},
    {"linear_key_head_dim", kMaxHeads},
    {"linear_value_head_dim", kMaxHeads},
    {"linear_conv_kernel_dim", 1024},
    {"max_position_embeddings", int64_t(UINT32_MAX)},
    {"n_positions", int64_t(UINT32_MAX)},
};

// Every key of the table present in `obj` as a number must be an integer (1e9 and 64.0 count) in [0, max].
status check_int_keys(const nlohmann::json& obj, const std::string& where, const std::string& prefix) {
  if (!obj.is_object()) return {};
  for (const auto& l : kIntKeyLimits) {
    auto it = obj.find(l.key);
    if (it == obj.end() || !it->is_number()) continue;
    bool in_range;
    if (it->is_number_unsigned()) {
      in_range = it->get<uint64_t>() <= uint64_t(l.max);
    } else if (it->is_number_integer()) {
      in_range = it->get<int64_t>() >= 0 && it->get<int64_t>() <= l.max;
    } else {
      const double d = it->get<double>();
      if (!std::isfinite(d) || d != std::floor(d))
        return make_error(errc::bad_config, where + ": " + prefix + l.key + " = " + it->dump() + " is not an integer");
      in_range = d >= 0 && d <= double(l.max);
    }
    if (!in_range)
      return make_error(errc::bad_config, where + ": " + prefix + l.key + " = " + it->dump() +
                                              " is out of range (outside razor's limit [0, " + std::to_string(l.max) + "])");
  }
  return {};
}

}  // namespace

std::string model_config::key(const std::string& field) const {
  auto it = keys.find(field);
  if (it != keys.end()) return it->second;
  return (nested ? "text_config." : "") + field;
}

int64_t model_config::rotary_dims() const {
  return int64_t(std::floor(double(head_dim) * partial_rotary_factor));
}

bool model_config::layer_is_linear_attention(int64_t layer) const {
  if (layer >= 0 && size_t(layer) < layer_types.size()) return layer_types[size_t(layer)] == "linear_attention";
  return false;
}

bool model_config::layer_is_moe(int64_t layer) const {
  if (num_experts <= 0) return false;
  for (auto l : mlp_only_layers)
    if (l == layer) return false;
  if (layer < first_k_dense_replace) return false;
  if (decoder_sparse_step > 1 && (layer + 1) % decoder_sparse_step != 0) return false;
  return true;
}

static result<model_config> parse_model_config_impl(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return make_error(errc::bad_config, where + ": not a JSON object");
  RAZOR_TRY(check_int_keys(j, where, ""));
  if (auto tc = j.find("text_config"); tc != j.end()) RAZOR_TRY(check_int_keys(*tc, where, "text_config."));
  model_config c;
  c.source = where;
  c.raw = j;
  c.top_model_type = j.value("model_type", std::string());
  if (auto a = j.find("architectures"); a != j.end() && a->is_array())
    for (auto& s : *a)
      if (s.is_string()) c.architectures.push_back(s.get<std::string>());
  auto tc = j.find("text_config");
  if (tc != j.end() && tc->is_object()) {
    c.text = *tc;
    c.nested = true;
    c.model_type = c.text.value("model_type", c.top_model_type);
  } else {
    c.text = j;
    c.model_type = c.top_model_type;
  }
  const auto& t = c.text;
  reader rd{c, where};
  c.hidden_size = rd.get_int("hidden_size", t, {"hidden_size", "d_model", "n_embd"});
  c.num_layers = rd.get_int("num_hidden_layers", t, {"num_hidden_layers", "n_layer", "num_layers"}, 0, 0, kMaxConfigLayers);
  if (c.hidden_size <= 0 || c.num_layers <= 0)
    return make_error(errc::bad_config, where + ": needs hidden_size and num_hidden_layers (positive integers)");
  c.vocab_size = rd.get_int("vocab_size", t, {"vocab_size"}, rd.get_int("vocab_size", j, {"vocab_size"}));
  c.num_heads = rd.get_int("num_attention_heads", t, {"num_attention_heads", "n_head"});
  c.num_kv_heads = rd.get_int("num_key_value_heads", t, {"num_key_value_heads"}, c.num_heads);
  c.head_dim = rd.get_int("head_dim", t, {"head_dim"}, c.num_heads ? c.hidden_size / c.num_heads : 0);
  c.intermediate_size = rd.get_int("intermediate_size", t, {"intermediate_size", "ffn_hidden_size"});
  c.num_experts = rd.get_int("num_experts", t, {"num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts"},
                             0, 0, kMaxConfigExperts);
  c.num_experts_per_tok =
      rd.get_int("num_experts_per_tok", t, {"num_experts_per_tok", "num_experts_per_token", "moe_top_k", "top_k"});
  c.moe_intermediate_size = rd.get_int("moe_intermediate_size", t, {"moe_intermediate_size", "expert_intermediate_size"},
                                       c.num_experts > 0 ? c.intermediate_size : 0);
  c.shared_expert_intermediate_size =
      rd.get_int("shared_expert_intermediate_size", t, {"shared_expert_intermediate_size"});
  c.n_shared_experts = rd.get_int("n_shared_experts", t, {"n_shared_experts", "num_shared_experts"},
                                  c.shared_expert_intermediate_size > 0 ? 1 : 0);
  c.first_k_dense_replace = rd.get_int("first_k_dense_replace", t, {"first_k_dense_replace"});
  c.decoder_sparse_step = rd.get_int("decoder_sparse_step", t, {"decoder_sparse_step"}, 1);
  if (auto m = t.find("mlp_only_layers"); m != t.end() && m->is_array())
    for (auto& v : *m)
      if (v.is_number_integer()) c.mlp_only_layers.push_back(v.get<int64_t>());
  c.rms_norm_eps = rd.get_double("rms_norm_eps", t, {"rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon"}, 1e-6);
  c.rope_theta = rd.get_double("rope_theta", t, {"rope_theta"}, 10000.0);
  c.partial_rotary_factor = rd.get_double("partial_rotary_factor", t, {"partial_rotary_factor"}, 1.0);
  if (auto rp = t.find("rope_parameters"); rp != t.end() && rp->is_object()) {
    const std::string pre = rd.path(t, "rope_parameters") + ".";
    c.rope_theta = rd.get_double("rope_theta", *rp, {"rope_theta"}, c.rope_theta, pre);
    c.partial_rotary_factor = rd.get_double("partial_rotary_factor", *rp, {"partial_rotary_factor"},
                                            c.partial_rotary_factor, pre);
  }
  c.tie_word_embeddings = t.value("tie_word_embeddings", j.value("tie_word_embeddings", false));
  c.norm_topk_prob = t.value("norm_topk_prob", true);
  c.max_position_embeddings = rd.get_int("max_position_embeddings", t, {"max_position_embeddings", "n_positions"});
  if (auto lt = t.find("layer_types"); lt != t.end() && lt->is_array()) {
    if (lt->size() > size_t(kMaxConfigLayers))
      return make_error(errc::bad_config, where + ": " + rd.path(t, "layer_types") + " has " +
                                              std::to_string(lt->size()) + " entries");
    for (auto& v : *lt)
      if (v.is_string()) c.layer_types.push_back(v.get<std::string>());
      else c.layer_types.push_back(json_excerpt(v));  // config_check names it
    c.keys["layer_types"] = rd.path(t, "layer_types");
  }
  c.full_attention_interval = rd.get_int("full_attention_interval", t, {"full_attention_interval"});
  if (c.layer_types.empty() && c.full_attention_interval > 0)
    for (int64_t i = 0; i < c.num_layers; ++i)
      c.layer_types.push_back((i + 1) % c.full_attention_interval == 0 ? "full_attention" : "linear_attention");
  c.linear_num_key_heads = rd.get_int("linear_num_key_heads", t, {"linear_num_key_heads"});
  c.linear_num_value_heads = rd.get_int("linear_num_value_heads", t, {"linear_num_value_heads"});
  c.linear_key_head_dim = rd.get_int("linear_key_head_dim", t, {"linear_key_head_dim"});
  c.linear_value_head_dim = rd.get_int("linear_value_head_dim", t, {"linear_value_head_dim"});
  c.linear_conv_kernel_dim = rd.get_int("linear_conv_kernel_dim", t, {"linear_conv_kernel_dim"});
  return c;
}

// A key of the wrong JSON type (a number where a string belongs) makes nlohmann::json throw: the error
// becomes a value here, at the API boundary (found by tests/fuzz/fuzz_config.cpp).
result<model_config> parse_model_config(const nlohmann::json& j, const std::string& where) {
  try {
    return parse_model_config_impl(j, where);
  } catch (const config_error& e) {
    return make_error(errc::bad_config, e.message);
  } catch (const nlohmann::json::exception& e) {
    return make_error(errc::bad_config, where + ": a key has the wrong type (" + std::string(e.what()) + ")");
  }
}

result<model_config> load_model_config(const std::string& path) {
  json_limits lim;
  lim.max_bytes = 16u << 20;
  lim.code = errc::bad_config;
  RAZOR_ASSIGN_OR_RETURN(nlohmann::json j, read_json_file(path, lim));
  return parse_model_config(j, path);
}

}  // namespace razor
