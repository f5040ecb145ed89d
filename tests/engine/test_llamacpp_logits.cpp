// The engine's next-token distributions against the real llama.cpp's on the F32 GGUF export of each fixture
// (core/gguf's convert_to_gguf; llama.cpp in exact mode: flash attention off, F32 KV cache), position by
// position. Both sides are compared as centred logits: log-softmax minus its mean over the vocabulary, which
// equals the raw logits minus their mean (node-llama-cpp exposes probabilities, not raw logits, so the constant
// per position is unknown; centring removes it). Also checks the GGUF -> engine weight mapping
// (engine::gguf_weights): the F32 file read back gives exactly the checkpoint's logits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/test_util.h"
#include "engine/eval.h"
#include "gguf/convert.h"
#include "gguf/validate.h"
#include "model/checkpoint.h"

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

double max_rel(const std::vector<double>& a, const std::vector<double>& b, size_t n, size_t vocab) {
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    double dd = 0, nn = 0;
    for (size_t v = 0; v < vocab; ++v) {
      double x = a[i * vocab + v] - b[i * vocab + v];
      dd += x * x;
      nn += b[i * vocab + v] * b[i * vocab + v];
    }
    worst = std::max(worst, std::sqrt(dd) / std::sqrt(nn));
  }
  return worst;
}

void check_fixture(const std::string& name) {
  const std::string text = razor::test::eval_text_path();
  gguf::validate_options vo;
  vo.oracle_dir = RAZOR_ORACLE_DIR;
  if (auto why = gguf::validate_unavailable_reason(vo); !why.empty()) GTEST_SKIP() << why;
  const std::string model = std::string(RAZOR_MODELS_DIR) + "/" + name;
  fs::path dir = fs::temp_directory_path() / ("razor_logits_" + std::to_string(getpid()));
  fs::create_directories(dir);
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
  fs::remove_all(dir);
}

}  // namespace

TEST(llamacpp_logits, qwen3_moe) { check_fixture("tiny-qwen3-moe"); }
TEST(llamacpp_logits, qwen3_5_moe) { check_fixture("tiny-qwen3-5-moe"); }
