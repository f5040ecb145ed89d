// HF -> GGUF conversion of the bundled fixtures, loaded in the real llama.cpp (tools/llamacpp/validate.mjs).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "ggml/quants.h"
#include "gguf/convert.h"
#include "gguf/gguf_file.h"
#include "gguf/validate.h"
#include "model/adapter.h"
#include "model/checkpoint.h"
#include "model/mxfp4.h"
#include "model/synth.h"

namespace fs = std::filesystem;
using namespace razor;
using namespace razor::gguf;

namespace {

fs::path tdir() {
  fs::path d = fs::temp_directory_path() / ("razor_convert_test_" + std::to_string(getpid()));
  fs::create_directories(d);
  return d;
}

std::string fixture(const char* name) { return std::string(RAZOR_MODELS_DIR) + "/" + name; }

// The held-out evaluation text (resources/data/README.md).
std::string valid_text() { return razor::test::eval_text_path(); }

// Perplexity of llama.cpp (node-llama-cpp 3.21.1, exact mode) on the first 8 windows of 256 tokens of
// kernel-docs-eval.txt (the same tokens as the first 8 windows of the whole valid split), measured on the F32 conversions whose 200-window figures equal PyTorch's
// (qwen3moe 24.4306, qwen35moe 19.0734; docs/gguf.md). Pinned to catch any change in what we write.
constexpr int k_windows = 8;
constexpr double k_ppl8_qwen3moe = 21.059471;
constexpr double k_ppl8_qwen35moe = 17.558438;
// Exact mode on F32 weights reproduces to ~1e-6 relative run to run; the CPU variant llama.cpp picks may
// change low-order bits, so allow 1e-4 relative.
constexpr double k_ppl_rel_tol = 1e-4;

struct fixture_case {
  const char* dir;
  const char* arch;
  size_t n_tensors;
  double ppl8;
};

void convert_and_check(const fixture_case& fc) {
  fs::path out = tdir() / (std::string(fc.dir) + "-f32.gguf");
  convert_options o;
  o.default_type = ggml::type::f32;
  auto rep = convert_to_gguf(fixture(fc.dir), out.string(), o);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  EXPECT_EQ(rep->arch, fc.arch);
  auto f = file::open(out.string());
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  EXPECT_EQ(f->tensors().size(), fc.n_tensors);
  EXPECT_EQ(*f->get_string("general.architecture"), fc.arch);
  EXPECT_EQ(*f->get_int("general.file_type"), 0);
  EXPECT_EQ(f->find("tokenizer.ggml.tokens")->size(), 4096u);
  EXPECT_EQ(f->find("tokenizer.ggml.merges")->size(), 3839u);
  EXPECT_EQ(f->find("tokenizer.ggml.token_type")->int_at(0), 3);  // <|endoftext|> CONTROL
  EXPECT_EQ(f->find("tokenizer.ggml.token_type")->int_at(1), 1);
  EXPECT_EQ(*f->get_int("tokenizer.ggml.eos_token_id"), 0);
  for (auto& t : f->tensors()) EXPECT_EQ(t.type, type_f32) << t.name;
  const tensor_info* g = f->find_tensor("blk.0.ffn_gate_exps.weight");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->ne, (std::vector<int64_t>{256, 256, 16}));

  validate_options vo;
  vo.text_path = valid_text();
  vo.windows = k_windows;
  if (std::string why = validate_unavailable_reason(vo); !why.empty()) GTEST_SKIP() << why;
  auto v = validate_with_llamacpp(out.string(), vo);
  ASSERT_TRUE(v.ok()) << v.error().to_string();
  EXPECT_EQ(v->windows, k_windows);
  std::printf("%s: llama.cpp ppl over %d windows = %.6f\n", fc.dir, v->windows, v->ppl);
  if (fc.ppl8 > 0) EXPECT_NEAR(v->ppl, fc.ppl8, fc.ppl8 * k_ppl_rel_tol);
}

}  // namespace

TEST(Convert, Qwen3MoeF32LoadsInLlamaCpp) {
  convert_and_check({"tiny-qwen3-moe", "qwen3moe", 51, k_ppl8_qwen3moe});
}

TEST(Convert, Qwen35MoeF32LoadsInLlamaCpp) {
  convert_and_check({"tiny-qwen3-5-moe", "qwen35moe", 76, k_ppl8_qwen35moe});
}

// A file llama.cpp aborts on (qwen3moe without attention.head_count: GGML_ASSERT) fails the check with a
// clear error; the abort stays in the child process.
TEST(Convert, LlamaCppAbortIsContained) {
  validate_options vo;
  vo.text_path = valid_text();
  vo.windows = 1;
  if (std::string why = validate_unavailable_reason(vo); !why.empty()) GTEST_SKIP() << why;
  fs::path out = tdir() / "broken.gguf";
  convert_options o;
  ASSERT_TRUE(convert_to_gguf(fixture("tiny-qwen3-moe"), out.string(), o).ok());
  std::string bytes;
  {
    std::ifstream in(out, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string key = "qwen3moe.attention.head_count";
  size_t at = bytes.find(key);
  while (at != std::string::npos && bytes.compare(at + key.size(), 3, "_kv") == 0) at = bytes.find(key, at + 1);
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, key.size(), "qwen3moe.attention.head_cXunt");  // same length: the key is now unknown
  {
    std::ofstream o2(out, std::ios::binary | std::ios::trunc);
    o2 << bytes;
  }
  auto v = validate_with_llamacpp(out.string(), vo);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code(), errc::external);
  EXPECT_NE(v.error().message().find("broken.gguf"), std::string::npos) << v.error().message();
}

// DeepSeek-V3's multi-token-prediction layer: with num_nextn_predict_layers 1 the Hub checkpoint holds
// model.layers.N.* after its N decoder layers. It is its own role (mtp, outside the decoder layers: no recipe
// quantizes it, the engine never loads it) and pack leaves it out, as llama.cpp's converter does for deepseek2.
TEST(Convert, DeepseekMtpLayerIsItsOwnRoleAndLeftOut) {
  razor::test::scratch_dir s("convert-mtp");
  auto cfg = nlohmann::json::parse(
      razor::test::slurp(std::string(RAZOR_SOURCE_DIR_T) + "/tests/engine/data/families/deepseek_v3.json"));
  const int64_t n = cfg["num_hidden_layers"].get<int64_t>();
  cfg["num_hidden_layers"] = n + 1;  // synth writes layer n like a decoder layer (the MTP block's own layer)
  synth_options so;
  so.dt = dtype::f32;
  ASSERT_TRUE(synth_checkpoint(cfg, s / "m", so).ok());
  const fs::path cfg_path = s.dir / "m" / "config.json";
  auto written = nlohmann::json::parse(razor::test::slurp(cfg_path.string()));
  written["num_hidden_layers"] = n;
  written["num_nextn_predict_layers"] = 1;
  std::ofstream(cfg_path) << written.dump(2);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fixture("tiny-qwen3-moe") + "/" + f, s.dir / "m" / f);
  auto ck = checkpoint::open(s / "m");
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  const std::string mtp = "layers." + std::to_string(n) + ".", last = "layers." + std::to_string(n - 1) + ".";
  for (const char* t : {"input_layernorm.weight", "self_attn.kv_a_proj_with_mqa.weight", "mlp.gate.weight",
                        "mlp.experts.0.gate_proj.weight", "mlp.shared_experts.down_proj.weight"}) {
    const tensor_entry* e = ck->find_text(mtp + t);
    ASSERT_NE(e, nullptr) << mtp + t;
    EXPECT_EQ(e->cls.role, tensor_role::mtp) << e->name;
    EXPECT_EQ(e->cls.layer, -1) << e->name;
    const tensor_entry* d = ck->find_text(last + t);
    ASSERT_NE(d, nullptr) << last + t;
    EXPECT_NE(d->cls.role, tensor_role::mtp) << d->name;
    EXPECT_EQ(d->cls.layer, n - 1) << d->name;
  }
  EXPECT_FALSE(role_is_quantizable(tensor_role::mtp));
  EXPECT_FALSE(ck->expert_matrix(int(n), 0, expert_proj::gate).has_value());  // no expert views of it
  // Without num_nextn_predict_layers the same name is a decoder layer's.
  model_config plain = ck->config();
  plain.text["num_nextn_predict_layers"] = 0;
  EXPECT_EQ(classify_tensor("model." + mtp + "mlp.gate.weight", {8, 256}, plain).role, tensor_role::router);
  auto rep = plan_gguf(*ck, {});
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  const std::string blk_mtp = "blk." + std::to_string(n) + ".", blk_last = "blk." + std::to_string(n - 1) + ".";
  size_t in_last = 0;
  for (const auto& r : rep->tensors) {
    EXPECT_EQ(r.name.rfind(blk_mtp, 0), std::string::npos) << r.name;
    in_last += r.name.rfind(blk_last, 0) == 0;
  }
  EXPECT_GT(in_last, 0u);
}

// gpt-oss as the Hub releases it (MXFP4 experts): experts written as mxfp4 are the Hub's blocks repacked
// (model/mxfp4.h mxfp4_hub_to_ggml, no requantisation), as llama.cpp's converter writes them; gate / up the
// even / odd rows of gate_up_proj. The bytes come from the checkpoint's own blocks, and ggml's mxfp4 dequantizer
// gives back the values the engine reads from the checkpoint.
TEST(Convert, GptOssMxfp4ExpertsAreTheHubBlocksRepacked) {
  razor::test::scratch_dir s("convert-gptoss-mxfp4");
  auto cfg = nlohmann::json::parse(
      razor::test::slurp(std::string(RAZOR_SOURCE_DIR_T) + "/tests/engine/data/families/gpt_oss.json"));
  synth_options so;
  so.stddev = 0.15f;
  so.mxfp4_experts = true;
  ASSERT_TRUE(synth_checkpoint(cfg, s / "m", so).ok());
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fixture("tiny-qwen3-moe") + "/" + f, s.dir / "m" / f);
  convert_options o;
  o.default_type = ggml::type::q8_0;
  o.recipe.rules.push_back({"_exps\\.weight$", ggml::type::mxfp4, 1});
  const std::string out = (s.dir / "m.gguf").string();
  auto rep = convert_to_gguf((s.dir / "m").string(), out, o);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  auto ck = checkpoint::open(s / "m");
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  auto f = file::open(out);
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  const auto& c = ck->config();
  const int64_t E = c.num_experts, F = c.moe_intermediate_size, H = c.hidden_size;
  struct which {
    const char* gguf;
    const char* hub;
    int64_t rows, cols, step, first;  // view rows of expert e: rows [e * per + first + i * step]
  };
  for (int l = 0; l < int(c.num_layers); ++l)
    for (const which& w : {which{"ffn_gate_exps", "gate_up_proj", F, H, 2, 0}, which{"ffn_up_exps", "gate_up_proj", F, H, 2, 1},
                           which{"ffn_down_exps", "down_proj", H, F, 1, 0}}) {
      const std::string name = "blk." + std::to_string(l) + "." + w.gguf + ".weight";
      SCOPED_TRACE(name);
      const tensor_info* ti = f->find_tensor(name);
      ASSERT_NE(ti, nullptr);
      ASSERT_EQ(ti->type, uint32_t(ggml::type::mxfp4));
      const tensor_entry* blocks = ck->find_text("layers." + std::to_string(l) + ".mlp.experts." + w.hub + "_blocks");
      ASSERT_NE(blocks, nullptr);
      ASSERT_GE(blocks->scale, 0);
      const uint8_t* codes = ck->data(*blocks);
      const uint8_t* scales = ck->data(ck->tensors()[size_t(blocks->scale)]);
      const int64_t per_row = w.cols / 32, per_expert = w.rows * w.step;
      std::vector<uint8_t> want(size_t(E * w.rows * per_row * 17));
      for (int64_t e = 0; e < E; ++e)
        for (int64_t i = 0; i < w.rows; ++i)
          for (int64_t j = 0; j < per_row; ++j) {
            const int64_t b = (e * per_expert + w.first + i * w.step) * per_row + j;
            mxfp4_hub_to_ggml(codes + b * 16, scales[b], want.data() + ((e * w.rows + i) * per_row + j) * 17);
          }
      ASSERT_EQ(std::memcmp(f->tensor_data(*ti), want.data(), want.size()), 0);
      // expert 1 decoded by ggml's dequantizer: the checkpoint's values of the view
      std::vector<float> got(size_t(w.rows * w.cols)), ref(got.size());
      ASSERT_TRUE(ggml::dequantize_row(ggml::type::mxfp4, f->tensor_data(*ti) + w.rows * per_row * 17, got.data(),
                                       int64_t(got.size())).ok());
      auto v = ck->expert_matrix(l, 1, std::string(w.gguf) == "ffn_gate_exps" ? expert_proj::gate
                                       : std::string(w.gguf) == "ffn_up_exps" ? expert_proj::up : expert_proj::down);
      ASSERT_TRUE(v.has_value());
      ASSERT_TRUE(ck->read_rows_f32(*v, ref.data()).ok());
      for (size_t k = 0; k < got.size(); ++k) ASSERT_EQ(got[k], ref[k]) << k;
    }
}
