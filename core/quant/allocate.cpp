#include "quant/allocate.h"

#include <algorithm>
#include <atomic>
#include <cfenv>
#include <cmath>
#include <filesystem>
#include <limits>
#include <mutex>
#include <map>
#include <numeric>
#include <optional>
#include <queue>
#include <random>

#include "model/checkpoint.h"
#include "quant/fake_quant.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"
#include "util/numeric.h"

namespace fs = std::filesystem;

namespace razor::quant {

// ---- end to end ----------------------------------------------------------------------------------------------------

namespace {

std::string regex_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (std::string_view(".^$|()[]{}*+?\\").find(c) != std::string_view::npos) o += '\\';
    o += c;
  }
  return o;
}

}  // namespace

result<allocation> allocate(const checkpoint& ck, const recipe& base, const alloc_stats& st, const error_table* errs,
                            const allocate_options& opt) {
  RAZOR_TRY(st.validate());
  const int L = st.n_layers, E = st.n_experts;
  if (ck.config().num_layers > 0 && ck.config().num_layers != L)
    return make_error(errc::invalid_argument, "probe has " + std::to_string(L) + " layers, the model " +
                                                  std::to_string(ck.config().num_layers));
  for (int p = 0; p < kProjs; ++p)
    if (!ck.expert_matrix(L - 1, E - 1, kProjOf[p]))
      return make_error(errc::invalid_argument, "probe and model disagree: no expert " + std::to_string(E - 1) +
                                                    " in layer " + std::to_string(L - 1));
  if (errs && (errs->n_layers != L || errs->n_experts != E))
    return make_error(errc::invalid_argument, "error table and probe disagree on layers x experts");
  // Layers without routed experts (DeepSeek's first_k_dense_replace): their L x E entries are placeholders that
  // cost nothing and are not counted in the budget.
  std::vector<bool> real(st.size(), true);
  int first_moe = -1;
  for (int l = 0; l < L; ++l) {
    const bool moe = ck.config().layer_is_moe(l) || ck.config().num_experts == 0;
    if (moe && first_moe < 0) first_moe = l;
    for (int e = 0; e < E && !moe; ++e) real[st.idx(l, e)] = false;
  }
  if (first_moe < 0) return make_error(errc::invalid_argument, "the model has no layer with routed experts");
  const size_t n_real = size_t(std::count(real.begin(), real.end(), true));
  int64_t p_proj[kProjs];
  for (int p = 0; p < kProjs; ++p) {
    auto v = ck.expert_matrix(first_moe, 0, kProjOf[p]);
    if (!v) return make_error(errc::invalid_argument, "no expert 0 in layer " + std::to_string(first_moe));
    p_proj[p] = v->n_rows * v->n_cols;
  }
  const double p_expert = double(p_proj[0] + p_proj[1] + p_proj[2]);
  const bool is_solver = opt.strat == strategy::solver;
  if (is_solver && !errs) return make_error(errc::invalid_argument, "the solver needs measured errors");
  if (opt.per_projection && !is_solver)
    return make_error(errc::invalid_argument, "--per-proj applies to the solver only (seed strategies tie gate_up and down)");
  if (opt.per_projection && !ck.find_text("layers.0.mlp.experts.0.down_proj.weight"))
    return make_error(errc::unsupported,
                      "per-projection bits need a per-expert checkpoint layout: a recipe cannot give one expert's "
                      "down_proj other bits than its gate_up inside a fused [E, out, in] tensor");
  std::vector<double> choices = opt.choices;
  std::sort(choices.begin(), choices.end());
  choices.erase(std::unique(choices.begin(), choices.end()), choices.end());
  if (!is_solver)
    for (double b : {opt.tags.lo, opt.tags.hi})
      if (!valid_bits(b) || b >= kKeepBits)
        return make_error(errc::invalid_argument, "tag " + bits_text(b) + " is not a quantized recipe bit width (" +
                                                      recipe_bits_list() + ")");
  if (is_solver) {
    if (choices.empty()) return make_error(errc::invalid_argument, "no bit choices");
    for (double b : choices) {
      if (!valid_bits(b) || b >= kKeepBits)
        return make_error(errc::invalid_argument, bits_text(b) + " is not a quantized recipe bit width");
      if (errs->bit_index(b) < 0)
        return make_error(errc::invalid_argument, bits_text(b) + " bits were not measured (error cache)");
    }
  }

  recipe r = base;
  auto set_all = [&](const std::vector<double>& tags_gu) {
    r.expert_bits.clear();
    for (int l = 0; l < L; ++l)
      r.expert_bits[l] = std::vector<double>(tags_gu.begin() + l * E, tags_gu.begin() + (l + 1) * E);
  };
  // Budget in weight bits of the routed experts, from the footprint of the recipe with every expert at the
  // cheapest tag (everything else is fixed by the base recipe).
  const double min_bits = is_solver ? choices.front() : opt.tags.lo;
  set_all(std::vector<double>(st.size(), min_bits));
  RAZOR_ASSIGN_OR_RETURN(const footprint fp_min, compute_footprint(ck, r));
  const auto rit = fp_min.by_role.find(tensor_role::routed_expert);
  if (rit == fp_min.by_role.end() || rit->second.params_quantized == 0)
    return make_error(errc::invalid_argument, "the base recipe quantizes no routed expert");
  const double p_routed = double(rit->second.params_quantized);
  if (std::abs(p_routed - p_expert * double(n_real)) > 0.5)
    return make_error(errc::invalid_argument,
                      "the base recipe keeps or overrides some routed experts; expert_bits would not govern them all");
  const double fixed_bits = fp_min.all.packed_bits() - rit->second.weight_bits;
  double weight_budget = 0;  // bits over all routed-expert weights
  if (opt.target.k == alloc_target::kind::expert_bits)
    weight_budget = opt.target.value * p_routed;
  else
    weight_budget = opt.target.value * 8.0 - fixed_bits;
  const double budget_bits = weight_budget / p_routed;  // average expert bits the budget allows
  if (budget_bits < min_bits - 1e-12)
    return make_error(errc::invalid_argument,
                      "target " + opt.target.text + " is below the smallest allocation (every expert at " +
                          bits_text(min_bits) + " bits: " + std::to_string(fp_min.packed_bytes() / 1e9) + " GB)");

  std::vector<double> tags_gu(st.size()), tags_dn(st.size());
  std::vector<double> importance;
  std::optional<damage_model> dm;
  if (errs) {
    auto d = make_damage_model(st, *errs, opt.damage);
    if (!d.ok()) return d.error();
    dm = std::move(*d);
  }
  nlohmann::json solver_json;
  std::optional<solver_result> sr;
  int64_t n_hi = -1;
  if (!is_solver) {
    RAZOR_ASSIGN_OR_RETURN(importance, expert_importance(st, opt.strat, opt.seed));
    if (opt.target.k == alloc_target::kind::expert_bits) {
      tags_gu = assign_two_level(importance, L, E, opt.target.value, opt.tags, opt.global_rank);
    } else {
      // bytes: the seed's rounding with B = the budget's average, then fewer high tags until it fits.
      double B = budget_bits;
      for (int guard = 0; guard < 1 << 20; ++guard) {
        if (opt.global_rank) {
          if (n_hi < 0) n_hi = n_high(frac_hi(B, opt.tags), int64_t(st.size()));
          tags_gu = assign_two_level(importance, L, E, B, opt.tags, true, n_hi);
        } else {
          tags_gu = assign_two_level(importance, L, E, B, opt.tags, false);
        }
        set_all(tags_gu);
        RAZOR_ASSIGN_OR_RETURN(const footprint fp, compute_footprint(ck, r));
        if (fp.packed_bytes() <= opt.target.value) break;
        if (opt.global_rank) {
          if (n_hi == 0) break;
          --n_hi;
        } else {
          B -= (opt.tags.hi - opt.tags.lo) / double(E) / 2;
        }
      }
    }
    tags_dn = tags_gu;
  } else {
    // Items in cost units of "expert-bits" (one bit on every weight of one expert).
    std::vector<solver_item> items;
    std::vector<double> cbits;
    for (double b : choices) cbits.push_back(b);
    const double f_gu = double(p_proj[0] + p_proj[1]) / p_expert, f_dn = double(p_proj[2]) / p_expert;
    const size_t nb = dm->bits.size();
    for (size_t i = 0; i < st.size(); ++i) {
      auto bi = [&](double b) { return size_t(errs->bit_index(b)); };
      if (!opt.per_projection) {
        solver_item it;
        for (double b : cbits) {
          it.cost.push_back(real[i] ? b : 0.0);
          it.damage.push_back(real[i] ? dm->salience[i] * (dm->rel_gu[i * nb + bi(b)] + dm->rel_dn[i * nb + bi(b)]) : 0.0);
        }
        items.push_back(std::move(it));
      } else {
        solver_item gu, dn;
        for (double b : cbits) {
          gu.cost.push_back(real[i] ? b * f_gu : 0.0);
          gu.damage.push_back(real[i] ? dm->salience[i] * dm->rel_gu[i * nb + bi(b)] : 0.0);
          dn.cost.push_back(real[i] ? b * f_dn : 0.0);
          dn.damage.push_back(real[i] ? dm->salience[i] * dm->rel_dn[i * nb + bi(b)] : 0.0);
        }
        items.push_back(std::move(gu));
        items.push_back(std::move(dn));
      }
    }
    const double budget_units = budget_bits * double(n_real);
    auto s = solve_budget(items, budget_units, opt.solver);
    if (!s.ok()) return s.error();
    sr = std::move(*s);
    for (size_t i = 0; i < st.size(); ++i) {
      if (!opt.per_projection) {
        tags_gu[i] = tags_dn[i] = cbits[size_t(sr->choice[i])];
      } else {
        tags_gu[i] = cbits[size_t(sr->choice[2 * i])];
        tags_dn[i] = cbits[size_t(sr->choice[2 * i + 1])];
      }
    }
    solver_json = {{"method", sr->exact ? "lagrangian greedy on convex hulls + fill, replaced by the exact DP optimum"
                                        : "lagrangian greedy on convex hulls + fill"},
                   {"exact", sr->exact},
                   {"lambda", sr->lambda},
                   {"greedy_damage", sr->greedy_damage},
                   {"greedy_cost_expert_bits", sr->greedy_cost},
                   {"damage", sr->damage},
                   {"cost_expert_bits", sr->cost},
                   {"budget_expert_bits", budget_units},
                   {"items", items.size()}};
  }

  // The recipe.
  set_all(tags_gu);
  if (opt.per_projection) {
    std::vector<recipe::override_rule> ovs;
    for (int l = 0; l < L; ++l) {
      std::map<double, std::vector<int>> by_bits;
      for (int e = 0; e < E; ++e)
        if (tags_dn[st.idx(l, e)] != tags_gu[st.idx(l, e)]) by_bits[tags_dn[st.idx(l, e)]].push_back(e);
      for (auto& [b, es] : by_bits) {
        std::string alt;
        for (int e : es) alt += (alt.empty() ? "" : "|") + std::to_string(e);
        std::string pat = "^" + regex_escape(ck.text_prefix()) + "layers\\." + std::to_string(l) +
                          "\\.mlp\\.experts\\.(" + alt + ")\\.down_proj\\.weight$";
        // razor's own pattern: one alternative per expert, so longer than a hand-written one may be
        RAZOR_ASSIGN_OR_RETURN(recipe::override_rule rule,
                               make_override(pat, b, "allocate (layer " + std::to_string(l) + " down_proj)", 1 << 20));
        ovs.push_back(std::move(rule));
      }
    }
    ovs.insert(ovs.end(), r.overrides.begin(), r.overrides.end());
    r.overrides = std::move(ovs);
  }
  const std::string sname(strategy_name(opt.strat));
  r.name = "alloc-" + sname + "-" + opt.target.text;
  r.description = "Routed-expert bits by `razor allocate` (strategy " + sname + ", target " + opt.target.text +
                  ") on top of '" + base.name + "'. " +
                  (is_solver ? "Solver: minimises predicted damage = salience x measured fake-quant error under the "
                               "budget (docs/allocation.md)."
                             : "Seed strategy (seed-reference.md §2.3): two-level tags {" + bits_text(opt.tags.lo) +
                                   ", " + bits_text(opt.tags.hi) + "}, " +
                                   (opt.global_rank ? "global" : "per-layer") + " ranking.");
  r.path.clear();
  allocation out;
  RAZOR_ASSIGN_OR_RETURN(out.fp, compute_footprint(ck, r));
  const double used_bits = out.fp.expert_avg_bits();
  const bool over = opt.target.k == alloc_target::kind::expert_bits ? used_bits > opt.target.value + 1e-9
                                                                    : out.fp.packed_bytes() > opt.target.value;
  if (over && is_solver)
    return make_error(errc::internal, "solver result exceeds the budget (" + std::to_string(used_bits) + " bits)");

  // Report.
  nlohmann::ordered_json rep;
  rep["format"] = "razor.allocation/1";
  rep["model"] = ck.dir();
  rep["strategy"] = sname;
  rep["target"] = {{"text", opt.target.text},
                   {"kind", opt.target.k == alloc_target::kind::expert_bits ? "expert_bits" : "packed_bytes"},
                   {"value", opt.target.value},
                   {"budget_expert_bits", budget_bits}};
  rep["base_recipe"] = base.name;
  if (is_solver) {
    rep["choices"] = choices;
    rep["per_projection"] = opt.per_projection;
    rep["damage_model"] = {{"salience", salience_name(opt.damage.salience)},
                           {"weighted_error", opt.damage.weighted_error && errs->weighted},
                           {"salience_floor", opt.damage.salience_floor}};
    rep["solver"] = solver_json;
  } else {
    rep["tags"] = {opt.tags.lo, opt.tags.hi};
    rep["frac_hi"] = frac_hi(opt.target.k == alloc_target::kind::expert_bits ? opt.target.value : budget_bits, opt.tags);
    rep["global_rank"] = opt.global_rank;
    if (opt.strat == strategy::random) rep["seed"] = opt.seed;
  }
  rep["footprint"] = {{"expert_avg_bits", used_bits},
                      {"seed_effective_bits", out.fp.seed_effective_bits()},
                      {"effective_bits_with_scales", out.fp.effective_bits_with_scales()},
                      {"packed_bytes", out.fp.packed_bytes()},
                      {"packed_gb", out.fp.packed_bytes() / 1e9},
                      {"packed_gib", out.fp.packed_bytes() / 1073741824.0},
                      {"over_budget", over},
                      {"slack_expert_bits", budget_bits - used_bits}};
  double total_damage = 0;
  bool have_damage = dm.has_value();
  std::vector<double> dmg(st.size(), 0.0);
  if (have_damage)
    for (size_t i = 0; i < st.size(); ++i) {
      const int l = int(i / size_t(E)), e = int(i % size_t(E));
      dmg[i] = dm->damage(l, e, tags_gu[i], tags_dn[i]);
      if (std::isnan(dmg[i])) have_damage = false;
      total_damage += dmg[i];
    }
  rep["predicted_damage"] = have_damage ? nlohmann::json(total_damage) : nlohmann::json(nullptr);
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (int l = 0; l < L; ++l) {
    double sb = 0, sd = 0;
    std::map<std::string, int> hist;
    for (int e = 0; e < E; ++e) {
      const size_t i = st.idx(l, e);
      const double avg = (tags_gu[i] * double(p_proj[0] + p_proj[1]) + tags_dn[i] * double(p_proj[2])) / p_expert;
      sb += avg;
      sd += dmg[i];
      hist[bits_text(tags_gu[i]) + (tags_dn[i] != tags_gu[i] ? "/" + bits_text(tags_dn[i]) : "")]++;
    }
    nlohmann::ordered_json lj;
    lj["layer"] = l;
    lj["avg_bits"] = sb / E;
    lj["bits_histogram"] = hist;
    lj["predicted_damage"] = have_damage ? nlohmann::json(sd) : nlohmann::json(nullptr);
    if (dm) {
      nlohmann::ordered_json curves = nlohmann::ordered_json::object();
      for (size_t b = 0; b < dm->bits.size(); ++b) {
        double gu = 0, dn = 0;
        for (int e = 0; e < E; ++e) {
          gu += dm->rel_gu[st.idx(l, e) * dm->bits.size() + b];
          dn += dm->rel_dn[st.idx(l, e) * dm->bits.size() + b];
        }
        curves[bits_text(dm->bits[b])] = {{"rel_err_gate_up", gu / E}, {"rel_err_down", dn / E}};
      }
      lj["mean_error_curve"] = curves;
    }
    layers.push_back(lj);
  }
  rep["layers"] = layers;
  nlohmann::ordered_json ex = nlohmann::ordered_json::array();
  for (size_t i = 0; i < st.size(); ++i) {
    const int l = int(i / size_t(E)), e = int(i % size_t(E));
    nlohmann::ordered_json xj;
    xj["layer"] = l;
    xj["expert"] = e;
    if (opt.per_projection) {
      xj["bits_gate_up"] = tags_gu[i];
      xj["bits_down"] = tags_dn[i];
    } else {
      xj["bits"] = tags_gu[i];
    }
    xj["freq"] = st.freq[i];
    xj["wmass"] = st.wmass[i];
    if (dm) xj["salience"] = dm->salience[i];
    if (!importance.empty()) xj["importance"] = importance[i];
    if (have_damage) xj["predicted_damage"] = dmg[i];
    if (sr) {
      auto put = [&](size_t k, const char* suffix) {
        xj[std::string("gain_per_bit") + suffix] = sr->gain[k];
        xj[std::string("next_gain_per_bit") + suffix] = sr->next_gain[k];
        xj[std::string("rank") + suffix] = sr->rank[k];
      };
      if (opt.per_projection) {
        put(2 * i, "_gate_up");
        put(2 * i + 1, "_down");
      } else {
        put(i, "");
      }
    }
    ex.push_back(xj);
  }
  if (!importance.empty() && opt.global_rank) {
    // global rank of every expert by importance (1 = most important), as the seed sorts
    std::vector<size_t> order(st.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return importance[a] > importance[b]; });
    for (size_t k = 0; k < order.size(); ++k) ex[order[k]]["rank"] = int(k) + 1;
  }
  rep["experts"] = ex;
  out.report = nlohmann::json::parse(dump_json(rep));
  out.r = std::move(r);
  out.r.extra["allocation"] = {{"strategy", sname},
                               {"target", opt.target.text},
                               {"expert_avg_bits", used_bits},
                               {"packed_bytes", out.fp.packed_bytes()},
                               {"predicted_damage", have_damage ? nlohmann::json(total_damage) : nlohmann::json(nullptr)}};
  return out;
}

}  // namespace razor::quant
