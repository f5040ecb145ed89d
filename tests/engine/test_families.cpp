// The engine's families beyond qwen3_moe / qwen3_5_moe (olmoe, qwen2_moe, mixtral, deepseek_v3, qwen3_next, gpt_oss):
// what it refuses, DeepSeek's group-limited routing and kv_b_proj split, Qwen3-Next's fused-projection split and
// gpt-oss's expert views (BF16 [E, in, out] and MXFP4), clamped SwiGLU and routing by hand. Their forward
// against llama.cpp is tests/engine/test_llamacpp_logits.cpp's; the GPU engine runs every one of them (against the
// CPU: tests/engine/test_engine_cuda.cpp). Options of a family that neither the engine nor llama.cpp implements are
// refused by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "engine/eval.h"
#include "engine/families.h"
#include "engine/model_runner.h"
#include "engine/probe.h"
#include "gguf/convert.h"
#include "gguf/layout.h"
#include "model/checkpoint.h"
#include "model/qwen3_next_rows.h"
#include "model/synth.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

nlohmann::json family_config(const std::string& family) {
  return nlohmann::json::parse(
      razor::test::slurp(std::string(RAZOR_SOURCE_DIR_T) + "/tests/engine/data/families/" + family + ".json"));
}

// A forward pass of a few tokens on the synthetic checkpoint of `config` (stored F32) with `device`; its status.
status run_forward(const nlohmann::json& config, const razor::test::scratch_dir& s, const std::string& tag,
                   engine::backend device) {
  synth_options so;
  so.dt = dtype::f32;
  RAZOR_TRY(synth_checkpoint(config, s / tag, so));
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(s / tag));
  auto wp = engine::checkpoint_weights(ck);
  RAZOR_ASSIGN_OR_RETURN(engine::model_dims d, engine::dims_for(*wp));
  engine::run_options ro;
  ro.device = device;
  return engine::forward(*wp, d, {{1, 2, 3, 4}}, [](size_t, size_t, const float*) { return true; }, ro);
}

// A family's config with `patch` merged into it (synthesised as a sparse checkpoint under `dir`): pack refuses it,
// naming `why` and the GGUF arch, while the engine accepts it; *dims gets the engine's view.
struct config_edit {
  const char* name;
  nlohmann::json patch;
  const char* why;
};
void expect_pack_refuses_engine_runs(const char* family, const char* arch, const config_edit& e, const std::string& dir,
                                     engine::model_dims* dims) {
  auto cfg = family_config(family);
  cfg.merge_patch(e.patch);
  synth_options so;
  so.sparse = true;
  ASSERT_TRUE(synth_checkpoint(cfg, dir, so).ok()) << e.name;
  auto ck = checkpoint::open(dir);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  const auto plan = gguf::plan_gguf(*ck, gguf::convert_options{});
  ASSERT_FALSE(plan.ok()) << e.name;
  EXPECT_NE(plan.error().to_string().find(e.why), std::string::npos) << e.name << ": " << plan.error().to_string();
  EXPECT_NE(plan.error().to_string().find(arch), std::string::npos) << plan.error().to_string();
  auto wp = engine::checkpoint_weights(*ck);
  auto d = engine::dims_for(*wp);
  ASSERT_TRUE(d.ok()) << e.name << ": " << d.error().to_string();
  *dims = *d;
}

}  // namespace

TEST(EngineFamilies, GpuEngineRunsEveryFamily) {
  // The device comes from the options here, not from the environment (a GPU run of the suite may set it).
  const char* env = std::getenv("RAZOR_ENGINE");
  const std::string saved = env ? env : "";
  ::unsetenv("RAZOR_ENGINE");
  razor::test::scratch_dir s("families-gpu");
  for (const char* family : {"olmoe", "qwen2_moe", "mixtral", "deepseek_v3", "qwen3_next", "gpt_oss"}) {
    auto d = engine::dims_from_config(*parse_model_config(family_config(family), "config.json"));
    ASSERT_TRUE(d.ok()) << family;
    std::string why;
    EXPECT_TRUE(engine::gpu_engine_runs(*d, &why)) << family << ": " << why;
    // automatic: the GPU where there is one (tests/engine/test_engine_cuda.cpp compares it with the CPU), else the CPU
    const status automatic = run_forward(family_config(family), s, std::string(family) + "-auto",
                                         engine::backend::automatic);
    EXPECT_TRUE(automatic.ok()) << family << ": " << automatic.to_string();
  }
  if (env) ::setenv("RAZOR_ENGINE", saved.c_str(), 1);
}

TEST(EngineFamilies, UnimplementedOptionsAreRefusedByName) {
  razor::test::scratch_dir s("families-opts");
  struct edit {
    const char* family;
    const char* key;
    nlohmann::json value;
  };
  for (const edit& e : {edit{"olmoe", "clip_qkv", 8.0}, edit{"qwen2_moe", "use_sliding_window", true},
                        edit{"mixtral", "sliding_window", 4096}}) {
    auto cfg = family_config(e.family);
    cfg[e.key] = e.value;
    const status st = run_forward(cfg, s, std::string(e.family) + "-" + e.key, engine::backend::cpu);
    ASSERT_FALSE(st.ok()) << e.family << " " << e.key;
    EXPECT_NE(st.to_string().find(e.key), std::string::npos) << st.to_string();
    EXPECT_NE(st.to_string().find(std::string("not supported for ") + e.family), std::string::npos) << st.to_string();
  }
}

// Mixtral -> llama: q/k rows of each head interleaved (GGUF row 2i + h = HF row h * head_dim/2 + i), by hand on
// head_dim 4, and back.
TEST(EngineFamilies, MixtralRopeRowsInterleavePerHead) {
  auto cfg = parse_model_config(family_config("mixtral"), "mixtral.json");
  ASSERT_TRUE(cfg.ok()) << cfg.error().to_string();
  cfg->head_dim = 4;
  const gguf::gguf_layout layout(*cfg);
  const auto loc = layout.locate("layers.1.self_attn.k_proj.weight");
  ASSERT_TRUE(loc.has_value());
  EXPECT_EQ(loc->tensor, "blk.1.attn_k.weight");
  EXPECT_EQ(loc->how, gguf::gguf_relayout::rope_rows);
  const auto router = layout.locate("layers.0.block_sparse_moe.gate.weight");
  ASSERT_TRUE(router.has_value());
  EXPECT_EQ(router->tensor, "blk.0.ffn_gate_inp.weight");
  // Two heads of 4 rows, 2 columns: row r holds {r, 10 + r}.
  std::vector<float> x;
  for (int r = 0; r < 8; ++r) x.insert(x.end(), {float(r), float(10 + r)});
  const std::vector<float> hf = x;
  ASSERT_TRUE(layout.to_gguf(*loc, "k", x.data(), 8, 2).ok());
  const int want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ(x[size_t(2 * r)], float(want[r])) << r;
    EXPECT_EQ(x[size_t(2 * r + 1)], float(10 + want[r])) << r;
  }
  ASSERT_TRUE(layout.to_hf(*loc, "k", x.data(), 8, 2).ok());
  EXPECT_EQ(x, hf);
}

// Qwen3-Next's fused projections, by hand: 2 key heads, 2 value heads each (r = 2), head dims 1. in_proj_qkvz rows
// per key head g: [q_g, k_g, v_g0, v_g1, z_g0, z_g1] (6 rows a head); the split takes [q0 q1 | k0 k1 | v00 v01 v10
// v11] then [z00 z01 z10 z11]. in_proj_ba per key head: [b_g0, b_g1, a_g0, a_g1].
TEST(EngineFamilies, Qwen3NextSplitsFusedProjectionsPerKeyHead) {
  const std::vector<int64_t> qkvz = qkvz_split_rows(2, 4, 1, 1);
  EXPECT_EQ(qkvz, (std::vector<int64_t>{0, 6, 1, 7, 2, 3, 8, 9, 4, 5, 10, 11}));
  EXPECT_EQ(ba_split_rows(2, 4), (std::vector<int64_t>{0, 1, 4, 5, 2, 3, 6, 7}));
  // head dims 2 (q/k) and 3 (v/z), one value head per key head: group of 2+2+3+3 = 10 rows
  const std::vector<int64_t> wide = qkvz_split_rows(2, 2, 2, 3);
  EXPECT_EQ(wide, (std::vector<int64_t>{0, 1, 10, 11, 2, 3, 12, 13, 4, 5, 6, 14, 15, 16, 7, 8, 9, 17, 18, 19}));
}

// DeepSeek-V3's router by hand: 8 experts in 4 groups of 2, the best 2 groups (by the sum of their two choice
// scores, sigmoid + bias), the top 2 experts of those; weights = the sigmoid scores (no bias) renormalised, times
// routed_scaling_factor.
TEST(EngineFamilies, DeepseekGroupLimitedRouting) {
  engine::model_dims d;
  d.a = engine::arch::deepseek;
  d.n_experts = 8;
  d.top_k = 2;
  d.norm_topk = true;
  d.ds.sigmoid = true;
  d.ds.n_group = 4;
  d.ds.topk_group = 2;
  d.ds.routed_scale = 2.5;
  // sigmoid(0) = 0.5, sigmoid(2) = 0.881, sigmoid(-2) = 0.119, sigmoid(1) = 0.731
  const float logits[8] = {2, -2, /*g1*/ 1, 1, /*g2*/ 0, 0, /*g3*/ -2, 1.5f};
  // bias lifts expert 1 (group 0 sums 0.881 + 0.119 + 0.9) and sinks expert 3
  const std::vector<float> bias = {0, 0.9f, 0, -0.9f, 0, 0, 0, 0};
  // group scores: g0 1.9, g1 0.562, g2 1.0, g3 0.937 -> groups 0 and 2
  int32_t ids[2];
  float wts[2];
  engine::deepseek_route(d, bias, logits, ids, wts);
  EXPECT_EQ(ids[0], 1);  // choice 0.119 + 0.9 = 1.019
  EXPECT_EQ(ids[1], 0);  // 0.881
  const float s0 = 1.0f / (1.0f + std::exp(-2.0f)), s1 = 1.0f / (1.0f + std::exp(2.0f));
  // Float rounding of sigmoid and the sum: a few ulps.
  constexpr float k_tol = 1e-6f;
  EXPECT_NEAR(wts[0], 2.5f * s1 / (s0 + s1), k_tol);
  EXPECT_NEAR(wts[1], 2.5f * s0 / (s0 + s1), k_tol);
}

// kv_b_proj [heads x (nope + v), kv_lora] -> attn_k_b (per head, k_nope rows transposed) and attn_v_b (v rows), and
// back: 2 heads, nope 2, v 1, kv_lora 3.
TEST(EngineFamilies, DeepseekKvBSplitsPerHead) {
  std::vector<float> hf(2 * 3 * 3);
  for (size_t i = 0; i < hf.size(); ++i) hf[i] = float(i);  // row r of head h: h*9 + r*3 + {0, 1, 2}
  std::vector<float> kb(2 * 3 * 2), vb(2 * 1 * 3), back(hf.size());
  gguf::split_kv_b(hf.data(), 2, 2, 1, 3, kb.data(), vb.data());
  // head 1, kv_lora row 2, nope column 1 = HF row (1*3 + 1), column 2 = 14
  EXPECT_EQ(kb[(1 * 3 + 2) * 2 + 1], 14.0f);
  EXPECT_EQ(kb[(0 * 3 + 1) * 2 + 0], 1.0f);
  EXPECT_EQ(vb, (std::vector<float>{6, 7, 8, 15, 16, 17}));
  gguf::join_kv_b(kb.data(), vb.data(), 2, 2, 1, 3, back.data());
  EXPECT_EQ(back, hf);
}

// DeepSeek-V3 as the Hub ships it: FP8 E4M3 weights with 128 x 128 block scales (decoded by the checkpoint reader).
TEST(EngineFamilies, DeepseekFp8SourceRuns) {
  razor::test::scratch_dir s("families-fp8");
  synth_options so;
  so.dt = dtype::f8_e4m3;
  ASSERT_TRUE(synth_checkpoint(family_config("deepseek_v3"), s / "fp8", so).ok());
  auto ck = checkpoint::open(s / "fp8");
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  ASSERT_NE(ck->find_text("layers.1.self_attn.kv_b_proj.weight_scale_inv"), nullptr);
  auto wp = engine::checkpoint_weights(*ck);
  auto d = engine::dims_for(*wp);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  bool finite = true;
  const status st = engine::forward(*wp, *d, {{1, 2, 3, 4, 5}}, [&](size_t, size_t n, const float* l) {
    for (size_t i = 0; i < n * size_t(d->vocab); ++i) finite = finite && std::isfinite(l[i]);
    return true;
  });
  EXPECT_TRUE(st.ok()) << st.to_string();
  EXPECT_TRUE(finite);
}

// What llama.cpp's deepseek2 would run differently is refused by pack, naming the key; the engine runs it.
TEST(EngineFamilies, DeepseekPackRefusesWhatLlamaCppRunsDifferently) {
  razor::test::scratch_dir s("families-ds-refused");
  for (const config_edit& e : {config_edit{"lite", {{"q_lora_rank", nullptr}}, "q_lora_rank is null"},
                              config_edit{"groups", {{"n_group", 4}, {"topk_group", 2}, {"topk_method", "group_limited_greedy"}},
                                          "group_limited_greedy"},
                              config_edit{"all-groups", {{"n_group", 4}, {"topk_group", 4}, {"topk_method", "noaux_tc"}},
                                          "must be below n_group"},
                              config_edit{"greedy-groups", {{"n_group", 4}, {"topk_group", 2}}, "greedy ignores the groups"}}) {
    engine::model_dims d;
    expect_pack_refuses_engine_runs("deepseek_v2", "deepseek2", e, s / e.name, &d);
  }
}

// gpt-oss's experts as the Hub stores them in BF16: gate_up_proj [E, hidden, 2 x ff] with gate and up interleaved along
// the output axis, down_proj [E, ff, hidden]; the checkpoint's expert views give PyTorch's [out, in] matrices (gate =
// the even outputs, up = the odd ones), checked value by value against the stored tensor.
TEST(EngineFamilies, GptOssExpertViewsTransposeAndDeinterleave) {
  razor::test::scratch_dir s("families-gptoss");
  synth_options so;
  so.dt = dtype::f32;
  ASSERT_TRUE(synth_checkpoint(family_config("gpt_oss"), s / "m", so).ok());
  auto ck = checkpoint::open(s / "m");
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  const tensor_entry* gu = ck->find_text("layers.1.mlp.experts.gate_up_proj");
  const tensor_entry* dn = ck->find_text("layers.1.mlp.experts.down_proj");
  ASSERT_NE(gu, nullptr);
  ASSERT_NE(dn, nullptr);
  const int64_t E = gu->shape[0], H = gu->shape[1], F = gu->shape[2] / 2;
  auto all_gu = ck->read_f32(*gu);
  auto all_dn = ck->read_f32(*dn);
  ASSERT_TRUE(all_gu.ok() && all_dn.ok());
  for (int e : {0, int(E) - 1}) {
    for (auto p : {expert_proj::gate, expert_proj::up, expert_proj::down}) {
      auto v = ck->expert_matrix(1, e, p);
      ASSERT_TRUE(v.has_value());
      const bool down = p == expert_proj::down;
      ASSERT_EQ(v->n_rows, down ? H : F);
      ASSERT_EQ(v->n_cols, down ? F : H);
      std::vector<float> m(size_t(v->n_rows * v->n_cols));
      ASSERT_TRUE(ck->read_rows_f32(*v, m.data()).ok());
      for (int64_t r = 0; r < v->n_rows; ++r)
        for (int64_t c = 0; c < v->n_cols; ++c) {
          const float want = down ? (*all_dn)[size_t((e * F + c) * H + r)]
                                  : (*all_gu)[size_t((e * H + c) * 2 * F + 2 * r + (p == expert_proj::up))];
          ASSERT_EQ(m[size_t(r * v->n_cols + c)], want) << proj_name(p) << " e" << e << " r" << r << " c" << c;
        }
    }
  }
}

// The clamped SwiGLU and the routing by hand: g = min(gate, 7), u = clamp(up, -7, 7), (u + 1) g sigmoid(1.702 g);
// the top-k of logits + bias, softmax over the k.
TEST(EngineFamilies, GptOssSwigluAndRouting) {
  constexpr float kTol = 1e-6f;  // float32 exp and division
  EXPECT_NEAR(engine::gpt_oss_swiglu(1.0f, 2.0f, 7.0f), 3.0f / (1.0f + std::exp(-1.702f)), kTol);
  EXPECT_NEAR(engine::gpt_oss_swiglu(10.0f, -9.0f, 7.0f), -6.0f * 7.0f / (1.0f + std::exp(-1.702f * 7.0f)), 1e-5f);
  EXPECT_NEAR(engine::gpt_oss_swiglu(-2.0f, 9.0f, 7.0f), 8.0f * -2.0f / (1.0f + std::exp(3.404f)), kTol);
  engine::model_dims d;
  d.a = engine::arch::gpt_oss;
  d.n_experts = 4;
  d.top_k = 2;
  // the router's logits with its bias added (moe_block): expert 3 at 0 + 2.5, above expert 2
  const float logits[4] = {1.0f, 3.0f, 2.0f, 2.5f};
  int32_t ids[2];
  float wts[2];
  const cu::moe_route route = engine::moe_route_of(d);
  EXPECT_TRUE(route.topk_softmax);
  float scratch[16];
  ASSERT_LE(cu::route_scratch_floats(route), 16);
  cu::route_token(route, logits, nullptr, scratch, ids, wts);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 3);
  EXPECT_NEAR(wts[0], 1.0f / (1.0f + std::exp(-0.5f)), kTol);
  EXPECT_NEAR(wts[1], 1.0f / (1.0f + std::exp(0.5f)), kTol);
}

// gpt-oss as the Hub releases it: MXFP4 experts (_blocks / _scales of [E, out, in] values). The expert views give
// gate = the even rows and up = the odd rows of gate_up_proj's decoded values, down as it is; the forward runs on it
// and pack plans it (the experts decoded, then written in the chosen type).
TEST(EngineFamilies, GptOssMxfp4SourceRuns) {
  razor::test::scratch_dir s("families-gptoss-mxfp4");
  synth_options so;
  so.stddev = 0.15f;
  so.mxfp4_experts = true;
  ASSERT_TRUE(synth_checkpoint(family_config("gpt_oss"), s / "m", so).ok());
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe/" + f, s.dir / "m" / f);
  auto ck = checkpoint::open(s / "m");
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  const tensor_entry* gu = ck->find_text("layers.0.mlp.experts.gate_up_proj_blocks");
  ASSERT_NE(gu, nullptr);
  ASSERT_TRUE(gu->mxfp4);
  const int64_t F = gu->shape[1] / 2, H = gu->shape[2];
  auto all = ck->read_f32(*gu);
  ASSERT_TRUE(all.ok()) << all.error().to_string();
  const int e = 3;
  for (auto p : {expert_proj::gate, expert_proj::up}) {
    auto v = ck->expert_matrix(0, e, p);
    ASSERT_TRUE(v.has_value());
    ASSERT_EQ(v->n_rows, F);
    ASSERT_EQ(v->n_cols, H);
    std::vector<float> m(size_t(F * H));
    ASSERT_TRUE(ck->read_rows_f32(*v, m.data()).ok());
    for (int64_t r = 0; r < F; ++r)
      for (int64_t c = 0; c < H; ++c)
        ASSERT_EQ(m[size_t(r * H + c)], (*all)[size_t((e * 2 * F + 2 * r + (p == expert_proj::up)) * H + c)]) << r << " " << c;
  }
  auto wp = engine::checkpoint_weights(*ck);
  auto d = engine::dims_for(*wp);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  bool finite = true;
  const status st = engine::forward(*wp, *d, {{1, 2, 3, 4, 5}}, [&](size_t, size_t n, const float* l) {
    for (size_t i = 0; i < n * size_t(d->vocab); ++i) finite = finite && std::isfinite(l[i]);
    return true;
  });
  EXPECT_TRUE(st.ok()) << st.to_string();
  EXPECT_TRUE(finite);
  gguf::convert_options co;
  co.default_type = ggml::type::q8_0;
  auto plan = gguf::plan_gguf(*ck, co);
  ASSERT_TRUE(plan.ok()) << plan.error().to_string();
  EXPECT_EQ(plan->arch, "gpt-oss");
  for (const auto& t : plan->tensors)
    if (t.name == "blk.0.ffn_gate_exps.weight") EXPECT_EQ(t.stored, ggml::type::q8_0);
}

// The MXFP4 source packed with its experts as GGML mxfp4 (the Hub's blocks repacked, as llama.cpp's converter writes
// them; the rest F32) reads back through ggml's mxfp4 dequantizer: the same expert values as the checkpoint's, the
// same logits to float32 rounding (the read-back's own transformations only).
constexpr double k_mxfp4_readback_rel_tol = 1e-5;  // max |gguf - hub| / max |hub| over the logits
TEST(EngineFamilies, GptOssMxfp4GgufReadsBack) {
  razor::test::scratch_dir s("families-gptoss-mxfp4-gguf");
  synth_options so;
  so.stddev = 0.15f;
  so.mxfp4_experts = true;
  ASSERT_TRUE(synth_checkpoint(family_config("gpt_oss"), s / "m", so).ok());
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe/" + f, s.dir / "m" / f);
  gguf::convert_options co;
  co.default_type = ggml::type::f32;
  co.recipe.rules.push_back({"_exps\\.weight$", ggml::type::mxfp4, 1});
  const std::string out = (s.dir / "m.gguf").string();
  auto rep = gguf::convert_to_gguf((s.dir / "m").string(), out, co);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  auto ck = checkpoint::open(s / "m");
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  auto hub = engine::checkpoint_weights(*ck);
  auto gg = engine::gguf_weights(out, ck->config());
  ASSERT_TRUE(gg.ok()) << gg.error().to_string();
  for (auto p : {expert_proj::gate, expert_proj::up, expert_proj::down}) {
    auto a = hub->expert(1, 5, p);
    auto b = (*gg)->expert(1, 5, p);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->data.size(), b->data.size());
    for (size_t i = 0; i < a->data.size(); ++i) ASSERT_EQ(a->data[i], b->data[i]) << i;
  }
  auto d = engine::dims_for(*hub);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  auto logits = [&](engine::weight_provider& wp) {
    std::vector<float> v;
    engine::run_options ro;
    ro.device = engine::backend::cpu;
    EXPECT_TRUE(engine::forward(wp, *d, {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}},
                                [&](size_t, size_t n, const float* l) {
                                  v.insert(v.end(), l, l + n * size_t(d->vocab));
                                  return true;
                                }, ro).ok());
    return v;
  };
  const auto a = logits(*hub), b = logits(**gg);
  ASSERT_EQ(a.size(), b.size());
  double maxd = 0, maxa = 0;
  for (size_t i = 0; i < a.size(); ++i) maxd = std::max(maxd, double(std::fabs(a[i] - b[i]))), maxa = std::max(maxa, double(std::fabs(a[i])));
  EXPECT_LT(maxd / maxa, k_mxfp4_readback_rel_tol);
}

// What llama.cpp's gpt-oss graph fixes (the SwiGLU's limit 7, sliding attention on the even layers, YaRN's betas 32 /
// 1) is refused by pack when config.json says otherwise, naming the key; the engine runs those configs as written.
TEST(EngineFamilies, GptOssPackRefusesWhatLlamaCppRunsDifferently) {
  razor::test::scratch_dir s("families-gptoss-refused");
  for (const config_edit& e : {config_edit{"limit", {{"swiglu_limit", 5.0}}, "swiglu_limit 5"},
                              config_edit{"odd-sliding", {{"layer_types", {"full_attention", "sliding_attention"}}}, "layer_types[0]"},
                              config_edit{"beta", {{"rope_scaling", {{"beta_fast", 16.0}}}}, "rope_scaling.beta_fast 16"},
                              config_edit{"no-window", {{"sliding_window", nullptr}}, "needs sliding_window"}}) {
    engine::model_dims d;
    expect_pack_refuses_engine_runs("gpt_oss", "gpt-oss", e, s / e.name, &d);
    if (::testing::Test::HasFatalFailure()) return;
    if (std::string(e.name) == "limit") EXPECT_EQ(d.swiglu_limit, 5.0f);
    if (std::string(e.name) == "odd-sliding") EXPECT_TRUE(d.sliding_layer[1] && !d.sliding_layer[0]);
    if (std::string(e.name) == "beta") EXPECT_EQ(d.yarn_beta_fast, 16.0);
  }
}

// The probe reports a router's input statistics under the checkpoint's own tensor name (what a user finds in the
// safetensors index and in imatrix / allocation output): Mixtral's block_sparse_moe.gate.weight, gpt-oss's
// mlp.router.weight, the others' mlp.gate.weight; each reaches the GGUF router ffn_gate_inp (layout's imatrix_targets).
TEST(EngineFamilies, RouterInputsUseTheCheckpointsNames) {
  razor::test::scratch_dir s("router-names");
  for (auto [family, router] : {std::pair{"mixtral", "block_sparse_moe.gate.weight"},
                                std::pair{"gpt_oss", "mlp.router.weight"}, std::pair{"olmoe", "mlp.gate.weight"}}) {
    synth_options so;
    so.dt = dtype::f32;
    ASSERT_TRUE(synth_checkpoint(family_config(family), s / family, so).ok()) << family;
    auto ck = checkpoint::open(s / family);
    ASSERT_TRUE(ck.ok()) << ck.error().to_string();
    ASSERT_NE(ck->find_text(std::string("layers.0.") + router), nullptr) << family;
    auto wp = engine::checkpoint_weights(*ck);
    engine::probe_options po;
    po.n_tokens = 16;
    po.seqlen = 8;
    std::vector<int32_t> toks;
    for (int i = 0; i < 16; ++i) toks.push_back(int32_t(1 + i * 37 % 1000));
    auto r = engine::run_probe(*wp, toks, po);
    ASSERT_TRUE(r.ok()) << family << ": " << r.error().to_string();
    const std::string name = std::string("layers.0.") + router;
    const engine::input_stats* in = r->find_input(name);
    ASSERT_NE(in, nullptr) << family << ": no input statistics under " << name;
    if (std::string(router) != "mlp.gate.weight") {
      EXPECT_EQ(r->find_input("layers.0.mlp.gate.weight"), nullptr) << family;
    }
  }
}
