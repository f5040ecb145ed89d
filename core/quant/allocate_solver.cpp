// The budget solver: Lagrangian greedy on convex hulls, exact multiple-choice knapsack when small.
#include "quant/allocate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <queue>

namespace razor::quant {

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

}  // namespace razor::quant
