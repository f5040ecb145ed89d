// Tensor-type recipes and per-tensor type selection (llama-quantize's rules), quantized exports.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "gguf/convert.h"
#include "gguf/gguf_file.h"
#include "gguf/validate.h"
#include "model/checkpoint.h"

namespace fs = std::filesystem;
using namespace razor;
using namespace razor::gguf;

namespace {
std::string fixture(const char* name) { return std::string(RAZOR_MODELS_DIR) + "/" + name; }
fs::path tdir() {
  fs::path d = fs::temp_directory_path() / ("razor_recipe_test_" + std::to_string(getpid()));
  fs::create_directories(d);
  return d;
}
const tensor_plan_row* row(const convert_report& r, const std::string& name) {
  for (auto& t : r.tensors)
    if (t.name == name) return &t;
  return nullptr;
}
}  // namespace

TEST(Recipe, ParsesLlamaQuantizeSyntaxWithComments) {
  auto r = parse_type_recipe("# comment\nffn_.*_exps=Q3_K  attn_v=q8_0 # trailing\n\n#@ default=q4_K output=q8_0\n",
                             "r.txt");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->rules.size(), 2u);
  EXPECT_EQ(r->rules[0].pattern, "ffn_.*_exps");
  EXPECT_EQ(r->rules[0].type, ggml::type::q3_k);
  EXPECT_EQ(r->rules[1].line, 2);
  EXPECT_EQ(*r->default_type, ggml::type::q4_k);
  EXPECT_EQ(*r->output_type, ggml::type::q8_0);
  EXPECT_FALSE(r->token_embedding_type);
  auto bad = parse_type_recipe("attn_q.weight=q9_9\n", "r.txt");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("r.txt:1"), std::string::npos);
  EXPECT_EQ(parse_type_recipe("attn_q.weight\n", "r.txt").error().code(), errc::bad_recipe);
  EXPECT_EQ(parse_type_recipe("attn_(=q8_0\n", "r.txt").error().code(), errc::bad_recipe);
}

TEST(Recipe, ShippedRecipesParse) {
  for (auto name : {"instinct-q3.txt", "instinct-iq3.txt"}) {
    auto r = load_type_recipe(std::string(RAZOR_SOURCE_DIR_T) + "/recipes/gguf/" + name);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_GE(r->rules.size(), 15u);
    EXPECT_EQ(*r->output_type, ggml::type::q8_0);
    EXPECT_EQ(*r->token_embedding_type, ggml::type::q8_0);
  }
}

TEST(Recipe, TypeSelectionFollowsLlamaQuantize) {
  auto ck = checkpoint::open(fixture("tiny-qwen3-5-moe"));
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  convert_options o;
  auto r = load_type_recipe(std::string(RAZOR_SOURCE_DIR_T) + "/recipes/gguf/instinct-q3.txt");
  ASSERT_TRUE(r.ok());
  o.recipe = *r;
  auto plan = plan_gguf(*ck, o);
  ASSERT_TRUE(plan.ok()) << plan.error().to_string();
  EXPECT_EQ(row(*plan, "blk.0.ffn_up_exps.weight")->stored, ggml::type::q3_k);
  EXPECT_EQ(row(*plan, "blk.0.ffn_up_shexp.weight")->stored, ggml::type::q8_0);
  EXPECT_EQ(row(*plan, "blk.0.ssm_out.weight")->stored, ggml::type::f16);
  EXPECT_EQ(row(*plan, "blk.3.attn_q.weight")->stored, ggml::type::iq4_nl);
  EXPECT_EQ(row(*plan, "token_embd.weight")->stored, ggml::type::q8_0);
  EXPECT_EQ(row(*plan, "output.weight")->stored, ggml::type::q8_0);
  // Never quantized, whatever the recipe says (and the ignored lines are reported).
  for (auto n : {"blk.0.ffn_gate_inp.weight", "blk.0.ssm_conv1d.weight", "blk.0.attn_norm.weight", "blk.0.ssm_a",
                 "blk.0.ssm_dt.bias", "blk.0.ffn_gate_inp_shexp.weight", "blk.3.attn_q_norm.weight"})
    EXPECT_EQ(row(*plan, n)->stored, ggml::type::f32) << n;
  bool noted = false;
  for (auto& n : plan->notes) noted |= n.find("blk.0.ffn_gate_inp.weight: recipe line") != std::string::npos;
  EXPECT_TRUE(noted);
  // Tensors no line matches get the default (ssm_alpha {256, 4}).
  EXPECT_EQ(row(*plan, "blk.0.ssm_alpha.weight")->stored, ggml::type::q3_k);
}

TEST(Recipe, ImatrixTypesRefuseWithoutOne) {
  auto ck = checkpoint::open(fixture("tiny-qwen3-moe"));
  ASSERT_TRUE(ck.ok());
  convert_options o;
  o.default_type = ggml::type::iq3_xxs;
  auto plan = plan_gguf(*ck, o);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().code(), errc::needs_imatrix);
  EXPECT_NE(plan.error().message().find("importance matrix"), std::string::npos);
}

// ggml's quantizer asserts importance weights for iq2_xxs / iq2_xs: refused at planning, even with
// --allow-missing-imatrix and for token_embd (which llama.cpp's own imatrix rule exempts).
TEST(Recipe, TypesGgmlCannotWriteWithoutWeightsAreRefused) {
  auto ck = checkpoint::open(fixture("tiny-qwen3-moe"));
  ASSERT_TRUE(ck.ok());
  convert_options o;
  o.default_type = ggml::type::iq2_xs;
  o.allow_missing_imatrix = true;
  auto plan = plan_gguf(*ck, o);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().code(), errc::needs_imatrix);
  EXPECT_NE(plan.error().message().find("iq2_xs cannot be written without importance weights"), std::string::npos)
      << plan.error().message();
}

TEST(Recipe, ImatrixForAnotherModelIsRefused) {
  auto ck = checkpoint::open(fixture("tiny-qwen3-moe"));
  ASSERT_TRUE(ck.ok());
  imatrix im;
  im.source = "other.imatrix";
  im.entries.push_back({"blk.0.ffn_up_exps.weight", 512, 16, std::vector<float>(512 * 16, 1.0f),
                        std::vector<float>(16, 1.0f), {}});
  convert_options o;
  o.default_type = ggml::type::q4_k;
  o.imat = &im;
  auto plan = plan_gguf(*ck, o);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.error().message().find("512 columns"), std::string::npos) << plan.error().message();
}

TEST(Recipe, Q8_0ExportLoadsInLlamaCpp) {
  fs::path out = tdir() / "q8.gguf";
  convert_options o;
  o.default_type = ggml::type::q8_0;
  auto rep = convert_to_gguf(fixture("tiny-qwen3-moe"), out.string(), o);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  auto f = file::open(out.string());
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->find_tensor("blk.0.ffn_down_exps.weight")->type, type_q8_0);
  EXPECT_EQ(f->find_tensor("blk.0.ffn_gate_inp.weight")->type, type_f32);
  EXPECT_EQ(*f->get_int("general.file_type"), 7);
  validate_options vo;
  vo.text_path = std::string(RAZOR_SHARED_DIR) + "/data/kernel-docs-valid.txt";
  vo.windows = 8;
  if (std::string why = validate_unavailable_reason(vo); !why.empty()) GTEST_SKIP() << why;
  if (!fs::exists(vo.text_path)) GTEST_SKIP() << "no evaluation text";
  auto v = validate_with_llamacpp(out.string(), vo);
  ASSERT_TRUE(v.ok()) << v.error().to_string();
  // llama.cpp's own Q8_0 of this model costs +0.06% ppl over 200 windows (24.4454 vs 24.4306); allow 1% on 8.
  constexpr double k_ppl8_f32 = 21.059471, k_q8_rel = 0.01;
  EXPECT_NEAR(v->ppl, k_ppl8_f32, k_ppl8_f32 * k_q8_rel);
  std::printf("q8_0: llama.cpp ppl over 8 windows = %.6f\n", v->ppl);
}
