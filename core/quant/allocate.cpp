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

// ---- stats ----------------------------------------------------------------------------------------------------

status alloc_stats::validate() const {
  if (n_layers <= 0 || n_experts <= 0) return make_error(errc::invalid_argument, "probe: no layers or no experts");
  const size_t n = size();
  for (auto* v : {&freq, &wmass, &asal, &wfro_gate_up, &wfro_down, &rnorm})
    if (!v->empty() && v->size() != n)
      return make_error(errc::bad_format, "probe: a per-expert statistic does not have layers x experts values");
  if (freq.size() != n || wmass.size() != n || asal.size() != n)
    return make_error(errc::bad_format, "probe: freq / wmass / asal missing");
  if (!msq_gate_up.empty() && msq_gate_up.size() != n * size_t(cols_gate_up))
    return make_error(errc::bad_format, "probe: imatrix gate_up statistics have the wrong size");
  if (!msq_down.empty() && msq_down.size() != n * size_t(cols_down))
    return make_error(errc::bad_format, "probe: imatrix down statistics have the wrong size");
  return {};
}

// ---- strategies ---------------------------------------------------------------------------------------------

std::span<const strategy_info> all_strategies() {
  static const strategy_info t[] = {
#define X(id, name, help) {strategy::id, name, help},
      RAZOR_ALLOC_STRATEGIES(X)
#undef X
  };
  return t;
}

std::string_view strategy_name(strategy s) {
  for (auto& i : all_strategies())
    if (i.s == s) return i.name;
  return "?";
}

result<strategy> strategy_from_name(std::string_view name) {
  for (auto& i : all_strategies())
    if (i.name == name) return i.s;
  std::string all;
  for (auto& i : all_strategies()) all += (all.empty() ? "" : ", ") + std::string(i.name);
  return make_error(errc::invalid_argument, "unknown strategy '" + std::string(name) + "' (one of " + all + ")");
}

std::vector<double> rank01_within_layers(const std::vector<double>& x, int n_layers, int n_experts) {
  std::vector<double> out(x.size(), 0.0);
  std::vector<int> order(static_cast<size_t>(n_experts));
  for (int L = 0; L < n_layers; ++L) {
    const double* v = x.data() + size_t(L) * size_t(n_experts);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return v[a] < v[b]; });
    for (int r = 0; r < n_experts; ++r)
      out[size_t(L) * size_t(n_experts) + size_t(order[size_t(r)])] =
          n_experts > 1 ? double(r) / double(n_experts - 1) : 0.0;
  }
  return out;
}

result<std::vector<double>> expert_importance(const alloc_stats& st, strategy s, uint64_t seed) {
  RAZOR_TRY(st.validate());
  const size_t n = st.size();
  auto need = [&](const std::vector<double>& v, const char* what) -> status {
    if (v.size() != n) return make_error(errc::bad_format, std::string("probe: ") + what + " missing");
    return {};
  };
  auto rk = [&](const std::vector<double>& v) { return rank01_within_layers(v, st.n_layers, st.n_experts); };
  auto wfro = [&] {
    std::vector<double> w(n);
    for (size_t i = 0; i < n; ++i) w[i] = st.wfro_gate_up[i] + st.wfro_down[i];
    return w;
  };
  std::vector<double> imp(n);
  switch (s) {
    case strategy::freq: return st.freq;
    case strategy::wmass: return st.wmass;
    case strategy::asal: return st.asal;
    case strategy::wfro:
      RAZOR_TRY(need(st.wfro_gate_up, "wfro_gate_up"));
      RAZOR_TRY(need(st.wfro_down, "wfro_down"));
      return wfro();
    case strategy::actxw: {
      RAZOR_TRY(need(st.wfro_gate_up, "wfro_gate_up"));
      RAZOR_TRY(need(st.wfro_down, "wfro_down"));
      auto a = rk(st.asal), w = rk(wfro());
      for (size_t i = 0; i < n; ++i) imp[i] = a[i] + w[i];
      return imp;
    }
    case strategy::composite:
    case strategy::inverse: {
      RAZOR_TRY(need(st.wfro_gate_up, "wfro_gate_up"));
      RAZOR_TRY(need(st.wfro_down, "wfro_down"));
      auto m = rk(st.wmass), a = rk(st.asal), w = rk(wfro());
      const double sign = s == strategy::inverse ? -1.0 : 1.0;
      for (size_t i = 0; i < n; ++i) imp[i] = sign * (m[i] + a[i] + w[i]);
      return imp;
    }
    case strategy::rnorm_asc: {
      if (st.rnorm.size() != n) return st.freq;  // the seed's fallback
      auto r = rk(st.rnorm);
      for (size_t i = 0; i < n; ++i) imp[i] = -r[i];
      return imp;
    }
    case strategy::random: {
      std::mt19937_64 rng(seed);
      std::uniform_real_distribution<double> u(0.0, 1.0);
      for (auto& v : imp) v = u(rng);
      return imp;
    }
    case strategy::blind:
    case strategy::uniform:
      for (size_t i = 0; i < n; ++i) imp[i] = double(i % size_t(st.n_experts));
      return imp;
    case strategy::solver: break;
  }
  return make_error(errc::invalid_argument, "the solver has no importance ranking; use allocate()");
}

// ---- budget to tags ------------------------------------------------------------------------------------------

double frac_hi(double target_bits, const two_level_tags& t) {
  if (t.hi <= t.lo) return target_bits >= t.hi ? 1.0 : 0.0;
  return std::clamp((target_bits - t.lo) / (t.hi - t.lo), 0.0, 1.0);
}

int64_t n_high(double frac, int64_t n) {
  const int old = std::fegetround();
  std::fesetround(FE_TONEAREST);
  const double r = std::nearbyint(frac * double(n));  // numpy round: half to even
  std::fesetround(old);
  return std::clamp<int64_t>(int64_t(r), 0, n);
}

std::vector<double> assign_two_level(const std::vector<double>& importance, int n_layers, int n_experts,
                                     double target_bits, const two_level_tags& t, bool global_rank,
                                     int64_t n_hi_override) {
  std::vector<double> tags(importance.size(), t.lo);
  const double f = frac_hi(target_bits, t);
  auto pick = [&](size_t first, size_t count, int64_t nh) {
    std::vector<size_t> order(count);
    std::iota(order.begin(), order.end(), first);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return importance[a] > importance[b]; });
    for (int64_t i = 0; i < nh && size_t(i) < count; ++i) tags[order[size_t(i)]] = t.hi;
  };
  if (global_rank) {
    const int64_t n = int64_t(importance.size());
    pick(0, importance.size(), n_hi_override >= 0 ? std::min(n_hi_override, n) : n_high(f, n));
  } else {
    for (int L = 0; L < n_layers; ++L) pick(size_t(L) * size_t(n_experts), size_t(n_experts), n_high(f, n_experts));
  }
  return tags;
}

// ---- targets -------------------------------------------------------------------------------------------------

result<alloc_target> parse_target(std::string_view s) {
  alloc_target t;
  t.text = std::string(s);
  std::string str(s);
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(str, &pos);
  } catch (...) {
    return make_error(errc::invalid_argument, "target '" + str + "': expected a number with a unit (47GB, 3.05bits)");
  }
  std::string unit = str.substr(pos);
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  std::string lu;
  for (char c : unit) lu += char(std::tolower(static_cast<unsigned char>(c)));
  struct u {
    const char* name;
    double mul;
    bool bits;
  };
  static const u units[] = {{"bits", 1, true}, {"bit", 1, true},   {"b", 1, false},     {"", 1, false},
                            {"kb", 1e3, false}, {"mb", 1e6, false}, {"gb", 1e9, false}, {"tb", 1e12, false},
                            {"kib", 1024.0, false}, {"mib", 1048576.0, false}, {"gib", 1073741824.0, false},
                            {"tib", 1099511627776.0, false}};
  for (auto& x : units) {
    if (lu != x.name) continue;
    if (x.bits) {
      t.k = alloc_target::kind::expert_bits;
      t.value = v;
      if (v <= 0 || v > 16) return make_error(errc::invalid_argument, "target '" + str + "': bits must be in (0, 16]");
    } else {
      if (lu.empty() || lu == "b") {
        // "123456" / "123456B": bytes. A bare small number is almost surely meant as bits: refuse it.
        if (v < 1024)
          return make_error(errc::invalid_argument,
                            "target '" + str + "': give a unit: '" + str + "bits' (expert bits) or 'GB' / 'GiB'");
      }
      t.k = alloc_target::kind::packed_bytes;
      t.value = v * x.mul;
      if (t.value <= 0) return make_error(errc::invalid_argument, "target '" + str + "': must be positive");
    }
    return t;
  }
  return make_error(errc::invalid_argument,
                    "target '" + str + "': unknown unit '" + unit + "' (bits, B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)");
}

// ---- error table -----------------------------------------------------------------------------------------------

int error_table::bit_index(double b) const {
  for (size_t i = 0; i < bits.size(); ++i)
    if (std::abs(bits[i] - b) < 1e-9) return int(i);
  return -1;
}

nlohmann::json error_table::to_json() const {
  nlohmann::json j;
  j["format"] = "razor.qerr/1";
  j["key"] = key;
  j["n_layers"] = n_layers;
  j["n_experts"] = n_experts;
  j["bits"] = bits;
  j["params"] = {params[0], params[1], params[2]};
  j["weighted"] = weighted;
  j["layout"] = "[layer][expert][proj gate,up,down][bits]";
  j["err"] = err;
  j["ref"] = ref;
  j["werr"] = werr;
  j["wref"] = wref;
  return j;
}

result<error_table> error_table::from_json(const nlohmann::json& j) {
  try {
    if (j.value("format", "") != "razor.qerr/1") return make_error(errc::bad_format, "not a razor.qerr/1 file");
    error_table t;
    t.key = j.at("key");
    t.n_layers = j.at("n_layers").get<int>();
    t.n_experts = j.at("n_experts").get<int>();
    t.bits = j.at("bits").get<std::vector<double>>();
    auto p = j.at("params").get<std::vector<int64_t>>();
    if (p.size() != kProjs) return make_error(errc::bad_format, "qerr: params");
    for (int i = 0; i < kProjs; ++i) t.params[i] = p[size_t(i)];
    t.weighted = j.at("weighted").get<bool>();
    t.err = j.at("err").get<std::vector<double>>();
    t.ref = j.at("ref").get<std::vector<double>>();
    t.werr = j.at("werr").get<std::vector<double>>();
    t.wref = j.at("wref").get<std::vector<double>>();
    const size_t n = size_t(t.n_layers) * size_t(t.n_experts) * kProjs * t.bits.size();
    if (t.err.size() != n || t.ref.size() != n || t.werr.size() != n || t.wref.size() != n)
      return make_error(errc::bad_format, "qerr: arrays have the wrong size");
    return t;
  } catch (const std::exception& e) {
    return make_error(errc::bad_format, std::string("qerr: ") + e.what());
  }
}

namespace {

constexpr expert_proj kProjOf[kProjs] = {expert_proj::gate, expert_proj::up, expert_proj::down};

elem_type out_type_of(dtype d) {
  return d == dtype::bf16 ? elem_type::bf16 : d == dtype::f16 ? elem_type::f16 : elem_type::f32;
}

}  // namespace

result<error_table> measure_errors(const checkpoint& ck, const alloc_stats& st, const measure_options& opt) {
  RAZOR_TRY(st.validate());
  error_table t;
  t.n_layers = st.n_layers;
  t.n_experts = st.n_experts;
  t.bits = opt.bits;
  std::sort(t.bits.begin(), t.bits.end());
  for (double b : t.bits)
    if (!valid_bits(b) || b >= kKeepBits)
      return make_error(errc::invalid_argument, "measure: " + std::to_string(b) + " is not a quantized bit width");
  t.weighted = st.has_imatrix();
  const size_t nb = t.bits.size();
  const size_t n = st.size() * kProjs * nb;
  t.err.assign(n, 0.0);
  t.ref.assign(n, 0.0);
  t.werr.assign(n, 0.0);
  t.wref.assign(n, 0.0);
  for (int p = 0; p < kProjs; ++p) {
    auto v = ck.expert_matrix(0, 0, kProjOf[p]);
    if (!v) return make_error(errc::not_found, ck.dir() + ": no routed expert " + std::string(proj_name(kProjOf[p])) +
                                                   " matrix for layer 0 expert 0");
    t.params[p] = v->n_rows * v->n_cols;
  }
  std::atomic<int> done{0};
  std::atomic<bool> cancelled{false};
  std::mutex err_mu;
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
          for (int p = 0; p < kProjs; ++p) {
            auto v = ck.expert_matrix(L, e, kProjOf[p]);
            status s;
            if (!v) {
              s = make_error(errc::not_found, ck.dir() + ": expert matrix missing for layer " + std::to_string(L) +
                                                  " expert " + std::to_string(e));
            } else {
              const size_t rows = size_t(v->n_rows), cols = size_t(v->n_cols);
              w.resize(rows * cols);
              q.resize(rows * cols);
              s = ck.read_rows_f32(*v, w.data());
              // column weights: the imatrix mean squares of this expert's input
              m.assign(cols, 1.0);
              if (s.ok() && t.weighted) {
                const bool down = p == 2;
                const int64_t c = down ? st.cols_down : st.cols_gate_up;
                if (size_t(c) == cols) {
                  const auto& src = down ? st.msq_down : st.msq_gate_up;
                  std::copy_n(src.data() + st.idx(L, e) * cols, cols, m.data());
                }
              }
              const elem_type ot = out_type_of(v->t->dt);
              buf.resize(rows * cols * elem_size(ot));
              for (size_t bi = 0; bi < nb && s.ok(); ++bi) {
                fq_params fp{float(t.bits[bi]), opt.group, opt.clip_steps};
                s = fake_quant(w.data(), elem_type::f32, buf.data(), ot, rows, cols, fp, nullptr, {}, 1);
                if (!s.ok()) break;
                if (ot == elem_type::bf16) {
                  auto* h = reinterpret_cast<const uint16_t*>(buf.data());
                  for (size_t i = 0; i < rows * cols; ++i) q[i] = bf16_to_f32(h[i]);
                } else if (ot == elem_type::f16) {
                  auto* h = reinterpret_cast<const uint16_t*>(buf.data());
                  for (size_t i = 0; i < rows * cols; ++i) q[i] = f16_to_f32(h[i]);
                } else {
                  std::copy_n(reinterpret_cast<const float*>(buf.data()), rows * cols, q.data());
                }
                double e2 = 0, r2 = 0, we2 = 0, wr2 = 0;
                for (size_t r = 0; r < rows; ++r) {
                  const float* wr = w.data() + r * cols;
                  const float* qr = q.data() + r * cols;
                  for (size_t c = 0; c < cols; ++c) {
                    const double d = double(qr[c]) - double(wr[c]);
                    const double ww = double(wr[c]) * double(wr[c]);
                    e2 += d * d;
                    r2 += ww;
                    we2 += m[c] * d * d;
                    wr2 += m[c] * ww;
                  }
                }
                const size_t k = t.at(L, e, p, int(bi));
                t.err[k] = e2;
                t.ref[k] = r2;
                t.werr[k] = we2;
                t.wref[k] = wr2;
              }
            }
            if (!s.ok()) {
              std::lock_guard lk(err_mu);
              if (first_error.ok()) first_error = s;
              cancelled = true;
              break;
            }
          }
          int d = ++done;
          if (opt.progress) {
            std::lock_guard lk(err_mu);
            if (!opt.progress(double(d), double(n_items), "experts")) cancelled = true;
          }
        }
      },
      1, opt.threads);
  if (!first_error.ok()) return first_error;
  if (cancelled) return make_error(errc::cancelled, "error measurement cancelled");
  return t;
}

nlohmann::json file_identity(const std::string& path) {
  std::error_code ec;
  auto sz = fs::file_size(path, ec);
  auto mt = fs::last_write_time(path, ec);
  return {{"file", path}, {"size", ec ? 0 : uint64_t(sz)}, {"mtime", ec ? 0 : int64_t(mt.time_since_epoch().count())}};
}

nlohmann::json weights_identity(const checkpoint& ck) {
  nlohmann::json shards = nlohmann::json::array();
  for (auto& s : ck.shards()) {
    auto f = file_identity(s);
    f["file"] = fs::path(s).filename().string();
    shards.push_back(std::move(f));
  }
  std::error_code ec;
  auto canon = fs::weakly_canonical(ck.dir(), ec);
  return {{"dir", ec ? ck.dir() : canon.string()}, {"shards", shards}};
}

std::string error_cache_path(const std::string& probe_path, int group, int clip_steps) {
  fs::path p(probe_path);
  std::string stem = p.extension() == ".h5" ? p.stem().string() : p.filename().string();
  return (p.parent_path() / (stem + ".qerr-g" + std::to_string(group) + "-c" + std::to_string(clip_steps) + ".json"))
      .string();
}

result<error_table> load_or_measure_errors(const checkpoint& ck, const alloc_stats& st, const measure_options& opt,
                                           const std::string& cache_path, const nlohmann::json& probe_identity,
                                           bool* from_cache) {
  std::vector<double> bits = opt.bits;
  std::sort(bits.begin(), bits.end());
  nlohmann::json key = {{"model", weights_identity(ck)},
                        {"group", opt.group},
                        {"clip_steps", opt.clip_steps},
                        {"bits", bits},
                        {"probe", probe_identity},
                        {"imatrix", st.has_imatrix()},
                        {"fake_quant", "razor.fake_quant seed arithmetic, output cast to the stored dtype"}};
  return cached_error_table<error_table>(cache_path, key, st.n_layers, st.n_experts, from_cache,
                                         [&] { return measure_errors(ck, st, opt); });
}

// ---- damage model -----------------------------------------------------------------------------------------------

result<salience_kind> salience_from_name(std::string_view name) {
  if (name == "output") return salience_kind::output;
  if (name == "wmass") return salience_kind::wmass;
  if (name == "asal") return salience_kind::asal;
  if (name == "freq") return salience_kind::freq;
  return make_error(errc::invalid_argument, "unknown salience '" + std::string(name) + "' (output, wmass, asal, freq)");
}

std::string_view salience_name(salience_kind k) {
  switch (k) {
    case salience_kind::output: return "output";
    case salience_kind::wmass: return "wmass";
    case salience_kind::asal: return "asal";
    case salience_kind::freq: return "freq";
  }
  return "?";
}

double damage_model::damage(int layer, int expert, double b_gu, double b_dn) const {
  auto bi = [&](double b) {
    for (size_t i = 0; i < bits.size(); ++i)
      if (std::abs(bits[i] - b) < 1e-9) return int(i);
    return -1;
  };
  const int i = bi(b_gu), j = bi(b_dn);
  if (i < 0 || j < 0) return std::numeric_limits<double>::quiet_NaN();
  const size_t e = size_t(layer) * size_t(n_experts) + size_t(expert);
  return salience[e] * (rel_gu[e * bits.size() + size_t(i)] + rel_dn[e * bits.size() + size_t(j)]);
}

result<damage_model> make_damage_model(const alloc_stats& st, const error_table& et, const damage_options& opt) {
  RAZOR_TRY(st.validate());
  if (et.n_layers != st.n_layers || et.n_experts != st.n_experts)
    return make_error(errc::invalid_argument, "error table and probe disagree on layers x experts");
  damage_model dm;
  dm.n_layers = st.n_layers;
  dm.n_experts = st.n_experts;
  dm.bits = et.bits;
  const size_t n = st.size(), nb = et.bits.size();
  const bool w = opt.weighted_error && et.weighted;
  const auto& E = w ? et.werr : et.err;
  const auto& R = w ? et.wref : et.ref;
  dm.rel_gu.assign(n * nb, 0.0);
  dm.rel_dn.assign(n * nb, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const int L = int(i / size_t(st.n_experts)), e = int(i % size_t(st.n_experts));
    for (size_t b = 0; b < nb; ++b) {
      const double eg = E[et.at(L, e, 0, int(b))] + E[et.at(L, e, 1, int(b))];
      const double rg = R[et.at(L, e, 0, int(b))] + R[et.at(L, e, 1, int(b))];
      const double ed = E[et.at(L, e, 2, int(b))], rd = R[et.at(L, e, 2, int(b))];
      dm.rel_gu[i * nb + b] = rg > 0 ? eg / rg : 0.0;
      dm.rel_dn[i * nb + b] = rd > 0 ? ed / rd : 0.0;
    }
  }
  dm.salience.assign(n, 0.0);
  const int top = et.bit_index(et.bits.back());
  (void)top;
  for (size_t i = 0; i < n; ++i) {
    const int L = int(i / size_t(st.n_experts)), e = int(i % size_t(st.n_experts));
    double s = 0;
    switch (opt.salience) {
      case salience_kind::output: {
        // sum over routed tokens of w_t^2 ||y_e(x_t)||^2 ~ freq * (wmass/freq)^2 * E||y_e||^2, with
        // E||y_e||^2 ~ sum_j E[h_j^2] ||W_down[:, j]||^2 (the imatrix-weighted norm of down_proj).
        const double y2 = w ? R[et.at(L, e, 2, 0)] : (st.wfro_down.empty() ? 1.0 : st.wfro_down[i] * st.wfro_down[i]);
        s = st.freq[i] > 0 ? st.wmass[i] * st.wmass[i] / st.freq[i] * y2 : 0.0;
        break;
      }
      case salience_kind::wmass: s = st.wmass[i]; break;
      case salience_kind::asal: s = st.asal[i]; break;
      case salience_kind::freq: s = st.freq[i]; break;
    }
    dm.salience[i] = s;
  }
  if (opt.salience == salience_kind::output) {
    // Absolute output energy grows with depth, while what the model feels is the error relative to the residual
    // stream (not measured by the probe). Each layer's saliences are scaled to sum to the layer's routing mass
    // (the same for every layer: one unit per token), keeping the within-layer shares of output energy.
    for (int L = 0; L < st.n_layers; ++L) {
      double s = 0, m = 0;
      for (int e = 0; e < st.n_experts; ++e) {
        s += dm.salience[st.idx(L, e)];
        m += st.wmass[st.idx(L, e)];
      }
      if (s > 0)
        for (int e = 0; e < st.n_experts; ++e) dm.salience[st.idx(L, e)] *= m / s;
    }
  }
  if (opt.salience_floor > 0) {
    for (int L = 0; L < st.n_layers; ++L) {
      double mean = 0;
      for (int e = 0; e < st.n_experts; ++e) mean += dm.salience[st.idx(L, e)];
      mean /= double(st.n_experts);
      for (int e = 0; e < st.n_experts; ++e)
        dm.salience[st.idx(L, e)] = std::max(dm.salience[st.idx(L, e)], opt.salience_floor * mean);
    }
  }
  return dm;
}

// ---- solver -----------------------------------------------------------------------------------------------------

namespace {

struct fill_state {
  const std::vector<solver_item>* items;
  std::vector<int>* cur;
  double* spent;
};

// Spends what is left: repeatedly the single upgrade (any cheaper-to-dearer move that does not raise damage)
// with the largest damage reduction per unit cost that fits.
void fill(const std::vector<solver_item>& items, std::vector<int>& cur, double& spent, double budget, double eps) {
  for (;;) {
    int bi = -1, bk = -1;
    double best = -1, best_dd = -1;
    for (size_t i = 0; i < items.size(); ++i) {
      const auto& it = items[i];
      const int c = cur[i];
      for (size_t k = size_t(c) + 1; k < it.cost.size(); ++k) {
        const double dc = it.cost[k] - it.cost[size_t(c)];
        const double dd = it.damage[size_t(c)] - it.damage[k];
        if (dc <= 0 || dd < 0 || spent + dc > budget + eps) continue;
        const double r = dd / dc;
        if (r > best || (r == best && dd > best_dd)) {
          best = r;
          best_dd = dd;
          bi = int(i);
          bk = int(k);
        }
      }
    }
    if (bi < 0) return;
    spent += items[size_t(bi)].cost[size_t(bk)] - items[size_t(bi)].cost[size_t(cur[size_t(bi)])];
    cur[size_t(bi)] = bk;
  }
}

double total(const std::vector<solver_item>& items, const std::vector<int>& ch, bool cost) {
  double s = 0;
  for (size_t i = 0; i < items.size(); ++i) s += cost ? items[i].cost[size_t(ch[i])] : items[i].damage[size_t(ch[i])];
  return s;
}

// The smallest unit u (a divisor of the smallest positive cost step, up to /12) in which every step is an integer.
double auto_unit(const std::vector<solver_item>& items) {
  double mn = std::numeric_limits<double>::infinity();
  for (auto& it : items)
    for (size_t k = 1; k < it.cost.size(); ++k)
      if (it.cost[k] - it.cost[0] > 0) mn = std::min(mn, it.cost[k] - it.cost[0]);
  if (!std::isfinite(mn)) return 0;
  for (int d = 1; d <= 200; ++d) {  // 200: 1.58-bit steps (0.42 = 42 x 0.01) still get an exact unit
    const double u = mn / d;
    bool ok = true;
    for (auto& it : items) {
      for (size_t k = 1; k < it.cost.size() && ok; ++k) {
        const double q = (it.cost[k] - it.cost[0]) / u;
        if (std::abs(q - std::round(q)) > 1e-6 * std::max(1.0, q)) ok = false;
      }
      if (!ok) break;
    }
    if (ok) return u;
  }
  return 0;
}

}  // namespace

result<solver_result> solve_budget(const std::vector<solver_item>& items, double budget, const solver_options& opt) {
  solver_result res;
  const size_t n = items.size();
  for (auto& it : items) {
    if (it.cost.empty() || it.cost.size() != it.damage.size() || it.cost.size() > 255)
      return make_error(errc::invalid_argument, "solver: every item needs 1..255 choices with a cost and a damage");
    for (size_t k = 1; k < it.cost.size(); ++k)
      if (it.cost[k] < it.cost[k - 1]) return make_error(errc::invalid_argument, "solver: costs must ascend");
  }
  std::vector<int> cur(n, 0);
  double spent = 0;
  for (auto& it : items) spent += it.cost[0];
  const double eps = 1e-9 * std::max(1.0, std::abs(budget));
  if (spent > budget + eps)
    return make_error(errc::invalid_argument, "the budget is below the cheapest allowed choice for every item (" +
                                                  std::to_string(spent) + " > " + std::to_string(budget) + ")");
  // Lower convex hull of (cost, damage) per item, dominated points removed.
  std::vector<std::vector<int>> hull(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& it = items[i];
    auto& h = hull[i];
    h.push_back(0);
    for (size_t k = 1; k < it.cost.size(); ++k) {
      if (it.damage[k] >= it.damage[size_t(h.back())]) continue;  // dominated (not cheaper, not better)
      if (it.cost[k] == it.cost[size_t(h.back())]) {
        h.back() = int(k);
        continue;
      }
      auto slope = [&](int a, int b) { return (it.damage[size_t(a)] - it.damage[size_t(b)]) / (it.cost[size_t(b)] - it.cost[size_t(a)]); };
      while (h.size() >= 2 && slope(h[h.size() - 2], h.back()) <= slope(h.back(), int(k))) h.pop_back();
      h.push_back(int(k));
    }
  }
  // Greedy over hull segments, largest damage reduction per unit cost first.
  struct seg {
    double gain;
    size_t item;
    size_t pos;  // segment hull[pos] -> hull[pos + 1]
    bool operator<(const seg& o) const { return gain < o.gain || (gain == o.gain && item > o.item); }
  };
  std::priority_queue<seg> pq;
  auto push = [&](size_t i, size_t pos) {
    const auto& h = hull[i];
    if (pos + 1 >= h.size()) return;
    const auto& it = items[i];
    const double dc = it.cost[size_t(h[pos + 1])] - it.cost[size_t(h[pos])];
    const double dd = it.damage[size_t(h[pos])] - it.damage[size_t(h[pos + 1])];
    pq.push({dd / dc, i, pos});
  };
  for (size_t i = 0; i < n; ++i) push(i, 0);
  while (!pq.empty()) {
    seg s = pq.top();
    pq.pop();
    const auto& it = items[s.item];
    const double dc = it.cost[size_t(hull[s.item][s.pos + 1])] - it.cost[size_t(hull[s.item][s.pos])];
    if (spent + dc > budget + eps) continue;  // skip this item's remaining hull; others may still fit
    spent += dc;
    cur[s.item] = hull[s.item][s.pos + 1];
    res.lambda = s.gain;
    push(s.item, s.pos + 1);
  }
  fill(items, cur, spent, budget, eps);
  res.greedy_cost = total(items, cur, true);
  res.greedy_damage = total(items, cur, false);

  // Exact DP (multiple-choice knapsack) when small.
  if (opt.exact_if_small && n > 0) {
    const double unit = opt.unit > 0 ? opt.unit : auto_unit(items);
    double base = 0;
    for (auto& it : items) base += it.cost[0];
    if (unit > 0) {
      const double units_d = std::floor((budget - base) / unit + 1e-6);
      if (units_d >= 0 && double(n) * (units_d + 1) <= opt.max_dp_cells) {
        const size_t U = size_t(units_d);
        const double inf = std::numeric_limits<double>::infinity();
        std::vector<double> dp(U + 1, 0.0), nd(U + 1);
        std::vector<uint8_t> arg(n * (U + 1), 0);
        for (size_t i = 0; i < n; ++i) {
          const auto& it = items[i];
          std::fill(nd.begin(), nd.end(), inf);
          for (size_t k = 0; k < it.cost.size(); ++k) {
            const size_t w = size_t(std::llround((it.cost[k] - it.cost[0]) / unit));
            for (size_t j = w; j <= U; ++j) {
              const double v = dp[j - w] + it.damage[k];
              if (v < nd[j]) {
                nd[j] = v;
                arg[i * (U + 1) + j] = uint8_t(k);
              }
            }
          }
          dp.swap(nd);
        }
        std::vector<int> ch(n);
        size_t j = U;
        for (size_t i = n; i-- > 0;) {
          const int k = arg[i * (U + 1) + j];
          ch[i] = k;
          j -= size_t(std::llround((items[i].cost[size_t(k)] - items[i].cost[0]) / unit));
        }
        double sp = total(items, ch, true);
        fill(items, ch, sp, budget, eps);
        const double dd = total(items, ch, false);
        if (dd <= res.greedy_damage * (1 + 1e-12) + 1e-300) {
          cur = ch;
          res.exact = true;
        }
      }
    }
  }
  res.choice = cur;
  res.cost = total(items, cur, true);
  res.damage = total(items, cur, false);
  res.gain.assign(n, 0.0);
  res.next_gain.assign(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const auto& it = items[i];
    const size_t c = size_t(cur[i]);
    if (c > 0) {
      const double dc = it.cost[c] - it.cost[c - 1];
      res.gain[i] = dc > 0 ? (it.damage[c - 1] - it.damage[c]) / dc : 0.0;
    }
    if (c + 1 < it.cost.size()) {
      const double dc = it.cost[c + 1] - it.cost[c];
      res.next_gain[i] = dc > 0 ? (it.damage[c] - it.damage[c + 1]) / dc : 0.0;
    }
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const bool ua = cur[a] > 0, ub = cur[b] > 0;
    if (ua != ub) return ua;
    return ua ? res.gain[a] > res.gain[b] : res.next_gain[a] > res.next_gain[b];
  });
  res.rank.assign(n, 0);
  for (size_t r = 0; r < n; ++r) res.rank[order[r]] = int(r) + 1;
  return res;
}

solver_result solve_brute_force(const std::vector<solver_item>& items, double budget) {
  solver_result best;
  best.damage = std::numeric_limits<double>::infinity();
  std::vector<int> ch(items.size(), 0);
  const double eps = 1e-9 * std::max(1.0, std::abs(budget));
  for (;;) {
    const double c = total(items, ch, true);
    if (c <= budget + eps) {
      const double d = total(items, ch, false);
      if (d < best.damage) {
        best.damage = d;
        best.cost = c;
        best.choice = ch;
      }
    }
    size_t i = 0;
    for (; i < ch.size(); ++i) {
      if (size_t(++ch[i]) < items[i].cost.size()) break;
      ch[i] = 0;
    }
    if (i == ch.size()) break;
  }
  return best;
}

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

std::string fmt_bits(double b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", b);
  return buf;
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
  int64_t p_proj[kProjs];
  for (int p = 0; p < kProjs; ++p) {
    auto v = ck.expert_matrix(0, 0, kProjOf[p]);
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
        return make_error(errc::invalid_argument, "tag " + fmt_bits(b) + " is not a quantized recipe bit width (" +
                                                      recipe_bits_list() + ")");
  if (is_solver) {
    if (choices.empty()) return make_error(errc::invalid_argument, "no bit choices");
    for (double b : choices) {
      if (!valid_bits(b) || b >= kKeepBits)
        return make_error(errc::invalid_argument, fmt_bits(b) + " is not a quantized recipe bit width");
      if (errs->bit_index(b) < 0)
        return make_error(errc::invalid_argument, fmt_bits(b) + " bits were not measured (error cache)");
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
  if (std::abs(p_routed - p_expert * double(st.size())) > 0.5)
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
                          fmt_bits(min_bits) + " bits: " + std::to_string(fp_min.packed_bytes() / 1e9) + " GB)");

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
          it.cost.push_back(b);
          it.damage.push_back(dm->salience[i] * (dm->rel_gu[i * nb + bi(b)] + dm->rel_dn[i * nb + bi(b)]));
        }
        items.push_back(std::move(it));
      } else {
        solver_item gu, dn;
        for (double b : cbits) {
          gu.cost.push_back(b * f_gu);
          gu.damage.push_back(dm->salience[i] * dm->rel_gu[i * nb + bi(b)]);
          dn.cost.push_back(b * f_dn);
          dn.damage.push_back(dm->salience[i] * dm->rel_dn[i * nb + bi(b)]);
        }
        items.push_back(std::move(gu));
        items.push_back(std::move(dn));
      }
    }
    const double budget_units = budget_bits * double(st.size());
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
                             : "Seed strategy (seed-reference.md §2.3): two-level tags {" + fmt_bits(opt.tags.lo) +
                                   ", " + fmt_bits(opt.tags.hi) + "}, " +
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
      hist[fmt_bits(tags_gu[i]) + (tags_dn[i] != tags_gu[i] ? "/" + fmt_bits(tags_dn[i]) : "")]++;
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
        curves[fmt_bits(dm->bits[b])] = {{"rel_err_gate_up", gu / E}, {"rel_err_down", dn / E}};
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
