// llama-quantize's file-type mixes (core/gguf/ftype.h) against the real libllama: each model is written as
// F32 GGUF by our conversion, quantized by libllama's llama_model_quantize (default parameters, as
// `llama-quantize IN OUT FTYPE [--imatrix F] [--dry-run]`) for every ftype of our table, with and without
// importance data, and every tensor's type is compared with what `razor pack --ftype` plans. Models: both
// bundled fixtures (files written and read back for the main ftypes, the others by dry run; RAZOR_FTYPE_FULL=1
// writes them all),
// and two synthetic ones (dry runs) that reach the rules the fixtures cannot (8 experts, n_gqa 4, 16 layers,
// tied embeddings, rows of 96 that need the fallback types).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "gguf/convert.h"
#include "gguf/ftype.h"
#include "gguf/gguf_file.h"
#include "gguf/imatrix.h"
#include "common/llama_quantize_oracle.h"
#include "model/checkpoint.h"
#include "model/synth.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;
using namespace razor;
using namespace razor::gguf;

namespace {

fs::path tdir() {
  fs::path d = fs::temp_directory_path() / ("razor_ftype_test_" + std::to_string(getpid()));
  fs::create_directories(d);
  return d;
}

std::string fixture(const std::string& name) { return std::string(RAZOR_MODELS_DIR) + "/" + name; }

// A synthetic checkpoint: the fixture's config with `changes` applied, its tokenizer copied beside it.
std::string synth_model(const std::string& base, const std::string& out_name, const nlohmann::json& changes) {
  const fs::path out = tdir() / out_name;
  if (fs::exists(out / "config.json")) return out.string();
  std::ifstream cf(fixture(base) + "/config.json");
  nlohmann::json cfg = nlohmann::json::parse(cf);
  cfg.merge_patch(changes);
  synth_options so;
  so.seed = 7;
  so.fused_experts = false;
  auto st = synth_checkpoint(cfg, out.string(), so);
  EXPECT_TRUE(st.ok()) << st.to_string();
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fixture(base) + "/" + f, out / f, fs::copy_options::overwrite_existing);
  return out.string();
}

// The synthetic checkpoint of a family's tiny Hub-schema config (tests/engine/data/families/<family>.json).
std::string family_model(const std::string& family) {
  const fs::path out = tdir() / ("family-" + family);
  if (fs::exists(out / "config.json")) return out.string();
  std::ifstream cf(std::string(RAZOR_SOURCE_DIR_T) + "/tests/engine/data/families/" + family + ".json");
  const nlohmann::json cfg = nlohmann::json::parse(cf);
  synth_options so;
  so.seed = 7;
  auto st = synth_checkpoint(cfg, out.string(), so);
  EXPECT_TRUE(st.ok()) << st.to_string();
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fixture("tiny-qwen3-moe") + "/" + f, out / f, fs::copy_options::overwrite_existing);
  return out.string();
}

struct f32_model {
  std::string dir, gguf;
  std::vector<std::pair<std::string, std::vector<int64_t>>> weights;  // tensors of >= 2 dims
};

f32_model write_f32(const std::string& dir, const std::string& stem) {
  f32_model m;
  m.dir = dir;
  m.gguf = (tdir() / (stem + "-f32.gguf")).string();
  convert_options o;
  o.default_type = ggml::type::f32;
  auto rep = convert_to_gguf(dir, m.gguf, o);
  EXPECT_TRUE(rep.ok()) << rep.error().to_string();
  if (rep.ok())
    for (auto& t : rep->tensors)
      if (t.ne.size() >= 2) m.weights.push_back({t.name, t.ne});
  return m;
}

// Importance data of ones for every matrix: our imatrix, and the same as libllama's entries.
struct ones_imatrix {
  imatrix ours;
  std::vector<std::vector<float>> data;
  std::vector<razor_test::llama_quantize_oracle::imatrix_data> theirs;
  explicit ones_imatrix(const f32_model& m) {
    ours.source = "ones";
    for (auto& [name, ne] : m.weights) {
      imatrix_entry e;
      e.name = name;
      e.n_per_row = ne[0];
      e.n_mat = ne.size() > 2 ? ne[2] : 1;
      e.in_sum2.assign(size_t(e.n_per_row * e.n_mat), 1.0f);
      e.counts.assign(size_t(e.n_mat), 1.0f);
      data.push_back(e.in_sum2);
      ours.entries.push_back(std::move(e));
    }
    std::sort(ours.entries.begin(), ours.entries.end(), [](auto& a, auto& b) { return a.name < b.name; });
    for (size_t i = 0; i < m.weights.size(); ++i)
      theirs.push_back({m.weights[i].first.c_str(), data[i].data(), data[i].size()});
  }
};

std::string type_name_of(uint32_t id) {
  const type_traits* t = find_type(id);
  return t ? t->name : "type " + std::to_string(id);
}

// How libllama is asked. `real`: it quantizes and writes the file, whose tensor types our GGUF reader reads
// (what a user gets). Otherwise llama-quantize --dry-run: the same type decision (llama_tensor_get_type in its
// preliminary pass), read from its per-tensor log, without running the quantizers — the k-quant mixes take
// 2-4 s and the IQ ones 10-20 s per file on this shared 2-core machine. `some_real`: real for the plain and
// legacy types and the mixes the project benchmarks against (Q2_K, Q2_K_S, Q3_K_M, Q4_K_M), which also shows
// that the dry run's types are the written ones; dry runs for the rest. RAZOR_FTYPE_FULL=1: every run real.
enum class mode { real, some_real, dry_run };

bool written_in_some_real(ftype f) {
  using F = ftype;
  for (F g : {F::f32, F::f16, F::bf16, F::q8_0, F::q5_1, F::q5_0, F::q4_1, F::q4_0, F::q2_k, F::q2_k_s, F::q3_k_m,
              F::q4_k_m})
    if (f == g) return true;
  return false;
}

// Every ftype of the table against libllama on one model: without an importance matrix (llama-quantize's
// default), and with one where the mix depends on it (IQ3_XXS, IQ4_NL, IQ4_XS, Q4_0, Q5_0) or libllama refuses
// to go without. For the other ftypes our mix is checked to be the same with and without (libllama's rule
// reads has_imatrix nowhere else).
void compare_all(const f32_model& m, razor_test::llama_quantize_oracle& llama, mode md) {
  if (const char* e = std::getenv("RAZOR_FTYPE_FULL"); e && std::string(e) == "1") md = mode::real;
  auto ck = checkpoint::open(m.dir);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  ones_imatrix im(m);
  auto model_facts = ftype_model_of(*ck);
  ASSERT_TRUE(model_facts.ok());
  const ftype_model& model = *model_facts;
  std::vector<ftype_tensor> tensors;
  {
    auto rep = plan_gguf(*ck, {});
    ASSERT_TRUE(rep.ok());
    for (auto& t : rep->tensors) tensors.push_back({t.name, t.ne});
  }
  const std::vector<ftype> reads_imatrix = {ftype::iq3_xxs, ftype::iq4_nl, ftype::iq4_xs, ftype::q4_0, ftype::q5_0};
  int compared = 0;
  for (const ftype_info& fi : all_ftypes()) {
    bool refused_without = false;
    for (bool with_im : {false, true}) {
      SCOPED_TRACE(std::string(fi.name) + (with_im ? " with imatrix" : " without imatrix") + ", " + m.dir);
      auto plan = plan_ftype(*ck, fi.f, {}, with_im ? &im.ours : nullptr);
      // The mix itself, and what pack plans from it.
      ftype_options fo;
      fo.has_imatrix = with_im;
      auto mix = ftype_mix(fi.f, model, tensors, fo);
      ASSERT_TRUE(mix.ok()) << mix.error().to_string();
      const bool reads = std::find(reads_imatrix.begin(), reads_imatrix.end(), fi.f) != reads_imatrix.end();
      if (with_im && !reads && !refused_without) {
        fo.has_imatrix = false;
        auto without = ftype_mix(fi.f, model, tensors, fo);
        ASSERT_TRUE(without.ok());
        for (size_t i = 0; i < mix->size(); ++i)
          EXPECT_EQ((*mix)[i].type, (*without)[i].type) << (*mix)[i].name;
        continue;
      }
      const bool real = md == mode::real || (md == mode::some_real && written_in_some_real(fi.f));
      const std::string out = (tdir() / ("out-" + std::string(fi.name) + (with_im ? "-im" : "") + ".gguf")).string();
      const uint32_t rc = llama.run(m.gguf, out, fi.id, with_im ? &im.theirs : nullptr, !real);
      const bool refused = rc != 0 || (!real && llama.dry_run_needs_imatrix());
      if (refused) {
        // libllama refused; the only refusal these models can meet is a missing importance matrix.
        if (real)
          EXPECT_NE(llama.last_log.find("requires an imatrix"), std::string::npos) << llama.last_log.substr(0, 2000);
        else
          EXPECT_EQ(rc, 0u) << llama.last_log.substr(0, 2000);
        ASSERT_FALSE(plan.ok()) << "libllama refused the file type, we planned it";
        EXPECT_EQ(plan.error().code(), errc::needs_imatrix) << plan.error().to_string();
        EXPECT_TRUE(std::any_of(mix->begin(), mix->end(), [](auto& c) { return c.needs_imatrix; }));
        EXPECT_FALSE(with_im);
        refused_without = true;
        continue;
      }
      std::map<std::string, uint32_t> theirs;
      if (real) {
        auto f = file::open(out);
        ASSERT_TRUE(f.ok()) << f.error().to_string();
        EXPECT_EQ(f->get_int("general.file_type").value_or(-1), int64_t(fi.id));
        for (auto& t : f->tensors()) theirs[t.name] = t.type;
      } else {
        for (auto& [name, type] : llama.dry_run_types()) {
          const type_traits* tr = find_type(std::string_view(type));
          ASSERT_NE(tr, nullptr) << name << ": libllama logged type " << type;
          theirs[name] = tr->id;
        }
      }
      ASSERT_EQ(theirs.size(), mix->size()) << llama.last_log.substr(0, 2000);
      for (const ftype_choice& ch : *mix) {
        auto it = theirs.find(ch.name);
        ASSERT_NE(it, theirs.end()) << ch.name;
        EXPECT_EQ(type_name_of(it->second), type_name_of(uint32_t(ch.type)))
            << ch.name << ": libllama" << (real ? "" : " --dry-run") << " vs ours (" << ch.why << ")";
        ++compared;
      }
      // The pack path: plan_ftype's recipe through the converter's chooser gives the same types.
      ASSERT_TRUE(plan.ok()) << plan.error().to_string();
      {
        ASSERT_EQ(plan->tensors.size(), mix->size());
        convert_options co;
        co.recipe = plan->recipe;
        co.imat = with_im ? &im.ours : nullptr;
        auto rep = plan_gguf(*ck, co);
        ASSERT_TRUE(rep.ok()) << rep.error().to_string();
        ASSERT_EQ(rep->tensors.size(), mix->size());
        for (size_t i = 0; i < mix->size(); ++i) {
          EXPECT_EQ(plan->tensors[i].type, (*mix)[i].type) << (*mix)[i].name;
          EXPECT_EQ(rep->tensors[i].stored, (*mix)[i].type) << (*mix)[i].name << ": the converter's chooser changed it";
        }
      }
      std::error_code ec;
      fs::remove(out, ec);
    }
  }
  EXPECT_GT(compared, 0);
}

TEST(Ftype, TableAndNames) {
  EXPECT_EQ(ftype_from_name("q3_k_m").value(), ftype::q3_k_m);
  EXPECT_EQ(ftype_from_name("Q4_K").value(), ftype::q4_k_m);  // llama-quantize's alias
  EXPECT_EQ(ftype_from_name("12").value(), ftype::q3_k_m);
  EXPECT_EQ(info(ftype::iq2_s).default_type, ggml::type::iq2_xs);  // IQ2_S starts from iq2_xs, IQ2_M from iq2_s
  EXPECT_EQ(info(ftype::iq2_m).default_type, ggml::type::iq2_s);
  EXPECT_EQ(info(ftype::iq3_xs).default_type, ggml::type::iq3_s);
  auto bad = ftype_from_name("Q3_K_X");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("Q3_K_M"), std::string::npos) << "the error lists the known file types";
  for (auto& fi : all_ftypes()) EXPECT_EQ(ftype_from_name(fi.name).value(), fi.f) << fi.name;
}

TEST(Ftype, RulesOnAHandMadeModel) {
  // Llama-style 32-layer dense model (n_gqa 4): Q4_K_M gives q6_K to use_more_bits layers' attn_v / ffn_down.
  ftype_model m{"llama", 32, 0, 32, 8, 32000};
  std::vector<ftype_tensor> ts = {{"token_embd.weight", {4096, 32000}}, {"output.weight", {4096, 32000}}};
  for (int l = 0; l < 32; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    ts.push_back({p + "attn_v.weight", {4096, 1024}});
    ts.push_back({p + "ffn_down.weight", {14336, 4096}});
    ts.push_back({p + "attn_norm.weight", {4096}});
  }
  auto r = ftype_mix(ftype::q4_k_m, m, ts);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  std::map<std::string, ggml::type> got;
  for (auto& c : *r) got[c.name] = c.type;
  EXPECT_EQ(got["output.weight"], ggml::type::q6_k);
  EXPECT_EQ(got["token_embd.weight"], ggml::type::q4_k);
  EXPECT_EQ(got["blk.0.attn_norm.weight"], ggml::type::f32);
  // use_more_bits(i, 32): i < 4, i >= 28, or (i - 4) % 3 == 2.
  for (int l = 0; l < 32; ++l) {
    const bool more = l < 4 || l >= 28 || (l - 4) % 3 == 2;
    const ggml::type want = more ? ggml::type::q6_k : ggml::type::q4_k;
    EXPECT_EQ(got["blk." + std::to_string(l) + ".attn_v.weight"], want) << l;
    EXPECT_EQ(got["blk." + std::to_string(l) + ".ffn_down.weight"], want) << l;
  }
  // The same model without output.weight: token_embd is the tied output head.
  ts.erase(ts.begin() + 1);
  auto tied = ftype_mix(ftype::q4_k_m, m, ts);
  ASSERT_TRUE(tied.ok());
  EXPECT_EQ((*tied)[0].type, ggml::type::q6_k);
  // An expert model's ffn tensor without a layer number is an error, as in llama.cpp.
  ftype_model moe{"qwen3moe", 4, 16, 4, 2, 0};
  auto bad = ftype_mix(ftype::q4_k_m, moe, {{"ffn_down_exps.weight", {256, 256, 16}}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("ffn_down_exps.weight"), std::string::npos);
}

TEST(Ftype, PackRefusesImatrixTypesWithoutOne) {
  auto ck = checkpoint::open(fixture("tiny-qwen3-moe"));
  ASSERT_TRUE(ck.ok());
  for (ftype f : {ftype::iq1_s, ftype::iq1_m, ftype::iq2_xxs, ftype::iq2_xs, ftype::iq2_s, ftype::iq2_m,
                  ftype::iq3_xxs, ftype::iq3_xs, ftype::q2_k_s}) {
    auto p = plan_ftype(*ck, f, {}, nullptr);
    ASSERT_FALSE(p.ok()) << info(f).name;
    EXPECT_EQ(p.error().code(), errc::needs_imatrix);
    EXPECT_NE(p.error().message().find(std::string(info(f).name)), std::string::npos) << p.error().message();
    auto allowed = plan_ftype(*ck, f, {}, nullptr, /*allow_missing_imatrix=*/true);
    ASSERT_TRUE(allowed.ok()) << allowed.error().to_string();
    EXPECT_FALSE(allowed->notes.empty());
  }
  for (ftype f : {ftype::q2_k, ftype::q3_k_m, ftype::iq3_s, ftype::iq3_m, ftype::q4_k_m, ftype::iq4_xs, ftype::q4_0})
    EXPECT_TRUE(plan_ftype(*ck, f, {}, nullptr).ok()) << info(f).name;
}

class FtypeVsLlama : public ::testing::Test {};

// llama-quantize's options: --tensor-type overrides (a manual tensor does not advance the attn_v counter),
// --pure, --output-tensor-type, --token-embedding-type; by dry run on the qwen3moe fixture.
TEST_F(FtypeVsLlama, OptionsLikeLlamaQuantize) {
  RAZOR_REQUIRE_LLAMA_QUANTIZE(llama);
  const f32_model m = write_f32(fixture("tiny-qwen3-moe"), "tiny-qwen3-moe");
  auto ck = checkpoint::open(m.dir);
  ASSERT_TRUE(ck.ok());
  struct option_case {
    const char* what;
    ftype f;
    ftype_options ours;
    razor_test::llama_quantize_oracle::options theirs;
  };
  std::vector<option_case> cases;
  {
    option_case c{"override blk.0.attn_v", ftype::q3_k_m, {}, {}};
    c.ours.overrides.push_back({"blk\\.0\\.attn_v", ggml::type::q8_0, 1});
    c.theirs.overrides.push_back({"blk\\.0\\.attn_v", 8});
    cases.push_back(c);
  }
  {
    option_case c{"override experts", ftype::q4_k_m, {}, {}};
    c.ours.overrides.push_back({"ffn_down_exps", ggml::type::q2_k, 1});
    c.ours.overrides.push_back({"_exps", ggml::type::q3_k, 2});
    c.theirs.overrides = {{"ffn_down_exps", 10}, {"_exps", 11}};
    cases.push_back(c);
  }
  {
    option_case c{"pure", ftype::q4_k_m, {}, {}};
    c.ours.pure = c.theirs.pure = true;
    cases.push_back(c);
  }
  {
    option_case c{"output and token_embd types", ftype::q3_k_s, {}, {}};
    c.ours.output_type = ggml::type::q8_0;
    c.ours.token_embedding_type = ggml::type::q4_k;
    c.theirs.output_type = 8;
    c.theirs.token_embedding_type = 12;
    cases.push_back(c);
  }
  for (auto& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string out = (tdir() / "options.gguf").string();
    ASSERT_EQ(llama.run(m.gguf, out, info(c.f).id, nullptr, true, c.theirs), 0u) << llama.last_log.substr(0, 2000);
    auto theirs = llama.dry_run_types();
    auto plan = plan_ftype(*ck, c.f, c.ours, nullptr);
    ASSERT_TRUE(plan.ok()) << plan.error().to_string();
    ASSERT_EQ(theirs.size(), plan->tensors.size());
    for (auto& ch : plan->tensors)
      EXPECT_EQ(theirs[ch.name], type_name_of(uint32_t(ch.type))) << ch.name << " (" << ch.why << ")";
  }
}

TEST_F(FtypeVsLlama, TinyQwen3Moe) {
  RAZOR_REQUIRE_LLAMA_QUANTIZE(llama);
  compare_all(write_f32(fixture("tiny-qwen3-moe"), "tiny-qwen3-moe"), llama, mode::some_real);
}

TEST_F(FtypeVsLlama, TinyQwen35Moe) {
  RAZOR_REQUIRE_LLAMA_QUANTIZE(llama);
  compare_all(write_f32(fixture("tiny-qwen3-5-moe"), "tiny-qwen3-5-moe"), llama, mode::some_real);
}

// 8 experts (llama.cpp's Mixtral rules), n_gqa 4, 16 layers (use_more_bits, first-eighth rules), tied
// embeddings, and expert rows of 96 (ffn_down_exps falls back from 256-blocks to 32-blocks).
TEST_F(FtypeVsLlama, Synthetic8ExpertsGqa4Tied) {
  RAZOR_REQUIRE_LLAMA_QUANTIZE(llama);
  const std::string dir = synth_model("tiny-qwen3-moe", "synth-qwen3moe-8x",
                                      {{"num_hidden_layers", 16}, {"num_local_experts", 8}, {"num_experts", 8},
                                       {"num_experts_per_tok", 2}, {"num_attention_heads", 8},
                                       {"num_key_value_heads", 2}, {"head_dim", 32}, {"moe_intermediate_size", 96},
                                       {"tie_word_embeddings", true}});
  compare_all(write_f32(dir, "synth-qwen3moe-8x"), llama, mode::dry_run);
}

// A family's synthetic checkpoint (family_model), every file type by dry run.
static void compare_family(const std::string& family, razor_test::llama_quantize_oracle& llama) {
  compare_all(write_f32(family_model(family), "family-" + family), llama, mode::dry_run);
}

// The families beyond the two Qwen3 fixtures (issue 20): olmoe, qwen2moe (shared expert), llama with 8 experts
// (Mixtral: llama.cpp's n_expert == 8 rules), qwen3next.
TEST_F(FtypeVsLlama, OlmoeFamily) {
  RAZOR_REQUIRE_LLAMA_QUANTIZE(llama);
  compare_family("olmoe", llama);
}
TEST_F(FtypeVsLlama, Qwen2MoeFamily) {
  RAZOR_REQUIRE_LLAMA_QUANTIZE(llama);
  compare_family("qwen2_moe", llama);
}
TEST_F(FtypeVsLlama, MixtralFamily) {
  RAZOR_REQUIRE_LLAMA_QUANTIZE(llama);
  compare_family("mixtral", llama);
}
// qwen3next: attn_qkv / attn_gate split from in_proj_qkvz, ssm_ba whole.
TEST_F(FtypeVsLlama, Qwen3NextFamily) {
  RAZOR_REQUIRE_LLAMA_QUANTIZE(llama);
  compare_family("qwen3_next", llama);
}

// DeepSeek-V3 (deepseek2): MLA's attn_k_b / attn_v_b and the leading dense layer's ffn_* among the counters.
TEST_F(FtypeVsLlama, DeepseekV3Family) {
  RAZOR_REQUIRE_LLAMA_QUANTIZE(llama);
  compare_family("deepseek_v3", llama);
}

// gpt-oss: biases (ffn_*_exps.bias {ff, E} among them), attn_sinks, 8 experts.
TEST_F(FtypeVsLlama, GptOssFamily) {
  RAZOR_REQUIRE_LLAMA_QUANTIZE(llama);
  compare_family("gpt_oss", llama);
}

// Qwen3.5 with 16 layers: 12 linear-attention attn_qkv and 4 attn_v share llama.cpp's attn_v counter;
// shared and routed ffn_down share the IQ2 mixes' ffn_down counter.
TEST_F(FtypeVsLlama, Synthetic16LayerQwen35) {
  RAZOR_REQUIRE_LLAMA_QUANTIZE(llama);
  nlohmann::json types = nlohmann::json::array();
  for (int l = 0; l < 16; ++l) types.push_back((l + 1) % 4 == 0 ? "full_attention" : "linear_attention");
  const std::string dir = synth_model("tiny-qwen3-5-moe", "synth-qwen35moe-16",
                                      {{"num_hidden_layers", 16}, {"layer_types", types}});
  compare_all(write_f32(dir, "synth-qwen35moe-16"), llama, mode::dry_run);
}

}  // namespace
