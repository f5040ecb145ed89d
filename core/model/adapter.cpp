#include "model/adapter.h"

#include <charconv>
#include <cstring>

#include "util/enum_table.h"

namespace razor {

namespace {
constexpr enum_row<tensor_role, bool> k_roles[] = {  // info: quantizable
#define X(id, name, q) {tensor_role::id, name, q},
    RAZOR_ROLES(X)
#undef X
};
}  // namespace

std::string_view role_name(tensor_role r) { return enum_name(k_roles, r, "other"); }

bool role_from_name(std::string_view n, tensor_role* out) {
  const auto* r = find_row_named(k_roles, n);
  if (r) *out = r->value;
  return r != nullptr;
}

bool role_is_quantizable(tensor_role r) { return enum_info(k_roles, r, false); }

std::string_view proj_name(expert_proj p) {
  switch (p) {
    case expert_proj::gate: return "gate";
    case expert_proj::up: return "up";
    case expert_proj::down: return "down";
    case expert_proj::gate_up: return "gate_up";
    default: return "";
  }
}

const std::vector<adapter_def>& adapter_table() {
  // Required keys: alternatives separated by '|'. The expert-count keys differ between families.
  static const std::vector<adapter_def> t = {
      {"qwen3_5_moe", {"qwen3_5_moe", "qwen3_5_moe_text"}, true, "qwen35moe",
       {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "layer_types|full_attention_interval",
        "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
        "head_dim"},
       "Qwen3.5 / Qwen3.6: hybrid Gated DeltaNet + gated attention, 256 experts + shared expert"},
      {"qwen3_next", {"qwen3_next"}, true, "qwen3next",
       {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "linear_num_key_heads"},
       "Qwen3-Next: Gated DeltaNet hybrid MoE"},
      {"qwen3_moe", {"qwen3_moe"}, true, "qwen3moe",
       {"num_experts|num_local_experts", "num_experts_per_tok", "moe_intermediate_size", "num_attention_heads"},
       "Qwen3-MoE (30B-A3B, 235B-A22B)"},
      {"qwen2_moe", {"qwen2_moe"}, true, "qwen2moe",
       {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "num_attention_heads"},
       "Qwen1.5/Qwen2-MoE with shared expert and its sigmoid gate"},
      {"mixtral", {"mixtral"}, true, "llama",
       {"num_local_experts", "num_experts_per_tok", "intermediate_size", "num_attention_heads"},
       "Mixtral: block_sparse_moe.experts.E.w1/w2/w3; llama.cpp runs it as llama + experts"},
      {"olmoe", {"olmoe"}, true, "olmoe",
       {"num_experts", "num_experts_per_tok", "intermediate_size", "num_attention_heads"}, "OLMoE 1B-7B"},
      {"deepseek_v3", {"deepseek_v3", "deepseek_v2", "kimi_k2"}, true, "deepseek2",
       {"n_routed_experts", "num_experts_per_tok", "moe_intermediate_size", "num_attention_heads"},
       "DeepSeek-V2/V3: MLA attention, shared experts, first_k_dense_replace dense layers, FP8 block scales"},
      {"gpt_oss", {"gpt_oss"}, true, "gpt-oss",
       {"num_local_experts", "num_experts_per_tok", "intermediate_size", "num_attention_heads"},
       "gpt-oss: fused experts stored [E, in, out] with biases, attention sinks"},
      {"llama", {"llama", "mistral"}, false, "llama", {"num_attention_heads", "intermediate_size"}, "dense Llama"},
      {"qwen3", {"qwen3", "qwen2"}, false, "qwen3", {"num_attention_heads", "intermediate_size"}, "dense Qwen3"},
      {"generic", {}, true, "", {}, "generic fallback: roles from tensor names"},
  };
  return t;
}

const adapter_def& adapter_for(const model_config& cfg) {
  const auto& t = adapter_table();
  for (const std::string* mt : {&cfg.model_type, &cfg.top_model_type})
    for (auto& a : t)
      for (auto& m : a.model_types)
        if (m == *mt) return a;
  return t.back();
}

status check_adapter_config(const adapter_def& a, const model_config& cfg, const std::string& where) {
  std::string missing;
  for (auto& req : a.required_keys) {
    bool found = false;
    size_t start = 0;
    while (start <= req.size()) {
      size_t bar = req.find('|', start);
      std::string key = req.substr(start, bar == std::string::npos ? std::string::npos : bar - start);
      if (cfg.text.contains(key)) found = true;
      if (bar == std::string::npos) break;
      start = bar + 1;
    }
    if (!found) missing += (missing.empty() ? "" : ", ") + req;
  }
  if (!missing.empty())
    return make_error(errc::bad_config, where + ": model_type '" + cfg.model_type + "' (adapter " + a.name +
                                            ") needs config keys missing here: " + missing);
  return {};
}

namespace {

bool has(std::string_view s, std::string_view sub) { return s.find(sub) != std::string_view::npos; }
bool ends(std::string_view s, std::string_view suf) {
  return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
}
bool starts(std::string_view s, std::string_view pre) { return s.substr(0, pre.size()) == pre; }

// Parses a decimal number at s[pos..] followed by '.', returns -1 if none.
int parse_index(std::string_view s, size_t pos, size_t* after) {
  int v = 0;
  auto r = std::from_chars(s.data() + pos, s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr == s.data() + pos) return -1;
  size_t p = size_t(r.ptr - s.data());
  if (p >= s.size() || s[p] != '.') return -1;
  *after = p + 1;
  return v;
}

bool component_starts(std::string_view name, std::string_view comp) {
  size_t p = name.find(comp);
  while (p != std::string_view::npos) {
    if (p == 0 || name[p - 1] == '.') return true;
    p = name.find(comp, p + 1);
  }
  return false;
}

expert_proj proj_of(std::string_view s) {
  if (starts(s, "gate_up_proj")) return expert_proj::gate_up;
  if (starts(s, "gate_proj") || starts(s, "w1")) return expert_proj::gate;
  if (starts(s, "up_proj") || starts(s, "w3")) return expert_proj::up;
  if (starts(s, "down_proj") || starts(s, "w2")) return expert_proj::down;
  return expert_proj::none;
}

}  // namespace

tensor_class classify_tensor(std::string_view name, const std::vector<int64_t>& shape) {
  tensor_class c;
  if (component_starts(name, "visual.") || component_starts(name, "vision_tower.") ||
      component_starts(name, "vision_model.") || component_starts(name, "multi_modal_projector.") ||
      component_starts(name, "mm_projector.") || component_starts(name, "audio_tower.")) {
    c.role = tensor_role::vision;
    c.kind = "vision";
    return c;
  }
  if (starts(name, "mtp.") || has(name, ".mtp.") || has(name, "model.mtp")) {
    c.role = tensor_role::mtp;
    c.kind = "mtp";
    return c;
  }
  std::string_view rest = name;
  size_t lp = name.find("layers.");
  while (lp != std::string_view::npos && lp > 0 && name[lp - 1] != '.') lp = name.find("layers.", lp + 1);
  if (lp != std::string_view::npos) {
    size_t after = 0;
    int l = parse_index(name, lp + 7, &after);
    if (l >= 0) {
      c.layer = l;
      rest = name.substr(after);
    }
  }
  std::string_view last = rest.substr(rest.rfind('.') == std::string_view::npos ? 0 : rest.rfind('.') + 1);
  // kind: rest without the trailing ".weight" and with the expert index removed
  std::string kind(rest);
  if (ends(kind, ".weight")) kind.resize(kind.size() - 7);
  c.kind = kind;

  if (ends(name, "weight_scale_inv") || ends(name, "weight_scale") || ends(name, "input_scale") ||
      ends(name, ".scales") || ends(name, "_scale_inv") || ends(name, "_scales")) {  // _scales: MXFP4's E8M0
    c.role = tensor_role::quant_scale;
    return c;
  }
  const bool is_bias = last == "bias" || (ends(name, "_bias") && !ends(name, "dt_bias") &&
                                          !ends(name, "e_score_correction_bias"));

  // routed experts
  size_t ep = rest.find("experts.");
  if (ep != std::string_view::npos && (ep == 0 || rest[ep - 1] == '.') && !has(rest, "shared_expert")) {
    size_t after = 0;
    int e = parse_index(rest, ep + 8, &after);
    if (e >= 0) {
      c.expert = e;
      c.proj = proj_of(rest.substr(after));
      c.kind = std::string(rest.substr(0, ep + 8)) + std::string(rest.substr(after));
      if (ends(c.kind, ".weight")) c.kind.resize(c.kind.size() - 7);
    } else {
      c.fused = true;
      c.proj = proj_of(rest.substr(ep + 8));
    }
    c.role = is_bias ? tensor_role::bias : tensor_role::routed_expert;
    return c;
  }
  if (is_bias) {
    c.role = tensor_role::bias;
    return c;
  }
  if (has(rest, "shared_expert_gate")) {
    c.role = tensor_role::shared_expert_gate;
    return c;
  }
  if (has(rest, "shared_expert.") || has(rest, "shared_experts.")) {
    c.role = tensor_role::shared_expert;
    c.proj = proj_of(rest.substr(rest.find("shared_expert") + (has(rest, "shared_experts.") ? 15 : 14)));
    return c;
  }
  if (has(rest, "mlp.gate.") || has(rest, "block_sparse_moe.gate.") || has(rest, "mlp.router.") ||
      ends(rest, "mlp.gate") || has(rest, "e_score_correction_bias")) {
    c.role = tensor_role::router;
    return c;
  }
  std::string_view comp = last;  // the component that names the parameter ("q_norm" in "...q_norm.weight")
  if (last == "weight" || last == "bias") {
    std::string_view head = rest.substr(0, rest.size() - last.size() - 1);
    size_t d = head.rfind('.');
    comp = d == std::string_view::npos ? head : head.substr(d + 1);
  }
  if (has(comp, "norm")) {
    c.role = tensor_role::norm;
    return c;
  }
  if (has(rest, "linear_attn.")) {
    if (has(rest, "conv1d") || has(rest, "A_log") || has(rest, "dt_bias") || shape.size() <= 1)
      c.role = tensor_role::ssm_param;
    else
      c.role = tensor_role::linear_attention;
    return c;
  }
  if (has(rest, "self_attn.") || has(rest, "attention.") || starts(rest, "attn.")) {
    c.role = shape.size() >= 2 ? tensor_role::attention : tensor_role::other;  // e.g. gpt-oss sinks [H]
    return c;
  }
  if (has(rest, "mlp.") || has(rest, "feed_forward.")) {
    c.role = tensor_role::dense_ffn;
    c.proj = proj_of(last == "weight" ? rest.substr(rest.rfind('.', rest.size() - 8) + 1) : last);
    return c;
  }
  if (c.layer < 0) {
    if (has(name, "embed_tokens") || has(name, "wte") || has(name, "tok_embeddings")) {
      c.role = tensor_role::embedding;
      return c;
    }
    if (starts(name, "lm_head") || ends(name, "lm_head.weight") || starts(name, "output.")) {
      c.role = tensor_role::output_head;
      return c;
    }
    if (has(name, "norm")) {
      c.role = tensor_role::norm;
      return c;
    }
  }
  c.role = tensor_role::other;
  return c;
}

tensor_class classify_tensor(std::string_view name, const std::vector<int64_t>& shape, const model_config& cfg) {
  tensor_class c = classify_tensor(name, shape);
  const nlohmann::json& t = cfg.text;
  const bool nextn = t.is_object() && t.contains("num_nextn_predict_layers") &&
                     t["num_nextn_predict_layers"].is_number_integer() && t["num_nextn_predict_layers"].get<int64_t>() > 0;
  if (nextn && c.layer >= 0 && c.layer >= cfg.num_layers && c.role != tensor_role::vision) {
    c = tensor_class{};
    c.role = tensor_role::mtp;
    c.kind = "mtp";
  }
  return c;
}

}  // namespace razor
