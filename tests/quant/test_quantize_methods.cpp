// razor quantize with a recipe "method" (quant/quantize.h recipe_method): the bundled method recipes load, the
// experts go through the method and the backbone through absmax, the summary's ptq_meta counts the fallbacks,
// and a method that needs tokens refuses to run without them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/test_util.h"
#include "model/checkpoint.h"
#include "model/recipe.h"
#include "quant/fake_quant.h"
#include "quant/methods.h"
#include "quant/quantize.h"
#include "util/numeric.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

std::vector<float> read(const checkpoint& ck, const std::string& name) {
  const tensor_entry* t = ck.find_text(name);
  EXPECT_NE(t, nullptr) << name;
  std::vector<float> v(size_t(t->numel()));
  EXPECT_TRUE(ck.read_f32(*t, 0, t->numel(), v.data()).ok());
  return v;
}

}  // namespace

TEST(QuantizeMethods, BundledRecipesLoadWithTheirMethodAndAnAbsmaxBackbone) {
  for (const char* name : {"rtn-asym", "awq", "gptq", "hqq"}) {
    auto r = load_recipe(name);
    ASSERT_TRUE(r.ok()) << name << ": " << r.error().to_string();
    auto m = quant::recipe_method(*r);
    ASSERT_TRUE(m.ok()) << name;
    EXPECT_EQ(quant::quant_method_name(*m), name);
    EXPECT_EQ(r->clip_steps, 0) << name;
    EXPECT_EQ(r->group, 128) << name;
    EXPECT_EQ(r->role_bits.at(tensor_role::routed_expert), 3.0) << name;
    EXPECT_EQ(r->role_bits.at(tensor_role::attention), 4.0) << name;
  }
  auto d = load_recipe("seed-default");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*quant::recipe_method(*d), quant::quant_method::clip);  // no "method": the clip search
  auto bad = parse_recipe(nlohmann::json::parse(R"({"format": "razor.recipe/1", "name": "x", "method": "spqr",
                                                   "roles": {"routed_expert": 3}})"), "bad.json");
  ASSERT_TRUE(bad.ok()) << bad.error().to_string();
  auto bm = quant::recipe_method(*bad);
  ASSERT_FALSE(bm.ok());
  EXPECT_EQ(bm.error().code(), errc::bad_recipe);
  EXPECT_NE(bm.error().message().find("spqr"), std::string::npos) << bm.error().message();
}

TEST(QuantizeMethods, RtnAsymExpertsAbsmaxBackboneAndPtqMeta) {
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-5-moe");
  ASSERT_TRUE(ck.ok());
  auto r = load_recipe("rtn-asym");
  ASSERT_TRUE(r.ok());
  razor::test::scratch_dir scratch("qm-rtn");
  const fs::path out = scratch.dir / "out";
  quant::quantize_options opt;
  opt.allow_gpu = false;
  auto rep = quant::quantize_checkpoint(*ck, *r, out.string(), opt);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  auto q = checkpoint::open(out.string());
  ASSERT_TRUE(q.ok());
  // an expert: the method's values, rounded to BF16
  const std::string en = "layers.2.mlp.experts.5.up_proj.weight";
  auto w = read(*ck, en);
  const tensor_entry* et = ck->find_text(en);
  std::vector<float> want(w.size());
  ASSERT_TRUE(quant::method_fake_quant(quant::quant_method::rtn_asym, w.data(), size_t(et->rows()), size_t(et->cols()), 3,
                                       128, 0, {}, want.data()).ok());
  auto got = read(*q, en);
  for (size_t i = 0; i < w.size(); ++i) ASSERT_EQ(got[i], bf16_to_f32(f32_to_bf16(want[i]))) << i;
  // a backbone tensor: int4 absmax (clip_steps 0)
  for (auto& t : ck->tensors()) {
    if (t.cls.role != tensor_role::attention || t.shape.size() != 2) continue;
    std::vector<float> a(size_t(t.numel())), ref(a.size()), b(a.size());
    ASSERT_TRUE(ck->read_f32(t, 0, t.numel(), a.data()).ok());
    ASSERT_TRUE(quant::fake_quant_rows_ref(a.data(), ref.data(), size_t(t.rows()), size_t(t.cols()), {4.0f, 128, 0}).ok());
    ASSERT_TRUE(q->read_f32(*q->find(t.name), 0, t.numel(), b.data()).ok());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(b[i], bf16_to_f32(f32_to_bf16(ref[i]))) << t.name << " " << i;
    break;
  }
  const auto& pm = rep->summary["ptq_meta"];
  EXPECT_EQ(pm["method"], "rtn-asym");
  EXPECT_EQ(pm["backbone"], "absmax");
  EXPECT_EQ(pm["group"], 128);
  EXPECT_EQ(pm["expert_slices"].get<int64_t>(), 4 * 16 * 3);
  EXPECT_EQ(pm["fallback_slices"].get<int64_t>(), 0);
  EXPECT_EQ(rep->summary["experts"].size(), 4u * 16u * 3u);
}

TEST(QuantizeMethods, AwqNeedsTokensAndCountsFallbacks) {
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-5-moe");
  ASSERT_TRUE(ck.ok());
  auto r = load_recipe("awq");
  ASSERT_TRUE(r.ok());
  razor::test::scratch_dir scratch("qm-awq");
  const fs::path out = scratch.dir / "out";
  quant::quantize_options opt;
  opt.allow_gpu = false;
  auto no = quant::quantize_checkpoint(*ck, *r, out.string(), opt);
  ASSERT_FALSE(no.ok());
  EXPECT_EQ(no.error().code(), errc::invalid_argument);
  EXPECT_NE(no.error().message().find("calibration tokens"), std::string::npos) << no.error().message();
  EXPECT_FALSE(fs::exists(out));
  // A source with tokens for layer 0 only: the other layers' experts fall back to RTN, counted.
  std::vector<float> xs(64 * 256), as(64 * 256);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = float((i * 2654435761u) % 1000) / 500.0f - 1.0f, as[i] = xs[i] * 0.5f;
  int calls = 0;
  opt.calib = [&](int layer, int expert, bool down) -> quant::calib_view {
    ++calls;
    if (layer != 0) return {};
    return {down ? as.data() : xs.data(), 64, 256};
  };
  opt.calib_info = {{"calib_tokens", 64}, {"max_tok_per_expert", 64}};
  auto rep = quant::quantize_checkpoint(*ck, *r, out.string(), opt);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  EXPECT_EQ(calls, 4 * 16 * 3);
  const auto& pm = rep->summary["ptq_meta"];
  EXPECT_EQ(pm["method"], "awq");
  EXPECT_EQ(pm["max_tok_per_expert"], 64);
  EXPECT_EQ(pm["expert_slices"].get<int64_t>(), 4 * 16 * 3);
  EXPECT_GE(pm["fallback_slices"].get<int64_t>(), 3 * 16 * 3);  // layers 1..3 had no tokens
}
