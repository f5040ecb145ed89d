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
// Bits are one of kRecipeBits: 1.58 (ternary, as the seed defines it), 2, 3, 4, 8 or 16 (= keep as stored).
// Precedence: protect > non-quantizable role (router, norm, SSM parameter, vision, MTP, bias, 1-D) >
// overrides > expert_bits (routed experts) > roles > keep.
//
// Loading validates every value and names the file, the JSON path and the value in errors: integers must be
// integers in range (group 0, a power of two or a multiple of 32, at most kMaxRecipeGroup; clip_steps 0 ..
// kMaxRecipeClipSteps; layer keys of expert_bits), bits must be in kRecipeBits, patterns must compile under
// util/regex.h's limits (PCRE2 syntax with ECMAScript-style escapes, docs/gguf.md "Pattern syntax").
#pragma once
#include <map>
#include <set>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/adapter.h"
#include "model/hf_config.h"
#include "util/regex.h"
#include "util/status.h"

namespace razor {

struct tensor_entry;

inline constexpr double kKeepBits = 16.0;
// The bit widths a recipe may give, the one table parsing, messages and the CLI's bit lists read.
inline constexpr double kRecipeBits[] = {1.58, 2, 3, 4, 8, kKeepBits};
inline constexpr int kMaxRecipeClipSteps = 32;   // = quant::kMaxClipSteps (static_assert in quant/quantize.cpp)
inline constexpr int kMaxRecipeGroup = 1 << 20;

struct recipe {
  std::string name, description, path;
  int group = 128;
  int clip_steps = 16;
  double scale_bits = 16.0;
  std::map<tensor_role, double> role_bits;
  struct override_rule {
    std::string pattern;
    regex re;
    double bits = kKeepBits;
    std::string origin;  // where it came from, for messages: "overrides[2]", "protect[0]"
  };
  std::vector<override_rule> overrides;
  std::vector<override_rule> protect;  // bits unused
  std::map<int, std::vector<double>> expert_bits;
  // The seed's two-level study mix without a probe: average expert bits `target` as lo/hi tags with
  // frac_hi = clip((target - lo) / (hi - lo), 0, 1) (seed-reference §2.3), resolved per model by resolve().
  double two_level_target = 0, two_level_lo = 1.58, two_level_hi = 4;
  nlohmann::json extra;  // unknown top-level keys, kept when saved

  // Bits for the whole tensor (for fused expert tensors with per-expert bits: see expert_tag). An error only
  // when a pattern reaches util/regex.h's match limits on this tensor's name (naming the recipe and the rule).
  result<double> tensor_bits(const tensor_entry& t) const;
  // Bits of one routed expert inside a tensor (per-expert or fused); equals tensor_bits for others.
  result<double> expert_tag(const tensor_entry& t, int expert) const;
  // Whether a protect or override pattern matches `name` (such a tensor's bits are not the role's).
  result<bool> pinned(const std::string& name) const;
  bool is_kept(double bits) const { return bits >= kKeepBits; }

  nlohmann::json to_json() const;
  // Fills expert_bits for every MoE layer that has none when two_level_target is set: the seed's "blind"
  // strategy (importance = expert index, so the last round(frac_hi * E) experts of each layer get hi).
  // `razor allocate` replaces this with a salience-ranked assignment. No-op otherwise.
  void resolve(const model_config& cfg);
};

bool valid_bits(double b);          // b is one of kRecipeBits
std::string recipe_bits_list();     // "1.58, 2, 3, 4, 8, 16"
std::string bits_text(double b);    // a bit width as recipes and messages write it (%g): "1.58", "3"
// A rule of `r`'s overrides or protect list: the pattern compiled under util/regex.h's limits. `origin` names it in
// errors ("overrides[2]"); patterns razor writes itself may be longer (max_pattern_bytes).
result<recipe::override_rule> make_override(const std::string& pattern, double bits, const std::string& origin,
                                            size_t max_pattern_bytes = regex_options().max_pattern_bytes);
result<recipe> parse_recipe(const nlohmann::json& j, const std::string& where);
result<recipe> load_recipe(const std::string& path_or_name);  // a path, or a name in recipes/
status save_recipe(const recipe& r, const std::string& path);
// Folders searched for a recipe given by name: $RAZOR_RECIPES, <exe>/../share/razor/recipes, the source tree.
std::vector<std::string> recipe_search_path();

}  // namespace razor
