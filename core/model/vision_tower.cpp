#include "model/vision_tower.h"

#include <algorithm>
#include <cmath>

namespace razor {

namespace {

// An integer key of vision_config: absent -> `def` (or an error when `def` < 0), else a JSON integer in [lo, hi].
status int_key(const nlohmann::json& vc, const std::string& where, const char* key, int64_t def, int64_t lo,
               int64_t hi, int64_t& out, bool* present = nullptr) {
  auto it = vc.find(key);
  if (present) *present = it != vc.end();
  if (it == vc.end()) {
    if (def < 0) return make_error(errc::bad_config, where + ": vision_config." + key + " is missing");
    out = def;
    return {};
  }
  // A JSON integer, or a float with an integral value (1e3), as hf_config reads integer keys.
  const bool integral = it->is_number_integer() ||
                        (it->is_number_float() && std::isfinite(it->get<double>()) &&
                         it->get<double>() == std::floor(it->get<double>()));
  if (!integral) return make_error(errc::bad_config, where + ": vision_config." + key + " is not an integer");
  const double d = it->get<double>();
  if (d < double(lo) || d > double(hi))
    return make_error(errc::bad_config, where + ": vision_config." + key + " = " + it->dump() + " is outside [" +
                                            std::to_string(lo) + ", " + std::to_string(hi) + "]");
  const int64_t v = it->is_number_float() ? int64_t(d) : it->get<int64_t>();
  out = v;
  return {};
}

}  // namespace

result<vision_tower_config> parse_vision_config(const nlohmann::json& config, const std::string& where) {
  if (!config.is_object() || !config.contains("vision_config") || !config["vision_config"].is_object())
    return make_error(errc::bad_config, where + ": no vision_config (the checkpoint has no vision tower)");
  const nlohmann::json& vc = config["vision_config"];
  vision_tower_config v;
  RAZOR_TRY(int_key(vc, where, "depth", -1, 1, kMaxVisionDepth, v.depth));
  RAZOR_TRY(int_key(vc, where, "hidden_size", -1, 1, kMaxVisionWidth, v.hidden_size));
  RAZOR_TRY(int_key(vc, where, "intermediate_size", -1, 1, kMaxVisionWidth, v.intermediate_size));
  RAZOR_TRY(int_key(vc, where, "num_heads", -1, 1, kMaxVisionWidth, v.num_heads));
  RAZOR_TRY(int_key(vc, where, "out_hidden_size", -1, 1, kMaxVisionWidth, v.out_hidden_size));
  RAZOR_TRY(int_key(vc, where, "in_channels", 3, 1, 64, v.in_channels));
  RAZOR_TRY(int_key(vc, where, "patch_size", 16, 1, 1024, v.patch_size));
  RAZOR_TRY(int_key(vc, where, "temporal_patch_size", 2, 1, 64, v.temporal_patch_size));
  RAZOR_TRY(int_key(vc, where, "spatial_merge_size", 2, 1, 64, v.spatial_merge_size, &v.has_spatial_merge_size));
  RAZOR_TRY(int_key(vc, where, "num_position_embeddings", 2304, 1, kMaxVisionPositions, v.num_position_embeddings));
  RAZOR_TRY(int_key(vc, where, "image_size", 0, 0, kMaxVisionPositions, v.image_size));
  if (v.merged_width() > kMaxVisionWidth)
    return make_error(errc::bad_config, where + ": vision_config.hidden_size x spatial_merge_size^2 = " +
                                            std::to_string(v.merged_width()) + " is above " +
                                            std::to_string(kMaxVisionWidth));
  if (auto it = vc.find("hidden_act"); it != vc.end()) {
    if (!it->is_string()) return make_error(errc::bad_config, where + ": vision_config.hidden_act is not a string");
    v.hidden_act = it->get<std::string>();
  }
  if (auto it = vc.find("deepstack_visual_indexes"); it != vc.end()) {
    if (!it->is_array()) return make_error(errc::bad_config, where + ": vision_config.deepstack_visual_indexes is not a list");
    for (auto& e : *it) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() >= v.depth)
        return make_error(errc::bad_config, where + ": vision_config.deepstack_visual_indexes holds " + e.dump() +
                                                ", not a block index in [0, " + std::to_string(v.depth) + ")");
      const int64_t idx = e.get<int64_t>();
      if (std::find(v.deepstack_visual_indexes.begin(), v.deepstack_visual_indexes.end(), idx) !=
          v.deepstack_visual_indexes.end())
        return make_error(errc::bad_config, where + ": vision_config.deepstack_visual_indexes lists block " +
                                                std::to_string(idx) + " twice");
      v.deepstack_visual_indexes.push_back(idx);
    }
  }
  return v;
}

std::vector<vision_tensor> vision_tower_tensors(const vision_tower_config& v) {
  std::vector<vision_tensor> out;
  const int64_t H = v.hidden_size, F = v.intermediate_size, M = v.merged_width(), O = v.out_hidden_size;
  auto add = [&](std::string n, std::vector<int64_t> s, bool norm = false) { out.push_back({std::move(n), std::move(s), norm}); };
  auto merger = [&](const std::string& p, int64_t norm_width) {
    add(p + "linear_fc1.bias", {M});
    add(p + "linear_fc1.weight", {M, M});
    add(p + "linear_fc2.bias", {O});
    add(p + "linear_fc2.weight", {O, M});
    add(p + "norm.bias", {norm_width});
    add(p + "norm.weight", {norm_width}, true);
  };
  for (int64_t b = 0; b < v.depth; ++b) {
    const std::string p = "blocks." + std::to_string(b) + ".";
    add(p + "attn.proj.bias", {H});
    add(p + "attn.proj.weight", {H, H});
    add(p + "attn.qkv.bias", {3 * H});
    add(p + "attn.qkv.weight", {3 * H, H});
    add(p + "mlp.linear_fc1.bias", {F});
    add(p + "mlp.linear_fc1.weight", {F, H});
    add(p + "mlp.linear_fc2.bias", {H});
    add(p + "mlp.linear_fc2.weight", {H, F});
    add(p + "norm1.bias", {H});
    add(p + "norm1.weight", {H}, true);
    add(p + "norm2.bias", {H});
    add(p + "norm2.weight", {H}, true);
  }
  // Deepstack mergers normalise after the 2x2 shuffle (use_postshuffle_norm): their norm is M wide.
  for (size_t k = 0; k < v.deepstack_visual_indexes.size(); ++k)
    merger("deepstack_merger_list." + std::to_string(k) + ".", M);
  merger("merger.", H);
  add("patch_embed.proj.bias", {H});
  add("patch_embed.proj.weight", {H, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size});
  add("pos_embed.weight", {v.num_position_embeddings, H});
  return out;
}

nlohmann::json qwen_vl_preprocessor_config(const vision_tower_config& v) {
  return {{"image_mean", {0.5, 0.5, 0.5}},
          {"image_std", {0.5, 0.5, 0.5}},
          {"image_processor_type", "Qwen2VLImageProcessorFast"},
          {"merge_size", v.spatial_merge_size},
          {"patch_size", v.patch_size},
          {"processor_class", "Qwen3VLProcessor"},
          {"size", {{"longest_edge", 16777216}, {"shortest_edge", 65536}}},
          {"temporal_patch_size", v.temporal_patch_size}};
}

}  // namespace razor
