// The engine's next-token distributions against the real llama.cpp's on the F32 GGUF export of each fixture
// (core/gguf's convert_to_gguf; llama.cpp in exact mode: flash attention off, F32 KV cache), position by
// position. Both sides are compared as centred logits: log-softmax minus its mean over the vocabulary, which
// equals the raw logits minus their mean (node-llama-cpp exposes probabilities, not raw logits, so the constant
// per position is unknown; centring removes it). Also checks the GGUF -> engine weight mapping
// (engine::gguf_weights): the F32 file read back gives exactly the checkpoint's logits.
//
// The other families (olmoe, ...) have no trained fixture: each is a tiny random checkpoint of the family's Hub
// config schema and tensor names (`razor synth`, tests/engine/data/families/<family>.json) with the fixture's
// tokenizer. Random weights prove two implementations equal when they are large enough (synth's stddev) that the
// predictions are far from uniform: a wrong RoPE, norm, routing or scaling then moves the logits visibly. For
// them the q4_K export is also checked: llama.cpp's perplexity on it equals the engine's on the file read back.
// qwen3_next's in_proj_ba reaches llama.cpp whole (its graph splits [b, a] per key head: an independent check of
// the engine's split); its in_proj_qkvz is split by the same function for both sides (model/qwen3_next_rows.h),
// whose order tests/engine/test_families.cpp checks by hand.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/test_util.h"
#include "engine/eval.h"
#include "gguf/convert.h"
#include "gguf/validate.h"
#include "model/checkpoint.h"
#include "model/synth.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

// Float32 on both sides with different summation orders (ggml's SIMD dot products and its softmax vs our
// blocked matmul and double-accumulated log-softmax): measured max relative difference per position is ~1e-6
// (docs/engine.md: 1.4e-6 qwen3moe, 6.8e-6 qwen35moe); 1e-3 is the acceptance bound of the issue.
constexpr double k_logits_rel_tol = 1e-3;
constexpr size_t k_positions = 64;

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Centred log-probabilities of every position: [n][vocab].
std::vector<double> centred(const std::vector<float>& lp, size_t n, size_t vocab) {
  std::vector<double> out(n * vocab);
  for (size_t i = 0; i < n; ++i) {
    double mean = 0;
    for (size_t v = 0; v < vocab; ++v) mean += lp[i * vocab + v];
    mean /= double(vocab);
    for (size_t v = 0; v < vocab; ++v) out[i * vocab + v] = lp[i * vocab + v] - mean;
  }
  return out;
}

std::vector<float> engine_logprobs(engine::weight_provider& wp, const std::vector<int32_t>& toks, size_t vocab) {
  auto d = engine::dims_from_config(wp.config());
  EXPECT_TRUE(d.ok());
  std::vector<float> lp(toks.size() * vocab);
  auto st = engine::forward(wp, *d, {toks}, [&](size_t t0, size_t n, const float* logits) {
    for (size_t i = 0; i < n; ++i) engine::log_softmax(logits + i * vocab, vocab, lp.data() + (t0 + i) * vocab);
    return true;
  });
  EXPECT_TRUE(st.ok()) << st.to_string();
  return lp;
}

// Relative difference ||a_i - b_i|| / ||b_i|| of each position's centred logits.
std::vector<double> rel_per_position(const std::vector<double>& a, const std::vector<double>& b, size_t n,
                                     size_t vocab) {
  std::vector<double> r(n);
  for (size_t i = 0; i < n; ++i) {
    double dd = 0, nn = 0;
    for (size_t v = 0; v < vocab; ++v) {
      double x = a[i * vocab + v] - b[i * vocab + v];
      dd += x * x;
      nn += b[i * vocab + v] * b[i * vocab + v];
    }
    r[i] = std::sqrt(dd) / std::sqrt(nn);
  }
  return r;
}

double max_rel(const std::vector<double>& a, const std::vector<double>& b, size_t n, size_t vocab) {
  auto r = rel_per_position(a, b, n, vocab);
  return *std::max_element(r.begin(), r.end());
}

double median_rel(const std::vector<double>& a, const std::vector<double>& b, size_t n, size_t vocab) {
  auto r = rel_per_position(a, b, n, vocab);
  std::nth_element(r.begin(), r.begin() + std::ptrdiff_t(n / 2), r.end());
  return r[n / 2];
}

// Perplexity of the next-token log-probabilities lp [n][vocab] of toks (position i predicts toks[i + 1]).
double ppl_of(const std::vector<float>& lp, const std::vector<int32_t>& toks, size_t vocab) {
  double nll = 0;
  for (size_t i = 0; i + 1 < toks.size(); ++i) nll -= lp[i * vocab + size_t(toks[i + 1])];
  return std::exp(nll / double(toks.size() - 1));
}

// Mean entropy (nats) of the distributions lp [n][vocab] (log-probabilities).
double mean_entropy(const std::vector<float>& lp, size_t n, size_t vocab) {
  double h = 0;
  for (size_t i = 0; i < n * vocab; ++i) h -= std::exp(double(lp[i])) * lp[i];
  return h / double(n);
}

// Synth's weight scale for the family checkpoints: hidden projections of about 2.4 (stddev x sqrt(hidden 256)),
// so the router is decisive and the predictions far from uniform (checked below through their entropy).
constexpr float k_synth_stddev = 0.15f;
// Norm weights 1 +- 0.2: a norm applied without its weight (or with another norm's) changes the logits.
constexpr float k_synth_norm_jitter = 0.2f;

// The synthetic checkpoint of `family` in dir/<family>, with the fixture's tokenizer.
// `tokenizer`: the folder whose tokenizer.json / tokenizer_config.json are copied in (default: the fixture's
// byte-level BPE).
std::string synth_family(const std::string& family, const fs::path& dir, bool mxfp4 = false,
                         const std::string& tokenizer = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe") {
  const std::string src = std::string(RAZOR_SOURCE_DIR_T) + "/tests/engine/data/families/" + family + ".json";
  const auto cfg = nlohmann::json::parse(read_text(src));
  synth_options so;
  so.stddev = k_synth_stddev;
  so.norm_jitter = k_synth_norm_jitter;
  so.dt = dtype::f32;
  so.mxfp4_experts = mxfp4;  // gpt_oss's experts as the Hub releases them
  const std::string out = (dir / family).string();
  auto st = synth_checkpoint(cfg, out, so);
  EXPECT_TRUE(st.ok()) << st.to_string();
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(tokenizer + "/" + f, out + "/" + f);
  return out;
}

void check_fixture(const std::string& name, bool synthetic = false, const std::string& tokenizer = {}) {
  const std::string text = razor::test::eval_text_path();
  gguf::validate_options vo;
  vo.oracle_dir = RAZOR_ORACLE_DIR;
  if (auto why = gguf::validate_unavailable_reason(vo); !why.empty()) GTEST_SKIP() << why;
  fs::path dir = fs::temp_directory_path() /
                ("razor_logits_" + name + (tokenizer.empty() ? "_" : "_spm_") + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string model = !synthetic          ? std::string(RAZOR_MODELS_DIR) + "/" + name
                            : tokenizer.empty() ? synth_family(name, dir)
                                                : synth_family(name, dir, false, tokenizer);
  const std::string gg = (dir / (name + "-f32.gguf")).string();
  gguf::convert_options co;
  co.default_type = ggml::type::f32;
  auto rep = gguf::convert_to_gguf(model, gg, co);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();

  auto ck = checkpoint::open(model);
  ASSERT_TRUE(ck.ok());
  auto tk = bpe_tokenizer::load(model + "/tokenizer.json");
  ASSERT_TRUE(tk.ok());
  auto all = engine::protocol_tokens(*tk, read_text(text), "text").value();
  // Window 1 of the protocol (the first is the start of a file; any text would do).
  std::vector<int32_t> toks(all.begin() + 256, all.begin() + 256 + k_positions);
  const size_t vocab = size_t(ck->config().vocab_size);

  auto wp = engine::checkpoint_weights(*ck);
  auto mine = engine_logprobs(*wp, toks, vocab);
  auto theirs = gguf::llamacpp_logprobs(gg, toks, int64_t(vocab), vo, dir.string());
  ASSERT_TRUE(theirs.ok()) << theirs.error().to_string();
  ASSERT_EQ(theirs->logprobs.size(), mine.size());
  for (float v : theirs->logprobs) ASSERT_TRUE(std::isfinite(v)) << "a probability underflowed in llama.cpp";
  auto a = centred(mine, toks.size(), vocab), b = centred(theirs->logprobs, toks.size(), vocab);
  double rel = max_rel(a, b, toks.size(), vocab);
  std::printf("%s: engine vs llama.cpp (F32 GGUF, exact mode), %zu positions: max relative difference of centred "
              "logits %.3e\n", name.c_str(), toks.size(), rel);
  EXPECT_LT(rel, k_logits_rel_tol);

  // The same file read back by the engine (GGUF -> HF layout) must give the checkpoint's numbers.
  auto gw = engine::gguf_weights(gg, ck->config());
  ASSERT_TRUE(gw.ok()) << gw.error().to_string();
  auto back = engine_logprobs(**gw, toks, vocab);
  double rel_back = max_rel(centred(back, toks.size(), vocab), a, toks.size(), vocab);
  std::printf("%s: engine on the F32 GGUF read back vs engine on the checkpoint: %.3e\n", name.c_str(), rel_back);
  // Exact up to A_log = log(-(-exp(A_log))) (1 ulp) in the qwen35moe DeltaNet decay.
  EXPECT_LT(rel_back, 1e-5);

  if (synthetic) {
    // Far from uniform: the predictions' mean entropy is at least k_below_uniform nats under a uniform one's,
    // log(vocab) (measured 2.7 to 2.9: the mass sits on about e^-2.8 = 6 % of the vocabulary). Random weights
    // predict confidently and wrongly: the perplexity of the text is far above the vocabulary size.
    constexpr double k_below_uniform = 2.0;
    const double h = mean_entropy(mine, toks.size(), vocab);
    std::printf("%s: mean entropy of the predictions %.3f nats (uniform: %.3f)\n", name.c_str(), h,
                std::log(double(vocab)));
    EXPECT_LT(h, std::log(double(vocab)) - k_below_uniform) << "the synthetic model predicts nearly uniformly";
    const double ppl_ref = ppl_of(mine, toks, vocab);
    // The q4_K export in llama.cpp against the engine on the same file read back.
    const std::string q4 = (dir / (name + "-q4_K.gguf")).string();
    co.default_type = ggml::type::q4_k;
    auto rq = gguf::convert_to_gguf(model, q4, co);
    ASSERT_TRUE(rq.ok()) << rq.error().to_string();
    auto qw = engine::gguf_weights(q4, ck->config());
    ASSERT_TRUE(qw.ok()) << qw.error().to_string();
    const auto lp_engine = engine_logprobs(**qw, toks, vocab);
    const double ppl_engine = ppl_of(lp_engine, toks, vocab);
    auto lq = gguf::llamacpp_logprobs(q4, toks, int64_t(vocab), vo, dir.string());
    ASSERT_TRUE(lq.ok()) << lq.error().to_string();
    const double ppl_llama = ppl_of(lq->logprobs, toks, vocab);
    const auto ce = centred(lp_engine, toks.size(), vocab), cl = centred(lq->logprobs, toks.size(), vocab);
    const double med = median_rel(ce, cl, toks.size(), vocab), med_f32 = median_rel(ce, a, toks.size(), vocab);
    std::printf("%s: q4_K centred logits, llama.cpp vs engine read-back: median %.3e max %.3e; engine q4_K vs "
                "F32: median %.3e\n", name.c_str(), med, max_rel(ce, cl, toks.size(), vocab), med_f32);
    std::printf("%s: ppl F32 %.3f; q4_K in llama.cpp %.3f, read back by the engine %.3f\n", name.c_str(), ppl_ref,
                ppl_llama, ppl_engine);
    // llama.cpp multiplies q4_K weights by activations rounded to q8_K (8 bits per value), the engine by float32
    // activations. These random models are chaotic (sharp routing and attention: q4_K itself moves the median
    // position's centred logits by 45-90 % from F32), so the rounding flips an expert or an attention argmax at
    // some positions. Measured: mean log-likelihoods (log ppl, about 11 nats) 0.008 / 0.036 / 0.045 / 0.031 nats
    // apart (olmoe / qwen2_moe / mixtral / qwen3_next), median position 4-10 % apart; a misplaced tensor or scale moves the median
    // like q4_K vs F32 does (45 % and more).
    constexpr double k_q4_nll_tol = 0.1, k_q4_median_tol = 0.25;
    EXPECT_NEAR(std::log(ppl_llama / ppl_engine), 0.0, k_q4_nll_tol);
    EXPECT_LT(med, k_q4_median_tol);
  }
  fs::remove_all(dir);
}

// gpt-oss as the Hub releases it (MXFP4 experts, `synth --dtype mxfp4`): the engine decodes the blocks on read; the
// F32 conversion writes the decoded values (exact in float32), so llama.cpp on that file gives the engine's logits.
void check_mxfp4_source(const std::string& name) {
  const std::string text = razor::test::eval_text_path();
  gguf::validate_options vo;
  vo.oracle_dir = RAZOR_ORACLE_DIR;
  if (auto why = gguf::validate_unavailable_reason(vo); !why.empty()) GTEST_SKIP() << why;
  fs::path dir = fs::temp_directory_path() / ("razor_logits_mx_" + name + "_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string model = synth_family(name, dir, true);
  const std::string gg = (dir / (name + "-f32.gguf")).string();
  gguf::convert_options co;
  co.default_type = ggml::type::f32;
  auto rep = gguf::convert_to_gguf(model, gg, co);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  auto ck = checkpoint::open(model);
  ASSERT_TRUE(ck.ok());
  ASSERT_NE(ck->find_text("layers.0.mlp.experts.gate_up_proj_blocks"), nullptr);
  auto tk = bpe_tokenizer::load(model + "/tokenizer.json");
  ASSERT_TRUE(tk.ok());
  auto all = engine::protocol_tokens(*tk, read_text(text), "text").value();
  std::vector<int32_t> toks(all.begin() + 256, all.begin() + 256 + k_positions);
  const size_t vocab = size_t(ck->config().vocab_size);
  auto wp = engine::checkpoint_weights(*ck);
  auto mine = engine_logprobs(*wp, toks, vocab);
  auto theirs = gguf::llamacpp_logprobs(gg, toks, int64_t(vocab), vo, dir.string());
  ASSERT_TRUE(theirs.ok()) << theirs.error().to_string();
  ASSERT_EQ(theirs->logprobs.size(), mine.size());
  const double rel = max_rel(centred(mine, toks.size(), vocab), centred(theirs->logprobs, toks.size(), vocab),
                             toks.size(), vocab);
  std::printf("%s (MXFP4 experts): engine vs llama.cpp (F32 GGUF), %zu positions: max relative difference of centred "
              "logits %.3e\n", name.c_str(), toks.size(), rel);
  EXPECT_LT(rel, k_logits_rel_tol);
  fs::remove_all(dir);
}

}  // namespace

TEST(llamacpp_logits, qwen3_moe) { check_fixture("tiny-qwen3-moe"); }
TEST(llamacpp_logits, qwen3_5_moe) { check_fixture("tiny-qwen3-5-moe"); }
TEST(llamacpp_logits, olmoe_synthetic) { check_fixture("olmoe", true); }
TEST(llamacpp_logits, qwen2_moe_synthetic) { check_fixture("qwen2_moe", true); }
TEST(llamacpp_logits, mixtral_synthetic) { check_fixture("mixtral", true); }
// Mixtral with its own kind of tokenizer: SentencePiece-style BPE (tokenizer.ggml.model "llama", no merges).
TEST(llamacpp_logits, mixtral_spm_tokenizer_synthetic) {
  check_fixture("mixtral", true, std::string(RAZOR_SOURCE_DIR_T) + "/tests/engine/data/spm-tokenizer");
}
TEST(llamacpp_logits, deepseek_v3_synthetic) { check_fixture("deepseek_v3", true); }
TEST(llamacpp_logits, deepseek_v2_synthetic) { check_fixture("deepseek_v2", true); }
TEST(llamacpp_logits, kimi_k2_synthetic) { check_fixture("kimi_k2", true); }
TEST(llamacpp_logits, qwen3_next_synthetic) { check_fixture("qwen3_next", true); }
TEST(llamacpp_logits, gpt_oss_synthetic) { check_fixture("gpt_oss", true); }
TEST(llamacpp_logits, gpt_oss_mxfp4_source) { check_mxfp4_source("gpt_oss"); }
