// Phase D of razor recover: the trained adapter merged into the teacher's (unquantized) experts and the model
// re-quantized with the recipe the student was made with, so the footprint is the student's:
//   W_gu[e] <- fakequant(W_gu_bf16[e] + s B_gu[e] A_gu[e]),   W_d[e] <- fakequant(W_d_bf16[e] + s B_d[e] A_d[e])
// (the seed's merge_adapter.py). The sum is formed in float32 on the teacher's values widened from BF16:
// delta[i][j] = sum over the rank of B[i][r] A[r][j] accumulated in double, then w += float(s * delta); the
// slice is then fake-quantized from float32 with the recipe's bits for that expert / projection (clip search
// included) by quantize_checkpoint's transform hook (quant/quantize.h): one pass, no temporary BF16 copy, every
// other tensor exactly as `razor quantize` makes it, the output an ordinary checkpoint with its
// razor_quant_summary.json.
//
// adapter.safetensors (phase C writes it; docs/recovery.md), per MoE layer L, F32:
//   model.layers.<L>.mlp.experts.gate_up.lora_A [E, r, H]   lora_B [E, 2I, r]  (rows: gate (I) | up (I))
//   model.layers.<L>.mlp.experts.down.lora_A    [E, r, I]   lora_B [E, H, r]
//   "__metadata__": {"format": "razor-opd-lora-1", "rank": "16", "scale": "2.0", "model": "<student dir>"}
// Fused checkpoints (gate_up_proj [E, 2I, H], down_proj [E, H, I]: qwen3_5_moe) take the whole B A; per-expert
// ones (gate_proj / up_proj [I, H], down_proj [H, I]: qwen3_moe) take rows [0, I) / [I, 2I) of B_gu A_gu.
//
// load_adapter refuses, naming the tensor, an adapter that does not fit the model: a tensor other than the four
// per MoE layer, a layer that is not a MoE layer of the model (or one missing), a dtype other than F32, a shape
// other than the model's [E, r, H] / [E, 2I, r] / [E, r, I] / [E, H, r], ranks that disagree, a scale that is not
// a finite number.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/recipe.h"
#include "quant/quantize.h"
#include "util/status.h"

namespace razor::recover {

inline constexpr const char* kAdapterFormat = "razor-opd-lora-1";

struct lora_layer {
  std::vector<float> a_gu, b_gu, a_d, b_d;  // [E, r, H], [E, 2I, r], [E, r, I], [E, H, r]
};

struct lora_adapter {
  int64_t rank = 0, experts = 0, hidden = 0, ff = 0;
  double scale = 2.0;
  std::string model;                 // metadata "model"
  std::map<int, lora_layer> layers;  // every MoE layer of the model
};

// The adapter tensor names of layer L ("model.layers.L.mlp.experts.gate_up.lora_A", ...).
std::string adapter_tensor_name(int layer, bool gate_up, bool a);

// Reads `path` and checks it against the model `cfg` describes (see the file comment).
result<lora_adapter> load_adapter(const std::string& path, const model_config& cfg);

// W (rows x cols, row-major, of expert e) += s * (B A)[row0 : row0 + rows] where B is [R_total, r] and A is
// [r, cols] (the arithmetic in the file comment).
void add_lora_delta(float* w, size_t rows, size_t cols, const float* b, const float* a, int64_t rank, size_t row0,
                    double scale);

// The quantize hook that merges `ad` (which must outlive it) into the routed experts of `ck`.
quant::tensor_transform merge_transform(const lora_adapter& ad);

// Writes the merged, re-quantized checkpoint of teacher `ck` to out_dir (atomically, as razor quantize).
result<quant::quantize_report> merge_adapter(const checkpoint& ck, const recipe& r, const lora_adapter& ad,
                                             const std::string& out_dir, quant::quantize_options opt = {},
                                             const progress_fn& progress = {});

}  // namespace razor::recover
