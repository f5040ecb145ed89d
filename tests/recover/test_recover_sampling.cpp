// razor recover's sampling (core/recover/sampling.h): temperature / top-k / top-p on hand-made logits, the seeded
// generator (same seed, same tokens), and the teacher's top-k log-probs against a direct log-softmax.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "engine/eval.h"
#include "recover/sampling.h"

using namespace razor;
using namespace razor::recover;

namespace {
// Draws `n` tokens from `logits` with a fresh generator and counts them.
std::map<int32_t, int> histogram(const std::vector<float>& logits, const sampling_params& p, int n, uint64_t seed = 7) {
  rng g(seed);
  std::map<int32_t, int> h;
  for (int i = 0; i < n; ++i) ++h[sample_token(logits.data(), logits.size(), p, g)];
  return h;
}
}  // namespace

TEST(RecoverSampling, ZeroTemperatureIsGreedyLowestIdOnTies) {
  rng g(1);
  const std::vector<float> l{0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(sample_token(l.data(), l.size(), {0.0, 0.95, 20}, g), 1);
}

TEST(RecoverSampling, TopKKeepsOnlyTheLargest) {
  // Five tokens; top_k 2 leaves tokens 3 and 1 (the two largest logits), whatever the draws.
  const std::vector<float> l{0.0f, 3.0f, -2.0f, 3.5f, 1.0f};
  auto h = histogram(l, {1.0, 1.0, 2}, 2000);
  for (auto& [tok, n] : h) EXPECT_TRUE(tok == 3 || tok == 1) << tok;
  EXPECT_GT(h[3], h[1]);  // e^0.5 : 1
}

TEST(RecoverSampling, TopPCutsTheTail) {
  // Probabilities at temperature 1: 0.5, 0.3, 0.15, 0.05 (log of them as logits). top_p 0.79: the first two reach
  // it (0.8), so only tokens 0 and 1 are drawn; top_p 0.82 needs the third as well (0.95), not the fourth.
  const std::vector<float> l{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  auto h = histogram(l, {1.0, 0.79, 0}, 4000);
  EXPECT_EQ(h.count(2) + h.count(3), 0u);
  EXPECT_GT(h[0], 0);
  EXPECT_GT(h[1], 0);
  auto h2 = histogram(l, {1.0, 0.82, 0}, 4000);
  EXPECT_GT(h2[2], 0);
  EXPECT_EQ(h2.count(3), 0u);
}

TEST(RecoverSampling, TemperatureSharpens) {
  // Two tokens one logit apart: at T = 1 the odds are e : 1 (73 %), at T = 0.25 e^4 : 1 (98 %).
  const std::vector<float> l{1.0f, 0.0f};
  const int n = 4000;
  auto warm = histogram(l, {1.0, 1.0, 0}, n), cold = histogram(l, {0.25, 1.0, 0}, n);
  // Tolerance: 4000 draws give a binomial standard deviation of about 0.7 % at p = 0.73; 3 % is > 4 sigma.
  constexpr double kShareTol = 0.03;
  EXPECT_NEAR(double(warm[0]) / n, std::exp(1.0) / (1 + std::exp(1.0)), kShareTol);
  EXPECT_NEAR(double(cold[0]) / n, std::exp(4.0) / (1 + std::exp(4.0)), kShareTol);
}

TEST(RecoverSampling, SameSeedSameTokens) {
  std::vector<float> l(64);
  for (size_t i = 0; i < l.size(); ++i) l[i] = float(std::sin(double(i) * 1.7) * 3);
  const sampling_params p;  // the seed's 0.6 / 0.95 / 20
  auto draw = [&](uint64_t seed, int64_t pid, int64_t k) {
    rng g = rollout_rng(seed, pid, k);
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(sample_token(l.data(), l.size(), p, g));
    return out;
  };
  EXPECT_EQ(draw(0, 3, 1), draw(0, 3, 1));
  EXPECT_NE(draw(0, 3, 1), draw(0, 3, 2));  // each rollout its own stream
  EXPECT_NE(draw(0, 3, 1), draw(1, 3, 1));
  // The generator itself is fixed (xoshiro256** from splitmix64): the same numbers on every platform.
  rng a(42), b(42);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next(), b.next());
  rng c(42);
  const double u = c.uniform();
  EXPECT_GE(u, 0.0);
  EXPECT_LT(u, 1.0);
}

TEST(RecoverSampling, BadParametersAreNamed) {
  EXPECT_FALSE(check_sampling({-1.0, 0.9, 20}).ok());
  auto st = check_sampling({0.6, 0.0, 20});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.to_string().find("top_p"), std::string::npos);
  EXPECT_FALSE(check_sampling({0.6, 0.9, -3}).ok());
  EXPECT_TRUE(check_sampling({}).ok());
}

TEST(RecoverSampling, TopLogProbsAreTheLogSoftmaxBestFirst) {
  std::vector<float> l(300);
  for (size_t i = 0; i < l.size(); ++i) l[i] = float(std::cos(double(i) * 0.37) * 5 + double(i % 7) * 0.1);
  l[10] = l[20];  // a tie: the lower id first
  std::vector<float> lp(l.size());
  engine::log_softmax(l.data(), l.size(), lp.data());
  const size_t K = 20;
  std::vector<int32_t> ids(K);
  std::vector<float> vals(K);
  top_log_probs(l.data(), l.size(), K, ids.data(), vals.data());
  for (size_t i = 0; i < K; ++i) {
    EXPECT_EQ(vals[i], lp[size_t(ids[i])]);  // the same function: bit-identical
    if (i) EXPECT_TRUE(vals[i - 1] > vals[i] || (vals[i - 1] == vals[i] && ids[i - 1] < ids[i]));
  }
  // Nothing outside the top K is larger than the K-th.
  for (size_t v = 0; v < l.size(); ++v)
    if (std::find(ids.begin(), ids.end(), int32_t(v)) == ids.end()) EXPECT_LE(lp[v], vals[K - 1]);
}
