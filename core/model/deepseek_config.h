// The DeepSeek family's keys of config.json (model_type deepseek_v2, deepseek_v3, kimi_k2): MLA's ranks and head
// sizes, the leading dense layers, the group-limited router. Read by the engine (engine/mla.h) and checked by
// model/config_check.h against the tensors.
#pragma once
#include <cstdint>
#include <string>

#include "model/hf_config.h"
#include "util/status.h"

namespace razor {

// The DeepSeek part of model_dims (zero for other families).
struct deepseek_dims {
  int64_t q_lora_rank = 0;  // 0: a direct q_proj
  int64_t kv_lora_rank = 0, qk_nope = 0, qk_rope = 0, v_head_dim = 0;
  int64_t first_dense = 0, dense_ff = 0, n_shared = 0;
  int64_t n_group = 1, topk_group = 1;
  bool sigmoid = false;       // scoring_func sigmoid (V3) vs softmax (V2)
  bool score_bias = false;    // topk_method noaux_tc: e_score_correction_bias ranks the choice
  bool group_max = false;     // topk_method group_limited_greedy: a group's score is its best expert
  double routed_scale = 1.0;  // routed_scaling_factor
  double mscale = 1.0;        // the scores are multiplied by mscale^2: 1 + 0.1 mscale_all_dim ln(factor) with YaRN
  // rope_scaling {type yarn} (V3, V2, Kimi-K2 as released), with mscale == mscale_all_dim (RoPE itself unscaled)
  bool yarn = false;
  double yarn_factor = 1.0, yarn_beta_fast = 32.0, yarn_beta_slow = 1.0, yarn_mscale_all_dim = 0.0;
  int64_t yarn_orig_ctx = 0;
  int64_t qk_head_dim() const { return qk_nope + qk_rope; }
};

// Whether a model_type is one of the family's (deepseek_v2, deepseek_v3, kimi_k2).
bool is_deepseek(const std::string& model_type);
// The family's keys of config.json, checked (model/config_check.h checks the common ones first).
result<deepseek_dims> deepseek_dims_from_config(const model_config& cfg);

}  // namespace razor
