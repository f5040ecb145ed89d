// Family-specific pieces of the reference forward pass (model_runner.h), one file per family
// (family_<name>.cpp), so that the shared runner keeps only what the families share.
#pragma once
#include <algorithm>
#include <cmath>

#include "engine/model_runner.h"
#include "kernels/gpt_oss_swiglu.h"

namespace razor::engine {

// Qwen3-Next's Gated DeltaNet projections of layer `layer` into the layout the shared deltanet_block reads
// (qwen3_5_moe's: qkv = [q of every key head | k of every key head | v of every value head], z, b, a by value
// head in HF's grouped order). The Hub stores them fused per key head g (r = value heads per key head):
//   in_proj_qkvz rows: for g in key heads: [q_g (head_k_dim), k_g (head_k_dim), v_g (r x head_v_dim), z_g (r x head_v_dim)]
//   in_proj_ba rows:   for g in key heads: [b_g (r), a_g (r)]
// Its GGUF (qwen3next) stores q/k/v and z apart, as attn_qkv / attn_gate: read back they arrive as in_proj_qkv
// and in_proj_z (already in the shared layout), taken when in_proj_qkvz is absent.
status load_qwen3_next_projections(weight_provider& wp, const model_dims& d, int layer, weight_layout lay,
                                   deltanet_weights& w);

// The row order of the split is model/qwen3_next_rows.h's (one copy for the engine and the GGUF conversion).

// ---- gpt-oss (model_type gpt_oss, family_gpt_oss.cpp) ----
// Math (transformers' modeling_gpt_oss and llama.cpp's gpt-oss graph):
//   attention:  q / k / v / o with biases; NeoX RoPE, YaRN-blended frequencies when rope_scaling says yarn, cos and
//               sin times 1 + 0.1 ln(factor) (ggml's mscale: the scores times its square); scores / sqrt(head_dim);
//               self_attn.sinks: one logit per head joins the softmax's denominator (max taken over it too) and
//               attends nowhere; layers named sliding_attention by layer_types (else the even ones) see the last
//               sliding_window positions (query i, key j: i - j < sliding_window).
//   router:     logits = router x + bias; the top-k logits (ties: the lower expert), softmax over those k.
//   expert:     gate_up_proj's rows interleave gate (even) and up (odd), its bias too; g = min(gate + b_g, limit),
//               u = clamp(up + b_u, -limit, limit), act = (u + 1) g sigmoid(1.702 g); out = down act + b_down.
// Hub tensors: model.layers.L.self_attn.{q,k,v,o}_proj.{weight,bias}, self_attn.sinks, mlp.router.{weight,bias},
// mlp.experts.{gate_up_proj, gate_up_proj_bias, down_proj, down_proj_bias} (BF16 experts stored [E, in, out], MXFP4
// as _blocks / _scales [E, out, in]: model/checkpoint.h's expert views take both). A gpt-oss GGUF read back gives
// the expert biases as mlp.experts.{gate,up,down}_proj.bias [E, n] (ffn_*_exps.bias), taken when the Hub's are absent.
// dims_from_config's gpt_oss part: windows, YaRN, the SwiGLU limit (errors name config.json's key).
status gpt_oss_dims(const model_config& cfg, model_dims& d);
// The layer's gpt-oss-only weights: o_proj's bias, the sinks, the window, the router's bias and the experts' biases.
status load_gpt_oss_extras(weight_provider& wp, const model_dims& d, int layer, layer_weights& w);
// The clamped SwiGLU (alpha 1.702): kernels/gpt_oss_swiglu.h, one copy with the GPU engine's.
using cu::gpt_oss_swiglu;
using cu::k_gpt_oss_alpha;
// The RoPE frequencies of the full-attention families (YaRN-blended for gpt_oss's yarn) and the factor the scores
// take from YaRN's mscale (1 without it).
std::vector<float> attention_inv_freq(const model_dims& d);
float attention_score_mscale2(const model_dims& d);

}  // namespace razor::engine
