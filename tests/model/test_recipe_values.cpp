// razor.recipe/1 values are validated when loaded (types, ranges, the one table of bit widths) and its patterns
// are compiled and matched under util/regex.h's limits: errors name the recipe file, the JSON path and the value.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/config_fixture.h"
#include "model/checkpoint.h"
#include "model/footprint.h"
#include "model/recipe.h"

using namespace razor;

namespace {

using razor::test::expect_mentions;

std::string parse_error(const std::string& json_text) {
  auto r = parse_recipe(nlohmann::json::parse(json_text), "my-recipe.json");
  if (r.ok()) return "";
  EXPECT_EQ(r.error().code(), errc::bad_recipe);
  return r.error().message();
}


TEST(RecipeValues, ShippedRecipesLoad) {
  for (const char* name : {"seed-default", "study-2.5bit", "uniform-int3", "uniform-int4"}) {
    auto r = load_recipe(name);
    EXPECT_TRUE(r.ok()) << name << ": " << r.error().to_string();
  }
}

TEST(RecipeValues, IntegersMustBeIntegersInRange) {
  // 2^40 became 0, 64.5 became 64.
  expect_mentions(parse_error(R"({"group": 1099511627776})"), {"my-recipe.json", "group = 1099511627776", "out of range"});
  expect_mentions(parse_error(R"({"group": 64.5})"), {"my-recipe.json", "group = 64.5", "not an integer"});
  expect_mentions(parse_error(R"({"group": 48})"), {"group = 48", "power of two or a multiple of 32"});
  expect_mentions(parse_error(R"({"group": "128"})"), {"group = \"128\"", "not an integer"});
  EXPECT_EQ(parse_error(R"({"group": 64.0})"), "");  // an integer written as 64.0 is still 64
  EXPECT_EQ(parse_recipe(nlohmann::json::parse(R"({"group": 96})"), "x.json")->group, 96);
  // clip_steps 256 loaded and then quantize refused it (> 32): refused at load now.
  expect_mentions(parse_error(R"({"clip_steps": 256})"), {"clip_steps = 256", "[0, 32]"});
  expect_mentions(parse_error(R"({"clip_steps": -1})"), {"clip_steps = -1"});
  expect_mentions(parse_error(R"({"scale_bits": -3})"), {"scale_bits = -3"});
}

TEST(RecipeValues, BitsComeFromOneTable) {
  EXPECT_EQ(recipe_bits_list(), "1.58, 2, 3, 4, 8, 16");
  for (double b : kRecipeBits) EXPECT_TRUE(valid_bits(b)) << b;
  for (double b : {99.0, 1.5, 5.0, 0.0, -2.0, 17.0}) EXPECT_FALSE(valid_bits(b)) << b;
  expect_mentions(parse_error(R"({"roles": {"routed_expert": 99}})"),
                  {"my-recipe.json", "roles.routed_expert = 99", "1.58, 2, 3, 4, 8, 16"});
  expect_mentions(parse_error(R"({"overrides": [{"pattern": "x", "bits": 5}]})"), {"overrides[0].bits = 5"});
  expect_mentions(parse_error(R"({"expert_bits": {"0": [2, 3, 99]}})"), {"expert_bits[\"0\"][2] = 99"});
  expect_mentions(parse_error(R"({"two_level": {"target": 2.5, "lo": 1, "hi": 4}})"), {"two_level.lo = 1"});
  expect_mentions(parse_error(R"({"two_level": {"target": 9, "lo": 2, "hi": 4}})"), {"two_level.target = 9"});
  expect_mentions(parse_error(R"({"two_level": {"target": 3, "lo": 4, "hi": 2}})"), {"must be below hi"});
}

TEST(RecipeValues, ExpertBitsKeysAreLayerNumbers) {
  expect_mentions(parse_error(R"({"expert_bits": {"3abc": [2]}})"), {"expert_bits[\"3abc\"]", "layer number"});
  expect_mentions(parse_error(R"({"expert_bits": {"-1": [2]}})"), {"expert_bits[\"-1\"]", "layer number"});
  expect_mentions(parse_error(R"({"expert_bits": {"99999999": [2]}})"), {"expert_bits[\"99999999\"]"});
  auto r = parse_recipe(nlohmann::json::parse(R"({"expert_bits": {"7": [2, 4]}})"), "x.json");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->expert_bits.at(7), (std::vector<double>{2, 4}));
}

// 30,000 nested groups overflowed the stack when std::regex compiled them.
TEST(RecipeValues, HostilePatternsAreRefusedAtLoad) {
  nlohmann::json j;
  j["protect"] = {"ok", std::string(1000, '(') + "x" + std::string(1000, ')')};
  auto r = parse_recipe(j, "deep.json");
  ASSERT_FALSE(r.ok());
  expect_mentions(r.error().message(), {"deep.json", "protect[1]", "nested"});
  j["protect"] = {std::string(30000, '(') + "x" + std::string(30000, ')')};
  r = parse_recipe(j, "deep.json");
  ASSERT_FALSE(r.ok());
  expect_mentions(r.error().message(), {"deep.json", "protect[0]", "longer than 4096 bytes"});
  expect_mentions(parse_error(R"({"overrides": [{"pattern": "a(", "bits": 4}]})"), {"overrides[0].pattern", "invalid regex 'a('"});
}

// A pattern that backtracks without bound on a tensor name is an error naming the recipe and the rule, not a
// hang and not a silent no-match (footprint, quantize, pack all go through recipe::tensor_bits).
TEST(RecipeValues, BacktrackingPatternIsAnErrorWhenMatched) {
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe");
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  auto r = parse_recipe(nlohmann::json::parse(R"({"roles": {"routed_expert": 3},
      "overrides": [{"pattern": "^attn", "bits": 4}, {"pattern": "^(.+)+\\.bias$", "bits": 8}]})"),
                        "slow.json");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  auto f = compute_footprint(*ck, *r);
  ASSERT_FALSE(f.ok());
  expect_mentions(f.error().message(), {"slow.json", "overrides[1].pattern", "^(.+)+\\.bias$", "backtracks too much"});
  const tensor_entry* t = ck->find("model.layers.0.mlp.experts.0.gate_proj.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_FALSE(r->tensor_bits(*t).ok());
}

}  // namespace
