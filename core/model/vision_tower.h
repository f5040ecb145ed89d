// The vision tower of a Qwen3-VL / Qwen3.5 checkpoint (config.json's vision_config, tensors model.visual.*), as
// transformers' Qwen3VLVisionModel (and Qwen3_5*'s, the same tower without deepstack mergers) stores it:
//   patch_embed.proj.weight  [hidden, in_channels, temporal_patch, patch, patch]   (a Conv3d), .bias [hidden]
//   pos_embed.weight         [num_position_embeddings, hidden]                      (learned, a square grid)
//   blocks.N.norm1 / norm2   LayerNorm [hidden] (weight and bias)
//   blocks.N.attn.qkv        [3 hidden, hidden] + bias;  blocks.N.attn.proj [hidden, hidden] + bias
//   blocks.N.mlp.linear_fc1  [intermediate, hidden] + bias;  linear_fc2 [hidden, intermediate] + bias
//   merger.norm              LayerNorm [hidden]; merger.linear_fc1 [M, M] + bias; merger.linear_fc2 [out, M] + bias,
//                            M = hidden x spatial_merge_size^2, out = out_hidden_size (the text model's hidden size)
//   deepstack_merger_list.K  (one per deepstack_visual_indexes entry, Qwen3-VL only): norm LayerNorm [M],
//                            linear_fc1 [M, M] + bias, linear_fc2 [out, M] + bias
// The one list of these names and shapes: `razor synth --vision` writes it, the mmproj export (gguf/mmproj.h)
// reads it. Values absent from vision_config take transformers' defaults (Qwen3VLVisionConfig).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/status.h"

namespace razor {

// Razor's bounds on vision_config (far above the published towers: 27 blocks of 1152, 4304-wide MLPs).
inline constexpr int64_t kMaxVisionDepth = 1024;
inline constexpr int64_t kMaxVisionWidth = int64_t(1) << 16;
inline constexpr int64_t kMaxVisionPositions = int64_t(1) << 20;

struct vision_tower_config {
  int64_t depth = 0, hidden_size = 0, intermediate_size = 0, num_heads = 0;
  int64_t in_channels = 3, patch_size = 16, temporal_patch_size = 2, spatial_merge_size = 2;
  int64_t num_position_embeddings = 2304, out_hidden_size = 0;
  int64_t image_size = 0;                       // vision_config.image_size; 0 when absent (Qwen3-VL derives it)
  bool has_spatial_merge_size = false;          // the key is in the config (the converter writes it only then)
  std::vector<int64_t> deepstack_visual_indexes;
  std::string hidden_act = "gelu_pytorch_tanh";
  int64_t merged_width() const { return hidden_size * spatial_merge_size * spatial_merge_size; }
};

// vision_config of a config.json (`config` is the whole file; `where` names it in errors). errc::bad_config when
// there is none, or a key is not an integer within the bounds above, or a deepstack index is outside [0, depth).
result<vision_tower_config> parse_vision_config(const nlohmann::json& config, const std::string& where);

struct vision_tensor {
  std::string name;             // below the tower's prefix: "blocks.3.attn.qkv.weight"
  std::vector<int64_t> shape;   // as stored (PyTorch order)
  bool norm = false;            // a LayerNorm weight (initialised to ones by synth)
};

// Every tensor of the tower, in the Hub's (sorted) order.
std::vector<vision_tensor> vision_tower_tensors(const vision_tower_config& v);

// The prefix of the tower's tensors in a checkpoint: "model.visual." (Qwen3.5, Qwen3-VL on the Hub).
inline constexpr const char* kVisionPrefix = "model.visual.";

// preprocessor_config.json of Qwen3-VL / Qwen3.5 (image mean and std 0.5, the tower's patch and merge sizes), for
// synthetic checkpoints: the converter reads image_mean / image_std from it.
nlohmann::json qwen_vl_preprocessor_config(const vision_tower_config& v);

}  // namespace razor
