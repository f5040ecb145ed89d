// A Hugging Face config.json, normalised. Vision-language checkpoints nest the language model under
// "text_config" (Qwen3.5: model_type "qwen3_5_moe" with text_config.model_type "qwen3_5_moe_text");
// `text` is that object, or the whole config when it is flat. Families name the same quantity
// differently (num_experts / num_local_experts / n_routed_experts): the adapter table says which key.
//
// Parsing checks types and bounds every size, so nothing downstream allocates by a hostile number: each integer
// key must be a JSON integer (64.5 and "32" are errors; 1e3 is 1000) within the limits below (the layer count in
// [1, kMaxConfigLayers], the expert count at most kMaxConfigExperts, ...). Whether the values fit the model the engine
// or the GGUF export runs, and the tensors that exist, is model/config_check.h's job.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/status.h"

namespace razor {

// Razor's limits on the integer keys of a config (docs/limits.md), far above any published model (the largest:
// 160 layers, 384 experts, a 262,144-token vocabulary, hidden size 25,600). hf_config.cpp's table applies them per key.
inline constexpr int64_t kMaxConfigDim = (int64_t(1) << 31) - 1;  // any other width or count: fits int32 and GGUF's u32
inline constexpr int64_t kMaxConfigLayers = 4096;
inline constexpr int64_t kMaxConfigExperts = 65536;
inline constexpr int64_t kMaxConfigVocab = int64_t(1) << 24;
inline constexpr int64_t kMaxConfigWidth = int64_t(1) << 22;   // FFN widths
inline constexpr int64_t kMaxConfigHidden = int64_t(1) << 18;
inline constexpr int64_t kMaxConfigHeads = int64_t(1) << 14;   // head counts and head sizes

struct model_config {
  std::string source;        // the file (or what stood for it) the config came from, for messages
  nlohmann::json raw;        // the whole config.json
  nlohmann::json text;       // text_config, or raw when flat
  std::string model_type;    // text model type when nested ("qwen3_5_moe_text"), else raw's
  std::string top_model_type;
  std::vector<std::string> architectures;
  bool nested = false;

  int64_t hidden_size = 0, num_layers = 0, vocab_size = 0;
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;
  int64_t intermediate_size = 0;  // dense FFN width (0 when absent)
  int64_t num_experts = 0, num_experts_per_tok = 0, moe_intermediate_size = 0;
  int64_t shared_expert_intermediate_size = 0, n_shared_experts = 0;
  int64_t first_k_dense_replace = 0, decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  double rms_norm_eps = 1e-6, rope_theta = 10000.0, partial_rotary_factor = 1.0;
  bool tie_word_embeddings = false, norm_topk_prob = true;
  int64_t max_position_embeddings = 0;
  // Hybrid linear attention (Qwen3-Next / Qwen3.5 Gated DeltaNet)
  std::vector<std::string> layer_types;  // per layer: "linear_attention" or "full_attention"
  int64_t full_attention_interval = 0;
  int64_t linear_num_key_heads = 0, linear_num_value_heads = 0;
  int64_t linear_key_head_dim = 0, linear_value_head_dim = 0, linear_conv_kernel_dim = 0;

  // Where each value came from, by field name ("num_experts" -> "text_config.num_local_experts"), for messages;
  // absent when the default was used (key() then returns the usual key name).
  std::map<std::string, std::string> keys;
  std::string key(const std::string& field) const;

  bool is_moe() const { return num_experts > 0; }
  // RoPE'd dimensions of a head: floor(head_dim * partial_rotary_factor), as transformers and llama.cpp's
  // converter compute it.
  int64_t rotary_dims() const;
  bool layer_is_linear_attention(int64_t layer) const;
  bool layer_is_moe(int64_t layer) const;
};

// Parses and normalises; `where` names the file in errors. Fails with errc::bad_config when a key every model
// needs (hidden size, layer count) is missing, or when an integer key razor reads is not an integer within
// razor's limits (layers <= 4096, experts <= 65,536, vocabulary <= 16,777,216, hidden size <= 262,144, FFN
// widths <= 4,194,304, heads and head sizes <= 16,384: the table in hf_config.cpp, docs/limits.md), so that
// no count read here can size an allocation unchecked. Adapters and model/config_check.h check the rest.
result<model_config> parse_model_config(const nlohmann::json& j, const std::string& where);
// Reads config.json (a regular file of at most 16 MiB, JSON nested at most 64 deep: util/json_limits.h).
result<model_config> load_model_config(const std::string& config_json_path);

}  // namespace razor
