// The model families beyond the two trained fixtures, end to end through the CLI (issue 20): `razor synth` writes a
// tiny random checkpoint of the family's Hub config schema and tensor names (tests/engine/data/families/<family>.json)
// with the fixture's tokenizer copied in; `inspect` names the GGUF architecture; probe (with a llama.cpp imatrix),
// allocate, pack of the allocation and validate-gguf in the real llama.cpp all run on it. The logits of each
// family against llama.cpp, and its q4_K export, are tests/engine/test_llamacpp_logits.cpp's; families pack cannot
// convert yet are refused with the architecture and what is missing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/test_util.h"

namespace fs = std::filesystem;

namespace {

const auto run = razor::test::run_razor;

const std::string kModels = RAZOR_MODELS_DIR;
const std::string kFamilies = std::string(RAZOR_SOURCE_DIR_T) + "/tests/engine/data/families/";

// A synthetic checkpoint of `family` in s/<family> (stddev: test_llamacpp_logits.cpp's, predictions far from uniform).
// `tokenizer`: the folder whose tokenizer.json / tokenizer_config.json are copied in.
std::string synth(const razor::test::scratch_dir& s, const std::string& family, const std::string& config,
                  const std::string& tokenizer = kModels + "/tiny-qwen3-moe") {
  const std::string out = s / family;
  auto r = run("synth --config " + config + " --stddev 0.15 --out " + out);
  EXPECT_EQ(r.code, 0) << r.out;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) fs::copy_file(tokenizer + "/" + f, out + "/" + f);
  return out;
}

// "perplexity X" in validate-gguf's output, -1 when absent.
double ppl(const std::string& out) {
  const size_t p = out.find("perplexity ");
  return p == std::string::npos ? -1.0 : std::atof(out.c_str() + p + 11);
}

void end_to_end(const std::string& family, const std::string& arch, const std::string& tokenizer = kModels + "/tiny-qwen3-moe") {
  razor::test::scratch_dir s("family");
  const std::string m = synth(s, family, kFamilies + family + ".json", tokenizer);
  auto r = run("inspect " + m);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("GGUF arch " + arch + ")"), std::string::npos) << r.out;

  r = run("probe " + m + " --tokens 256 --seqlen 128 --device cpu --out " + (s / "p.h5") + " --imatrix " +
          (s / "imat.gguf"));
  ASSERT_EQ(r.code, 0) << r.out;
  r = run("allocate " + m + " --probe " + (s / "p.h5") + " --target 4.5bits --out " + (s / "recipe.json"));
  ASSERT_EQ(r.code, 0) << r.out;
  r = run("pack " + m + " --recipe " + (s / "recipe.json") + " --imatrix " + (s / "imat.gguf") + " -o " +
          (s / "alloc.gguf"));
  ASSERT_EQ(r.code, 0) << r.out;
  r = run("gguf-info " + (s / "alloc.gguf"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(arch), std::string::npos) << r.out;
  r = run("validate-gguf " + (s / "alloc.gguf") + " --windows 1 --window 128");
  ASSERT_EQ(r.code, 0) << r.out;
  const double p = ppl(r.out);
  EXPECT_GT(p, 1.0) << r.out;
  EXPECT_TRUE(std::isfinite(p)) << r.out;
}

}  // namespace

TEST(FamiliesCli, OlmoeEndToEnd) { end_to_end("olmoe", "olmoe"); }
TEST(FamiliesCli, Qwen2MoeEndToEnd) { end_to_end("qwen2_moe", "qwen2moe"); }
TEST(FamiliesCli, MixtralEndToEnd) { end_to_end("mixtral", "llama"); }
// With Mixtral's own kind of tokenizer (SentencePiece-style BPE, tests/engine/data/spm-tokenizer).
TEST(FamiliesCli, MixtralSpmTokenizerEndToEnd) {
  end_to_end("mixtral", "llama", std::string(RAZOR_SOURCE_DIR_T) + "/tests/engine/data/spm-tokenizer");
}
TEST(FamiliesCli, Qwen3NextEndToEnd) { end_to_end("qwen3_next", "qwen3next"); }

// The GGUF-mode allocation on qwen3_next: in_proj_qkvz feeds two GGUF tensors (attn_qkv, attn_gate), sampled (weights
// sensitivity) and round-tripped (full sensitivity: a KL per type) part by part; both get a measured type.
TEST(FamiliesCli, Qwen3NextGgufAllocationSplitsTheFusedProjection) {
  razor::test::scratch_dir s("family-q3n-gguf");
  const std::string m = synth(s, "qwen3_next", kFamilies + "qwen3_next.json");
  auto r = run("probe " + m + " --tokens 128 --seqlen 64 --device cpu --out " + (s / "p.h5") + " --imatrix " +
               (s / "imat.gguf"));
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* sens : {"weights", "full"}) {
    const std::string out = s / (std::string(sens) + ".txt");
    r = run("allocate " + m + " --mode gguf --target 5bits --types q4_K,q8_0 --calib-windows 1 --ctx 64 --windows 1 "
            "--imatrix " + (s / "imat.gguf") + " --sensitivity " + sens + " --out " + out);
    ASSERT_EQ(r.code, 0) << sens << ": " << r.out;
    const std::string recipe = razor::test::slurp(out);
    for (const char* t : {"blk\\.0\\.attn_qkv\\.weight", "blk\\.0\\.attn_gate\\.weight", "blk\\.0\\.ssm_ba\\.weight"})
      EXPECT_NE(recipe.find(t), std::string::npos) << sens << ": " << t << "\n" << recipe;
  }
}
TEST(FamiliesCli, DeepseekV3EndToEnd) { end_to_end("deepseek_v3", "deepseek2"); }
TEST(FamiliesCli, GptOssEndToEnd) { end_to_end("gpt_oss", "gpt-oss"); }

// Families pack cannot convert yet: refused before anything is written, naming the architecture and what is
// missing (the synthetic checkpoint is sparse: its shapes are all pack reads before refusing).
TEST(FamiliesCli, UnconvertedFamiliesAreRefusedByName) {
  razor::test::scratch_dir s("family-refused");
  struct refused {
    const char* family;
    const char* missing;  // a phrase of the refusal
  };
  // Tiny configs of the Hub's schema (the keys the adapters need).
  const std::string common = R"("hidden_size": 256, "num_hidden_layers": 2, "vocab_size": 4096, "num_attention_heads": 4,
      "num_key_value_heads": 4, "intermediate_size": 256, "num_experts_per_tok": 2)";
  const std::string llama = R"({"model_type": "llama", )" + common + "}";
  std::ofstream(s / "llama.json") << llama;
  for (const refused& f : {refused{"llama", "dense (non-MoE)"}}) {
    const std::string m = s / f.family;
    const std::string config = fs::exists(kFamilies + f.family + ".json") ? kFamilies + f.family + ".json"
                                                                          : s / (std::string(f.family) + ".json");
    auto r = run("synth --config " + config + " --sparse --out " + m);
    ASSERT_EQ(r.code, 0) << r.out;
    for (const char* how : {"-t q8_0", "--ftype Q4_K_M"}) {
      r = run("pack " + m + " " + how + " -o " + (s / (std::string(f.family) + ".gguf")));
      EXPECT_NE(r.code, 0) << r.out;
      EXPECT_NE(r.out.find(std::string("model_type '") + f.family + "'"), std::string::npos) << r.out;
      EXPECT_NE(r.out.find(f.missing), std::string::npos) << how << ": " << r.out;
      EXPECT_FALSE(fs::exists(s / (std::string(f.family) + ".gguf")));
    }
  }
  // A byte_fallback BPE not in the Llama form (its decoder not a Sequence) is what llama.cpp's converter cannot
  // read either: refused, naming the file.
  const std::string m = s / "mixtral";
  auto r = run("synth --config " + kFamilies + "mixtral.json --sparse --out " + m);
  ASSERT_EQ(r.code, 0) << r.out;
  auto tok = nlohmann::json::parse(razor::test::slurp(kModels + "/tiny-qwen3-moe/tokenizer.json"));
  tok["model"]["byte_fallback"] = true;
  std::ofstream(m + "/tokenizer.json") << tok.dump();
  r = run("pack " + m + " -t q8_0 -o " + (s / "mixtral.gguf"));
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("tokenizer.json: a byte_fallback BPE whose decoder is not a \"Sequence\""), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(s / "mixtral.gguf"));
}
