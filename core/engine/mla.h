// DeepSeek-V2 / V3 / Kimi-K2 pieces of the reference engine (model_type deepseek_v2, deepseek_v3, kimi_k2; llama.cpp
// arch deepseek2): Multi-head Latent Attention, the leading dense layers and the group-limited router.
//
// Math (transformers' modeling_deepseek_v3 / the Hub's modeling_deepseek.py, and llama.cpp's deepseek2 graph):
//   MLA:      q = q_b(rms(q_a x) * q_a_layernorm) (q_lora_rank set) or q_proj x (V2-Lite), per head
//             [q_nope (qk_nope_head_dim) | q_pe (qk_rope_head_dim)];
//             kv_a_proj_with_mqa x = [c (kv_lora_rank) | k_pe (qk_rope_head_dim, one for all heads)];
//             kv_b(rms(c) * kv_a_layernorm) per head = [k_nope (qk_nope_head_dim) | v (v_head_dim)];
//             RoPE on q_pe and k_pe only, adjacent pairs (2i, 2i+1) (the Hub's interleaved layout, llama.cpp's
//             normal RoPE; YaRN-blended frequencies with rope_scaling); scores (q_nope.k_nope + q_pe.k_pe) *
//             mscale^2 / sqrt(qk_nope + qk_rope), causal softmax, o_proj over the heads' v outputs
//             (mscale = 1 + 0.1 mscale_all_dim ln(factor) with YaRN, else 1).
//   Dense:    layers below first_k_dense_replace: down(silu(gate x) * up x) of intermediate_size.
//   Routing:  s = sigmoid(router x) (scoring_func sigmoid, V3) or softmax (V2); the choice ranks s + bias
//             (e_score_correction_bias, topk_method noaux_tc) within the topk_group best of n_group groups (a
//             group's score: the sum of its two best (noaux_tc), or its best (group_limited_greedy)); the weights
//             are s of the chosen experts, renormalised when norm_topk_prob, times routed_scaling_factor.
//   Shared:   n_shared_experts experts as one SwiGLU of moe_intermediate_size x n_shared_experts, ungated.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "model/deepseek_config.h"
#include "util/status.h"

namespace razor::engine {

struct model_dims;
class forward_observer;
class weight_provider;
using razor::deepseek_dims;
using razor::is_deepseek;

// One layer's DeepSeek-only weights (transposed linear maps). Routed experts and the router are moe_weights'.
struct mla_weights {
  linear q, q_a, q_b, kv_a, kv_b, o;  // q (no q_lora_rank) or q_a + q_b
  std::vector<float> q_a_norm, kv_a_norm;
  bool moe = false;                   // the layer routes (else: the dense MLP below)
  linear dense_gate_up, dense_down;   // dense layers: [gate | up] of dense_ff, down
  size_t bytes() const;
};

result<mla_weights> load_mla(weight_provider& wp, const model_dims& d, int layer, weight_layout layout);

// The attention block (x normed [n, hidden] -> y), sequences as in model_runner.h's attention_block.
void mla_attention_block(const model_dims& d, const mla_weights& w, const float* x,
                         const std::vector<size_t>& seq_start, float* y, int layer, forward_observer* obs);
// A dense layer's MLP.
void dense_mlp_block(const model_dims& d, const mla_weights& w, const float* x, size_t n, float* y, int layer,
                     forward_observer* obs);
// Group-limited top-k of one token: logits [n_experts] -> ids / weights [top_k] (bias empty unless noaux_tc).
void deepseek_route(const model_dims& d, const std::vector<float>& bias, const float* logits, int32_t* ids,
                    float* wts);

// Input statistics of x [n, cols] to the observer under each of `names` (after "layers.L."), once.
void observe_inputs(forward_observer* obs, int layer, size_t n, const float* x, int64_t cols,
                    std::initializer_list<const char*> names);

// The RoPE frequencies of the qk_rope_head_dim dims (YaRN-blended when rope_scaling says so).
std::vector<float> mla_inv_freq(const deepseek_dims& s, double theta);
// Memory of one MLA layer for plan_memory, in floats: its attention weights (plus the dense MLP of a leading
// layer), the attention's scratch per token, and what a token keeps for the later ones of its sequence.
struct mla_footprint {
  uint64_t weights = 0, work_per_token = 0, kv_per_token = 0;
};
mla_footprint mla_plan(const model_dims& d);

// Adjacent-pair RoPE on `rot` dims: pairs (2i, 2i+1), angle pos * inv_freq[i].
void rope_pairs(float* head, int64_t rot, const float* inv_freq, double pos);

}  // namespace razor::engine
