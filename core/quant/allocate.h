// Bit allocation for routed experts: the seed's salience strategies (seed-reference.md §2.3), a budget solver
// driven by measured quantization error, and the recipe they produce. The damage model and the exact
// commands of the acceptance study are in docs/allocation.md.
//
// Data flow:
//   probe file (razor probe, HDF5)  --allocate_probe.h-->  alloc_stats (per layer x expert statistics)
//   checkpoint + alloc_stats        --measure_errors-->    error_table (the real fake-quant of every expert and
//                                                         projection at every candidate bit width; cached in a
//                                                         JSON file beside the probe)
//   alloc_stats + error_table + target + strategy  --allocate-->  razor.recipe/1 (expert_bits per layer) + report
//
// Seed strategies rank experts by an importance and give the most important n_hi = round(frac_hi * n) the high
// tag, the rest the low tag, frac_hi = clip((B - lo) / (hi - lo), 0, 1), tags {1.58, 4} by default, ranking all
// layer x expert pairs together (global) or within each layer. The solver chooses, per expert (or per expert and
// projection group, gate_up / down), one of the allowed bit widths (default 1.58, 2, 3, 4, 8) minimising the predicted
// damage sum_i S_i * relerr_i(bits_i) under the budget: marginal-gain greedy over each item's lower convex hull
// (Lagrangian), a fill pass for the budget left over, and an exact multiple-choice-knapsack DP that replaces
// the greedy answer when the instance is small enough (always on the bundled fixtures).
//
// The budget is always checked with compute_footprint on the written recipe, so `razor footprint --recipe` of
// the output reports exactly what the allocation reports.
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/footprint.h"
#include "model/recipe.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor {
class checkpoint;
}

namespace razor::quant {

// ---- probe statistics (row-major [n_layers][n_experts]) --------------------------------------------
struct alloc_stats {
  std::string model;
  int n_layers = 0, n_experts = 0;
  uint64_t n_tokens = 0;  // tokens the probe saw (the calibration windows)
  std::vector<double> freq, wmass, asal, wfro_gate_up, wfro_down, rnorm;
  // Optional importance-matrix statistics: mean square of the input, per column, per expert:
  // msq_gate_up [L][E][cols_gate_up] (input of gate_proj and up_proj), msq_down [L][E][cols_down]; an expert
  // no calibration token reached gets 1.0 per column (llama.cpp's convention). Empty when the probe has none.
  int64_t cols_gate_up = 0, cols_down = 0;
  std::vector<double> msq_gate_up, msq_down;
  size_t idx(int layer, int expert) const { return size_t(layer) * size_t(n_experts) + size_t(expert); }
  size_t size() const { return size_t(n_layers) * size_t(n_experts); }
  bool has_imatrix() const { return !msq_gate_up.empty() && !msq_down.empty(); }
  status validate() const;
};

// ---- strategies (one table: the CLI help, the study and the tests read it) --------------------------
// clang-format off
#define RAZOR_ALLOC_STRATEGIES(X)                                                                        \
  X(solver,    "solver",    "minimise predicted damage (salience x measured error) under the budget")   \
  X(freq,      "freq",      "seed: routing count")                                                       \
  X(wmass,     "wmass",     "seed: routing mass (sum of routing weights)")                               \
  X(asal,      "asal",      "seed: activation salience (sum of router-input norms)")                    \
  X(wfro,      "wfro",      "seed: ||W_gate_up||_F + ||W_down||_F")                                      \
  X(actxw,     "actxw",     "seed: rank(asal) + rank(wfro)")                                             \
  X(composite, "composite", "seed: rank(wmass) + rank(asal) + rank(wfro), ranks in [0,1] within a layer") \
  X(rnorm_asc, "rnorm_asc", "seed: -rank(router row norm) (small norm gets more bits)")                  \
  X(random,    "random",    "seed: uniform random importance (seeded; not numpy's stream)")              \
  X(inverse,   "inverse",   "seed: -composite (anti-control)")                                           \
  X(blind,     "blind",     "seed: the expert index (importance-blind)")                                 \
  X(uniform,   "uniform",   "seed: same as blind (the seed's 'uniform' is the expert index too)")
// clang-format on

enum class strategy : uint8_t {
#define X(id, name, help) id,
  RAZOR_ALLOC_STRATEGIES(X)
#undef X
};
struct strategy_info {
  strategy s;
  std::string_view name, help;
};
std::span<const strategy_info> all_strategies();
std::string_view strategy_name(strategy s);
result<strategy> strategy_from_name(std::string_view name);

// Per-layer rank scaled to [0, 1]: rank 0 = smallest; ties keep index order (the seed's argsort ties are
// arbitrary). A layer of one expert gets 0.
std::vector<double> rank01_within_layers(const std::vector<double>& x, int n_layers, int n_experts);
// The seed's importance of every (layer, expert) for a seed strategy (not `solver`); larger = more bits.
result<std::vector<double>> expert_importance(const alloc_stats& st, strategy s, uint64_t seed = 0);

// ---- budget to tags ---------------------------------------------------------------------------------
struct two_level_tags {
  double lo = 1.58, hi = 4.0;
};
// clip((B - lo) / (hi - lo), 0, 1)
double frac_hi(double target_bits, const two_level_tags& t);
// round-half-even(frac_hi * n)
int64_t n_high(double frac, int64_t n);
// Tags for every (layer, expert): the n_hi most important get hi, the rest lo. Global ranking sorts all
// layer x expert pairs by (importance descending, flat index ascending); per-layer ranking does the same in
// each layer with n = n_experts. n_hi_override >= 0 replaces round(frac_hi * n) (global only).
std::vector<double> assign_two_level(const std::vector<double>& importance, int n_layers, int n_experts,
                                     double target_bits, const two_level_tags& t, bool global_rank,
                                     int64_t n_hi_override = -1);

// ---- targets -------------------------------------------------------------------------------------------
struct alloc_target {
  enum class kind { packed_bytes, expert_bits } k = kind::expert_bits;
  double value = 3.0;   // bytes, or average bits of the routed-expert weights
  std::string text;
};
// "47GB" (1e9), "45GiB" (2^30), "800MB", "12MiB", "123456B", "3.05bits" / "3.05bit" / "3.05b".
result<alloc_target> parse_target(std::string_view s);

// ---- measured quantization error ------------------------------------------------------------------------
// For every (layer, expert, projection p in gate, up, down) and candidate bits b, the real fake-quant
// (fake_quant with the recipe's group and clip search, output cast to the stored dtype as `razor quantize`
// writes it) and four sums over the [out, in] matrix W and its quantized Q:
//   err  = sum (Q - W)^2            ref  = sum W^2
//   werr = sum_j m_j sum_i (Q-W)_ij^2   wref = sum_j m_j sum_i W_ij^2
// with m_j the probe's mean square input of column j for that expert (1 everywhere without an imatrix).
inline constexpr int kProjs = 3;  // gate, up, down
inline constexpr expert_proj kProjOf[kProjs] = {expert_proj::gate, expert_proj::up, expert_proj::down};
struct error_table {
  int n_layers = 0, n_experts = 0;
  std::vector<double> bits;            // candidate bit widths, ascending
  int64_t params[kProjs] = {0, 0, 0};  // weights per expert per projection
  bool weighted = false;               // m_j came from an imatrix
  std::vector<double> err, ref, werr, wref;  // [L][E][proj][bits]
  nlohmann::json key;                  // what the cache is keyed on
  size_t at(int layer, int expert, int proj, int bit_index) const {
    return ((size_t(layer) * size_t(n_experts) + size_t(expert)) * kProjs + size_t(proj)) * bits.size() +
           size_t(bit_index);
  }
  int bit_index(double b) const;       // -1 if not measured
  nlohmann::json to_json() const;
  static result<error_table> from_json(const nlohmann::json& j);
};

struct measure_options {
  std::vector<double> bits = {1.58, 2, 3, 4, 8};
  int group = 128;
  int clip_steps = 16;
  int threads = 0;
  progress_fn progress;  // units: experts
};
result<error_table> measure_errors(const checkpoint& ck, const alloc_stats& st, const measure_options& opt);
// "<probe without .h5>.qerr-g<group>-c<clip>.json" beside the probe.
std::string error_cache_path(const std::string& probe_path, int group, int clip_steps);
// Cache keys: a checkpoint's directory and every shard's size and write time; one file's size and write time.
nlohmann::json weights_identity(const checkpoint& ck);
nlohmann::json file_identity(const std::string& path);
// The error-table cache of both modes (fake: error_table, GGUF: gguf_error_table): returns the table stored at
// cache_path when its "key" and shape match, else runs measure(), stamps the key and rewrites the cache (no
// cache when cache_path is empty). *from_cache says which happened.
template <class Table, class Measure>
result<Table> cached_error_table(const std::string& cache_path, const nlohmann::json& key, int n_layers,
                                 int n_experts, bool* from_cache, Measure&& measure) {
  if (from_cache) *from_cache = false;
  std::error_code ec;
  if (!cache_path.empty() && std::filesystem::exists(cache_path, ec)) {
    auto text = read_text_file(cache_path, size_t(4) << 30);
    if (text.ok()) {
      json_limits lim;
      lim.max_bytes = size_t(4) << 30;
      auto j = parse_json(*text, cache_path, lim);
      if (j.ok()) {
        auto t = Table::from_json(*j);
        if (t.ok() && t->key == key && t->n_layers == n_layers && t->n_experts == n_experts) {
          if (from_cache) *from_cache = true;
          return t;
        }
      }
    }
  }
  RAZOR_ASSIGN_OR_RETURN(Table t, measure());
  t.key = key;
  if (!cache_path.empty()) RAZOR_TRY(write_file_atomic(cache_path, dump_json(t.to_json()) + "\n"));
  return t;
}
// Loads the cache when its key (model config, weight shard sizes and times, group, clip, bits, probe
// identity) matches; otherwise measures and rewrites it. *from_cache says which happened.
result<error_table> load_or_measure_errors(const checkpoint& ck, const alloc_stats& st, const measure_options& opt,
                                           const std::string& cache_path, const nlohmann::json& probe_identity,
                                           bool* from_cache = nullptr);

// ---- damage model (docs/allocation.md) ------------------------------------------------------------------
enum class salience_kind { output, wmass, asal, freq };
result<salience_kind> salience_from_name(std::string_view name);
std::string_view salience_name(salience_kind k);

struct damage_options {
  salience_kind salience = salience_kind::output;
  bool weighted_error = true;    // imatrix-weighted relative error (when the probe has an imatrix)
  double salience_floor = 0.02;  // S_e >= floor x the layer's mean S (experts the calibration barely saw)
};
// Per expert: salience S_e and the relative error of each projection group at every measured bit width:
//   rel_gu(b) = (werr_gate + werr_up) / (wref_gate + wref_up),  rel_dn(b) = werr_down / wref_down
//   damage_e(b_gu, b_dn) = S_e * (rel_gu(b_gu) + rel_dn(b_dn))
// salience "output": S_e = wmass_e^2 / freq_e * wref_down_e, rescaled so each layer's S sums to its routing mass;
// then S_e = max(S_e, salience_floor * layer mean).
struct damage_model {
  int n_layers = 0, n_experts = 0;
  std::vector<double> bits;
  std::vector<double> salience;      // [L][E]
  std::vector<double> rel_gu, rel_dn;  // [L][E][bits]
  double damage(int layer, int expert, double b_gu, double b_dn) const;  // bits must be measured
};
result<damage_model> make_damage_model(const alloc_stats& st, const error_table& et, const damage_options& opt);

// ---- the solver (generic multiple-choice knapsack) --------------------------------------------------------
struct solver_item {
  std::vector<double> cost;    // ascending
  std::vector<double> damage;  // same length
};
struct solver_options {
  bool exact_if_small = true;
  double max_dp_cells = 4e7;   // items x budget units
  double unit = 0;             // cost unit for the DP (0: no DP unless every cost is an integer multiple of it)
};
struct solver_result {
  std::vector<int> choice;               // per item, index into its cost/damage
  double cost = 0, damage = 0;
  double greedy_damage = 0, greedy_cost = 0;  // the Lagrangian greedy + fill answer (before the DP)
  bool exact = false;                    // the DP's optimum replaced the greedy answer
  double lambda = 0;                     // damage reduction per unit cost of the last accepted hull step
  std::vector<double> gain;              // per item: damage reduction per unit cost of the step to its choice (0 at min)
  std::vector<double> next_gain;         // per item: the same for the next step it did not take (0 if none)
  std::vector<int> rank;                 // per item: 1 = largest winning gain
};
// Minimises sum damage subject to sum cost <= budget. Error (invalid_argument) when even the cheapest
// choices exceed the budget.
result<solver_result> solve_budget(const std::vector<solver_item>& items, double budget, const solver_options& opt = {});
// Exhaustive search (tests; items^choices must be small).
solver_result solve_brute_force(const std::vector<solver_item>& items, double budget);

// ---- end to end ---------------------------------------------------------------------------------------------
struct allocate_options {
  strategy strat = strategy::solver;
  alloc_target target;
  two_level_tags tags;          // seed strategies
  bool global_rank = true;      // seed strategies
  uint64_t seed = 0;            // random
  std::vector<double> choices = {1.58, 2, 3, 4, 8};  // solver (int2 is usually dominated by ternary)
  bool per_projection = false;  // solver: gate_up and down chosen separately (per-expert checkpoints only)
  damage_options damage;
  solver_options solver;
};
struct allocation {
  recipe r;
  footprint fp;
  nlohmann::json report;   // razor.allocation/1: see docs/allocation.md
};
// `errs` may be null for seed strategies (then no predicted damage is reported); the solver needs it.
result<allocation> allocate(const checkpoint& ck, const recipe& base, const alloc_stats& st, const error_table* errs,
                            const allocate_options& opt);

}  // namespace razor::quant
