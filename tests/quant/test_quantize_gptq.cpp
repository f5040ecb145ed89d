// razor quantize with the gptq recipe: with quantize_options::allow_gpu the experts' slices of one layer, projection
// and bits go through gptq_quantize_batch together (on the GPU when one is present), without it one slice at a time
// on the CPU. On the CPU both give the same bytes (suite QuantizeGptq); on a GPU the batched run's per-expert output
// NMSE equals the CPU run's within 1e-3 relative (suite QuantizeGptqGpu, ctest label gpu, skipped without a GPU).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <tuple>

#include "kernels/cuda_info.h"
#include "model/checkpoint.h"
#include "model/layer_selection.h"
#include "model/recipe.h"
#include "quant/methods.h"
#include "quant/quantize.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

fs::path tmp(const std::string& tag) {
  return fs::temp_directory_path() / ("razor_qg_" + tag + "_" + std::to_string(::getpid()));
}

// Tokens per (layer, expert, down): distinct per expert, a few experts with too few (rtn-asym fallback) or none.
struct token_table {
  std::map<std::tuple<int, int, bool>, std::vector<float>> x;
  int64_t hidden = 0, ff = 0;
  quant::calib_view get(int layer, int expert, bool down) {
    const int64_t cols = down ? ff : hidden;
    const int64_t n = expert == 3 ? 4 : expert == 7 ? 0 : 24 + 3 * expert;
    auto& v = x[{layer, expert, down}];
    if (v.empty() && n > 0) {
      v.resize(size_t(n * cols));
      uint32_t s = uint32_t(layer * 7919 + expert * 104729 + (down ? 1 : 0) * 15485863 + 1);
      for (auto& f : v) {
        s = s * 1664525u + 1013904223u;
        f = (float(s >> 8) / float(1 << 24) - 0.5f) * (1.0f + float(expert % 4));
      }
    }
    return {v.empty() ? nullptr : v.data(), n, cols};
  }
};

struct run_out {
  nlohmann::json summary;
  fs::path dir;
};

// The gptq recipe on tiny-qwen3-5-moe, layer 1's experts at mixed bits (two batches of one projection).
run_out quantize_gptq(const checkpoint& ck, bool allow_gpu, const std::string& tag) {
  auto r = load_recipe("gptq");
  EXPECT_TRUE(r.ok());
  std::vector<double> bits(16, 3.0);
  bits[2] = bits[9] = 4;
  bits[5] = 16;
  r->expert_bits[1] = bits;
  token_table tok;
  tok.hidden = ck.config().hidden_size;
  tok.ff = ck.find_text("layers.0.mlp.experts.0.down_proj.weight")->cols();
  quant::quantize_options opt;
  opt.allow_gpu = allow_gpu;
  opt.calib = [&](int layer, int expert, bool down) { return tok.get(layer, expert, down); };
  run_out o;
  o.dir = tmp(tag);
  fs::remove_all(o.dir);
  auto rep = quant::quantize_checkpoint(ck, *r, o.dir.string(), opt);
  EXPECT_TRUE(rep.ok()) << rep.error().to_string();
  if (rep.ok()) o.summary = rep->summary;
  return o;
}

}  // namespace

TEST(QuantizeGptq, BatchedCollectionEqualsPerSliceOnTheCpu) {
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-5-moe");
  ASSERT_TRUE(ck.ok());
  const bool gpu = cu::built_with_cuda() && !cu::devices(nullptr).empty();
  if (gpu) GTEST_SKIP() << "a GPU is present: the batched run uses it (QuantizeGptqGpu compares that)";
  run_out a = quantize_gptq(*ck, false, "slice");
  run_out b = quantize_gptq(*ck, true, "batch");
  ASSERT_FALSE(a.summary.is_null());
  ASSERT_FALSE(b.summary.is_null());
  auto qa = checkpoint::open(a.dir.string());
  auto qb = checkpoint::open(b.dir.string());
  ASSERT_TRUE(qa.ok() && qb.ok());
  for (auto& t : qa->tensors()) {
    const tensor_entry* u = qb->find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    ASSERT_EQ(t.nbytes, u->nbytes) << t.name;
    EXPECT_EQ(std::memcmp(qa->data(t), qb->data(*u), t.nbytes), 0) << t.name;
  }
  EXPECT_EQ(a.summary["experts"], b.summary["experts"]);
  auto pa = a.summary["ptq_meta"], pb = b.summary["ptq_meta"];
  EXPECT_EQ(pa["gptq_device"], "cpu");
  EXPECT_EQ(pb["gptq_device"], "cpu");
  EXPECT_EQ(pa["fallbacks"], pb["fallbacks"]);
  EXPECT_EQ(pa["expert_slices"], pb["expert_slices"]);
  EXPECT_EQ(pa["expert_slices"].get<int64_t>(), 4 * 16 * 3 - 3);  // layer 1 expert 5 kept
  // experts 3 (4 tokens) and 7 (none) of every layer fall back, 3 projections each
  EXPECT_EQ(pa["fallback_slices"].get<int64_t>(), 4 * 2 * 3);
  fs::remove_all(a.dir);
  fs::remove_all(b.dir);
}

// Layer-range parts each batch their own layers' experts; merge carries gptq_device and sums the slice counts.
TEST(QuantizeGptq, PartsCarryGptqDeviceThroughMerge) {
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-5-moe");
  ASSERT_TRUE(ck.ok());
  auto r = load_recipe("gptq");
  ASSERT_TRUE(r.ok());
  token_table tok;
  tok.hidden = ck->config().hidden_size;
  tok.ff = ck->find_text("layers.0.mlp.experts.0.down_proj.weight")->cols();
  quant::quantize_options opt;
  opt.calib = [&](int layer, int expert, bool down) { return tok.get(layer, expert, down); };
  std::vector<std::string> parts;
  for (const char* range : {"0:2,rest", "2:4"}) {
    opt.layers = parse_layer_selection(range, int(ck->config().num_layers)).value();
    auto d = tmp(std::string("part") + std::to_string(parts.size()));
    fs::remove_all(d);
    auto rep = quant::quantize_checkpoint(*ck, *r, d.string(), opt);
    ASSERT_TRUE(rep.ok()) << rep.error().to_string();
    parts.push_back(d.string());
  }
  auto out = tmp("merged");
  fs::remove_all(out);
  opt.layers = {};
  auto m = quant::merge_quantize_parts(*ck, *r, parts, out.string(), opt);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  const bool gpu = cu::built_with_cuda() && !cu::devices(nullptr).empty();
  EXPECT_EQ(m->summary["ptq_meta"]["gptq_device"], gpu ? "cuda" : "cpu");
  EXPECT_EQ(m->summary["ptq_meta"]["expert_slices"].get<int64_t>(), 4 * 16 * 3);
  EXPECT_EQ(m->summary["ptq_meta"]["fallback_slices"].get<int64_t>(), 4 * 2 * 3);
  for (auto& p : parts) fs::remove_all(p);
  fs::remove_all(out);
}

// GPU (label gpu): the batched GPU run against the CPU per-slice run, expert by expert: each projection's output
// NMSE on its tokens equal within 1e-3 relative (rounding ties may flip single codes).
TEST(QuantizeGptqGpu, RecipeGpuMatchesCpuPerExpertNmse) {
  if (!cu::built_with_cuda() || cu::devices(nullptr).empty()) GTEST_SKIP() << "no CUDA device";
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-5-moe");
  ASSERT_TRUE(ck.ok());
  run_out c = quantize_gptq(*ck, false, "cpu");
  run_out g = quantize_gptq(*ck, true, "gpu");
  ASSERT_FALSE(c.summary.is_null());
  ASSERT_FALSE(g.summary.is_null());
  EXPECT_EQ(c.summary["ptq_meta"]["gptq_device"], "cpu");
  EXPECT_EQ(g.summary["ptq_meta"]["gptq_device"], "cuda");
  EXPECT_EQ(c.summary["ptq_meta"]["fallbacks"], g.summary["ptq_meta"]["fallbacks"]);
  auto qc = checkpoint::open(c.dir.string());
  auto qg = checkpoint::open(g.dir.string());
  ASSERT_TRUE(qc.ok() && qg.ok());
  token_table tok;
  tok.hidden = ck->config().hidden_size;
  tok.ff = ck->find_text("layers.0.mlp.experts.0.down_proj.weight")->cols();
  int compared = 0;
  for (auto& t : ck->tensors()) {
    if (t.cls.role != tensor_role::routed_expert || t.shape.size() != 2) continue;
    const auto cv = tok.get(t.cls.layer, t.cls.expert, t.cls.proj == expert_proj::down);
    if (cv.n < 8) continue;
    const size_t n = size_t(t.numel());
    std::vector<float> w(n), a(n), b(n);
    ASSERT_TRUE(ck->read_f32(t, 0, t.numel(), w.data()).ok());
    ASSERT_TRUE(qc->read_f32(*qc->find(t.name), 0, t.numel(), a.data()).ok());
    ASSERT_TRUE(qg->read_f32(*qg->find(t.name), 0, t.numel(), b.data()).ok());
    const double na = quant::output_nmse(w.data(), a.data(), t.rows(), t.cols(), cv);
    const double nb = quant::output_nmse(w.data(), b.data(), t.rows(), t.cols(), cv);
    EXPECT_LE(std::fabs(na - nb), 1e-3 * std::max(na, nb) + 1e-12) << t.name << " cpu " << na << " gpu " << nb;
    ++compared;
  }
  EXPECT_GT(compared, 100);
  fs::remove_all(c.dir);
  fs::remove_all(g.dir);
}
