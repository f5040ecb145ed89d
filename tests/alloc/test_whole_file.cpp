// Whole-file GGUF allocation (core/alloc): the GGUF layout map, the in-memory round trip, restarting the forward
// pass from a layer, the sensitivity measurement, and an allocation whose planned size is the packed file's size.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "alloc/job.h"
#include "alloc/roundtrip.h"
#include "alloc/sensitivity.h"
#include "alloc/weight_damage.h"
#include "alloc/whole_file.h"
#include "engine/eval.h"
#include "engine/tokenizer.h"
#include "gguf/convert.h"
#include "gguf/layout.h"
#include "model/checkpoint.h"
#include "common/test_util.h"
#include "util/atomic_file.h"

using namespace razor;
namespace fs = std::filesystem;

namespace {

const std::string kQwen3 = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe";
const std::string kQwen35 = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-5-moe";
const std::string kText = razor::test::calib_text_path();

std::vector<std::vector<int32_t>> windows(const std::string& model, int n, int ctx, int64_t offset = 0) {
  auto tk = bpe_tokenizer::load(model + "/tokenizer.json");
  EXPECT_TRUE(tk.ok());
  auto text = read_text_file(kText);
  EXPECT_TRUE(text.ok());
  auto toks = engine::protocol_tokens(*tk, *text, kText).value();
  std::vector<std::vector<int32_t>> seqs;
  for (int w = 0; w < n; ++w)
    seqs.emplace_back(toks.begin() + offset + w * ctx, toks.begin() + offset + (w + 1) * ctx);
  return seqs;
}

fs::path scratch(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("razor_alloc_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

// to_gguf then to_hf gives back every value (a_log up to rounding), for every relayout of the Qwen3.5 fixture,
// and to_gguf is what the conversion writes (checked on ssm_out against the F32 GGUF in ConvertedValues below).
TEST(GgufLayout, RoundTripsEveryRelayout) {
  auto ck = checkpoint::open(kQwen35);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  const gguf::gguf_layout layout(ck->config());
  ASSERT_TRUE(layout.reorders_v_heads());
  auto wp = engine::checkpoint_weights(*ck);
  int checked = 0;
  for (auto& t : ck->tensors()) {
    std::string name = t.name.rfind(ck->text_prefix(), 0) == 0 ? t.name.substr(ck->text_prefix().size()) : t.name;
    auto loc = layout.locate(name);
    if (!loc) continue;
    auto v = wp->tensor(name);
    ASSERT_TRUE(v.ok()) << name;
    engine::tensor_f32 x = *v;
    ASSERT_TRUE(layout.to_gguf(*loc, name, x.data.data(), x.rows(), x.cols()).ok()) << name;
    ASSERT_TRUE(layout.to_hf(*loc, name, x.data.data(), x.rows(), x.cols()).ok()) << name;
    for (size_t i = 0; i < x.data.size(); ++i)
      if (loc->how == gguf::gguf_relayout::a_log)
        ASSERT_NEAR(x.data[i], v->data[i], 1e-5f * std::max(1.0f, std::fabs(v->data[i]))) << name;
      else
        ASSERT_EQ(x.data[i], v->data[i]) << name << " [" << i << "]";
    ++checked;
  }
  EXPECT_GT(checked, 40);
}

// The engine read from a GGUF we wrote equals the engine reading the round trip in memory, bit for bit: the round
// trip quantizes exactly what pack quantizes, in the file's layout.
TEST(Roundtrip, EqualsThePackedFile) {
  for (const auto& model : {kQwen3, kQwen35}) {
    auto ck = checkpoint::open(model);
    ASSERT_TRUE(ck.ok());
    const fs::path dir = scratch("rt");
    gguf::convert_options co;
    co.default_type = ggml::type::q4_k;
    co.recipe.rules.push_back({"ssm_out", ggml::type::q2_k, 1});
    co.recipe.rules.push_back({"ffn_down_exps", ggml::type::q5_k, 2});
    co.recipe.rules.push_back({"token_embd", ggml::type::q3_k, 3});
    auto rep = gguf::convert_to_gguf(model, (dir / "m.gguf").string(), co);
    ASSERT_TRUE(rep.ok()) << rep.error().to_string();
    auto file = engine::gguf_weights((dir / "m.gguf").string(), ck->config());
    ASSERT_TRUE(file.ok()) << file.error().to_string();
    alloc::type_assignment types;
    for (auto& r : rep->tensors)
      if (r.why.rfind("kept", 0) != 0) types[r.name] = r.stored;
    auto base = engine::checkpoint_weights(*ck);
    alloc::roundtrip_weights rt(*base, nullptr, types);
    for (const char* name : {"embed_tokens.weight", "lm_head.weight", "layers.0.self_attn.q_proj.weight",
                             "layers.0.linear_attn.out_proj.weight", "layers.0.linear_attn.in_proj_qkv.weight",
                             "layers.3.self_attn.o_proj.weight", "layers.1.mlp.shared_expert.down_proj.weight"}) {
      if (!(*file)->has(name)) continue;
      auto a = (*file)->tensor(name);
      auto b = rt.tensor(name);
      ASSERT_TRUE(a.ok() && b.ok()) << name;
      ASSERT_EQ(a->data.size(), b->data.size()) << name;
      for (size_t i = 0; i < a->data.size(); ++i) ASSERT_EQ(a->data[i], b->data[i]) << model << " " << name << " [" << i << "]";
    }
    for (auto p : {expert_proj::gate, expert_proj::down}) {
      auto a = (*file)->expert(2, 5, p);
      auto b = rt.expert(2, 5, p);
      ASSERT_TRUE(a.ok() && b.ok());
      for (size_t i = 0; i < a->data.size(); ++i) ASSERT_EQ(a->data[i], b->data[i]) << model << " expert [" << i << "]";
    }
    EXPECT_GT(rt.errors().size(), 3u);
    for (auto& [name, e] : rt.errors()) EXPECT_GT(e.relative(), 0.0) << name;
    fs::remove_all(dir);
  }
}

// forward_from(L, the stream entering L) gives the logits of the whole pass, for every L.
TEST(ForwardFrom, RestartsAtEveryLayer) {
  auto ck = checkpoint::open(kQwen35);
  ASSERT_TRUE(ck.ok());
  auto wp = engine::checkpoint_weights(*ck);
  auto d = engine::dims_for(*wp);
  ASSERT_TRUE(d.ok());
  auto seqs = windows(kQwen35, 2, 32);
  std::vector<engine::tensor_f32> hidden(size_t(d->n_layers) + 1);
  std::vector<float> ref;
  engine::run_options ro;
  ro.on_layer_input = [&](int L, const engine::tensor_f32& h) {
    hidden[size_t(L)] = h;
    return true;
  };
  ASSERT_TRUE(engine::forward(*wp, *d, seqs, [&](size_t, size_t n, const float* l) {
    ref.insert(ref.end(), l, l + n * size_t(d->vocab));
    return true;
  }, ro).ok());
  const std::vector<size_t> starts = {0, 32, 64};
  for (int L = 0; L <= int(d->n_layers); ++L) {
    std::vector<float> got;
    ASSERT_TRUE(engine::forward_from(*wp, *d, starts, hidden[size_t(L)], L, [&](size_t, size_t n, const float* l) {
      got.insert(got.end(), l, l + n * size_t(d->vocab));
      return true;
    }).ok());
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], ref[i]) << "layer " << L << " [" << i << "]";
  }
}

// KL from a restarted pass equals KL from a whole pass; coarser types hurt more.
TEST(Sensitivity, RestartedKlEqualsWholePassAndOrdersTypes) {
  auto ck = checkpoint::open(kQwen3);
  ASSERT_TRUE(ck.ok());
  auto base = engine::checkpoint_weights(*ck);
  alloc::roundtrip_weights rt(*base, nullptr);
  auto seqs = windows(kQwen3, 2, 64);
  auto ref = alloc::reference_pass::run(rt, seqs);
  ASSERT_TRUE(ref.ok()) << ref.error().to_string();
  rt.set_types({{"blk.2.ffn_down_exps.weight", ggml::type::q2_k}});
  auto from2 = ref->kl(rt, 2);
  auto whole = ref->kl(rt, -1);
  ASSERT_TRUE(from2.ok() && whole.ok());
  EXPECT_NEAR(from2->mean, whole->mean, 1e-6 * std::max(1.0, whole->mean));
  EXPECT_GT(from2->mean, 0.0);
  rt.set_types({{"blk.2.ffn_down_exps.weight", ggml::type::q8_0}});
  auto fine = ref->kl(rt, 2);
  ASSERT_TRUE(fine.ok());
  EXPECT_LT(fine->mean, from2->mean / 10);
  rt.set_types({{"output.weight", ggml::type::q2_k}});
  auto head = ref->kl(rt, 4);
  auto head_whole = ref->kl(rt, -1);
  ASSERT_TRUE(head.ok() && head_whole.ok());
  EXPECT_NEAR(head->mean, head_whole->mean, 1e-6 * std::max(1.0, head_whole->mean));
  rt.set_types({});
  auto none = ref->kl(rt, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_LT(none->mean, 1e-9);
}

// The allocation's planned size is the size of the file pack writes from its recipe, to the byte; the recipe types
// every quantized tensor; the target is respected; the fitted sensitivities order the types.
TEST(WholeFile, PlannedSizeIsThePackedSize) {
  for (const auto& model : {kQwen3, kQwen35}) {
    const fs::path dir = scratch("wf");
    alloc::gguf_alloc_params p;
    p.model = model;
    p.types = "q2_K,q3_K,q4_K,q6_K,q8_0";
    p.target = "5.0bits";
    p.out = (dir / "r.txt").string();
    p.text = kText;
    p.windows = 2;
    p.ctx = 64;
    p.sensitivity = "fit";
    p.fit_types = 2;
    p.measure = true;
    p.measure_text = razor::test::eval_text_path();
    p.measure_windows = 2;
    auto rep = alloc::run_gguf_allocation(p);
    ASSERT_TRUE(rep.ok()) << rep.error().to_string();
    const auto& r = *rep;
    EXPECT_TRUE(r["size"]["within_target"].get<bool>());
    EXPECT_LE(r["size"]["bpw"].get<double>(), 5.0);
    EXPECT_GT(r["size"]["bpw"].get<double>(), 4.5);  // a 5-type ladder lands close under the target
    EXPECT_GT(r["measured"]["kl_mean"].get<double>(), 0.0);
    EXPECT_TRUE(fs::exists(dir / "r.sensitivity.json"));
    // pack the recipe: the same size to the byte, every item typed as allocated
    auto recipe = gguf::load_type_recipe(p.out);
    ASSERT_TRUE(recipe.ok()) << recipe.error().to_string();
    gguf::convert_options co;
    co.recipe = *recipe;
    auto packed = gguf::convert_to_gguf(model, (dir / "m.gguf").string(), co);
    ASSERT_TRUE(packed.ok()) << packed.error().to_string();
    EXPECT_EQ(packed->file_bytes, r["size"]["file_bytes"].get<uint64_t>());
    EXPECT_EQ(fs::file_size(dir / "m.gguf"), r["size"]["file_bytes"].get<uint64_t>());
    std::map<std::string, std::string> want;
    for (auto& t : r["tensors"]) want[t["tensor"]] = t["type"];
    for (auto& t : packed->tensors)
      if (want.count(t.name)) EXPECT_EQ(std::string(ggml::type_name(t.stored)), want[t.name]) << t.name;
    // a second run at another target reuses the measurements
    p.target = std::to_string(r["size"]["file_bytes"].get<uint64_t>() - 100000) + "B";
    auto again = alloc::run_gguf_allocation(p);
    ASSERT_TRUE(again.ok()) << again.error().to_string();
    EXPECT_TRUE((*again)["sensitivity"]["from_cache"].get<bool>());
    EXPECT_LE((*again)["size"]["file_bytes"].get<uint64_t>(), r["size"]["file_bytes"].get<uint64_t>() - 100000);
    fs::remove_all(dir);
  }
}

// Weights-only damage (no forward pass): with every row read, each choice's relative error is the in-memory round
// trip's (the same rows, columns in GGUF order, experts weighted alike); a sample of rows estimates it; the
// allocation needs no text, respects the target and reuses its cache.
TEST(WholeFile, WeightsOnlyDamage) {
  // Summing the same terms in another order (rows of a reordered tensor, matrices of several sources).
  constexpr double kSumOrderTol = 1e-9;
  // 64 sampled rows (1 per expert for 64-expert tensors) against all: the estimate of the relative error of a
  // tensor with thousands of quantization blocks is within a few per cent; 25 % is far from any real mistake
  // (a wrong scale or the wrong rows is off by the sampling ratio, 4x or more).
  constexpr double kSampleTol = 0.25;
  for (const auto& model : {kQwen3, kQwen35}) {
    auto ck = checkpoint::open(model);
    ASSERT_TRUE(ck.ok());
    alloc::plan_options po;
    po.ladder = {ggml::type::q2_k, ggml::type::q4_k, ggml::type::iq4_xs};
    auto plan = alloc::plan_items(*ck, po);
    ASSERT_TRUE(plan.ok()) << plan.error().to_string();
    alloc::wf_plan all = *plan, sampled = *plan;
    ASSERT_TRUE(alloc::measure_weights(*ck, nullptr, all, {}).ok());
    alloc::weights_options so;
    so.sample_rows = 64;
    ASSERT_TRUE(alloc::measure_weights(*ck, nullptr, sampled, so).ok());
    auto base = engine::checkpoint_weights(*ck);
    for (size_t i = 0; i < all.items.size(); ++i) {
      const alloc::wf_item& it = all.items[i];
      const alloc::wf_choice& c = it.choices.front();
      alloc::roundtrip_weights rt(*base, nullptr, {{it.tensor, c.type}});
      if (it.expert_layer >= 0) {
        const expert_proj p = alloc::expert_proj_of(it);
        for (int e = 0; e < int(ck->config().num_experts); ++e) ASSERT_TRUE(rt.expert(it.expert_layer, e, p).ok());
      } else {
        for (auto& s : it.sources) ASSERT_TRUE(rt.tensor(s).ok()) << s;
      }
      const double want = rt.errors().at(it.tensor).relative();
      EXPECT_NEAR(c.rel_error, want, kSumOrderTol * want) << model << " " << it.tensor;
      EXPECT_GT(c.damage, 0.0) << it.tensor;
      for (size_t k = 0; k + 1 < it.choices.size(); ++k)  // more bits, less error
        EXPECT_GE(it.choices[k].rel_error, it.choices[k + 1].rel_error) << it.tensor;
      for (size_t k = 0; k < it.choices.size(); ++k) {
        const double a = it.choices[k].rel_error, b = sampled.items[i].choices[k].rel_error;
        EXPECT_NEAR(b, a, kSampleTol * a) << model << " " << it.tensor << " " << ggml::type_name(it.choices[k].type);
      }
    }
  }
  const fs::path dir = scratch("weights");
  alloc::gguf_alloc_params p;
  p.model = kQwen35;
  p.types = "q2_K,q3_K,q4_K,q6_K,q8_0";
  p.target = "4.0bits";
  p.out = (dir / "r.txt").string();
  p.sensitivity = "weights";
  p.sample_rows = 64;
  auto rep = alloc::run_gguf_allocation(p);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  EXPECT_TRUE((*rep)["size"]["within_target"].get<bool>());
  EXPECT_GT((*rep)["size"]["bpw"].get<double>(), 3.5);
  EXPECT_EQ((*rep)["sensitivity"]["mode"], "weights");
  EXPECT_FALSE(rep->contains("calibration"));
  auto again = alloc::run_gguf_allocation(p);
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_TRUE((*again)["sensitivity"]["from_cache"].get<bool>());
  EXPECT_EQ((*again)["tensors"], (*rep)["tensors"]);
  fs::remove_all(dir);
}

TEST(WholeFile, RefusesATargetBelowTheSmallestFile) {
  const fs::path dir = scratch("small");
  alloc::gguf_alloc_params p;
  p.model = kQwen3;
  p.types = "q2_K,q4_K";
  p.target = "1MB";
  p.out = (dir / "r.txt").string();
  p.text = kText;
  p.windows = 1;
  p.ctx = 32;
  p.sensitivity = "fit";
  auto rep = alloc::run_gguf_allocation(p);
  ASSERT_FALSE(rep.ok());
  EXPECT_NE(rep.error().message().find("smallest file"), std::string::npos) << rep.error().to_string();
  EXPECT_FALSE(fs::exists(dir / "r.txt"));
  fs::remove_all(dir);
}
