// The seed's allocation strategies: expert importances, two-level tags from a budget, and budget targets.
#include "quant/allocate.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <numeric>
#include <random>

namespace razor::quant {

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

}  // namespace razor::quant
