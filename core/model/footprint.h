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

#include <span>

#include "model/adapter.h"
#include "util/status.h"

namespace razor {

class checkpoint;
struct recipe;
struct tensor_entry;

// One tensor's (or one expert's slice of a fused tensor's) share of a footprint: `params` weights at `bits`
// (>= kKeepBits: kept), `scale_bits` the total scale storage they add when quantized, `kept_bits` their total
// stored bits when kept. The one accounting rule: compute_footprint and the GUI's live footprint both add
// shares.
struct footprint_share {
  tensor_role role = tensor_role::other;
  int layer = -1;  // by_layer counts routed experts of layers 0 .. by_layer.size() - 1
  int64_t params = 0;
  double bits = 0;
  double scale_bits = 0;
  double kept_bits = 0;
};

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

  void add(const footprint_share& s);
};

// Scale bits per weight of a tensor under a recipe: one scale of scale_bits per group (the recipe's group, or
// the whole row when the row is not a multiple of it).
double scale_bits_per_param(const tensor_entry& t, const recipe& r);

// Adds one tensor at the recipe's bits for it (per expert for a fused routed-expert tensor with expert_bits).
// An error only when a recipe pattern reaches the regex match limits on the tensor's name; nothing is added then.
status add_tensor_footprint(footprint& f, const tensor_entry& t, const recipe& r);

// The footprint of tensors known by shape, dtype and class alone (a checkpoint's, or the GUI's inventory):
// `r` as given (a two-level target already resolved), by_layer sized to `num_layers`.
result<footprint> compute_footprint(std::span<const tensor_entry> tensors, int64_t num_layers, const recipe& r);

// An error only when a recipe pattern reaches the regex match limits on a tensor name (recipe::tensor_bits).
result<footprint> compute_footprint(const checkpoint& ck, const recipe& r);

}  // namespace razor
