#include "recover/sampling.h"

#include <algorithm>
#include <cmath>

#include "engine/eval.h"

namespace razor::recover {

status check_sampling(const sampling_params& p) {
  if (!(p.temperature >= 0 && p.temperature <= 100))
    return make_error(errc::invalid_argument, "temperature must be in [0, 100], not " + std::to_string(p.temperature));
  if (!(p.top_p > 0 && p.top_p <= 1))
    return make_error(errc::invalid_argument, "top_p must be in (0, 1], not " + std::to_string(p.top_p));
  if (p.top_k < 0) return make_error(errc::invalid_argument, "top_k must be >= 0, not " + std::to_string(p.top_k));
  return {};
}

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

rng::rng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

uint64_t rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double rng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

rng rollout_rng(uint64_t seed, int64_t prompt, int64_t sample) {
  uint64_t x = seed;
  uint64_t a = splitmix64(x) ^ uint64_t(prompt);
  uint64_t b = splitmix64(a) ^ uint64_t(sample);
  return rng(splitmix64(b));
}

int32_t sample_token(const float* logits, size_t n, const sampling_params& p, rng& g,
                     std::vector<std::pair<float, int32_t>>* scratch) {
  if (n == 0) return -1;
  // Larger logit first, then the lower id: a strict order, so the candidates are the same on every platform.
  auto better = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  if (p.temperature <= 0) {
    size_t best = 0;
    for (size_t i = 1; i < n; ++i)
      if (logits[i] > logits[best]) best = i;
    return int32_t(best);
  }
  std::vector<std::pair<float, int32_t>> local;
  auto& c = scratch ? *scratch : local;
  c.resize(n);
  for (size_t i = 0; i < n; ++i) c[i] = {logits[i], int32_t(i)};
  size_t k = (p.top_k <= 0 || size_t(p.top_k) >= n) ? n : size_t(p.top_k);
  if (k < n) std::nth_element(c.begin(), c.begin() + ptrdiff_t(k - 1), c.end(), better);
  std::sort(c.begin(), c.begin() + ptrdiff_t(k), better);
  // softmax of logit / T over the k candidates
  const double inv_t = 1.0 / p.temperature;
  const double mx = double(c[0].first) * inv_t;
  std::vector<double> pr(k);
  double z = 0;
  for (size_t i = 0; i < k; ++i) z += pr[i] = std::exp(double(c[i].first) * inv_t - mx);
  // nucleus: the smallest prefix whose mass reaches top_p
  size_t keep = k;
  if (p.top_p < 1) {
    double cum = 0;
    for (size_t i = 0; i < k; ++i) {
      cum += pr[i] / z;
      if (cum >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += pr[i];
  const double u = g.uniform() * total;
  double cum = 0;
  for (size_t i = 0; i < keep; ++i) {
    cum += pr[i];
    if (u < cum) return c[i].second;
  }
  return c[keep - 1].second;
}

void top_log_probs(const float* logits, size_t n, size_t k, int32_t* ids, float* lps) {
  k = std::min(k, n);
  std::vector<float> lp(n);
  engine::log_softmax(logits, n, lp.data());
  std::vector<int32_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = int32_t(i);
  auto better = [&](int32_t a, int32_t b) { return lp[size_t(a)] > lp[size_t(b)] || (lp[size_t(a)] == lp[size_t(b)] && a < b); };
  if (k < n) std::nth_element(idx.begin(), idx.begin() + ptrdiff_t(k ? k - 1 : 0), idx.end(), better);
  std::sort(idx.begin(), idx.begin() + ptrdiff_t(k), better);
  for (size_t i = 0; i < k; ++i) {
    ids[i] = idx[i];
    lps[i] = lp[size_t(idx[i])];
  }
}

}  // namespace razor::recover
