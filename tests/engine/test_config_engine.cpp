// The engine checks config.json against the tensors before it runs (dims_for -> model/config_check.h): the
// values that corrupted the heap (partial_rotary_factor > 1) or printed "ppl -nan" (rms_norm_eps -1,
// rope_theta 0) are errors naming config.json and the key, for perplexity, KL and the probe alike.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/config_fixture.h"
#include "engine/eval.h"
#include "engine/probe.h"
#include "model/checkpoint.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

using test::expect_mentions;

// A few tokens of the fixture's vocabulary: enough for one window of 8.
std::vector<int32_t> some_tokens() {
  std::vector<int32_t> t;
  for (int i = 0; i < 64; ++i) t.push_back(int32_t(100 + (i * 37) % 3000));
  return t;
}

engine::eval_options one_window() {
  engine::eval_options o;
  o.windows = 1;
  o.ctx = 8;
  o.batch_windows = 1;
  o.print_plan = false;
  return o;
}

std::string ppl_error(const std::string& model, const std::string& tag, const std::function<void(nlohmann::json&)>& edit) {
  const fs::path dir = test::edited_fixture(model, tag, edit);
  std::string msg;
  {
    auto ck = checkpoint::open(dir.string());
    if (!ck.ok()) {
      msg = ck.error().to_string();
    } else {
      auto wp = engine::checkpoint_weights(*ck);
      auto r = engine::perplexity(*wp, some_tokens(), one_window());
      if (!r.ok()) msg = r.error().to_string();
    }
  }
  fs::remove_all(dir);
  return msg;
}


TEST(EngineConfig, FixtureRuns) {
  EXPECT_EQ(ppl_error("tiny-qwen3-5-moe", "eng-ok", [](auto&) {}), "");
}

TEST(EngineConfig, RotaryFactorAboveOneIsAnError) {
  expect_mentions(ppl_error("tiny-qwen3-5-moe", "eng-prf", [](auto& j) { j["rope_parameters"]["partial_rotary_factor"] = 4.0; }),
                  {"bad_config", "config.json", "rope_parameters.partial_rotary_factor = 4"});
  expect_mentions(ppl_error("tiny-qwen3-moe", "eng-prf3", [](auto& j) { j["partial_rotary_factor"] = 2; }),
                  {"config.json", "partial_rotary_factor = 2"});
}

TEST(EngineConfig, ValuesThatGaveNanAreErrors) {
  expect_mentions(ppl_error("tiny-qwen3-moe", "eng-eps", [](auto& j) { j["rms_norm_eps"] = -1; }),
                  {"config.json", "rms_norm_eps = -1"});
  expect_mentions(ppl_error("tiny-qwen3-moe", "eng-theta", [](auto& j) { j["rope_parameters"]["rope_theta"] = 0; }),
                  {"config.json", "rope_theta = 0"});
}

TEST(EngineConfig, ShapesAreCheckedBeforeRunning) {
  expect_mentions(ppl_error("tiny-qwen3-moe", "eng-vocab", [](auto& j) { j["vocab_size"] = 4000; }),
                  {"config.json", "vocab_size = 4000", "model.embed_tokens.weight should be [4000, 256]"});
  expect_mentions(ppl_error("tiny-qwen3-5-moe", "eng-lin", [](auto& j) { j["linear_value_head_dim"] = 32; }),
                  {"config.json", "linear_value_head_dim = 32"});
  // The probe goes through the same check.
  const fs::path dir = test::edited_fixture("tiny-qwen3-moe", "eng-probe", [](auto& j) { j["num_experts_per_tok"] = 17; });
  {
    auto ck = checkpoint::open(dir.string());
    ASSERT_TRUE(ck.ok()) << ck.error().to_string();
    auto wp = engine::checkpoint_weights(*ck);
    engine::probe_options po;
    po.n_tokens = 16;
    po.seqlen = 8;
    auto r = engine::run_probe(*wp, some_tokens(), po);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("num_experts_per_tok = 17"), std::string::npos) << r.error().to_string();
  }
  fs::remove_all(dir);
}

// A memory_weights model (synthetic) is checked the same way: a missing tensor is named.
TEST(EngineConfig, MemoryWeightsAreChecked) {
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe");
  ASSERT_TRUE(ck.ok());
  engine::memory_weights mw(ck->config());
  engine::tensor_f32 embed;
  embed.shape = {4096, 256};
  embed.data.assign(4096 * 256, 0.0f);
  mw.set("embed_tokens.weight", embed);
  auto st = engine::check_config(mw);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("norm.weight [256] is missing"), std::string::npos) << st.to_string();
}

}  // namespace
