// Family-specific pieces of the reference forward pass (model_runner.h), one file per family
// (family_<name>.cpp), so that the shared runner keeps only what the families share.
#pragma once
#include "engine/model_runner.h"

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

}  // namespace razor::engine
