// Model adapters and tensor roles. One table (adapter_table()) keyed on model_type says, per family,
// which config keys hold the expert counts and what its tensors are called; classify() gives every
// tensor name a role. Roles decide default precision: a recipe quantizes routed experts, shared experts,
// attention, linear-attention projections, dense FFNs, embeddings and the head, and keeps routers, norms,
// SSM parameters (conv1d, A_log, dt_bias), vision and biases at their stored precision.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/hf_config.h"
#include "util/status.h"

namespace razor {

#define RAZOR_ROLES(X)                                                          \
  X(routed_expert, "routed_expert", true)                                       \
  X(shared_expert, "shared_expert", true)                                       \
  X(shared_expert_gate, "shared_expert_gate", true)                             \
  X(router, "router", false)                                                    \
  X(attention, "attention", true)                                               \
  X(linear_attention, "linear_attention", true)                                 \
  X(ssm_param, "ssm_param", false)                                              \
  X(dense_ffn, "dense_ffn", true)                                               \
  X(norm, "norm", false)                                                        \
  X(embedding, "embedding", true)                                               \
  X(output_head, "output_head", true)                                           \
  X(vision, "vision", false)                                                    \
  X(mtp, "mtp", false)                                                          \
  X(quant_scale, "quant_scale", false)                                          \
  X(bias, "bias", false)                                                        \
  X(other, "other", false)

enum class tensor_role : uint8_t {
#define X(id, name, q) id,
  RAZOR_ROLES(X)
#undef X
};
inline constexpr int n_roles = int(tensor_role::other) + 1;

std::string_view role_name(tensor_role r);
bool role_from_name(std::string_view name, tensor_role* out);
// True for roles a recipe quantizes by default (weights of linear maps and embeddings).
bool role_is_quantizable(tensor_role r);

enum class expert_proj : uint8_t { none, gate, up, down, gate_up };
std::string_view proj_name(expert_proj p);

struct tensor_class {
  tensor_role role = tensor_role::other;
  int layer = -1;      // -1 for tensors outside the decoder layers
  int expert = -1;     // routed expert index for per-expert tensors; -1 for fused or non-expert
  expert_proj proj = expert_proj::none;
  bool fused = false;  // a 3-D [E, out, in] tensor holding every expert of the layer
  std::string kind;    // short name within the layer: "self_attn.q_proj", "linear_attn.conv1d", ...
};

struct adapter_def {
  std::string name;                     // "qwen3_5_moe"
  std::vector<std::string> model_types; // the model_type values it serves
  bool moe = true;
  std::string gguf_arch;                // llama.cpp architecture name, "" when we cannot export it
  std::vector<std::string> required_keys;  // text-config keys the adapter needs (bad_config otherwise)
  std::string note;
};

const std::vector<adapter_def>& adapter_table();
// Exact model_type match first (text model type, then the top-level one), else the generic fallback.
const adapter_def& adapter_for(const model_config& cfg);
// Checks the config has the keys the adapter needs; the message lists the missing ones.
status check_adapter_config(const adapter_def& a, const model_config& cfg, const std::string& where);

// Role of one tensor from its name and shape. Works for every adapter in the table (Hub per-expert
// layout `experts.E.gate_proj.weight`, Mixtral `block_sparse_moe.experts.E.w1`, fused 3-D
// `experts.gate_up_proj`, the `model.language_model.` prefix of vision-language checkpoints).
tensor_class classify_tensor(std::string_view name, const std::vector<int64_t>& shape);
// The same with the model's config: DeepSeek-V3's multi-token-prediction layers (num_nextn_predict_layers > 0),
// stored as model.layers.N.* for N >= num_hidden_layers, are tensor_role::mtp (layer -1, kind "mtp"), not decoder
// layers: no recipe quantizes them, the engine never loads them, and the GGUF conversion drops them as llama.cpp's
// converter does for deepseek2 (skip_mtp).
tensor_class classify_tensor(std::string_view name, const std::vector<int64_t>& shape, const model_config& cfg);

}  // namespace razor
