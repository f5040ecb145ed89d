// HF -> GGUF conversion of the bundled fixtures, loaded in the real llama.cpp (tools/llamacpp/validate.mjs).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/test_util.h"
#include "gguf/convert.h"
#include "gguf/gguf_file.h"
#include "gguf/validate.h"

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
