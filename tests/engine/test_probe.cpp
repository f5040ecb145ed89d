// The probe on the qwen3_5_moe fixture (2 x 256 tokens): routing counts add up, statistics are consistent,
// and the HDF5 file reads back as written.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/test_util.h"
#include "engine/eval.h"
#include "engine/probe.h"
#include "model/checkpoint.h"

namespace {

// Sums of a few thousand doubles: exact to ~1e-12 relative; 1e-9 leaves room.
constexpr double k_sum_tol = 1e-9;

TEST(probe, fixture_statistics_and_hdf5_round_trip) {
  const std::string text_path = razor::test::calib_text_path();  // calibration: resources/data/README.md
  const std::string dir = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-5-moe";
  auto ck = razor::checkpoint::open(dir);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  auto tk = razor::bpe_tokenizer::load(dir + "/tokenizer.json");
  ASSERT_TRUE(tk.ok());
  std::ifstream f(text_path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  auto toks = razor::engine::protocol_tokens(*tk, ss.str(), "text").value();
  auto wp = razor::engine::checkpoint_weights(*ck);
  razor::engine::probe_options opt;
  opt.n_tokens = 512;
  opt.seqlen = 256;
  auto r = razor::engine::run_probe(*wp, toks, opt);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->n_layers, 4);
  ASSERT_EQ(r->n_experts, 16);
  EXPECT_EQ(r->n_seqs, 2u);
  for (int L = 0; L < r->n_layers; ++L) {
    double fsum = 0, wsum = 0;
    for (int e = 0; e < 16; ++e) {
      fsum += r->freq[size_t(L * 16 + e)];
      wsum += r->wmass[size_t(L * 16 + e)];
      EXPECT_GT(r->wfro_gate_up[size_t(L * 16 + e)], 0.0);
      EXPECT_GT(r->wfro_down[size_t(L * 16 + e)], 0.0);
    }
    EXPECT_EQ(fsum, 512.0 * 4);                   // every token fills top_k = 4 slots
    EXPECT_NEAR(wsum, 512.0, 512.0 * 1e-5);       // renormalised top-k weights sum to 1 per token (float32)
    EXPECT_GT(r->entropy[size_t(L)], 0.5);
    EXPECT_LE(r->entropy[size_t(L)], 1.0 + k_sum_tol);
    EXPECT_GE(r->max_mean[size_t(L)], 1.0);
  }
  // imatrix inputs: dense tensors saw every token; expert rows add up to the routed slots.
  auto* q = r->find_input("layers.3.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->count[0], 512u);
  EXPECT_EQ(q->cols, 256);
  auto* gu = r->find_input("layers.0.mlp.experts.gate_up");
  ASSERT_NE(gu, nullptr);
  EXPECT_EQ(gu->n_mat, 16);
  uint64_t slots = 0;
  for (int e = 0; e < 16; ++e) {
    slots += gu->count[size_t(e)];
    EXPECT_EQ(double(gu->count[size_t(e)]), r->freq[size_t(e)]);
  }
  EXPECT_EQ(slots, 2048u);
  ASSERT_NE(r->find_input("layers.0.linear_attn.out_proj.weight"), nullptr);
  ASSERT_NE(r->find_input("lm_head.weight"), nullptr);

  auto path = (std::filesystem::temp_directory_path() / "razor_test_probe.h5").string();
  ASSERT_TRUE(razor::engine::write_probe_h5(*r, path).ok());
  auto back = razor::engine::read_probe_h5(path);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(back->freq, r->freq);
  EXPECT_EQ(back->asal, r->asal);
  EXPECT_EQ(back->entropy, r->entropy);
  EXPECT_EQ(back->inputs.size(), r->inputs.size());
  auto* gu2 = back->find_input("layers.0.mlp.experts.gate_up");
  ASSERT_NE(gu2, nullptr);
  EXPECT_EQ(gu2->sum_sq, gu->sum_sq);
  EXPECT_EQ(gu2->count, gu->count);
  std::filesystem::remove(path);
}

}  // namespace
