// Calibration tokens per expert (engine/calib_tokens.h) on the qwen3_moe fixture: the counts per expert are the
// probe's routing counts, the down inputs are silu(gate x) * up x recomputed from the expert's weights, the cap
// keeps the first tokens, the halves split as the seed's moe_compare does; and compare-methods end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "common/test_util.h"
#include "engine/calib_tokens.h"
#include "engine/eval.h"
#include "engine/method_compare.h"
#include "engine/probe.h"
#include "kernels/cuda_info.h"
#include "model/checkpoint.h"
#include "model/recipe.h"
#include "quant/quantize.h"
#include "util/numeric.h"

namespace {

using namespace razor;

const std::string kModel = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe";

std::vector<int32_t> text_tokens(const std::string& path) {
  auto tk = bpe_tokenizer::load(kModel + "/tokenizer.json");
  EXPECT_TRUE(tk.ok());
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return engine::protocol_tokens(*tk, ss.str(), path).value();
}

TEST(calib_tokens, counts_equal_the_probe_and_down_inputs_are_silu_gate_times_up) {
  auto ck = checkpoint::open(kModel);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  const auto toks = text_tokens(test::calib_text_path());
  auto wp = engine::checkpoint_weights(*ck);
  engine::calib_options co;
  co.n_tokens = 512;
  co.seqlen = 256;
  co.max_per_expert = 1 << 20;  // no cap: every routed token
  auto lt = engine::capture_calib_tokens(*wp, toks, co);
  ASSERT_TRUE(lt.ok()) << lt.error().to_string();
  engine::probe_options po;
  po.n_tokens = 512;
  po.seqlen = 256;
  po.collect_inputs = false;
  auto pr = engine::run_probe(*wp, toks, po);
  ASSERT_TRUE(pr.ok()) << pr.error().to_string();
  ASSERT_EQ(lt->size(), 4u);
  for (int L = 0; L < 4; ++L) {
    const engine::layer_tokens& l = (*lt)[size_t(L)];
    ASSERT_EQ(l.experts.size(), 16u);
    EXPECT_EQ(l.hidden, 256);
    EXPECT_EQ(l.ff, 256);
    int64_t total = 0;
    for (int e = 0; e < 16; ++e) {
      const auto& x = l.experts[size_t(e)];
      EXPECT_EQ(double(x.routed), pr->freq[size_t(L * 16 + e)]) << L << "/" << e;
      EXPECT_EQ(x.n, x.routed);
      EXPECT_EQ(x.x.size(), size_t(x.n * 256));
      EXPECT_EQ(x.act.size(), size_t(x.n * 256));
      total += x.n;
    }
    EXPECT_EQ(total, 512 * 4);
  }
  // down's input = silu(gate x) * up x from the unquantized weights, for a few experts of two layers
  for (int L : {0, 3})
    for (int e : {0, 7, 15}) {
      const auto& x = (*lt)[size_t(L)].experts[size_t(e)];
      auto g = wp->expert(L, e, expert_proj::gate).value();
      auto u = wp->expert(L, e, expert_proj::up).value();
      for (int64_t t = 0; t < std::min<int64_t>(x.n, 20); ++t)
        for (int64_t j = 0; j < 256; ++j) {
          double gs = 0, us = 0;
          for (int64_t c = 0; c < 256; ++c) {
            gs += double(x.x[size_t(t * 256 + c)]) * g.data[size_t(j * 256 + c)];
            us += double(x.x[size_t(t * 256 + c)]) * u.data[size_t(j * 256 + c)];
          }
          const double want = gs / (1.0 + std::exp(-gs)) * us;
          ASSERT_NEAR(x.act[size_t(t * 256 + j)], want, 1e-4 * (1.0 + std::fabs(want))) << L << "/" << e << " t" << t;
        }
    }
  // The cap keeps each expert's first tokens; the halves split first n/2 | rest.
  co.max_per_expert = 9;
  auto capped = engine::capture_calib_tokens(*wp, toks, co);
  ASSERT_TRUE(capped.ok());
  for (int e = 0; e < 16; ++e) {
    const auto& a = (*capped)[1].experts[size_t(e)];
    const auto& b = (*lt)[1].experts[size_t(e)];
    EXPECT_EQ(a.routed, b.routed);
    ASSERT_EQ(a.n, std::min<int64_t>(9, b.n));
    for (size_t i = 0; i < a.x.size(); ++i) ASSERT_EQ(a.x[i], b.x[i]);
    for (size_t i = 0; i < a.act.size(); ++i) ASSERT_EQ(a.act[i], b.act[i]);
    const auto cal = engine::token_view((*capped)[1], e, false, engine::token_half::calibration);
    const auto held = engine::token_view((*capped)[1], e, true, engine::token_half::held_out);
    const auto all = engine::token_view((*capped)[1], e, false, engine::token_half::all);
    EXPECT_EQ(cal.n, a.n / 2);
    EXPECT_EQ(held.n, a.n - a.n / 2);
    EXPECT_EQ(all.n, a.n);
    EXPECT_EQ(cal.cols, 256);
    if (a.n >= 2) {
      EXPECT_EQ(cal.x, a.x.data());
      EXPECT_EQ(held.x, a.act.data() + (a.n / 2) * 256);
    }
  }
  // The memory bound is checked before the pass.
  auto big = engine::capture_calib_tokens(*wp, toks, co, 1024);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code(), errc::unsupported);
}

TEST(compare_methods, fixture_end_to_end) {
  auto ck = checkpoint::open(kModel);
  ASSERT_TRUE(ck.ok());
  const auto calib = text_tokens(test::calib_text_path());
  const auto eval = text_tokens(test::eval_text_path());
  engine::compare_options o;
  for (const char* m : {"clip", "absmax", "rtn-asym", "awq", "gptq", "hqq"})
    o.methods.push_back(quant::parse_quant_method(m).value());
  o.calib.n_tokens = 512;
  o.calib.max_per_expert = 64;
  o.eval.windows = 2;
  o.eval.ctx = 64;
  auto r = engine::compare_methods(*ck, calib, eval, o);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  const auto& j = *r;
  EXPECT_EQ(j["format"], "razor.method_compare/1");
  EXPECT_EQ(j["methods"].size(), 6u);
  EXPECT_GT(j["experts"].size(), 32u);
  for (auto& name : j["methods"]) {
    const auto& s = j["summary"][name.get<std::string>()];
    EXPECT_EQ(s["n_experts"].get<size_t>(), j["experts"].size()) << name;
    EXPECT_GT(s["mean_nmse"].get<double>(), 0.0) << name;
    EXPECT_LT(s["mean_nmse"].get<double>(), 1.0) << name;
    EXPECT_EQ(s["slices"].get<int64_t>(), 4 * 16 * 3) << name;  // gate, up, down of every expert
    EXPECT_GE(s["kl_mean"].get<double>(), 0.0) << name;
    EXPECT_TRUE(std::isfinite(s["ppl"].get<double>())) << name;
  }
  EXPECT_TRUE(std::isfinite(j["ref_ppl"].get<double>()));
  EXPECT_EQ(j["per_layer"].size(), 4u);
  // an expert's entry: its token split and every method's NMSE per projection
  const auto& e0 = j["experts"][0];
  EXPECT_EQ(e0["calibration"].get<int64_t>() + e0["held_out"].get<int64_t>(), e0["tokens"].get<int64_t>());
  EXPECT_TRUE(e0["nmse"]["gptq"].contains("down"));
  // The seed's robust finding (F13: clip search 1.78x better than absmax on held-out NMSE) holds here too.
  EXPECT_LT(j["summary"]["clip"]["mean_nmse"].get<double>(), j["summary"]["absmax"]["mean_nmse"].get<double>());
}

// GPTQ batched over a layer's experts (compare_options::allow_gpu, the default) gives the same NMSE as one slice at
// a time on the CPU (allow_gpu false); on a GPU the batch runs there (QuantizeGptqGpu in test_quant compares that).
TEST(compare_methods, gptq_batched_equals_per_slice_on_the_cpu) {
  if (cu::built_with_cuda() && !cu::devices(nullptr).empty()) GTEST_SKIP() << "a GPU is present: the batch runs there";
  auto ck = checkpoint::open(kModel);
  ASSERT_TRUE(ck.ok());
  const auto calib = text_tokens(test::calib_text_path());
  engine::compare_options o;
  o.methods = {quant::quant_method::gptq, quant::quant_method::rtn_asym};
  o.calib.n_tokens = 256;
  o.calib.max_per_expert = 32;
  o.full_model = false;
  o.allow_gpu = false;
  auto a = engine::compare_methods(*ck, calib, {}, o);
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  o.allow_gpu = true;
  auto b = engine::compare_methods(*ck, calib, {}, o);
  ASSERT_TRUE(b.ok()) << b.error().to_string();
  EXPECT_EQ((*a)["gptq_device"], "cpu");
  EXPECT_EQ((*b)["gptq_device"], "cpu");
  EXPECT_GT((*a)["experts"].size(), 16u);
  EXPECT_EQ((*a)["experts"], (*b)["experts"]);  // every expert's NMSE per projection, bit for bit
  for (const char* m : {"gptq", "rtn-asym"}) {
    auto sa = (*a)["summary"][m], sb = (*b)["summary"][m];
    sa.erase("quantize_seconds");
    sb.erase("quantize_seconds");
    EXPECT_EQ(sa, sb) << m;
  }
  EXPECT_EQ((*a)["summary"]["gptq"]["slices"].get<int64_t>(), 4 * 16 * 3);
}

}  // namespace

namespace {

// eval-ppl --recipe: a method without tokens is applied to the experts as quantize does; awq / gptq are refused.
TEST(compare_methods, fake_quant_weights_apply_a_recipe_method) {
  using namespace razor;
  auto ck = checkpoint::open(kModel);
  ASSERT_TRUE(ck.ok());
  auto rtn = load_recipe("rtn-asym");
  ASSERT_TRUE(rtn.ok());
  auto wp = engine::fake_quant_weights(*ck, *rtn);
  auto got = wp->expert(1, 2, expert_proj::down);
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  auto src = engine::checkpoint_weights(*ck)->expert(1, 2, expert_proj::down).value();
  std::vector<float> want(src.data.size());
  ASSERT_TRUE(quant::method_fake_quant(quant::quant_method::rtn_asym, src.data.data(), size_t(src.rows()),
                                       size_t(src.cols()), 3, 128, 0, {}, want.data()).ok());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got->data[i], bf16_to_f32(f32_to_bf16(want[i]))) << i;
  auto awq = load_recipe("awq");
  ASSERT_TRUE(awq.ok());
  auto wa = engine::fake_quant_weights(*ck, *awq);
  auto refused = wa->expert(0, 0, expert_proj::gate);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), errc::unsupported);
  EXPECT_NE(refused.error().message().find("calibration tokens"), std::string::npos) << refused.error().message();
}

}  // namespace
