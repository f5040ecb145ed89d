// What the reference engine (eval-ppl, probe, study, allocate --measure) and the GGUF export (pack) read from
// config.json, checked before either runs: every value in range, then against the shapes of the tensors that
// exist. One function for both, so a config they accept is one both run correctly (a partial_rotary_factor
// above 1 overran the engine's RoPE buffer; pack wrote block_count 1e12 wrapped to 32 bits, expert_used_count
// 64 with 16 experts, a transposed embedding llama.cpp then rejected).
//
// Errors (errc::bad_config) name config.json, the key as it is spelled there (text_config.num_experts,
// rope_parameters.partial_rotary_factor), its value, and the tensor whose shape contradicts it:
//   ".../config.json: vocab_size = 4096, hidden_size = 256: model.embed_tokens.weight should be [4096, 256],
//    but it is [256, 4096]"
// Architectures: qwen3_moe, qwen3_5_moe(_text), olmoe (QK-norm over the whole projection), qwen2_moe (q/k/v
// biases) and mixtral (block_sparse_moe router), the families the engine runs; other model types pass unchecked
// (their callers refuse them).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/adapter.h"
#include "model/hf_config.h"
#include "util/status.h"

namespace razor {

class checkpoint;

// A tensor as the model source stores it: its name there (for messages) and its shape (PyTorch order).
struct stored_tensor {
  std::string name;
  std::vector<int64_t> shape;
};

// Where the shapes come from (a checkpoint, the engine's weight providers, a GGUF file read back).
struct model_shapes {
  // A tensor by its name inside the text model ("layers.0.self_attn.q_proj.weight", "embed_tokens.weight",
  // "norm.weight", "lm_head.weight"); nullopt when absent. lm_head.weight is the stored head only (a tied
  // model has none).
  std::function<std::optional<stored_tensor>(const std::string& name)> tensor;
  // Routed expert `expert` of `layer`, projection p, as a [out, in] matrix; nullopt when absent.
  std::function<std::optional<stored_tensor>(int layer, int expert, expert_proj p)> expert;
};

// The values alone, no tensors: norms' epsilon > 0, RoPE theta > 0, 0 < partial_rotary_factor <= 1 with an
// even number of rotary dims, head counts that divide, 1 <= experts per token <= experts, the linear-attention
// head counts and dims, layer_types, mrope_section. Also what the engine and pack do not run (dense layers).
status check_config_values(const model_config& cfg);

// check_config_values, then every value against the shapes: the embedding and head [vocab, hidden], the layer
// count (layer n-1 present, layer n absent), each layer's norms, attention or linear-attention projections,
// router and experts [moe_intermediate_size, hidden], shared expert.
status check_config_shapes(const model_config& cfg, const model_shapes& s);

// The shapes of a checkpoint's tensors, and check_config_shapes on its config.
model_shapes checkpoint_shapes(const checkpoint& ck);
status check_checkpoint_config(const checkpoint& ck);

}  // namespace razor
