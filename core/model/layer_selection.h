// Which tensors of a checkpoint one task of a split job handles (razor quantize --layers, razor pack --layers,
// the Slurm array jobs of core/jobs/slurm.h).
//
//   "A:B"       decoder layers A <= layer < B (half-open)
//   "rest"      every tensor outside the decoder layers: embeddings, final norm, lm_head, vision tower
//   "A:B,rest"  both (the Slurm plan gives "rest" to task 0)
//   "all"       everything (the default: an ordinary single-process run)
//
// A set of selections covers a model exactly once when every layer 0..n-1 is in exactly one range and exactly
// one selection has "rest"; check_cover() says which layer is missing or doubled.
#pragma once
#include <string>
#include <vector>

#include "util/status.h"

namespace razor {

struct layer_selection {
  bool all = true;
  int first = 0, last = 0;  // [first, last); empty when first == last
  bool rest = false;        // tensors outside the decoder layers (tensor_class::layer == -1)

  bool contains(int layer) const { return all || (layer < 0 ? rest : (layer >= first && layer < last)); }
  bool has_range() const { return !all && last > first; }
  std::string to_string() const;  // "all", "2:4", "rest", "0:2,rest"
};

// Parses the syntax above; n_layers > 0 also checks the range against the model.
result<layer_selection> parse_layer_selection(const std::string& text, int n_layers = 0);

// Splits n_layers into `tasks` contiguous ranges, sizes differing by at most one (the first ranges get the
// extra layer); task 0 also gets "rest". tasks is clamped to [1, n_layers].
std::vector<layer_selection> split_layers(int n_layers, int tasks);

// ok when the selections cover layers [0, n_layers) and "rest" exactly once; otherwise an invalid_argument
// naming the first missing or doubled layer.
status check_cover(const std::vector<layer_selection>& parts, int n_layers);

}  // namespace razor
