// Whole-file GGUF allocation (`razor allocate --mode gguf`, docs/allocation.md "Whole-file GGUF allocation"): one
// ggml type for every tensor llama.cpp quantizes (token embedding, output head, attention, linear attention, shared
// experts, each layer's routed-expert projections), under one budget in exact file bytes, minimising the predicted
// KL divergence of the packed model from the unquantized one.
//
//   items      every GGUF tensor the conversion quantizes (gguf::plan_gguf; norms, routers, 1-D tensors and conv1d
//              stay F32 and are priced as such);
//   choices    the ladder's types as the file stores them (row-length fallback), types needing an importance matrix
//              only where the imatrix covers the tensor (llama.cpp's rule), optionally restricted per role;
//   cost       the tensor's bytes padded to the alignment; the file = header (exact, from the conversion's own
//              metadata) + every tensor, so the plan's size is the written file's size to the byte;
//   damage     the KL the tensor alone causes at that type, measured in memory on calibration tokens
//              (sensitivity.h), or fitted as S_t x e_t(type)^alpha from a few measured types, where e_t is the
//              tensor's imatrix-weighted relative round-trip error (roundtrip.h) and S_t its sensitivity;
//   solver     quant::solve_budget (Lagrangian greedy on convex hulls + exact multiple-choice knapsack when small).
// The KLs of separate tensors add to first order (independent perturbations of the logits), so the sum is the
// prediction for the file; measure_allocation() checks it against the KL of the whole allocation.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "alloc/sensitivity.h"
#include "ggml/types.h"
#include "gguf/convert.h"
#include "gguf/imatrix.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor {
class checkpoint;
}

namespace razor::alloc {

// The default ladder: every quantized type of the ggml table (all load in llama.cpp) and f16.
std::vector<ggml::type> default_ladder();

struct wf_choice {
  ggml::type type = ggml::type::f32;  // as stored
  uint64_t bytes = 0;                 // padded to the alignment
  double rel_error = -1;              // imatrix-weighted relative round-trip error (-1: not measured)
  double kl = -1;                     // measured KL of this tensor alone at this type (-1: not measured)
  double damage = 0;                  // what the solver minimises (measured or fitted KL)
};

struct wf_item {
  std::string tensor;                  // GGUF name
  std::string role;                    // gguf::gguf_role
  int first_layer = 0;                 // where its effect starts: -1 embeddings, n_layers the head
  std::vector<int64_t> ne;
  int64_t params = 0;
  std::vector<std::string> sources;    // engine tensor names feeding it (not for routed experts)
  int expert_layer = -1;               // routed experts: layer and projection (0 gate, 1 up, 2 down)
  int expert_proj = -1;
  std::vector<wf_choice> choices;      // ascending bytes, one per stored type
  double sensitivity = 0;              // S_t of the fit (0 when not fitted)
  double seconds = 0;                  // thread time spent measuring it (weights-only damage)
};

// A routed-expert item's projection (gate, up, down).
inline expert_proj expert_proj_of(const wf_item& it) {
  return it.expert_proj == 0 ? expert_proj::gate : it.expert_proj == 1 ? expert_proj::up : expert_proj::down;
}

struct wf_plan {
  std::vector<wf_item> items;
  uint64_t header_bytes = 0;           // exact
  uint64_t fixed_bytes = 0;            // header + the tensors that stay F32, padded
  int64_t total_params = 0;            // every tensor of the file
  uint32_t alignment = 32;
  std::vector<ggml::type> ladder;
};

struct plan_options {
  std::vector<ggml::type> ladder = default_ladder();
  // role (gguf::gguf_role: "embedding", "output_head", "attention", "linear_attention", "shared_expert",
  // "routed_expert", ...) -> the only types allowed for it; a single type fixes the role.
  std::map<std::string, std::vector<ggml::type>> role_types;
  const gguf::imatrix* imat = nullptr;
  bool allow_missing_imatrix = false;  // offer types needing an imatrix without one (not what llama-quantize allows)
};
result<wf_plan> plan_items(const checkpoint& ck, const plan_options& opt);

struct measure_options {
  std::vector<std::vector<int32_t>> seqs;  // calibration windows
  // Which types to measure the KL of, per item: all (damage = measured KL), or `fit_types` of them spread over the
  // ladder (damage = fitted S_t x e^alpha, every type's round-trip error measured).
  bool all_types = true;
  int fit_types = 3;
  bool cache_weights = true;           // keep the float32 weights in memory (models that fit)
  reference_options ref;
  progress_fn progress;                // units: measurements
};
struct measure_report {
  double alpha = 1.0;                  // exponent of the fit (1 = KL proportional to the squared weight error)
  double fit_spearman = 0;             // measured vs fitted KL over the measured pairs (fit mode)
  double ref_nll = 0;
  size_t positions = 0;
  double seconds = 0;
  int measurements = 0;
};
// Fills rel_error / kl / damage of every choice.
result<measure_report> measure(const checkpoint& ck, const gguf::imatrix* imat, wf_plan& plan,
                               const measure_options& opt);

// The measurements as JSON (razor.gguf_sensitivity/1) and back, for reuse at other targets: `key` identifies the
// model, imatrix, calibration tokens and ladder; apply_cached fails (not_found) when it differs or an item is missing.
nlohmann::json measurements_json(const wf_plan& plan, const measure_report& rep, const nlohmann::json& key);
result<measure_report> apply_cached(const nlohmann::json& cached, const nlohmann::json& key, wf_plan& plan);

struct wf_target {
  enum class kind { file_bytes, bpw } k = kind::file_bytes;
  double value = 0;                    // bytes, or bits per weight over every tensor of the file (file data x 8 / params)
  std::string text;
};
result<wf_target> parse_wf_target(std::string_view s);  // "7879360B", "7.5MB", "47GB", "45GiB", "3.5bits"

// The target as file bytes; an error naming the smallest file the plan allows when it is below it.
result<double> target_file_bytes(const wf_plan& plan, const wf_target& target);

struct wf_allocation {
  std::vector<int> choice;             // per item
  std::string recipe_text;             // llama-quantize --tensor-type-file syntax, one exact line per item
  uint64_t file_bytes = 0;             // exact, as pack writes it
  double predicted_kl = 0;             // sum of the chosen damages
  double bpw = 0;                      // file data bits per weight
  nlohmann::json report;               // razor.gguf_allocation/2
};
result<wf_allocation> allocate(const checkpoint& ck, const wf_plan& plan, const wf_target& target,
                               const gguf::convert_options& pack_options);

// The KL of the whole allocation against the unquantized model, in memory, on `seqs` (predicted vs measured).
result<kl_stats> measure_allocation(const checkpoint& ck, const gguf::imatrix* imat, const wf_plan& plan,
                                    const std::vector<int>& choice, const std::vector<std::vector<int32_t>>& seqs,
                                    const reference_options& ref = {});

}  // namespace razor::alloc
