// The importance matrix from our probe (razor probe --imatrix) in llama.cpp: GGUF names, the shared gate/up
// entry split, per-expert counts, the Qwen3.5 ssm_out column reorder, and the end-to-end claim: the seed's
// IQ3_XXS recipe packed with our imatrix scores better in the real llama.cpp than the same export without one,
// and the pure types keep their order. A few windows only (the 200-window table is in docs/gguf.md).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/test_util.h"
#include "engine/eval.h"
#include "engine/probe.h"
#include "gguf/convert.h"
#include "gguf/imatrix.h"
#include "gguf/validate.h"
#include "model/checkpoint.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

std::string fixture(const std::string& name) { return std::string(RAZOR_MODELS_DIR) + "/" + name; }
// resources/data/README.md: the probe calibrates on the calibration text, llama.cpp scores the held-out one.
std::string calib_text() { return razor::test::calib_text_path(); }
std::string text_path() { return razor::test::eval_text_path(); }
std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Calibration: windows 1..16 of the calibration text (window 0 skipped so that first_token is exercised);
// 16 windows keep the probe to a few seconds.
constexpr size_t k_calib_first = 256, k_calib_tokens = 16 * 256;
constexpr int k_windows = 4;  // llama.cpp windows scored per file (about 3 s each on a loaded 2-core machine)

struct probed {
  engine::probe_result r;
  gguf::imatrix im;
  std::vector<std::string> notes;
};

probed probe(const std::string& model) {
  probed p;
  auto ck = checkpoint::open(model);
  EXPECT_TRUE(ck.ok());
  auto tk = bpe_tokenizer::load(model + "/tokenizer.json");
  EXPECT_TRUE(tk.ok());
  auto toks = engine::protocol_tokens(*tk, read_text(calib_text()), "text").value();
  engine::probe_options o;
  o.first_token = k_calib_first;
  o.n_tokens = k_calib_tokens;
  auto wp = engine::checkpoint_weights(*ck);
  auto r = engine::run_probe(*wp, toks, o);
  EXPECT_TRUE(r.ok()) << r.error().to_string();
  p.r = std::move(r).value();
  auto im = engine::probe_to_imatrix(p.r, ck->config(), "test", &p.notes);
  EXPECT_TRUE(im.ok()) << im.error().to_string();
  p.im = std::move(im).value();
  return p;
}

}  // namespace

TEST(imatrix_export, NamesSplitCountsAndReorder) {
  auto p = probe(fixture("tiny-qwen3-5-moe"));
  EXPECT_EQ(p.r.first_token, k_calib_first);
  EXPECT_EQ(p.im.chunk_count, 16);
  EXPECT_EQ(p.im.chunk_size, 256);
  // Every entry names a tensor of the conversion with its width and expert count.
  auto ck = checkpoint::open(fixture("tiny-qwen3-5-moe"));
  ASSERT_TRUE(ck.ok());
  auto plan = gguf::plan_gguf(*ck, {});
  ASSERT_TRUE(plan.ok());
  std::vector<gguf::imatrix_target> targets;
  for (auto& t : plan->tensors)
    if (t.ne.size() >= 2) targets.push_back({t.name, t.ne[0], t.ne.size() >= 3 ? t.ne[2] : 1});
  gguf::imatrix copy = p.im;
  auto st = copy.match_model(targets, "fixture");
  EXPECT_TRUE(st.ok()) << st.to_string();
  // gate/up: one probe entry, two GGUF entries with the same numbers and per-expert counts.
  const auto* gate = p.im.find("blk.1.ffn_gate_exps.weight");
  const auto* up = p.im.find("blk.1.ffn_up_exps.weight");
  const auto* src = p.r.find_input("layers.1.mlp.experts.gate_up");
  ASSERT_TRUE(gate && up && src);
  EXPECT_EQ(gate->n_mat, 16);
  EXPECT_EQ(gate->in_sum2, up->in_sum2);
  EXPECT_EQ(gate->counts, up->counts);
  double routed = 0;
  for (int e = 0; e < 16; ++e) {
    EXPECT_EQ(gate->counts[size_t(e)], float(src->count[size_t(e)]));
    routed += gate->counts[size_t(e)];
  }
  EXPECT_EQ(routed, double(k_calib_tokens) * 4);  // top-4: every token counted by 4 experts
  EXPECT_NE(gate->counts[0], gate->counts[1]);   // per expert, not one shared count
  ASSERT_TRUE(p.im.find("blk.1.ffn_down_exps.weight"));
  ASSERT_TRUE(p.im.find("output.weight"));
  ASSERT_TRUE(p.im.find("blk.0.ffn_gate_shexp.weight"));
  // ssm_out: GGUF column block p is HF value head order[p] = 0, 2, 1, 3 (2 key heads x 2 value heads of 64).
  const auto* so = p.im.find("blk.0.ssm_out.weight");
  const auto* hs = p.r.find_input("layers.0.linear_attn.out_proj.weight");
  ASSERT_TRUE(so && hs);
  const int old_of_new[4] = {0, 2, 1, 3};
  for (int np = 0; np < 4; ++np)
    for (int j = 0; j < 64; ++j)
      EXPECT_EQ(so->in_sum2[size_t(np * 64 + j)], float(hs->sum_sq[size_t(old_of_new[np] * 64 + j)]));
  // Written and read back through llama.cpp's GGUF imatrix format.
  fs::path f = fs::temp_directory_path() / ("razor_imx_" + std::to_string(getpid()) + ".gguf");
  ASSERT_TRUE(gguf::write_imatrix_gguf(p.im, f.string()).ok());
  auto back = gguf::read_imatrix(f.string());
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(back->entries.size(), p.im.entries.size());
  auto w = back->weights_for("blk.1.ffn_gate_exps.weight", 3);
  ASSERT_TRUE(w.ok());
  EXPECT_FLOAT_EQ((*w)[0], gate->in_sum2[3 * 256] / gate->counts[3]);
  fs::remove(f);
}

TEST(imatrix_export, BeatsNoImatrixInLlamaCpp) {
  gguf::validate_options vo;
  vo.oracle_dir = RAZOR_ORACLE_DIR;
  vo.text_path = text_path();
  vo.windows = k_windows;
  if (auto why = gguf::validate_unavailable_reason(vo); !why.empty()) GTEST_SKIP() << why;
  // qwen3moe: the imatrix gain there is large (about 6% in ppl on 20 windows, docs/gguf.md), so 4 windows
  // decide it; the Qwen3.5 mapping (ssm_out reorder) is checked exactly by the test above.
  const std::string model = fixture("tiny-qwen3-moe");
  auto p = probe(model);
  fs::path dir = fs::temp_directory_path() / ("razor_imx_ladder_" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto recipe = gguf::load_type_recipe(std::string(RAZOR_SOURCE_DIR_T) + "/recipes/gguf/instinct-iq3.txt");
  ASSERT_TRUE(recipe.ok());

  auto score = [&](const std::string& tag, gguf::convert_options o) -> double {
    const std::string out = (dir / (tag + ".gguf")).string();
    auto rep = gguf::convert_to_gguf(model, out, o);
    EXPECT_TRUE(rep.ok()) << tag << ": " << rep.error().to_string();
    if (!rep.ok()) return NAN;
    auto v = gguf::validate_with_llamacpp(out, vo);
    EXPECT_TRUE(v.ok()) << tag << ": " << v.error().to_string();
    if (!v.ok()) return NAN;
    std::printf("%-14s %10llu bytes  ppl %.4f (%d windows)\n", tag.c_str(), (unsigned long long)rep->file_bytes,
                v->ppl, v->windows);
    return v->ppl;
  };
  gguf::convert_options f32;
  f32.default_type = ggml::type::f32;
  gguf::convert_options q4 = f32;
  q4.default_type = ggml::type::q4_k;
  gguf::convert_options with_im;
  with_im.recipe = *recipe;
  with_im.imat = &p.im;
  gguf::convert_options without = with_im;
  without.imat = nullptr;
  // Without the switch, llama.cpp's rule refuses the iq3_xxs tensors.
  {
    auto ck = checkpoint::open(model);
    auto refused = gguf::plan_gguf(*ck, without);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), errc::needs_imatrix);
  }
  without.allow_missing_imatrix = true;
  const double p_f32 = score("f32", f32), p_q4 = score("q4_K", q4);
  const double p_im = score("iq3+imatrix", with_im), p_no = score("iq3-no-imatrix", without);
  EXPECT_LT(p_f32, p_q4);
  EXPECT_LT(p_q4, p_im);
  EXPECT_LT(p_im, p_no) << "the imatrix export must beat the export without one";
  fs::remove_all(dir);
}
