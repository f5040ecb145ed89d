// eval-ppl's quantized models: the fake-quant recipe applied in memory (fake_quant_weights) and a GGUF export read
// back through the inverted conversion (gguf_weights), scored by the engine against the checkpoint.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/test_util.h"
#include "engine/eval.h"
#include "gguf/convert.h"
#include "model/checkpoint.h"
#include "model/recipe.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {
std::string text_path() { return razor::test::eval_text_path(); }  // held out: resources/data/README.md
std::vector<int32_t> tokens(const std::string& model) {
  std::ifstream f(text_path(), std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  auto tk = bpe_tokenizer::load(model + "/tokenizer.json");
  EXPECT_TRUE(tk.ok());
  return engine::protocol_tokens(*tk, ss.str(), "text").value();
}
constexpr int k_windows = 2;  // a few seconds per model on 2 cores
}  // namespace

TEST(quantized_eval, FakeQuantRecipeInMemory) {
  const std::string model = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-5-moe";
  auto ck = checkpoint::open(model);
  ASSERT_TRUE(ck.ok());
  auto toks = tokens(model);
  engine::eval_options o;
  o.windows = k_windows;
  auto ref = engine::checkpoint_weights(*ck);
  for (const char* name : {"uniform-int4", "uniform-int3"}) {
    auto r = load_recipe(name);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    auto fq = engine::fake_quant_weights(*ck, *r);
    auto kl = engine::kl_divergence(*fq, *ref, toks, o);
    ASSERT_TRUE(kl.ok()) << kl.error().to_string();
    std::printf("%s: ppl %.4f (ref %.4f), KL %.5f\n", name, kl->model.ppl, kl->ref.ppl, kl->kl_mean);
    EXPECT_GT(kl->kl_mean, 0.0);
    EXPECT_GT(kl->model.ppl, kl->ref.ppl);
  }
}

TEST(quantized_eval, GgufReadBack) {
  const std::string model = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-5-moe";
  auto ck = checkpoint::open(model);
  ASSERT_TRUE(ck.ok());
  fs::path dir = fs::temp_directory_path() / ("razor_qeval_" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto toks = tokens(model);
  engine::eval_options o;
  o.windows = k_windows;
  auto ref = engine::checkpoint_weights(*ck);
  double prev_kl = -1;
  for (auto t : {ggml::type::f32, ggml::type::q8_0, ggml::type::q3_k}) {
    const std::string f = (dir / (std::string(ggml::type_name(t)) + ".gguf")).string();
    gguf::convert_options co;
    co.default_type = t;
    ASSERT_TRUE(gguf::convert_to_gguf(model, f, co).ok());
    auto gw = engine::gguf_weights(f, ck->config());
    ASSERT_TRUE(gw.ok()) << gw.error().to_string();
    auto kl = engine::kl_divergence(**gw, *ref, toks, o);
    ASSERT_TRUE(kl.ok()) << kl.error().to_string();
    std::printf("%s GGUF read back: ppl %.4f (ref %.4f), KL %.6f\n", std::string(ggml::type_name(t)).c_str(),
                kl->model.ppl, kl->ref.ppl, kl->kl_mean);
    if (t == ggml::type::f32) EXPECT_EQ(kl->kl_mean, 0.0);  // the inverted conversion is exact
    EXPECT_GT(kl->kl_mean, prev_kl);
    prev_kl = kl->kl_mean;
  }
  fs::remove_all(dir);
}
