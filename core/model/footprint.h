// Footprint of a recipe on a checkpoint, from shapes alone (no tensor data is read).
//
// Two conventions are reported side by side:
//  - the seed's (seed-reference.md §1.5): effective bits = parameter-weighted average of the recipe's
//    bit tags over the tensors it quantizes only (routers, norms, conv, vision are outside the average,
//    scales ignored); its footprint_gb = all parameters x that average / 8 / 1e9;
//  - ours, the packed size: quantized weights at their bits + one scale of `scale_bits` per group
//    (group = recipe group, or the whole row when the row is not a multiple of it), plus every kept
//    tensor at its stored precision. bits_per_weight = packed bits / all parameters.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "model/adapter.h"

namespace razor {

class checkpoint;
struct recipe;

struct footprint_totals {
  int64_t params = 0;
  int64_t params_quantized = 0;
  double weight_bits = 0;  // sum over quantized params of their bits
  double scale_bits = 0;   // sum of scale storage bits
  double kept_bits = 0;    // kept tensors at stored precision
  double packed_bits() const { return weight_bits + scale_bits + kept_bits; }
};

struct footprint {
  footprint_totals all;
  std::map<tensor_role, footprint_totals> by_role;
  std::vector<footprint_totals> by_layer;       // routed experts only, per layer
  std::map<double, int64_t> params_by_bits;     // quantized params per bit tag (16 = kept)

  double seed_effective_bits() const;           // tag average over quantized tensors
  double effective_bits_with_scales() const;    // (weights + scales) / quantized params
  double seed_footprint_gb() const;             // all params x seed bits / 8e9
  double packed_bytes() const { return all.packed_bits() / 8.0; }
  double bits_per_weight() const;               // packed bits / all params
  double expert_avg_bits() const;
  nlohmann::json to_json() const;
};

// An error only when a recipe pattern reaches the regex match limits on a tensor name (recipe::tensor_bits).
result<footprint> compute_footprint(const checkpoint& ck, const recipe& r);

}  // namespace razor
