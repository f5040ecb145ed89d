// razor validate-gguf --ref: KL divergence of a GGUF file from the unquantized export, measured in the real
// llama.cpp (tools/llamacpp/validate.mjs) on the same windows as its perplexity.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/test_util.h"
#include "gguf/convert.h"
#include "gguf/validate.h"

namespace fs = std::filesystem;
using namespace razor;
using namespace razor::gguf;

namespace {

fs::path tdir() {
  fs::path d = fs::temp_directory_path() / ("razor_kl_test_" + std::to_string(getpid()));
  fs::create_directories(d);
  return d;
}

// Any text the tokenizer reads will do for comparing two models; the repository's own docs keep the test
// inside the checkout.
std::string text_file() {
  const fs::path p = tdir() / "text.txt";
  std::ofstream out(p, std::ios::binary);
  for (const char* f : {"/README.md", "/docs/gguf.md"})
    out << razor::test::slurp(std::string(RAZOR_SOURCE_DIR_T) + f) << "\n\n\n";
  return p.string();
}

std::string pack(const char* stem, ggml::type t) {
  const std::string out = (tdir() / (std::string("tiny-qwen3-moe-") + stem + ".gguf")).string();
  if (fs::exists(out)) return out;
  convert_options o;
  o.default_type = t;
  auto rep = convert_to_gguf(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe", out, o);
  EXPECT_TRUE(rep.ok()) << rep.error().to_string();
  return out;
}

constexpr int k_windows = 3, k_first = 1, k_window = 256;
// The same F32 file in two llama.cpp contexts gives bit-identical probabilities: KL is 0 up to the rounding of
// summing p * (log p - log p) terms that are exactly 0.
constexpr double k_kl_identical = 1e-12;
// q8_0 keeps this model's next-token distribution close: measured mean KL ~0.01 on this text (a held-out
// kind of text for the model), against ~2 for q2_K. The bounds leave room for CPU-variant differences.
constexpr double k_kl_q8_max = 0.05;
constexpr double k_kl_q2k_min = 0.5;

TEST(ValidateKl, F32AgainstItselfQ8AndQ2K) {
  validate_options vo;
  vo.windows = k_windows;
  vo.first_window = k_first;
  vo.window = k_window;
  if (std::string why = validate_unavailable_reason(vo); !why.empty()) GTEST_SKIP() << why;
  vo.text_path = text_file();
  const std::string f32 = pack("f32", ggml::type::f32);
  vo.ref_path = f32;

  auto same = validate_with_llamacpp(f32, vo);
  ASSERT_TRUE(same.ok()) << same.error().to_string();
  ASSERT_TRUE(same->kl.has_value());
  EXPECT_EQ(same->windows, k_windows);
  EXPECT_EQ(same->first_window, k_first);
  EXPECT_EQ(same->kl->positions, int64_t(k_windows) * k_window);
  EXPECT_LE(std::abs(same->kl->mean), k_kl_identical);
  EXPECT_LE(std::abs(same->kl->max), k_kl_identical);
  EXPECT_EQ(same->kl->same_top1, 1.0);
  EXPECT_EQ(same->kl->ppl_ref, same->ppl);
  EXPECT_EQ(same->kl->window_kl.size(), size_t(k_windows));

  auto q8 = validate_with_llamacpp(pack("q8_0", ggml::type::q8_0), vo);
  ASSERT_TRUE(q8.ok()) << q8.error().to_string();
  ASSERT_TRUE(q8->kl.has_value());
  const kl_stats& k8 = *q8->kl;
  EXPECT_GT(k8.mean, 0.0);
  EXPECT_LT(k8.mean, k_kl_q8_max);
  EXPECT_EQ(k8.ppl_ref, same->ppl);  // the reference scored the same windows
  EXPECT_LE(k8.median, k8.p90);
  EXPECT_LE(k8.p90, k8.p99);
  EXPECT_LE(k8.p99, k8.p999);
  EXPECT_LE(k8.p999, k8.max);
  EXPECT_GT(k8.same_top1, 0.9);

  auto q2 = validate_with_llamacpp(pack("q2_K", ggml::type::q2_k), vo);
  ASSERT_TRUE(q2.ok()) << q2.error().to_string();
  ASSERT_TRUE(q2->kl.has_value());
  EXPECT_GT(q2->kl->mean, k_kl_q2k_min);
  EXPECT_GT(q2->kl->mean, 10 * k8.mean);
  EXPECT_LT(q2->kl->same_top1, k8.same_top1);
  EXPECT_GT(q2->ppl, q8->ppl);

  // A missing reference is named.
  validate_options missing = vo;
  missing.ref_path = (tdir() / "nope.gguf").string();
  auto m = validate_with_llamacpp(f32, missing);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message().find("nope.gguf"), std::string::npos);
}

}  // namespace
