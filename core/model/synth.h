// Synthetic checkpoints with any config's exact tensor names and shapes, for scale tests and benchmarks
// (the real Qwen3.5-122B-A10B cannot be downloaded here). Families: qwen3_5_moe / qwen3_next (hybrid
// Gated DeltaNet), qwen3_moe, qwen2_moe, olmoe, mixtral, deepseek_v3 / v2 / kimi_k2, gpt_oss (BF16 experts [E, in, out],
// or MXFP4 as released: mxfp4_experts), and dense llama/qwen3. MTP layers are not synthesised; the vision tower
// (model.visual.*, from config.json's vision_config: model/vision_tower.h) only when asked (synth_options::vision),
// so the text model's tensors, sizes and footprints stay those of the text config.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "model/hf_config.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor {

struct synth_tensor {
  std::string name;
  std::vector<int64_t> shape;
  enum class init { normal, ones, zeros, a_log, small } how = init::normal;
};

struct synth_options {
  bool sparse = false;        // no data: every tensor is a hole of zeros (sparse files, instant)
  // Hub layout of Qwen3.5 (gate_up_proj [E,2I,H]); false = experts.E.gate_proj. Families the Hub stores per
  // expert (mixtral, olmoe, qwen2_moe, qwen3_next) are always written per expert.
  bool fused_experts = true;
  uint64_t shard_bytes = 5000000000ull;
  uint64_t seed = 1;
  // Standard deviation of the random linear weights and embeddings. The default gives near-uniform predictions;
  // about 0.5 on a tiny model makes the logits far from uniform, so that comparing two implementations sees a
  // wrong RoPE, norm, routing or scaling (tests/engine/test_families.cpp).
  float stddev = 0.02f;
  // false: each value a sum of 4 uniforms (bounded at 3.5 standard deviations; one sequential stream, the
  // fixtures' data). true: realistic tails for scale tests: 0.5 % of the values 5x wider (kurtosis ~10) and
  // 0.5 % of each matrix's input columns 6x larger (outlier columns), the same overall deviation; drawn on
  // all cores (each 64 Ki-value block from its own seed), so large slices write at disk speed.
  bool heavy_tails = false;
  // Norm weights (and the other tensors initialised to ones) are 1 + norm_jitter x N(0, 1): with 0, exactly 1, and a
  // forward that ignores a norm's weight is indistinguishable from one that applies it.
  float norm_jitter = 0.0f;
  // BF16, F16, F32, or F8_E4M3: FP8 linear weights with 128 x 128 block scales "<name>_scale_inv" (F32) and
  // quantization_config in config.json (the Hub's fine-grained layout, model/checkpoint.h), the rest BF16.
  dtype dt = dtype::bf16;
  // gpt_oss: the experts (gate_up_proj, down_proj) as the Hub releases them, MXFP4 "<name>_blocks" / "<name>_scales"
  // of [E, out, in] values with quantization_config {"quant_method": "mxfp4"}, the rest in `dt`.
  bool mxfp4_experts = false;
  // Also the vision tower of config.json's vision_config (Qwen3-VL / Qwen3.5: model.visual.*, the Hub's names and
  // shapes, model/vision_tower.h) and the Qwen-VL preprocessor_config.json (image mean / std) beside config.json:
  // the fixture of the mmproj export (gguf/mmproj.h). An error when the config has no vision_config.
  bool vision = false;
};

// The tensor list a config implies, in the order a checkpoint stores it.
result<std::vector<synth_tensor>> synth_plan(const model_config& cfg, const synth_options& opt);
// Writes config.json, model-0000N-of-0000M.safetensors and model.safetensors.index.json into out_dir
// (built under a temporary name, renamed when complete).
status synth_checkpoint(const nlohmann::json& config, const std::string& out_dir, const synth_options& opt,
                        const progress_fn& progress = {});

}  // namespace razor
