// GGUF mode of the bit allocation (`razor allocate --mode gguf`, docs/allocation.md "GGUF mode"): one ggml type
// per fused routed-expert tensor blk.N.ffn_{gate,up,down}_exps.weight, chosen from a ladder of types by the same
// damage model (the fake mode's salience, make_damage_model) and the same budget solver (solve_budget) as the fake
// mode, with errors measured by quantizing every expert matrix with our byte-exact ggml quantizers.
//
// Header-only: razor_quant links neither razor_ggml nor razor_gguf; include it only from programs that link both
// (the razor CLI, test_gguf).
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "ggml/quants.h"
#include "ggml/types.h"
#include "gguf/convert.h"
#include "gguf/imatrix.h"
#include "model/checkpoint.h"
#include "model/recipe.h"
#include "quant/allocate.h"
#include "util/atomic_file.h"

namespace razor::quant {

inline const char* gguf_proj_name(int p) { return p == 0 ? "gate" : p == 1 ? "up" : "down"; }
inline std::string gguf_expert_tensor(int layer, int p) {
  return "blk." + std::to_string(layer) + ".ffn_" + gguf_proj_name(p) + "_exps.weight";
}

// The default ladder; iq3_xxs joins it when an importance matrix is given.
inline std::vector<ggml::type> gguf_default_ladder(bool imatrix) {
  std::vector<ggml::type> v = {ggml::type::q2_k, ggml::type::q3_k, ggml::type::q4_k,
                               ggml::type::q5_k, ggml::type::q6_k, ggml::type::q8_0};
  if (imatrix) v.insert(v.begin() + 1, ggml::type::iq3_xxs);
  return v;
}

// Per (layer, expert, projection, type): the same four sums as error_table (err, ref and their imatrix-weighted
// forms with the probe's per-expert mean squares), Q = dequantize_row(quantize_tensor(W)).
struct gguf_error_table {
  int n_layers = 0, n_experts = 0;
  std::vector<ggml::type> types;       // as measured (ladder order)
  int64_t rows[kProjs] = {0, 0, 0}, cols[kProjs] = {0, 0, 0};  // per expert matrix
  bool weighted = false;               // damage weights from the probe's imatrix statistics
  bool quant_imatrix = false;          // quantized with importance-matrix weights (--imatrix)
  std::vector<double> err, ref, werr, wref;  // [L][E][proj][type]
  nlohmann::json key;
  size_t at(int layer, int expert, int proj, int ti) const {
    return ((size_t(layer) * size_t(n_experts) + size_t(expert)) * kProjs + size_t(proj)) * types.size() + size_t(ti);
  }
  nlohmann::json to_json() const {
    std::vector<std::string> names;
    for (auto t : types) names.emplace_back(ggml::type_name(t));
    return {{"format", "razor.gguf_qerr/1"}, {"n_layers", n_layers}, {"n_experts", n_experts},
            {"types", names}, {"rows", std::vector<int64_t>(rows, rows + kProjs)},
            {"cols", std::vector<int64_t>(cols, cols + kProjs)}, {"weighted", weighted},
            {"quant_imatrix", quant_imatrix}, {"err", err}, {"ref", ref}, {"werr", werr}, {"wref", wref}, {"key", key}};
  }
  static result<gguf_error_table> from_json(const nlohmann::json& j) {
    try {
      if (j.at("format") != "razor.gguf_qerr/1") return make_error(errc::invalid_argument, "not razor.gguf_qerr/1");
      gguf_error_table t;
      t.n_layers = j.at("n_layers");
      t.n_experts = j.at("n_experts");
      for (auto& n : j.at("types")) {
        RAZOR_ASSIGN_OR_RETURN(ggml::type ty, ggml::type_from_name(n.get<std::string>()));
        t.types.push_back(ty);
      }
      auto r = j.at("rows").get<std::vector<int64_t>>(), c = j.at("cols").get<std::vector<int64_t>>();
      if (r.size() != kProjs || c.size() != kProjs) return make_error(errc::invalid_argument, "bad shape");
      for (int p = 0; p < kProjs; ++p) t.rows[p] = r[size_t(p)], t.cols[p] = c[size_t(p)];
      t.weighted = j.at("weighted");
      t.quant_imatrix = j.at("quant_imatrix");
      t.err = j.at("err").get<std::vector<double>>();
      t.ref = j.at("ref").get<std::vector<double>>();
      t.werr = j.at("werr").get<std::vector<double>>();
      t.wref = j.at("wref").get<std::vector<double>>();
      t.key = j.at("key");
      const size_t n = size_t(t.n_layers) * size_t(t.n_experts) * kProjs * t.types.size();
      if (t.err.size() != n || t.ref.size() != n || t.werr.size() != n || t.wref.size() != n)
        return make_error(errc::invalid_argument, "bad table size");
      return t;
    } catch (const std::exception& e) {
      return make_error(errc::invalid_argument, std::string("razor.gguf_qerr/1: ") + e.what());
    }
  }
};

struct gguf_measure_options {
  std::vector<ggml::type> types = gguf_default_ladder(false);
  const gguf::imatrix* imat = nullptr;  // quantization weights (matched to the model: see allocate_gguf_prepare)
  int threads = 0;
  progress_fn progress;                 // units: experts
};

inline result<gguf_error_table> measure_gguf_errors(const checkpoint& ck, const alloc_stats& st,
                                                    const gguf_measure_options& opt) {
  static constexpr expert_proj kP[kProjs] = {expert_proj::gate, expert_proj::up, expert_proj::down};
  RAZOR_TRY(st.validate());
  gguf_error_table t;
  t.n_layers = st.n_layers;
  t.n_experts = st.n_experts;
  t.types = opt.types;
  t.weighted = st.has_imatrix();
  t.quant_imatrix = opt.imat != nullptr;
  const size_t nt = t.types.size();
  const size_t n = st.size() * kProjs * nt;
  t.err.assign(n, 0.0);
  t.ref.assign(n, 0.0);
  t.werr.assign(n, 0.0);
  t.wref.assign(n, 0.0);
  for (int p = 0; p < kProjs; ++p) {
    auto v = ck.expert_matrix(0, 0, kP[p]);
    if (!v) return make_error(errc::not_found, ck.dir() + ": no routed expert matrix for layer 0 expert 0");
    t.rows[p] = v->n_rows;
    t.cols[p] = v->n_cols;
    for (auto ty : t.types)
      if (auto r = ggml::resolve_row_type(ty, v->n_cols); !r.ok()) return r.error();
  }
  std::atomic<int> done{0};
  std::atomic<bool> cancelled{false};
  std::mutex mu;
  status first_error;
  const size_t n_items = st.size();
  parallel_for(
      n_items,
      [&](size_t b0, size_t b1) {
        std::vector<float> w, q;
        std::vector<uint8_t> buf;
        std::vector<double> m;
        for (size_t it = b0; it < b1 && !cancelled.load(); ++it) {
          const int L = int(it / size_t(st.n_experts)), e = int(it % size_t(st.n_experts));
          status s;
          for (int p = 0; p < kProjs && s.ok(); ++p) {
            auto v = ck.expert_matrix(L, e, kP[p]);
            if (!v) {
              s = make_error(errc::not_found, "expert matrix missing: layer " + std::to_string(L) + " expert " +
                                                  std::to_string(e));
              break;
            }
            const int64_t rows = v->n_rows, cols = v->n_cols;
            w.resize(size_t(rows * cols));
            q.resize(size_t(rows * cols));
            s = ck.read_rows_f32(*v, w.data());
            if (!s.ok()) break;
            m.assign(size_t(cols), 1.0);
            if (t.weighted) {
              const bool down = p == 2;
              if ((down ? st.cols_down : st.cols_gate_up) == cols)
                std::copy_n((down ? st.msq_down : st.msq_gate_up).data() + st.idx(L, e) * size_t(cols), cols, m.data());
            }
            std::vector<float> qw;
            if (opt.imat && opt.imat->find(gguf_expert_tensor(L, p))) {
              auto r = opt.imat->weights_for(gguf_expert_tensor(L, p), e);
              if (!r.ok()) {
                s = r.error();
                break;
              }
              qw = std::move(r).value();
              if (int64_t(qw.size()) != cols) qw.clear();
            }
            for (size_t ti = 0; ti < nt && s.ok(); ++ti) {
              auto stored = ggml::resolve_row_type(t.types[ti], cols);
              if (!stored.ok()) {
                s = stored.error();
                break;
              }
              const size_t rs = ggml::row_size(*stored, cols);
              buf.resize(rs * size_t(rows));
              ggml::quantize_options qo;
              qo.threads = 1;
              qo.allow_missing_imatrix = true;  // ggml accepts null weights; pack refuses at planning
              auto nb = ggml::quantize_tensor(*stored, w.data(), buf.data(), buf.size(), rows, cols,
                                              qw.empty() ? nullptr : qw.data(), qo);
              if (!nb.ok()) {
                s = nb.error();
                break;
              }
              for (int64_t r = 0; r < rows && s.ok(); ++r)
                s = ggml::dequantize_row(*stored, buf.data() + size_t(r) * rs, q.data() + size_t(r * cols), cols);
              if (!s.ok()) break;
              double e2 = 0, r2 = 0, we2 = 0, wr2 = 0;
              for (int64_t r = 0; r < rows; ++r)
                for (int64_t c = 0; c < cols; ++c) {
                  const size_t k = size_t(r * cols + c);
                  const double d = double(q[k]) - double(w[k]), ww = double(w[k]) * double(w[k]);
                  e2 += d * d;
                  r2 += ww;
                  we2 += m[size_t(c)] * d * d;
                  wr2 += m[size_t(c)] * ww;
                }
              const size_t k = t.at(L, e, p, int(ti));
              t.err[k] = e2;
              t.ref[k] = r2;
              t.werr[k] = we2;
              t.wref[k] = wr2;
            }
          }
          std::lock_guard lk(mu);
          if (!s.ok()) {
            if (first_error.ok()) first_error = s;
            cancelled = true;
            break;
          }
          int d = ++done;
          if (opt.progress && !opt.progress(double(d), double(n_items), "experts")) cancelled = true;
        }
      },
      1, opt.threads);
  if (!first_error.ok()) return first_error;
  if (cancelled) return make_error(errc::cancelled, "error measurement cancelled");
  return t;
}

// "<probe without .h5>.gguf-qerr[-imatrix].json" beside the probe.
inline std::string gguf_error_cache_path(const std::string& probe_path, bool imatrix) {
  std::filesystem::path p(probe_path);
  std::string stem = p.extension() == ".h5" ? p.stem().string() : p.filename().string();
  return (p.parent_path() / (stem + ".gguf-qerr" + (imatrix ? "-imatrix" : "") + ".json")).string();
}

// Loads the cache when its key (model shards, types, probe identity, imatrix file identity) matches, else
// measures and rewrites it (no cache when cache_path is empty).
inline result<gguf_error_table> load_or_measure_gguf_errors(const checkpoint& ck, const alloc_stats& st,
                                                            const gguf_measure_options& opt,
                                                            const std::string& cache_path,
                                                            const nlohmann::json& probe_identity,
                                                            bool* from_cache = nullptr) {
  std::vector<std::string> names;
  for (auto t : opt.types) names.emplace_back(ggml::type_name(t));
  nlohmann::json key = {{"model", weights_identity(ck)},
                        {"types", names},
                        {"probe", probe_identity},
                        {"probe_imatrix", st.has_imatrix()},
                        {"imatrix", opt.imat ? file_identity(opt.imat->source) : nlohmann::json()},
                        {"quantizer", "razor ggml quantize_tensor + dequantize_row"}};
  return cached_error_table<gguf_error_table>(cache_path, key, st.n_layers, st.n_experts, from_cache,
                                              [&] { return measure_gguf_errors(ck, st, opt); });
}

// The fake mode's salience S_e (make_damage_model) from a GGUF error table: its wref of down_proj plays the part
// of the fake table's (the output energy of the expert), so the numbers equal the fake mode's for the same probe.
inline result<std::vector<double>> gguf_salience(const alloc_stats& st, const gguf_error_table& g,
                                                 const damage_options& opt) {
  error_table et;
  et.n_layers = g.n_layers;
  et.n_experts = g.n_experts;
  et.bits = {8};
  et.weighted = g.weighted;
  const size_t n = st.size() * kProjs;
  et.err.assign(n, 0.0);
  et.ref.assign(n, 0.0);
  et.werr.assign(n, 0.0);
  et.wref.assign(n, 0.0);
  for (int L = 0; L < g.n_layers; ++L)
    for (int e = 0; e < g.n_experts; ++e)
      for (int p = 0; p < kProjs; ++p) {
        const size_t k = et.at(L, e, p, 0), kg = g.at(L, e, p, 0);
        et.err[k] = g.err[kg];
        et.ref[k] = g.ref[kg];
        et.werr[k] = g.werr[kg];
        et.wref[k] = g.wref[kg];
      }
  RAZOR_ASSIGN_OR_RETURN(damage_model dm, make_damage_model(st, et, opt));
  return dm.salience;
}

// ---- allocation ----------------------------------------------------------------------------------------------
struct gguf_allocate_options {
  alloc_target target;              // file bytes ("7.5MB"), or bits per weight over the routed experts ("3.3bits")
  damage_options damage;
  solver_options solver;
  gguf::imatrix* imat = nullptr;    // given to the plan (pack --imatrix); iq3_xxs needs it
  bool allow_missing_imatrix = false;
  std::string base_name;            // for the recipe's comments and the report
  // Bytes of the file that are not tensor data (header, metadata, tokenizer, tensor infos): not known before
  // writing; < 0 estimates it as tokenizer.json's size + 64 KiB + 128 bytes per tensor (an upper bound in
  // practice: GGUF stores the vocabulary and merges as plain strings).
  int64_t overhead_bytes = -1;
};

struct gguf_allocation {
  std::string recipe_text;            // the tensor-type file to write
  gguf::type_recipe recipe;           // recipe_text parsed back
  std::vector<ggml::type> types;      // [L][proj] as stored
  uint64_t data_bytes = 0;            // planned tensor data, each tensor padded to the alignment
  uint64_t overhead_bytes = 0;        // estimate (see gguf_allocate_options)
  uint64_t expert_bytes = 0;
  int64_t expert_params = 0;
  double expert_bpw = 0;
  double damage = 0;
  nlohmann::json report;              // razor.gguf_allocation/1
};

inline uint64_t gguf_padded(uint64_t b, uint64_t align = 32) { return (b + align - 1) / align * align; }

inline result<gguf_allocation> allocate_gguf(const checkpoint& ck, const alloc_stats& st, const gguf_error_table& g,
                                             const std::string& base_text, const gguf_allocate_options& opt) {
  if (g.n_layers != st.n_layers || g.n_experts != st.n_experts)
    return make_error(errc::invalid_argument, "GGUF error table and probe disagree on layers x experts");
  RAZOR_ASSIGN_OR_RETURN(gguf::type_recipe base, gguf::parse_type_recipe(base_text, opt.base_name));
  RAZOR_ASSIGN_OR_RETURN(std::vector<double> S, gguf_salience(st, g, opt.damage));
  const bool weighted = opt.damage.weighted_error && g.weighted;
  const auto& E = weighted ? g.werr : g.err;
  const auto& R = weighted ? g.wref : g.ref;
  const int nL = g.n_layers, nE = g.n_experts;

  // items: one per (layer, proj); choices: the ladder's stored types by bytes (equal bytes: the smaller damage)
  struct choice {
    ggml::type requested, stored;
    uint64_t bytes;
    double damage;
    int ti;
  };
  std::vector<std::vector<choice>> ch(size_t(nL) * kProjs);
  std::vector<solver_item> items(ch.size());
  int64_t expert_params = 0;
  for (int p = 0; p < kProjs; ++p) expert_params += int64_t(nL) * nE * g.rows[p] * g.cols[p];
  for (int L = 0; L < nL; ++L)
    for (int p = 0; p < kProjs; ++p) {
      auto& c = ch[size_t(L) * kProjs + size_t(p)];
      for (size_t ti = 0; ti < g.types.size(); ++ti) {
        RAZOR_ASSIGN_OR_RETURN(ggml::type stored, ggml::resolve_row_type(g.types[ti], g.cols[p]));
        // priced as stored in the file: padded to the alignment
        const uint64_t bytes = gguf_padded(uint64_t(nE) * uint64_t(g.rows[p]) * ggml::row_size(stored, g.cols[p]));
        double d = 0;
        for (int e = 0; e < nE; ++e) {
          const size_t k = g.at(L, e, p, int(ti));
          d += S[st.idx(L, e)] * (R[k] > 0 ? E[k] / R[k] : 0.0);
        }
        c.push_back({g.types[ti], stored, bytes, d, int(ti)});
      }
      std::stable_sort(c.begin(), c.end(), [](const choice& a, const choice& b) {
        return a.bytes != b.bytes ? a.bytes < b.bytes : a.damage < b.damage;
      });
      c.erase(std::unique(c.begin(), c.end(), [](const choice& a, const choice& b) { return a.bytes == b.bytes; }),
              c.end());
      auto& it = items[size_t(L) * kProjs + size_t(p)];
      for (auto& x : c) {
        it.cost.push_back(double(x.bytes));
        it.damage.push_back(x.damage);
      }
    }

  // the rest of the model at the base recipe's types
  gguf::convert_options co;
  co.recipe = base;
  co.imat = opt.imat;
  co.allow_missing_imatrix = opt.allow_missing_imatrix;
  RAZOR_ASSIGN_OR_RETURN(gguf::convert_report bp, gguf::plan_gguf(ck, co));
  std::vector<std::string> expert_names;
  for (int L = 0; L < nL; ++L)
    for (int p = 0; p < kProjs; ++p) expert_names.push_back(gguf_expert_tensor(L, p));
  auto is_expert = [&](const std::string& n) {
    return std::find(expert_names.begin(), expert_names.end(), n) != expert_names.end();
  };
  uint64_t fixed_data = 0;
  for (auto& r : bp.tensors)
    if (!is_expert(r.name)) fixed_data += gguf_padded(r.bytes);
  uint64_t overhead = 0;
  if (opt.overhead_bytes >= 0) {
    overhead = uint64_t(opt.overhead_bytes);
  } else {
    std::error_code ec;
    auto tk = std::filesystem::file_size(ck.dir() + "/tokenizer.json", ec);
    overhead = (ec ? 0 : uint64_t(tk)) + 65536 + 128 * uint64_t(bp.tensors.size());
  }

  double budget = 0;
  const bool bytes_target = opt.target.k == alloc_target::kind::packed_bytes;
  if (bytes_target) {
    const double fixed = double(fixed_data + overhead);
    budget = opt.target.value - fixed;
    if (budget <= 0)
      return make_error(errc::invalid_argument, "target " + opt.target.text + " is below the non-expert part (" +
                                                    std::to_string(uint64_t(fixed)) + " bytes)");
  } else {
    budget = opt.target.value * double(expert_params) / 8.0;
  }
  RAZOR_ASSIGN_OR_RETURN(solver_result sr, solve_budget(items, budget, opt.solver));

  gguf_allocation out;
  out.overhead_bytes = overhead;
  out.expert_params = expert_params;
  out.types.resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    out.types[i] = ch[i][size_t(sr.choice[i])].stored;
    out.expert_bytes += ch[i][size_t(sr.choice[i])].bytes;
  }
  out.expert_bpw = 8.0 * double(out.expert_bytes) / double(expert_params);
  out.damage = sr.damage;

  // the recipe: directive, the per-layer lines, then the base's lines (the first matching line wins)
  std::ostringstream os;
  os << "# razor allocate --mode gguf: routed-expert types per layer and projection, target " << opt.target.text
     << "\n# base: " << opt.base_name << "\n";
  os << "#@";
  if (base.default_type) os << " default=" << ggml::type_name(*base.default_type);
  if (base.output_type) os << " output=" << ggml::type_name(*base.output_type);
  if (base.token_embedding_type) os << " token_embd=" << ggml::type_name(*base.token_embedding_type);
  if (!base.default_type && !base.output_type && !base.token_embedding_type) os << " default=q8_0";
  os << "\n# The first matching line wins (llama.cpp's llama_tensor_get_type, gguf::parse_type_recipe), so these\n"
        "# lines come before the base recipe's, which type everything else.\n";
  for (int L = 0; L < nL; ++L)
    for (int p = 0; p < kProjs; ++p)
      os << "blk\\." << L << "\\.ffn_" << gguf_proj_name(p) << "_exps\\.weight="
         << ggml::type_name(out.types[size_t(L) * kProjs + size_t(p)]) << "\n";
  os << "# ---- base recipe " << opt.base_name << " (its '#@' directive restated above) ----\n";
  {
    std::istringstream in(base_text);
    std::string line;
    while (std::getline(in, line)) {
      auto b = line.find_first_not_of(" \t");
      if (b != std::string::npos && line.compare(b, 2, "#@") == 0) line = "# (base directive) " + line.substr(b + 2);
      os << line << "\n";
    }
  }
  out.recipe_text = os.str();
  RAZOR_ASSIGN_OR_RETURN(out.recipe, gguf::parse_type_recipe(out.recipe_text, "allocated recipe"));

  // plan it: the types must be the allocation's
  co.recipe = out.recipe;
  RAZOR_ASSIGN_OR_RETURN(gguf::convert_report plan, gguf::plan_gguf(ck, co));
  for (auto& r : plan.tensors) {
    out.data_bytes += gguf_padded(r.bytes);
    for (size_t i = 0; i < expert_names.size(); ++i)
      if (r.name == expert_names[i] && r.stored != out.types[i])
        return make_error(errc::internal, r.name + ": planned " + std::string(ggml::type_name(r.stored)) +
                                              ", allocated " + std::string(ggml::type_name(out.types[i])));
  }
  const uint64_t file_est = out.data_bytes + overhead;

  // report
  nlohmann::json rep;
  rep["format"] = "razor.gguf_allocation/1";
  rep["model"] = ck.dir();
  rep["mode"] = "gguf";
  rep["base"] = opt.base_name;
  std::vector<std::string> ladder;
  for (auto t : g.types) ladder.emplace_back(ggml::type_name(t));
  rep["ladder"] = ladder;
  rep["target"] = {{"text", opt.target.text},
                   {"kind", bytes_target ? "file_bytes" : "expert_bpw"},
                   {"value", opt.target.value},
                   {"budget_expert_bytes", budget}};
  rep["size"] = {{"tensor_data_bytes", out.data_bytes},
                 {"overhead_bytes_estimate", overhead},
                 {"file_bytes_estimate", file_est},
                 {"expert_bytes", out.expert_bytes},
                 {"expert_params", expert_params},
                 {"expert_bpw", out.expert_bpw},
                 {"within_target", bytes_target ? double(file_est) <= opt.target.value
                                                : out.expert_bpw <= opt.target.value + 1e-9}};
  rep["damage_model"] = {{"salience", salience_name(opt.damage.salience)},
                         {"weighted_error", weighted},
                         {"salience_floor", opt.damage.salience_floor},
                         {"quantized_with_imatrix", g.quant_imatrix},
                         {"damage", "sum over experts of S_e x relative squared error of ggml quantize + dequantize"}};
  rep["predicted_damage"] = sr.damage;
  rep["solver"] = {{"exact", sr.exact}, {"lambda_per_byte", sr.lambda}, {"greedy_damage", sr.greedy_damage},
                   {"damage", sr.damage}, {"cost_bytes", sr.cost}};
  nlohmann::json layers = nlohmann::json::array();
  for (int L = 0; L < nL; ++L) {
    nlohmann::json lj = {{"layer", L}};
    for (int p = 0; p < kProjs; ++p) {
      const size_t i = size_t(L) * kProjs + size_t(p);
      const auto& c = ch[i][size_t(sr.choice[i])];
      nlohmann::json curve = nlohmann::json::object();
      for (auto& x : ch[i]) curve[std::string(ggml::type_name(x.stored))] = {{"bytes", x.bytes}, {"damage", x.damage}};
      lj[gguf_proj_name(p)] = {{"tensor", expert_names[i]},
                               {"type", ggml::type_name(c.stored)},
                               {"bytes", c.bytes},
                               {"bpw", 8.0 * double(c.bytes) / double(int64_t(nE) * g.rows[p] * g.cols[p])},
                               {"damage", c.damage},
                               {"gain_per_byte", sr.gain.empty() ? 0.0 : sr.gain[i]},
                               {"next_gain_per_byte", sr.next_gain.empty() ? 0.0 : sr.next_gain[i]},
                               {"rank", sr.rank.empty() ? 0 : sr.rank[i]},
                               {"choices", curve}};
    }
    layers.push_back(lj);
  }
  rep["layers"] = layers;
  out.report = rep;
  return out;
}

// A recipe given by path, or by name under the recipe folders ($RAZOR_RECIPES, the installed and source trees),
// e.g. "gguf/instinct-q3.txt".
inline result<std::string> read_gguf_base_recipe(const std::string& path_or_name, std::string* resolved = nullptr) {
  std::error_code ec;
  std::string path = path_or_name;
  if (!std::filesystem::exists(path, ec)) {
    for (auto& dir : recipe_search_path()) {
      for (auto cand : {std::filesystem::path(dir) / path_or_name, std::filesystem::path(dir) / (path_or_name + ".txt")})
        if (std::filesystem::exists(cand, ec)) {
          path = cand.string();
          break;
        }
      if (path != path_or_name) break;
    }
  }
  if (resolved) *resolved = path;
  return read_text_file(path);
}

}  // namespace razor::quant
