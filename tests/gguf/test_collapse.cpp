// razor.recipe/1 fake-quant recipes (per-expert bits) -> one ggml type per GGUF tensor (collapse_bits_recipe).
#include <gtest/gtest.h>

#include "gguf/convert.h"
#include "model/checkpoint.h"
#include "model/recipe.h"

using namespace razor;
using namespace razor::gguf;

TEST(collapse, LadderRoundsToNearestRung) {
  EXPECT_EQ(type_for_bits(1.58, false, ggml::type::bf16), ggml::type::q2_k);
  EXPECT_EQ(type_for_bits(2.4, false, ggml::type::bf16), ggml::type::q2_k);
  EXPECT_EQ(type_for_bits(2.5, false, ggml::type::bf16), ggml::type::q3_k);  // ties go up
  EXPECT_EQ(type_for_bits(3, true, ggml::type::bf16), ggml::type::iq3_xxs);
  EXPECT_EQ(type_for_bits(4.2, false, ggml::type::bf16), ggml::type::q4_k);
  EXPECT_EQ(type_for_bits(7.0, false, ggml::type::bf16), ggml::type::q8_0);
  EXPECT_EQ(type_for_bits(8, false, ggml::type::bf16), ggml::type::q8_0);
  EXPECT_EQ(type_for_bits(16, false, ggml::type::f16), ggml::type::f16);
}

TEST(collapse, PerExpertBitsBecomeOneTypePerLayerAndProjection) {
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-5-moe");
  ASSERT_TRUE(ck.ok());
  nlohmann::json j = {{"format", "razor.recipe/1"}, {"name", "t"},
                      {"roles", {{"routed_expert", 3}, {"shared_expert", 8}, {"attention", 4}, {"linear_attention", 4}}}};
  std::vector<double> l0(16, 2.0), l1(16, 4.0);
  for (int e = 0; e < 6; ++e) l0[size_t(e)] = 4.0;  // mean (6*4 + 10*2)/16 = 2.75 -> q3_K
  j["expert_bits"] = {{"0", l0}, {"1", l1}};
  auto r = parse_recipe(j, "t.json");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  auto c = collapse_bits_recipe(*ck, *r, false);
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  auto find = [&](const std::string& n) -> const collapsed_tensor* {
    for (auto& t : c->tensors)
      if (t.name == n) return &t;
    return nullptr;
  };
  auto* g0 = find("blk.0.ffn_gate_exps.weight");
  ASSERT_TRUE(g0);
  EXPECT_DOUBLE_EQ(g0->mean_bits, 2.75);
  EXPECT_EQ(g0->type, ggml::type::q3_k);
  EXPECT_NE(g0->change.find("6x4"), std::string::npos) << g0->change;
  EXPECT_EQ(find("blk.1.ffn_down_exps.weight")->type, ggml::type::q4_k);
  EXPECT_TRUE(find("blk.1.ffn_down_exps.weight")->change.empty());  // uniform 4 bits: unchanged
  EXPECT_EQ(find("blk.2.ffn_up_exps.weight")->type, ggml::type::q3_k);  // role bits
  EXPECT_EQ(find("blk.0.ffn_up_shexp.weight")->type, ggml::type::q8_0);
  EXPECT_EQ(find("blk.0.attn_qkv.weight")->type, ggml::type::q4_k);
  EXPECT_EQ(find("token_embd.weight")->type, ggml::type::bf16);  // kept (no role bits)
  // The rules drive the conversion plan.
  convert_options o;
  o.recipe = c->recipe;
  auto plan = plan_gguf(*ck, o);
  ASSERT_TRUE(plan.ok()) << plan.error().to_string();
  for (auto& t : plan->tensors) {
    if (t.name == "blk.0.ffn_gate_exps.weight") EXPECT_EQ(t.stored, ggml::type::q3_k);
    if (t.name == "blk.1.ffn_up_exps.weight") EXPECT_EQ(t.stored, ggml::type::q4_k);
    if (t.name == "blk.0.ffn_gate_inp.weight") EXPECT_EQ(t.stored, ggml::type::f32);
  }
}
