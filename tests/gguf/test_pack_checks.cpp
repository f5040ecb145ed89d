// What `pack` refuses before writing anything: a config.json its tensors contradict (model/config_check.h, the
// engine's own check) and tensor-type recipe patterns that are hostile (util/regex.h limits).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/config_fixture.h"
#include "gguf/convert.h"
#include "model/checkpoint.h"

namespace fs = std::filesystem;
using namespace razor;
using namespace razor::gguf;

namespace {

// Converting the edited fixture fails with `parts` in the message, and no output file (nor partial) is left.
void expect_refused(const std::string& model, const std::string& tag, const std::function<void(nlohmann::json&)>& edit,
                    const std::vector<std::string>& parts, const std::function<void(std::string&)>& weights = nullptr) {
  const fs::path dir = test::edited_fixture(model, tag, edit, weights);
  const fs::path out = dir / "out" / "model.gguf";
  fs::create_directories(out.parent_path());
  convert_options o;
  o.default_type = ggml::type::q8_0;
  auto rep = convert_to_gguf(dir.string(), out.string(), o);
  ASSERT_FALSE(rep.ok()) << tag << ": converted";
  for (const auto& p : parts)
    EXPECT_NE(rep.error().message().find(p), std::string::npos) << "'" << p << "' not in: " << rep.error().to_string();
  EXPECT_TRUE(fs::is_empty(out.parent_path())) << tag << ": something was written";
  fs::remove_all(dir);
}

// A transposed embedding gave a GGUF that llama.cpp rejected.
TEST(PackChecks, TransposedEmbedding) {
  expect_refused("tiny-qwen3-moe", "pack-embd-t", [](auto&) {},
                 {"config.json", "model.embed_tokens.weight should be [4096, 256], but it is [256, 4096]"},
                 [](std::string& b) {
                   const std::string from = "\"model.embed_tokens.weight\":{\"dtype\":\"BF16\",\"shape\":[4096,256]";
                   auto at = b.find(from);
                   ASSERT_NE(at, std::string::npos);
                   b.replace(at, from.size(), "\"model.embed_tokens.weight\":{\"dtype\":\"BF16\",\"shape\":[256,4096]");
                 });
}

// block_count 1e12 was written wrapped to 32 bits; expert_used_count 64 with 16 experts.
TEST(PackChecks, ConfigValuesTheGgufWouldCarry) {
  expect_refused("tiny-qwen3-moe", "pack-layers", [](auto& j) { j["num_hidden_layers"] = 1e12; },
                 {"config.json", "num_hidden_layers", "out of range"});
  expect_refused("tiny-qwen3-moe", "pack-topk", [](auto& j) { j["num_experts_per_tok"] = 64; },
                 {"config.json", "num_experts_per_tok = 64", "num_local_experts = 16"});
  expect_refused("tiny-qwen3-5-moe", "pack-prf", [](auto& j) { j["rope_parameters"]["partial_rotary_factor"] = 2.0; },
                 {"config.json", "rope_parameters.partial_rotary_factor = 2"});
  expect_refused("tiny-qwen3-5-moe", "pack-lin", [](auto& j) { j["linear_key_head_dim"] = 32; },
                 {"config.json", "linear_key_head_dim = 32", "in_proj_qkv.weight should be"});
}

TEST(PackChecks, HostileTypeRecipePatterns) {
  // 30,000 nested groups: refused when the recipe is read (std::regex overflowed the stack compiling it).
  const std::string deep = std::string(30000, '(') + "x" + std::string(30000, ')') + "=q8_0\n";
  auto r = parse_type_recipe("ffn_up_exps=q4_K\n" + deep, "deep.txt");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), errc::bad_recipe);
  EXPECT_NE(r.error().message().find("deep.txt:2"), std::string::npos) << r.error().message();
  auto nested = parse_type_recipe(std::string(500, '(') + "x" + std::string(500, ')') + "=q8_0\n", "nest.txt");
  ASSERT_FALSE(nested.ok());
  EXPECT_NE(nested.error().message().find("nested"), std::string::npos) << nested.error().message();

  // ^(.+)+x$ backtracked for more than 30 s on "...ffn_gate_exps.weight": an error naming the line now.
  auto slow = parse_type_recipe("# experts\nblk\\.0\\.attn_q=q8_0\n^(.+)+x$=q4_K\n", "slow.txt");
  ASSERT_TRUE(slow.ok()) << slow.error().to_string();
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe");
  ASSERT_TRUE(ck.ok());
  convert_options o;
  o.default_type = ggml::type::q8_0;
  o.recipe = *slow;
  auto plan = plan_gguf(*ck, o);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().code(), errc::bad_recipe);
  for (const char* part : {"slow.txt:3", "^(.+)+x$", "backtracks too much"})
    EXPECT_NE(plan.error().message().find(part), std::string::npos) << part << " not in " << plan.error().message();
}

}  // namespace
