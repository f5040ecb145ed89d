// The GPU forward pass (kernels/engine/ through engine::forward with backend::cuda) against the CPU
// reference (the ground truth) on both fixtures: logits of several sequences of different lengths, one of
// them longer than the attention kernel's key chunk, with fp32 and with BF16 weights; the probe's statistics
// observed on the GPU against the CPU's. The other families (olmoe, qwen2_moe, mixtral, qwen3_next, deepseek_v3,
// deepseek_v2, kimi_k2, gpt_oss) on synth checkpoints of tests/engine/data/families/*.json, F32 (gpt_oss also with
// the Hub's MXFP4 experts): logits, and the probe for deepseek_v3, qwen2_moe and gpt_oss. Skipped where no GPU is
// usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "engine/model_runner.h"
#include "engine/probe.h"
#include "model/checkpoint.h"
#include "model/synth.h"

namespace {

using namespace razor;

// Both paths compute in float32; only the summation orders differ (cuBLAS vs the CPU's 4x64 blocks, block
// reductions vs sequential loops). Over 4 layers that moves logits by ~1e-6..1e-5 relative; the bounds leave
// an order of magnitude. A routing flip (two experts' probabilities within rounding) would break them: the
// fixtures' routers have no such near-tie on these tokens.
constexpr double k_logit_rel_l2_tol = 1e-4;   // ||gpu - cpu||_2 / ||cpu||_2 over all logits
constexpr double k_logit_max_rel_tol = 1e-3;  // max |gpu - cpu| / max |cpu|
constexpr double k_top1_min_agreement = 0.999;
// BF16 weights: the fixtures' weights are BF16 already, but every GEMM input is rounded to BF16 (8 bits of
// mantissa, 2^-9 relative), so logits move by ~1e-2 relative over 4 layers and near-ties in the top-1 or in the
// routing flip. What matters is the distribution: the mean KL(cpu || gpu) per token. Measured on the H100
// (2026-12-07): tiny-qwen3-moe rel L2 1.6e-2, mean KL 2.6e-3; the synthesised tiny-qwen3-5-moe 6.6e-2, 2.2e-4.
// The bounds leave 2x; a broken kernel gives KL of order 1 (that is also why eval-ppl's KL defaults to f32).
constexpr double k_bf16_rel_l2_tol = 1.5e-1;
constexpr double k_bf16_mean_kl_tol = 5e-3;  // nats per token

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
                             const std::vector<std::vector<int32_t>>& seqs, engine::backend b, double* seconds,
                             engine::gpu_precision prec = engine::gpu_precision::f32) {
  size_t n = 0;
  for (auto& s : seqs) n += s.size();
  std::vector<float> out(n * size_t(d.vocab), NAN);
  engine::run_options opt;
  opt.device = b;
  opt.gpu_weights = prec;
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

// Synth's weight scale for the family checkpoints, as test_llamacpp_logits.cpp's: logits far from uniform, so a
// wrong RoPE, norm, routing or scaling factor on the GPU moves them visibly.
constexpr float k_synth_stddev = 0.15f;

nlohmann::json family_config(const std::string& family) {
  return nlohmann::json::parse(
      razor::test::slurp(std::string(RAZOR_SOURCE_DIR_T) + "/tests/engine/data/families/" + family + ".json"));
}

// The synth checkpoint (F32; gpt_oss's experts as MXFP4 blocks when `mxfp4`) of
// tests/engine/data/families/<family>.json in `s`.
result<checkpoint> family_checkpoint(const std::string& family, const razor::test::scratch_dir& s, bool mxfp4 = false) {
  synth_options so;
  so.dt = dtype::f32;
  so.stddev = k_synth_stddev;
  so.mxfp4_experts = mxfp4;
  RAZOR_TRY(synth_checkpoint(family_config(family), s / family, so));
  return checkpoint::open(s / family);
}

void compare_logits(const std::string& model, engine::weight_provider& wp, const std::vector<size_t>& lens,
                    engine::gpu_precision prec);

void compare_fixture(const std::string& model, const std::vector<size_t>& lens,
                     engine::gpu_precision prec = engine::gpu_precision::f32) {
  std::string why;
  if (!engine::gpu_engine_available(&why)) GTEST_SKIP() << "no GPU: " << why;
  unsetenv("RAZOR_ENGINE");  // the backend and the weights are chosen here, not by the environment
  unsetenv("RAZOR_GPU_WEIGHTS");
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/" + model);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  auto wp = engine::checkpoint_weights(*ck);
  compare_logits(model, *wp, lens, prec);
}

// A family's synth checkpoint, fp32 weights on the GPU.
void compare_family(const std::string& family, const std::vector<size_t>& lens, bool mxfp4 = false) {
  std::string why;
  if (!engine::gpu_engine_available(&why)) GTEST_SKIP() << "no GPU: " << why;
  unsetenv("RAZOR_ENGINE");
  unsetenv("RAZOR_GPU_WEIGHTS");
  razor::test::scratch_dir s("engine-cuda-" + family + (mxfp4 ? "-mxfp4" : ""));
  auto ck = family_checkpoint(family, s, mxfp4);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  auto wp = engine::checkpoint_weights(*ck);
  auto d = engine::dims_for(*wp);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  EXPECT_TRUE(engine::gpu_engine_runs(*d)) << family;
  compare_logits(family, *wp, lens, engine::gpu_precision::f32);
}

void compare_logits(const std::string& model, engine::weight_provider& wp, const std::vector<size_t>& lens,
                    engine::gpu_precision prec) {
  auto d = engine::dims_from_config(wp.config());
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  auto seqs = make_seqs(d->vocab, lens);
  double t_cpu = 0, t_gpu = 0;
  auto ref = logits_of(wp, *d, seqs, engine::backend::cpu, &t_cpu);
  auto gpu = logits_of(wp, *d, seqs, engine::backend::cuda, &t_gpu, prec);
  ASSERT_EQ(ref.size(), gpu.size());
  const size_t V = size_t(d->vocab), n = ref.size() / V;
  double num = 0, den = 0, maxd = 0, maxr = 0, kl = 0;
  size_t bad = 0, same_top1 = 0;
  for (size_t t = 0; t < n; ++t) {
    size_t ar = 0, ag = 0;
    {  // KL(softmax(ref) || softmax(gpu)) of this token
      double mr = -INFINITY, mg = -INFINITY, zr = 0, zg = 0, k = 0;
      for (size_t j = 0; j < V; ++j) mr = std::max(mr, double(ref[t * V + j])), mg = std::max(mg, double(gpu[t * V + j]));
      for (size_t j = 0; j < V; ++j) zr += std::exp(ref[t * V + j] - mr), zg += std::exp(gpu[t * V + j] - mg);
      for (size_t j = 0; j < V; ++j) {
        const double lr = ref[t * V + j] - mr - std::log(zr), lg = gpu[t * V + j] - mg - std::log(zg);
        k += std::exp(lr) * (lr - lg);
      }
      kl += k / double(n);
    }
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
  const bool bf16 = prec == engine::gpu_precision::bf16;
  std::printf("%s (%s weights): %zu tokens x %zu logits: rel L2 %.3g, max |diff| %.3g (max |logit| %.3g, %.3g relative), "
              "same top-1 %.4f, mean KL %.3g; CPU %.2f s, GPU %.2f s (incl. upload)\n",
              model.c_str(), bf16 ? "bf16" : "f32", n, V, rel, maxd, maxr, maxrel, top1, kl, t_cpu, t_gpu);
  EXPECT_EQ(bad, 0u) << "non-finite or unwritten GPU logits";
  if (bf16) {
    EXPECT_LT(rel, k_bf16_rel_l2_tol);
    EXPECT_LT(kl, k_bf16_mean_kl_tol);
    return;
  }
  EXPECT_LT(rel, k_logit_rel_l2_tol);
  EXPECT_LT(maxrel, k_logit_max_rel_tol);
  EXPECT_GE(top1, k_top1_min_agreement);
}

// The probe on the GPU (observations reduced on the device) against the CPU probe, fp32 weights: routing
// counts equal but for near-ties, gate mass / salience / input sums to float32 rounding.
constexpr double k_probe_stat_rel_tol = 1e-3;     // |gpu - cpu| / |cpu| of a layer's summed statistic
constexpr double k_probe_freq_max_moved = 0.01;   // share of a layer's routed slots that may change expert
void compare_probe_on(engine::weight_provider& wp, size_t n_tokens, size_t seqlen, engine::gpu_precision prec,
                      double stat_tol, double freq_moved);

void compare_probe(engine::gpu_precision prec, double stat_tol, double freq_moved) {
  std::string why;
  if (!engine::gpu_engine_available(&why)) GTEST_SKIP() << "no GPU: " << why;
  unsetenv("RAZOR_ENGINE");
  unsetenv("RAZOR_GPU_WEIGHTS");
  const std::string dir = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-5-moe";
  auto ck = checkpoint::open(dir);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  auto wp = engine::checkpoint_weights(*ck);
  compare_probe_on(*wp, 1024, 256, prec, stat_tol, freq_moved);
}

// The probe of a family's synth checkpoint on the GPU (fp32 weights) against the CPU's: router choices and the
// input sums under the CPU's names (DeepSeek's MLA, dense-layer and shared_experts names included).
void compare_family_probe(const std::string& family) {
  std::string why;
  if (!engine::gpu_engine_available(&why)) GTEST_SKIP() << "no GPU: " << why;
  unsetenv("RAZOR_ENGINE");
  unsetenv("RAZOR_GPU_WEIGHTS");
  razor::test::scratch_dir s("engine-cuda-probe-" + family);
  auto ck = family_checkpoint(family, s);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  auto wp = engine::checkpoint_weights(*ck);
  compare_probe_on(*wp, 512, 128, engine::gpu_precision::f32, k_probe_stat_rel_tol, k_probe_freq_max_moved);
}

void compare_probe_on(engine::weight_provider& wp, size_t n_tokens, size_t seqlen, engine::gpu_precision prec,
                      double stat_tol, double freq_moved) {
  auto d = engine::dims_from_config(wp.config());
  ASSERT_TRUE(d.ok());
  std::vector<int32_t> toks;
  for (auto& s : make_seqs(d->vocab, {n_tokens})) toks = s;
  engine::probe_options o;
  o.n_tokens = n_tokens;
  o.seqlen = seqlen;
  auto cpu = engine::run_probe(wp, toks, o);
  ASSERT_TRUE(cpu.ok()) << cpu.error().to_string();
  o.device = engine::backend::cuda;
  o.gpu_weights = prec;
  auto gpu = engine::run_probe(wp, toks, o);
  ASSERT_TRUE(gpu.ok()) << gpu.error().to_string();
  const size_t E = size_t(cpu->n_experts);
  auto rel = [](double a, double b) { return std::fabs(a - b) / std::max(std::fabs(b), 1e-30); };
  for (size_t L = 0; L < size_t(cpu->n_layers); ++L) {
    double moved = 0, slots = 0, wm_c = 0, wm_g = 0, as_c = 0, as_g = 0;
    for (size_t e = 0; e < E; ++e) {
      const size_t i = L * E + e;
      moved += std::fabs(gpu->freq[i] - cpu->freq[i]) / 2;
      slots += cpu->freq[i];
      wm_c += cpu->wmass[i];
      wm_g += gpu->wmass[i];
      as_c += cpu->asal[i];
      as_g += gpu->asal[i];
      EXPECT_LT(rel(gpu->wfro_gate_up[i], cpu->wfro_gate_up[i]), 1e-9);  // same host weights, same sums
      EXPECT_LT(rel(gpu->rnorm[i], cpu->rnorm[i]), 1e-9);
    }
    if (slots == 0) {  // a dense layer (DeepSeek's leading ones): no routing on either side
      EXPECT_EQ(moved, 0.0) << "layer " << L;
      continue;
    }
    EXPECT_LE(moved / slots, freq_moved) << "layer " << L;
    EXPECT_LT(rel(wm_g, wm_c), stat_tol) << "layer " << L;
    EXPECT_LT(rel(as_g, as_c), stat_tol) << "layer " << L;
    std::printf("layer %zu: %.4f of the routed slots moved; gate mass rel %.2e, salience rel %.2e\n", L, moved / slots,
                rel(wm_g, wm_c), rel(as_g, as_c));
  }
  ASSERT_EQ(gpu->inputs.size(), cpu->inputs.size());
  for (size_t k = 0; k < cpu->inputs.size(); ++k) {
    const auto& c = cpu->inputs[k];
    const auto& g = gpu->inputs[k];
    ASSERT_EQ(g.name, c.name);
    ASSERT_EQ(g.sum_sq.size(), c.sum_sq.size()) << c.name;
    uint64_t rc = 0, rg = 0;
    double sc = 0, sg = 0;
    for (auto v : c.count) rc += v;
    for (auto v : g.count) rg += v;
    for (double v : c.sum_sq) sc += v;
    for (double v : g.sum_sq) sg += v;
    EXPECT_EQ(rg, rc) << c.name;
    EXPECT_LT(rel(sg, sc), stat_tol * (c.n_mat > 1 ? 10 : 1)) << c.name;  // experts: moved slots move mass
  }
}

TEST(engine_cuda, qwen3_moe_logits_match_cpu) {
  // 1100 > the attention kernel's key chunk (1024): exercises the online softmax across chunks.
  compare_fixture("tiny-qwen3-moe", {200, 37, 1, 1100});
}

TEST(engine_cuda, qwen3_5_moe_logits_match_cpu) {
  compare_fixture("tiny-qwen3-5-moe", {256, 37, 1, 130});
}

TEST(engine_cuda, qwen3_moe_logits_bf16_weights) {
  compare_fixture("tiny-qwen3-moe", {200, 37, 1, 1100}, engine::gpu_precision::bf16);
}

TEST(engine_cuda, qwen3_5_moe_logits_bf16_weights) {
  compare_fixture("tiny-qwen3-5-moe", {256, 37, 1, 130}, engine::gpu_precision::bf16);
}

TEST(engine_cuda, probe_on_gpu_matches_cpu) {
  compare_probe(engine::gpu_precision::f32, k_probe_stat_rel_tol, k_probe_freq_max_moved);
}

// BF16: every routing decision sees BF16-rounded router inputs; allow 5 % of the slots to move, 2 % on the sums.
TEST(engine_cuda, probe_on_gpu_bf16_weights) { compare_probe(engine::gpu_precision::bf16, 2e-2, 0.05); }

// The other families on their synth checkpoints (2-3 layers, hidden 256), fp32 weights; 4 sequences.
const std::vector<size_t> k_family_lens = {96, 37, 1, 60};

TEST(engine_cuda, olmoe_logits_match_cpu) { compare_family("olmoe", k_family_lens); }
TEST(engine_cuda, qwen2_moe_logits_match_cpu) { compare_family("qwen2_moe", k_family_lens); }
TEST(engine_cuda, mixtral_logits_match_cpu) { compare_family("mixtral", k_family_lens); }
TEST(engine_cuda, qwen3_next_logits_match_cpu) { compare_family("qwen3_next", k_family_lens); }
TEST(engine_cuda, deepseek_v3_logits_match_cpu) { compare_family("deepseek_v3", k_family_lens); }
TEST(engine_cuda, deepseek_v2_logits_match_cpu) { compare_family("deepseek_v2", k_family_lens); }
TEST(engine_cuda, kimi_k2_logits_match_cpu) { compare_family("kimi_k2", k_family_lens); }
// gpt_oss: sinks, a 16-token window on layer 0 (the 96- and 60-token sequences pass it), YaRN, biases, clamped SwiGLU;
// with the Hub's MXFP4 experts the host decodes them and the engine sees the same floats as the CPU.
TEST(engine_cuda, gpt_oss_logits_match_cpu) { compare_family("gpt_oss", k_family_lens); }
TEST(engine_cuda, gpt_oss_mxfp4_logits_match_cpu) { compare_family("gpt_oss", k_family_lens, true); }

TEST(engine_cuda, probe_on_gpu_deepseek_v3) { compare_family_probe("deepseek_v3"); }
TEST(engine_cuda, probe_on_gpu_qwen2_moe) { compare_family_probe("qwen2_moe"); }
TEST(engine_cuda, probe_on_gpu_gpt_oss) { compare_family_probe("gpt_oss"); }

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
