// Phase D of razor recover (core/recover/merge.h): W <- fakequant(W + s B A) per expert through quantize's
// tensor-transform hook, against the same computed by hand through core/quant, for per-expert (qwen3_moe) and fused
// (qwen3_5_moe) checkpoints; a zero adapter gives exactly `razor quantize`'s output; adapters that do not fit are
// refused naming the tensor.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "common/test_util.h"
#include "model/checkpoint.h"
#include "model/recipe.h"
#include "model/safetensors.h"
#include "model/synth.h"
#include "quant/fake_quant.h"
#include "quant/quantize.h"
#include "recover/merge.h"
#include "util/json_limits.h"
#include "recover/adapter_writer.h"

using namespace razor;
using namespace razor::recover;
using namespace razor::recover::test_support;

namespace {
const std::string kModel = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe";

// W + s (B A)[row0 : row0 + rows] computed the plain way (double sums over the rank), then the recipe's fake-quant
// through core/quant, as BF16 bytes.
std::vector<uint16_t> by_hand(std::vector<float> w, size_t rows, size_t cols, const float* b, const float* a, int64_t r,
                              size_t row0, double s, const recipe& rec, double bits) {
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < r; ++k) acc += double(b[(row0 + i) * size_t(r) + size_t(k)]) * double(a[size_t(k) * cols + j]);
      w[i * cols + j] += float(s * acc);
    }
  std::vector<uint16_t> out(w.size());
  EXPECT_TRUE(quant::fake_quant(w.data(), quant::elem_type::f32, out.data(), quant::elem_type::bf16, rows, cols,
                                quant::fq_params{float(bits), rec.group, rec.clip_steps})
                  .ok());
  return out;
}

std::vector<uint16_t> stored_bf16(const checkpoint& ck, const std::string& name, size_t first, size_t n) {
  const tensor_entry* t = ck.find(name);
  EXPECT_NE(t, nullptr) << name;
  std::vector<uint16_t> v(n);
  if (t) std::memcpy(v.data(), ck.data(*t) + first * 2, n * 2);
  return v;
}
}  // namespace

TEST(RecoverMerge, LoraDeltaByHand) {
  // W [2, 3], B [2, 2] (rows of the delta), A [2, 3], s = 2: W + 2 B A.
  std::vector<float> w{1, 2, 3, 4, 5, 6};
  const float b[] = {1, 0, 0.5f, -1};        // B = [[1, 0], [0.5, -1]]
  const float a[] = {0.1f, 0.2f, 0.3f, 1, 2, 3};  // A = [[0.1, 0.2, 0.3], [1, 2, 3]]
  add_lora_delta(w.data(), 2, 3, b, a, 2, 0, 2.0);
  // B A = [[0.1, 0.2, 0.3], [0.05 - 1, 0.1 - 2, 0.15 - 3]]; times 2 added to W.
  const float want[] = {1.2f, 2.4f, 3.6f, 4 - 1.9f, 5 - 3.8f, 6 - 5.7f};
  // Tolerance: the delta is summed in double from float32 inputs (0.1f is not 0.1): a few float ulps.
  constexpr float kTol = 1e-6f;
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(w[size_t(i)], want[i], kTol) << i;
  // row0 picks the rows of B: the second row only.
  std::vector<float> w2{0, 0, 0};
  add_lora_delta(w2.data(), 1, 3, b, a, 2, 1, 1.0);
  EXPECT_NEAR(w2[0], -0.95f, kTol);
  EXPECT_NEAR(w2[2], -2.85f, kTol);
}

TEST(RecoverMerge, PerExpertCheckpointEqualsTheHandComputation) {
  test::scratch_dir d("recover-merge");
  auto ck = checkpoint::open(kModel);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  auto rec = load_recipe("uniform-int3");
  ASSERT_TRUE(rec.ok()) << rec.error().to_string();
  auto s = spec_for(ck->config(), 4);
  write_adapter(d / "adapter.safetensors", s);
  auto ad = load_adapter(d / "adapter.safetensors", ck->config());
  ASSERT_TRUE(ad.ok()) << ad.error().to_string();
  EXPECT_EQ(ad->rank, 4);
  EXPECT_EQ(ad->scale, 2.0);
  EXPECT_EQ(ad->layers.size(), 4u);
  quant::quantize_options qo;
  qo.allow_gpu = false;
  auto rep = merge_adapter(*ck, *rec, *ad, d / "merged", qo);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  auto out = checkpoint::open(d / "merged");
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  // An ordinary checkpoint with razor quantize's summary.
  auto sum = read_json_file(d / "merged/razor_quant_summary.json");
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ((*sum)["format"], "razor.quant_summary/1");
  const size_t H = 256, I = 256, r = 4;
  for (auto [L, e] : {std::pair{1, 3}, std::pair{3, 15}}) {
    const lora_layer& l = ad->layers.at(L);
    const float* b_gu = l.b_gu.data() + size_t(e) * 2 * I * r;
    const float* a_gu = l.a_gu.data() + size_t(e) * r * H;
    const float* b_d = l.b_d.data() + size_t(e) * H * r;
    const float* a_d = l.a_d.data() + size_t(e) * r * I;
    const std::string base = "model.layers." + std::to_string(L) + ".mlp.experts." + std::to_string(e) + ".";
    for (auto [proj, row0] : {std::pair{"gate_proj", size_t(0)}, std::pair{"up_proj", I}}) {
      auto w = ck->read_f32(*ck->find(base + proj + ".weight"));
      ASSERT_TRUE(w.ok());
      EXPECT_EQ(stored_bf16(*out, base + proj + ".weight", 0, I * H), by_hand(*w, I, H, b_gu, a_gu, 4, row0, 2.0, *rec, 3))
          << base << proj;
      // and the adapter did change it (scale 0: the plain quantized expert)
      EXPECT_NE(stored_bf16(*out, base + proj + ".weight", 0, I * H), by_hand(*w, I, H, b_gu, a_gu, 4, row0, 0.0, *rec, 3));
    }
    auto wd = ck->read_f32(*ck->find(base + "down_proj.weight"));
    ASSERT_TRUE(wd.ok());
    EXPECT_EQ(stored_bf16(*out, base + "down_proj.weight", 0, H * I), by_hand(*wd, H, I, b_d, a_d, 4, 0, 2.0, *rec, 3));
  }
}

TEST(RecoverMerge, ZeroAdapterGivesTheQuantizeOutput) {
  test::scratch_dir d("recover-merge");
  auto ck = checkpoint::open(kModel);
  ASSERT_TRUE(ck.ok());
  auto rec = load_recipe("uniform-int3");
  ASSERT_TRUE(rec.ok());
  auto s = spec_for(ck->config(), 2);
  s.zero_b = true;  // B = 0, as the trainer starts: the merge must change nothing
  write_adapter(d / "zero.safetensors", s);
  auto ad = load_adapter(d / "zero.safetensors", ck->config());
  ASSERT_TRUE(ad.ok()) << ad.error().to_string();
  quant::quantize_options qo;
  qo.allow_gpu = false;
  ASSERT_TRUE(merge_adapter(*ck, *rec, *ad, d / "merged", qo).ok());
  ASSERT_TRUE(quant::quantize_checkpoint(*ck, *rec, d / "plain", qo).ok());
  EXPECT_EQ(test::slurp(d / "merged/model.safetensors"), test::slurp(d / "plain/model.safetensors"));
}

TEST(RecoverMerge, FusedExpertsEqualTheHandComputation) {
  test::scratch_dir d("recover-merge");
  // The Qwen3.5 fixture's config, synthesised with fused experts (gate_up_proj [E, 2I, H], down_proj [E, H, I]).
  auto cfg = read_json_file(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-5-moe/config.json");
  ASSERT_TRUE(cfg.ok());
  synth_options so;
  so.fused_experts = true;
  ASSERT_TRUE(synth_checkpoint(*cfg, d / "teacher", so).ok());
  auto ck = checkpoint::open(d / "teacher");
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  auto rec = load_recipe("uniform-int3");
  ASSERT_TRUE(rec.ok());
  auto s = spec_for(ck->config(), 3);
  write_adapter(d / "adapter.safetensors", s);
  auto ad = load_adapter(d / "adapter.safetensors", ck->config());
  ASSERT_TRUE(ad.ok()) << ad.error().to_string();
  quant::quantize_options qo;
  qo.allow_gpu = false;
  ASSERT_TRUE(merge_adapter(*ck, *rec, *ad, d / "merged", qo).ok());
  auto out = checkpoint::open(d / "merged");
  ASSERT_TRUE(out.ok());
  const size_t E = size_t(s.E), H = size_t(s.H), I = size_t(s.I), r = 3;
  const tensor_entry* gu = nullptr;
  const tensor_entry* dn = nullptr;
  for (auto& t : ck->tensors()) {
    if (t.cls.fused && t.cls.layer == 2 && t.cls.proj == expert_proj::gate_up) gu = &t;
    if (t.cls.fused && t.cls.layer == 2 && t.cls.proj == expert_proj::down) dn = &t;
  }
  ASSERT_TRUE(gu && dn);
  ASSERT_EQ(gu->shape, (std::vector<int64_t>{int64_t(E), int64_t(2 * I), int64_t(H)}));
  const lora_layer& l = ad->layers.at(2);
  for (size_t e : {size_t(0), size_t(5)}) {
    std::vector<float> w(2 * I * H);
    ASSERT_TRUE(ck->read_f32(*gu, int64_t(e * 2 * I * H), int64_t(w.size()), w.data()).ok());
    EXPECT_EQ(stored_bf16(*out, gu->name, e * 2 * I * H, 2 * I * H),
              by_hand(w, 2 * I, H, l.b_gu.data() + e * 2 * I * r, l.a_gu.data() + e * r * H, 3, 0, 2.0, *rec, 3))
        << "gate_up expert " << e;
    std::vector<float> wd(H * I);
    ASSERT_TRUE(ck->read_f32(*dn, int64_t(e * H * I), int64_t(wd.size()), wd.data()).ok());
    EXPECT_EQ(stored_bf16(*out, dn->name, e * H * I, H * I),
              by_hand(wd, H, I, l.b_d.data() + e * H * r, l.a_d.data() + e * r * I, 3, 0, 2.0, *rec, 3))
        << "down expert " << e;
  }
}

TEST(RecoverMerge, AdaptersThatDoNotFitAreRefusedNamingTheTensor) {
  test::scratch_dir d("recover-merge");
  auto ck = checkpoint::open(kModel);
  ASSERT_TRUE(ck.ok());
  auto refused = [&](const adapter_spec& s, const std::string& want) {
    write_adapter(d / "bad.safetensors", s);
    auto ad = load_adapter(d / "bad.safetensors", ck->config());
    ASSERT_FALSE(ad.ok()) << want;
    EXPECT_NE(ad.error().message().find(want), std::string::npos) << ad.error().message();
  };
  auto s = spec_for(ck->config(), 4);
  // A wrong hidden size in one tensor.
  auto wrong = s;
  wrong.reshape = [](const std::string& n, std::vector<int64_t>& sh) {
    if (n == "model.layers.2.mlp.experts.down.lora_B") sh[1] = 128;
  };
  refused(wrong, "model.layers.2.mlp.experts.down.lora_B has shape [16, 128, 4], the model needs [16, 256, 4]");
  // A rank that disagrees between tensors.
  auto rank = s;
  rank.reshape = [](const std::string& n, std::vector<int64_t>& sh) {
    if (n == "model.layers.1.mlp.experts.gate_up.lora_B") sh[2] = 8;
  };
  refused(rank, "model.layers.1.mlp.experts.gate_up.lora_B has shape");
  // A layer missing (3 of the model's 4 MoE layers).
  auto fewer = s;
  fewer.layers = {0, 1, 2};
  refused(fewer, "tensor model.layers.3.mlp.experts.");
  // A layer the model does not have.
  auto more = s;
  more.layers = {0, 1, 2, 3, 4};
  refused(more, "model.layers.4.mlp.experts.");
  // Another model's expert count.
  auto experts = s;
  experts.E = 8;
  refused(experts, "the model needs [16,");
  // A tensor that is not an adapter tensor.
  auto extra = s;
  extra.extra = {"lm_head.lora_A"};
  refused(extra, "lm_head.lora_A is not one of the model's adapter tensors");
}
