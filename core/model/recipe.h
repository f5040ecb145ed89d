// Fake-quant recipes (JSON files in recipes/). A recipe says how many bits each tensor gets:
//
//   {
//     "format": "razor.recipe/1",
//     "name": "seed-default", "description": "...",
//     "group": 128,            // group size along the input axis (0 = whole row)
//     "clip_steps": 16,        // MSE clip search candidates (0 = absmax)
//     "scale_bits": 16,        // storage of one per-group scale when a packed size is estimated
//     "roles": {"routed_expert": 3, "attention": 4, ...},   // roles not listed are kept
//     "overrides": [{"pattern": "regex on the tensor name", "bits": 8}],   // first match wins
//     "protect": ["regex", ...],                             // kept at stored precision, always
//     "expert_bits": {"<layer>": [bits of expert 0, 1, ...]} // per-expert (bit allocation output)
//     "two_level": {"target": 2.5, "lo": 1.58, "hi": 4}     // optional, see resolve()
//   }
//
// Bits are 2, 3, 4, 8, 1.58 (ternary, as the seed defines it) or 16 (= keep as stored). Precedence:
// protect > non-quantizable role (router, norm, SSM parameter, vision, MTP, bias, 1-D) > overrides >
// expert_bits (routed experts) > roles > keep.
#pragma once
#include <map>
#include <set>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "model/adapter.h"
#include "model/hf_config.h"
#include "util/status.h"

namespace razor {

struct tensor_entry;

inline constexpr double kKeepBits = 16.0;

struct recipe {
  std::string name, description, path;
  int group = 128;
  int clip_steps = 16;
  double scale_bits = 16.0;
  std::map<tensor_role, double> role_bits;
  struct override_rule {
    std::string pattern;
    std::shared_ptr<std::regex> re;
    double bits;
  };
  std::vector<override_rule> overrides;
  std::vector<override_rule> protect;  // bits unused
  std::map<int, std::vector<double>> expert_bits;
  // The seed's two-level study mix without a probe: average expert bits `target` as lo/hi tags with
  // frac_hi = clip((target - lo) / (hi - lo), 0, 1) (seed-reference §2.3), resolved per model by resolve().
  double two_level_target = 0, two_level_lo = 1.58, two_level_hi = 4;
  nlohmann::json extra;  // unknown top-level keys, kept when saved

  // Bits for the whole tensor (for fused expert tensors with per-expert bits: see expert_tag).
  double tensor_bits(const tensor_entry& t) const;
  // Bits of one routed expert inside a tensor (per-expert or fused); equals tensor_bits for others.
  double expert_tag(const tensor_entry& t, int expert) const;
  bool is_kept(double bits) const { return bits >= kKeepBits; }

  nlohmann::json to_json() const;
  // Fills expert_bits for every MoE layer that has none when two_level_target is set: the seed's "blind"
  // strategy (importance = expert index, so the last round(frac_hi * E) experts of each layer get hi).
  // `razor allocate` replaces this with a salience-ranked assignment. No-op otherwise.
  void resolve(const model_config& cfg);
};

bool valid_bits(double b);
result<recipe> parse_recipe(const nlohmann::json& j, const std::string& where);
result<recipe> load_recipe(const std::string& path_or_name);  // a path, or a name in recipes/
status save_recipe(const recipe& r, const std::string& path);
// Folders searched for a recipe given by name: $RAZOR_RECIPES, <exe>/../share/razor/recipes, the source tree.
std::vector<std::string> recipe_search_path();

}  // namespace razor
