// The engine's families beyond qwen3_moe / qwen3_5_moe (olmoe, qwen2_moe, mixtral, qwen3_next): what it refuses. Their forward
// against llama.cpp is tests/engine/test_llamacpp_logits.cpp's. The GPU engine implements only the two Qwen3
// families: asked for by name, the GPU path refuses the others naming the family; chosen automatically, the CPU
// runs them. Options of a family that neither the engine nor llama.cpp implements are refused by name.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "engine/model_runner.h"
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

}  // namespace

TEST(EngineFamilies, GpuPathRefusesFamiliesItDoesNotImplement) {
  // The device comes from the options here, not from the environment (a GPU run of the suite may set it).
  const char* env = std::getenv("RAZOR_ENGINE");
  const std::string saved = env ? env : "";
  ::unsetenv("RAZOR_ENGINE");
  razor::test::scratch_dir s("families-gpu");
  for (const char* family : {"olmoe", "qwen2_moe", "mixtral", "qwen3_next"}) {
    const status asked = run_forward(family_config(family), s, std::string(family) + "-cuda", engine::backend::cuda);
    ASSERT_FALSE(asked.ok()) << family;
    EXPECT_NE(asked.to_string().find(std::string("model_type ") + family), std::string::npos) << asked.to_string();
    EXPECT_NE(asked.to_string().find("GPU engine runs qwen3_moe and qwen3_5_moe only"), std::string::npos)
        << asked.to_string();
    const status automatic = run_forward(family_config(family), s, std::string(family) + "-auto",
                                         engine::backend::automatic);
    EXPECT_TRUE(automatic.ok()) << family << ": " << automatic.to_string();
  }
  engine::model_dims q;
  q.a = engine::arch::qwen3_5_moe;
  EXPECT_TRUE(engine::gpu_engine_runs(q));
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
