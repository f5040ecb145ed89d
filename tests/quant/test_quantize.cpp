#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "model/checkpoint.h"
#include "model/recipe.h"
#include "quant/fake_quant.h"
#include "quant/quantize.h"
#include "util/numeric.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {
fs::path tmp(const std::string& tag) {
  return fs::temp_directory_path() / ("razor_q_" + tag + "_" + std::to_string(::getpid()));
}
}  // namespace

TEST(Quantize, FixtureRoundTripsThroughOurReader) {
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-5-moe");
  ASSERT_TRUE(ck.ok());
  auto r = load_recipe("seed-default");
  ASSERT_TRUE(r.ok());
  auto out = tmp("rt");
  fs::remove_all(out);
  quant::quantize_options opt;
  opt.allow_gpu = false;
  auto rep = quant::quantize_checkpoint(*ck, *r, out.string(), opt);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  auto q = checkpoint::open(out.string());
  ASSERT_TRUE(q.ok()) << q.error().to_string();
  ASSERT_EQ(q->tensors().size(), ck->tensors().size());
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(out / "config.json"));
  for (auto& t : ck->tensors()) {
    auto* u = q->find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_EQ(u->shape, t.shape);
    EXPECT_EQ(u->dt, t.dt);
    bool same = std::memcmp(ck->data(t), q->data(*u), t.nbytes) == 0;
    if (*r->tensor_bits(t) >= kKeepBits) EXPECT_TRUE(same) << "kept tensor changed: " << t.name;
    else EXPECT_FALSE(same) << "quantized tensor unchanged: " << t.name;
  }
  // One routed-expert tensor equals the reference fake-quant of its source rows.
  auto* src = ck->find_text("layers.1.mlp.experts.3.down_proj.weight");
  std::vector<float> w(size_t(src->numel())), ref(w.size());
  ASSERT_TRUE(ck->read_f32(*src, 0, src->numel(), w.data()).ok());
  ASSERT_TRUE(quant::fake_quant_rows_ref(w.data(), ref.data(), size_t(src->rows()), size_t(src->cols()),
                                         {3.0f, 128, 16}).ok());
  std::vector<float> got(w.size());
  ASSERT_TRUE(q->read_f32(*q->find(src->name), 0, src->numel(), got.data()).ok());
  for (size_t i = 0; i < w.size(); ++i) ASSERT_EQ(got[i], bf16_to_f32(f32_to_bf16(ref[i]))) << i;
  // The summary: per-expert errors for every routed expert and projection.
  auto& s = rep->summary;
  EXPECT_EQ(s["experts"].size(), 4u * 16u * 3u);
  for (auto& e : s["experts"]) {
    EXPECT_GT(e["rel_error"].get<double>(), 0.05);
    EXPECT_LT(e["rel_error"].get<double>(), 0.5);
    EXPECT_EQ(e["bits"].get<double>(), 3.0);
    EXPECT_EQ(e["clip_hist"].size(), 16u);
  }
  EXPECT_NEAR(s["totals"]["seed_effective_bits"].get<double>(), 3.238, 0.001);
  fs::remove_all(out);
}

TEST(Quantize, CancelLeavesNothingUnderTheFinalName) {
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe");
  ASSERT_TRUE(ck.ok());
  auto r = load_recipe("seed-default");
  ASSERT_TRUE(r.ok());
  auto out = tmp("cancel");
  fs::remove_all(out);
  int calls = 0;
  quant::quantize_options opt;
  opt.allow_gpu = false;
  auto rep = quant::quantize_checkpoint(*ck, *r, out.string(), opt, [&](double, double, const char*) {
    return ++calls < 20;
  });
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.error().code(), errc::cancelled);
  EXPECT_FALSE(fs::exists(out));
  for (auto& e : fs::directory_iterator(out.parent_path()))
    EXPECT_EQ(e.path().filename().string().find(out.filename().string() + ".partial"), std::string::npos)
        << "temporary left behind: " << e.path();
}

TEST(Quantize, AShardTruncatedWhileReadIsAnErrorNamingItNotASigbus) {
  // Another program rewrites the model while razor reads it: the mapped shard loses its tail (util/mapped_file.h).
  const fs::path model = tmp("trunc_model");
  fs::remove_all(model);
  fs::copy(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe", model, fs::copy_options::recursive);
  auto ck = checkpoint::open(model.string());
  ASSERT_TRUE(ck.ok());
  auto r = load_recipe("seed-default");
  ASSERT_TRUE(r.ok());
  const std::string shard = ck->shards()[0];
  const auto full = fs::file_size(shard);
  fs::resize_file(shard, full / 2);
  auto out = tmp("trunc_out");
  fs::remove_all(out);
  quant::quantize_options opt;
  opt.allow_gpu = false;
  auto rep = quant::quantize_checkpoint(*ck, *r, out.string(), opt);
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.error().code(), errc::io);
  EXPECT_NE(rep.error().message().find(shard), std::string::npos) << rep.error().message();
  EXPECT_NE(rep.error().message().find("truncated while being read (now " + std::to_string(full / 2) + " bytes"),
            std::string::npos)
      << rep.error().message();
  EXPECT_FALSE(fs::exists(out));
  for (auto& e : fs::directory_iterator(out.parent_path()))
    EXPECT_EQ(e.path().filename().string().find(out.filename().string() + ".partial"), std::string::npos);
  fs::remove_all(model);
}

TEST(Quantize, PerExpertBitsInFusedTensors) {
  // Build a fused copy of one layer and give experts different bits: each expert slice must follow its tag.
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe");
  ASSERT_TRUE(ck.ok());
  std::vector<double> bits(16, 3.0);
  bits[0] = 4;
  bits[1] = 16;
  auto rj = nlohmann::json::parse(R"({"roles":{"routed_expert":3},"group":128,"clip_steps":16})");
  rj["expert_bits"]["0"] = bits;
  auto r = parse_recipe(rj, "inline");
  ASSERT_TRUE(r.ok());
  auto out = tmp("pe");
  fs::remove_all(out);
  quant::quantize_options opt;
  opt.allow_gpu = false;
  auto rep = quant::quantize_checkpoint(*ck, *r, out.string(), opt);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  auto q = checkpoint::open(out.string());
  auto* e1 = ck->find("model.layers.0.mlp.experts.1.up_proj.weight");
  EXPECT_EQ(std::memcmp(ck->data(*e1), q->data(*q->find(e1->name)), e1->nbytes), 0) << "16-bit expert must be kept";
  double err4 = 0, err3 = 0;
  for (auto& e : rep->summary["experts"]) {
    if (e["layer"] == 0 && e["expert"] == 0) err4 = std::max(err4, e["rel_error"].get<double>());
    if (e["layer"] == 0 && e["expert"] == 2) err3 = std::max(err3, e["rel_error"].get<double>());
  }
  EXPECT_GT(err3, 1.5 * err4) << "int4 expert must be much closer than int3";
  fs::remove_all(out);
}
