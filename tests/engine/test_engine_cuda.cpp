// The GPU forward pass (kernels/engine/ through engine::forward with backend::cuda) against the CPU
// reference (the ground truth) on both fixtures: logits of several sequences of different lengths, one of
// them longer than the attention kernel's key chunk. Skipped where no GPU is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/model_runner.h"
#include "model/checkpoint.h"

namespace {

using namespace razor;

// Both paths compute in float32; only the summation orders differ (cuBLAS vs the CPU's 4x64 blocks, block
// reductions vs sequential loops). Over 4 layers that moves logits by ~1e-6..1e-5 relative; the bounds leave
// an order of magnitude. A routing flip (two experts' probabilities within rounding) would break them: the
// fixtures' routers have no such near-tie on these tokens.
constexpr double k_logit_rel_l2_tol = 1e-4;   // ||gpu - cpu||_2 / ||cpu||_2 over all logits
constexpr double k_logit_max_rel_tol = 1e-3;  // max |gpu - cpu| / max |cpu|
constexpr double k_top1_min_agreement = 0.999;

std::vector<std::vector<int32_t>> make_seqs(int64_t vocab, const std::vector<size_t>& lens) {
  uint64_t x = 0x2545F4914F6CDD1DULL;
  std::vector<std::vector<int32_t>> seqs;
  for (size_t len : lens) {
    std::vector<int32_t> s(len);
    for (auto& t : s) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      t = int32_t((x >> 33) % uint64_t(vocab));
    }
    seqs.push_back(std::move(s));
  }
  return seqs;
}

std::vector<float> logits_of(engine::weight_provider& wp, const engine::model_dims& d,
                             const std::vector<std::vector<int32_t>>& seqs, engine::backend b, double* seconds) {
  size_t n = 0;
  for (auto& s : seqs) n += s.size();
  std::vector<float> out(n * size_t(d.vocab), NAN);
  engine::run_options opt;
  opt.device = b;
  opt.logits_chunk = 200;  // several chunks
  auto t0 = std::chrono::steady_clock::now();
  auto st = engine::forward(wp, d, seqs, [&](size_t tok0, size_t c, const float* l) {
    std::copy_n(l, c * size_t(d.vocab), out.data() + tok0 * size_t(d.vocab));
    return true;
  }, opt);
  *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(st.ok()) << st.to_string();
  return out;
}

void compare_fixture(const std::string& model, const std::vector<size_t>& lens) {
  std::string why;
  if (!engine::gpu_engine_available(&why)) GTEST_SKIP() << "no GPU: " << why;
  unsetenv("RAZOR_ENGINE");  // the backend is chosen here, not by the environment
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/" + model);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  auto wp = engine::checkpoint_weights(*ck);
  auto d = engine::dims_from_config(wp->config());
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  auto seqs = make_seqs(d->vocab, lens);
  double t_cpu = 0, t_gpu = 0;
  auto ref = logits_of(*wp, *d, seqs, engine::backend::cpu, &t_cpu);
  auto gpu = logits_of(*wp, *d, seqs, engine::backend::cuda, &t_gpu);
  ASSERT_EQ(ref.size(), gpu.size());
  const size_t V = size_t(d->vocab), n = ref.size() / V;
  double num = 0, den = 0, maxd = 0, maxr = 0;
  size_t bad = 0, same_top1 = 0;
  for (size_t t = 0; t < n; ++t) {
    size_t ar = 0, ag = 0;
    for (size_t j = 0; j < V; ++j) {
      double r = ref[t * V + j], g = gpu[t * V + j];
      if (!std::isfinite(g)) ++bad;
      num += (g - r) * (g - r);
      den += r * r;
      maxd = std::max(maxd, std::fabs(g - r));
      maxr = std::max(maxr, std::fabs(r));
      if (ref[t * V + j] > ref[t * V + ar]) ar = j;
      if (gpu[t * V + j] > gpu[t * V + ag]) ag = j;
    }
    same_top1 += ar == ag;
  }
  const double rel = std::sqrt(num / den), maxrel = maxd / maxr, top1 = double(same_top1) / double(n);
  std::printf("%s: %zu tokens x %zu logits: rel L2 %.3g, max |diff| %.3g (max |logit| %.3g, %.3g relative), "
              "same top-1 %.4f; CPU %.2f s, GPU %.2f s (incl. upload)\n",
              model.c_str(), n, V, rel, maxd, maxr, maxrel, top1, t_cpu, t_gpu);
  EXPECT_EQ(bad, 0u) << "non-finite or unwritten GPU logits";
  EXPECT_LT(rel, k_logit_rel_l2_tol);
  EXPECT_LT(maxrel, k_logit_max_rel_tol);
  EXPECT_GE(top1, k_top1_min_agreement);
}

TEST(engine_cuda, qwen3_moe_logits_match_cpu) {
  // 1100 > the attention kernel's key chunk (1024): exercises the online softmax across chunks.
  compare_fixture("tiny-qwen3-moe", {200, 37, 1, 1100});
}

TEST(engine_cuda, qwen3_5_moe_logits_match_cpu) {
  compare_fixture("tiny-qwen3-5-moe", {256, 37, 1, 130});
}

TEST(engine_cuda, backend_resolution) {
  unsetenv("RAZOR_ENGINE");
  engine::run_options o;
  EXPECT_EQ(engine::resolve_backend(o), engine::backend::cpu);
  o.device = engine::backend::automatic;
  EXPECT_EQ(engine::resolve_backend(o),
            engine::gpu_engine_available() ? engine::backend::cuda : engine::backend::cpu);
  setenv("RAZOR_ENGINE", "cpu", 1);
  EXPECT_EQ(engine::resolve_backend(o), engine::backend::cpu);
  unsetenv("RAZOR_ENGINE");
}

}  // namespace
