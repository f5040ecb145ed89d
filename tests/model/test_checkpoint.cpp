#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/checkpoint.h"
#include "model/footprint.h"
#include "model/inventory.h"
#include "model/recipe.h"
#include "model/safetensors.h"
#include "model/synth.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

const std::string kModels = RAZOR_MODELS_DIR;

struct temp_dir {
  fs::path p;
  temp_dir() {
    p = fs::temp_directory_path() / ("razor_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::create_directories(p);
  }
  ~temp_dir() { fs::remove_all(p); }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

void write_bytes(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f.write(s.data(), std::streamsize(s.size()));
}

std::string st_file(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  out += header;
  out += std::string(data_bytes, '\x11');
  return out;
}

}  // namespace

TEST(Inspect, TinyQwen3MoeFixture) {
  auto ck = checkpoint::open(kModels + "/tiny-qwen3-moe");
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  EXPECT_EQ(ck->config().num_layers, 4);
  EXPECT_EQ(ck->config().num_experts, 16);
  EXPECT_EQ(ck->config().num_experts_per_tok, 4);
  EXPECT_EQ(ck->adapter().name, "qwen3_moe");
  auto j = inventory_json(*ck);
  EXPECT_EQ(j["params_total"].get<int64_t>(), 15485696);
  for (auto& t : ck->tensors()) EXPECT_NE(t.cls.role, tensor_role::other) << t.name;
}

TEST(Inspect, TinyQwen35MoeFixture) {
  auto ck = checkpoint::open(kModels + "/tiny-qwen3-5-moe");
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  EXPECT_EQ(ck->config().num_layers, 4);
  EXPECT_EQ(ck->config().num_experts, 16);
  EXPECT_EQ(ck->config().num_experts_per_tok, 4);
  EXPECT_EQ(ck->adapter().name, "qwen3_5_moe");
  EXPECT_TRUE(ck->config().layer_is_linear_attention(0));
  EXPECT_FALSE(ck->config().layer_is_linear_attention(3));
  auto j = inventory_json(*ck);
  EXPECT_EQ(j["params_total"].get<int64_t>(), 16547416);
  for (auto& t : ck->tensors()) EXPECT_NE(t.cls.role, tensor_role::other) << t.name;
  auto* n = ck->find_text("layers.0.linear_attn.norm.weight");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->cls.role, tensor_role::norm);
  EXPECT_EQ(ck->find_text("layers.0.linear_attn.conv1d.weight")->cls.role, tensor_role::ssm_param);
  EXPECT_EQ(ck->find_text("layers.0.mlp.shared_expert_gate.weight")->cls.role, tensor_role::shared_expert_gate);
}

TEST(Checkpoint, ExpertMatrixSameForPerExpertAndFusedLayouts) {
  // Per-expert fixture vs a fused copy made from it: the views must return identical rows.
  auto ck = checkpoint::open(kModels + "/tiny-qwen3-moe");
  ASSERT_TRUE(ck.ok());
  auto g = ck->expert_matrix(1, 5, expert_proj::gate);
  auto d = ck->expert_matrix(1, 5, expert_proj::down);
  ASSERT_TRUE(g && d);
  EXPECT_EQ(g->n_rows, 256);
  EXPECT_EQ(g->n_cols, 256);
  std::vector<float> gate(size_t(g->n_rows * g->n_cols));
  ASSERT_TRUE(ck->read_rows_f32(*g, gate.data()).ok());

  temp_dir td;
  const int64_t E = 16, I = 256, H = 256;
  safetensors_writer w;
  ASSERT_TRUE(w.add("model.layers.1.mlp.experts.gate_up_proj", dtype::bf16, {E, 2 * I, H}).ok());
  ASSERT_TRUE(w.add("model.layers.1.mlp.experts.down_proj", dtype::bf16, {E, H, I}).ok());
  ASSERT_TRUE(w.begin((td.p / "model.safetensors").string()).ok());
  for (int64_t e = 0; e < E; ++e)
    for (auto p : {expert_proj::gate, expert_proj::up}) {
      auto v = ck->expert_matrix(1, int(e), p);
      ASSERT_TRUE(w.write(ck->data(*v->t), size_t(v->t->nbytes)).ok());
    }
  for (int64_t e = 0; e < E; ++e) {
    auto v = ck->expert_matrix(1, int(e), expert_proj::down);
    ASSERT_TRUE(w.write(ck->data(*v->t), size_t(v->t->nbytes)).ok());
  }
  ASSERT_TRUE(w.finish().ok());
  fs::copy_file(kModels + "/tiny-qwen3-moe/config.json", td.p / "config.json");
  auto fused = checkpoint::open(td.p.string());
  ASSERT_TRUE(fused.ok()) << fused.error().to_string();
  auto fg = fused->expert_matrix(1, 5, expert_proj::gate);
  ASSERT_TRUE(fg);
  EXPECT_TRUE(fg->t->cls.fused);
  std::vector<float> gate2(gate.size());
  ASSERT_TRUE(fused->read_rows_f32(*fg, gate2.data()).ok());
  EXPECT_EQ(gate, gate2);
  auto fd = fused->expert_matrix(1, 5, expert_proj::down);
  std::vector<float> d1(size_t(H * I)), d2(size_t(H * I));
  ASSERT_TRUE(ck->read_rows_f32(*d, d1.data()).ok());
  ASSERT_TRUE(fused->read_rows_f32(*fd, d2.data()).ok());
  EXPECT_EQ(d1, d2);
}

// read_f32 widens every float dtype exactly (unaligned little-endian values, any first element).
TEST(Checkpoint, ReadF32WidensEachFloatDtype) {
  temp_dir td;
  safetensors_writer w;
  ASSERT_TRUE(w.add("f16", dtype::f16, {3}).ok());
  ASSERT_TRUE(w.add("bf16", dtype::bf16, {3}).ok());
  ASSERT_TRUE(w.add("f64", dtype::f64, {3}).ok());
  ASSERT_TRUE(w.begin((td.p / "model.safetensors").string()).ok());
  const uint16_t h[3] = {0x3e00, 0xc000, 0x3400};  // 1.5, -2, 0.25 in binary16
  const uint16_t b[3] = {0x3fc0, 0xc000, 0x3e80};  // the same in bfloat16
  const double d[3] = {1.5, -2, 0.25};
  ASSERT_TRUE(w.write(h, sizeof h).ok());
  ASSERT_TRUE(w.write(b, sizeof b).ok());
  ASSERT_TRUE(w.write(d, sizeof d).ok());
  ASSERT_TRUE(w.finish().ok());
  fs::copy_file(kModels + "/tiny-qwen3-moe/config.json", td.p / "config.json");
  auto ck = checkpoint::open(td.p.string());
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  for (const char* name : {"f16", "bf16", "f64"}) {
    const tensor_entry* t = ck->find(name);
    ASSERT_NE(t, nullptr) << name;
    auto all = ck->read_f32(*t);
    ASSERT_TRUE(all.ok()) << all.error().to_string();
    EXPECT_EQ(*all, (std::vector<float>{1.5f, -2.0f, 0.25f})) << name;
    float tail[2] = {0, 0};
    ASSERT_TRUE(ck->read_f32(*t, 1, 2, tail).ok());
    EXPECT_EQ(tail[0], -2.0f) << name;
    EXPECT_EQ(tail[1], 0.25f) << name;
  }
}

TEST(Safetensors, WriterRoundTrip) {
  temp_dir td;
  safetensors_writer w;
  ASSERT_TRUE(w.add("a", dtype::f32, {2, 3}).ok());
  ASSERT_TRUE(w.add("b", dtype::bf16, {5}).ok());
  EXPECT_FALSE(w.add("a", dtype::f32, {1}).ok());
  auto path = (td.p / "x.safetensors").string();
  ASSERT_TRUE(w.begin(path).ok());
  float a[6] = {1, 2, 3, 4, 5, 6};
  uint16_t b[5] = {1, 2, 3, 4, 5};
  ASSERT_TRUE(w.write(a, sizeof a).ok());
  EXPECT_FALSE(fs::exists(path));
  ASSERT_TRUE(w.write(b, sizeof b).ok());
  ASSERT_TRUE(w.finish().ok());
  auto f = safetensors_file::open(path);
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  ASSERT_EQ(f->header().tensors.size(), 2u);
  EXPECT_EQ(f->header().header_len % 8, 0u);
  EXPECT_EQ(std::memcmp(f->tensor_data(f->header().tensors[0]), a, sizeof a), 0);
}

struct bad_case {
  const char* what;
  std::string file;
  errc code;
  const char* needle;
};

TEST(Safetensors, BadInputGivesClearErrors) {
  std::string ok_hdr = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  std::string huge(8, '\0');
  uint64_t big = 1ull << 40;
  std::memcpy(huge.data(), &big, 8);
  std::vector<bad_case> cases = {
      {"empty", "", errc::bad_format, "truncated"},
      {"short", "abc", errc::bad_format, "truncated"},
      {"header past end", huge + "{}", errc::bad_format, "runs past the end"},
      {"not json", st_file("{not json", 0), errc::bad_format, "not valid JSON at byte 10"},
      {"unknown dtype", st_file(R"({"w":{"dtype":"Q9","shape":[1],"data_offsets":[0,1]}})", 1), errc::unsupported,
       "unknown dtype"},
      {"bytes mismatch", st_file(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 16),
       errc::shape_mismatch, "needs 16 bytes"},
      {"past data", st_file(ok_hdr, 8), errc::bad_format, "runs past the data section"},
      {"overlap", st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
       errc::bad_format, "overlap"},
      {"negative dim", st_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), errc::bad_format,
       "negative"},
      {"missing offsets", st_file(R"({"w":{"dtype":"F32","shape":[1]}})", 4), errc::bad_format, "data_offsets"},
      {"end before begin", st_file(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4), errc::bad_format,
       "end before"},
      {"overflow", st_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4),
       errc::bad_format, "overflows"},
  };
  temp_dir td;
  for (auto& c : cases) {
    auto p = td.p / "bad.safetensors";
    write_bytes(p, c.file);
    auto f = safetensors_file::open(p.string());
    ASSERT_FALSE(f.ok()) << c.what;
    EXPECT_EQ(f.error().code(), c.code) << c.what << ": " << f.error().to_string();
    EXPECT_NE(f.error().message().find(c.needle), std::string::npos) << c.what << ": " << f.error().message();
    EXPECT_NE(f.error().message().find("bad.safetensors"), std::string::npos) << "error must name the file";
  }
}

TEST(Checkpoint, MissingShardNamedByIndex) {
  temp_dir td;
  fs::copy_file(kModels + "/tiny-qwen3-moe/config.json", td.p / "config.json");
  write_bytes(td.p / "model-00001-of-00002.safetensors",
              st_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4));
  write_bytes(td.p / "model.safetensors.index.json",
              R"({"weight_map":{"w":"model-00001-of-00002.safetensors","v":"model-00002-of-00002.safetensors"}})");
  auto ck = checkpoint::open(td.p.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_EQ(ck.error().code(), errc::not_found);
  EXPECT_NE(ck.error().message().find("model-00002-of-00002.safetensors"), std::string::npos) << ck.error().message();
}

TEST(Checkpoint, TensorMissingFromItsShard) {
  temp_dir td;
  fs::copy_file(kModels + "/tiny-qwen3-moe/config.json", td.p / "config.json");
  write_bytes(td.p / "a.safetensors", st_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4));
  write_bytes(td.p / "model.safetensors.index.json", R"({"weight_map":{"w":"a.safetensors","v":"a.safetensors"}})");
  auto ck = checkpoint::open(td.p.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_NE(ck.error().message().find("'v'"), std::string::npos) << ck.error().message();
}

TEST(Checkpoint, MissingConfigAndBadConfig) {
  temp_dir td;
  auto ck = checkpoint::open(td.p.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_NE(ck.error().message().find("config.json"), std::string::npos);
  write_bytes(td.p / "config.json", R"({"model_type":"qwen3_moe","hidden_size":8})");
  write_bytes(td.p / "a.safetensors", st_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4));
  ck = checkpoint::open(td.p.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_EQ(ck.error().code(), errc::bad_config);
  write_bytes(td.p / "config.json", R"({"model_type":"qwen3_moe","hidden_size":8,"num_hidden_layers":1})");
  ck = checkpoint::open(td.p.string());
  ASSERT_TRUE(ck.ok());
  auto st = check_adapter_config(ck->adapter(), ck->config(), "config.json");
  EXPECT_EQ(st.code(), errc::bad_config);
  EXPECT_NE(st.message().find("num_experts"), std::string::npos) << st.message();
}

TEST(Roles, AdapterLayouts) {
  struct c {
    const char* name;
    tensor_role role;
    int layer, expert;
    expert_proj p;
    bool fused;
  };
  std::vector<c> cases = {
      {"model.language_model.layers.7.mlp.experts.gate_up_proj", tensor_role::routed_expert, 7, -1,
       expert_proj::gate_up, true},
      {"model.language_model.layers.7.mlp.experts.down_proj", tensor_role::routed_expert, 7, -1, expert_proj::down, true},
      {"model.layers.2.block_sparse_moe.experts.3.w1.weight", tensor_role::routed_expert, 2, 3, expert_proj::gate, false},
      {"model.layers.2.block_sparse_moe.experts.3.w2.weight", tensor_role::routed_expert, 2, 3, expert_proj::down, false},
      {"model.layers.2.block_sparse_moe.gate.weight", tensor_role::router, 2, -1, expert_proj::none, false},
      {"model.layers.4.mlp.shared_experts.up_proj.weight", tensor_role::shared_expert, 4, -1, expert_proj::up, false},
      {"model.layers.4.mlp.gate.e_score_correction_bias", tensor_role::router, 4, -1, expert_proj::none, false},
      {"model.layers.4.mlp.experts.9.down_proj.weight_scale_inv", tensor_role::quant_scale, 4, -1, expert_proj::none, false},
      {"model.layers.0.mlp.gate_proj.weight", tensor_role::dense_ffn, 0, -1, expert_proj::gate, false},
      {"model.visual.blocks.0.attn.qkv.weight", tensor_role::vision, -1, -1, expert_proj::none, false},
      {"mtp.layers.0.mlp.experts.gate_up_proj", tensor_role::mtp, -1, -1, expert_proj::none, false},
      {"model.language_model.embed_tokens.weight", tensor_role::embedding, -1, -1, expert_proj::none, false},
      {"lm_head.weight", tensor_role::output_head, -1, -1, expert_proj::none, false},
      {"model.layers.1.self_attn.kv_a_proj_with_mqa.weight", tensor_role::attention, 1, -1, expert_proj::none, false},
      {"model.layers.1.self_attn.kv_a_layernorm.weight", tensor_role::norm, 1, -1, expert_proj::none, false},
      {"model.layers.1.mlp.experts.gate_up_proj_bias", tensor_role::bias, 1, -1, expert_proj::none, false},
  };
  for (auto& x : cases) {
    auto cls = classify_tensor(x.name, {4, 4, 4});
    EXPECT_EQ(cls.role, x.role) << x.name << " -> " << role_name(cls.role);
    if (x.role == tensor_role::routed_expert || x.role == tensor_role::router || x.role == tensor_role::dense_ffn ||
        x.role == tensor_role::shared_expert) {
      EXPECT_EQ(cls.layer, x.layer) << x.name;
      EXPECT_EQ(cls.expert, x.expert) << x.name;
      EXPECT_EQ(cls.proj, x.p) << x.name;
      EXPECT_EQ(cls.fused, x.fused) << x.name;
    }
  }
}

TEST(Footprint, SeedArithmeticOnSynthetic122B) {
  temp_dir td;
  auto cfg = read_text_file(std::string(RAZOR_SOURCE_DIR_T) + "/resources/configs/qwen3.5-122b-a10b.json");
  ASSERT_TRUE(cfg.ok());
  synth_options opt;
  opt.sparse = true;
  auto out = (td.p / "q122").string();
  ASSERT_TRUE(synth_checkpoint(nlohmann::json::parse(*cfg), out, opt).ok());
  auto ck = checkpoint::open(out);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  EXPECT_EQ(ck->text_prefix(), "model.language_model.");
  auto r = load_recipe("seed-default");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  auto fr = compute_footprint(*ck, *r);
  ASSERT_TRUE(fr.ok()) << fr.error().to_string();
  auto& f = *fr;
  // seed-reference.md §1.5: (3 x 115.96B + 4 x 6.10B) / 122.06B = 3.050; the issue allows 0.01.
  constexpr double kSeedBitsTolerance = 0.01;
  EXPECT_NEAR(f.seed_effective_bits(), 3.05, kSeedBitsTolerance);
  EXPECT_EQ(f.by_role[tensor_role::routed_expert].params, 115964116992);
  // ~3.18 bits with one BF16 scale per 128 weights (seed docs), 46.7 GB seed footprint.
  EXPECT_NEAR(f.effective_bits_with_scales(), 3.18, 0.01);
  EXPECT_NEAR(f.seed_footprint_gb(), 46.6, 0.2);
  // The seed's 2.5-bit study point: "2.59" effective bits (seed-reference §1.5 / F8).
  auto s25 = load_recipe("study-2.5bit");
  ASSERT_TRUE(s25.ok()) << s25.error().to_string();
  auto f25r = compute_footprint(*ck, *s25);
  ASSERT_TRUE(f25r.ok()) << f25r.error().to_string();
  auto& f25 = *f25r;
  EXPECT_NEAR(f25.seed_effective_bits(), 2.59, kSeedBitsTolerance);
  EXPECT_NEAR(f25.expert_avg_bits(), 2.5, 0.01);
}

TEST(Recipe, ParseErrorsAreClear) {
  auto r = parse_recipe(nlohmann::json::parse(R"({"roles":{"routed_expert":5}})"), "x.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), errc::bad_recipe);
  r = parse_recipe(nlohmann::json::parse(R"({"roles":{"nonsense":4}})"), "x.json");
  EXPECT_FALSE(r.ok());
  r = parse_recipe(nlohmann::json::parse(R"({"overrides":[{"pattern":"(","bits":4}]})"), "x.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("regex"), std::string::npos);
  for (auto name : {"seed-default", "uniform-int4", "uniform-int3", "study-2.5bit"}) {
    auto s = load_recipe(name);
    EXPECT_TRUE(s.ok()) << name << ": " << s.error().to_string();
  }
}

TEST(Config, WrongKeyTypesAreErrorsNotExceptions) {
  // Found by fuzz_config: a number where a string belongs used to escape as a nlohmann exception.
  for (const char* text : {R"({"model_type": 16, "hidden_size": 8, "num_hidden_layers": 1})",
                           R"({"model_type": "qwen3_moe", "hidden_size": 8, "num_hidden_layers": 1, "norm_topk_prob": "yes"})",
                           R"({"text_config": {"model_type": [], "hidden_size": 8, "num_hidden_layers": 1}})"}) {
    auto c = parse_model_config(nlohmann::json::parse(text), "config.json");
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.error().code(), errc::bad_config);
  }
  for (const char* text : {R"({"name": 3})", R"({"group": "x"})", R"({"two_level": {"target": "a"}})"}) {
    auto r = parse_recipe(nlohmann::json::parse(text), "r.json");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().code(), errc::bad_recipe);
  }
}

TEST(Recipe, PerExpertBitsOverrideRole) {
  auto ck = checkpoint::open(kModels + "/tiny-qwen3-moe");
  ASSERT_TRUE(ck.ok());
  auto r = parse_recipe(nlohmann::json::parse(
                            R"({"roles":{"routed_expert":3,"attention":4},"expert_bits":{"0":[4,4,4,4,4,4,4,4,2,2,2,2,2,2,2,2]}})"),
                        "x.json");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r->tensor_bits(*ck->find("model.layers.0.mlp.experts.0.gate_proj.weight")), 4.0);
  EXPECT_EQ(*r->tensor_bits(*ck->find("model.layers.0.mlp.experts.9.gate_proj.weight")), 2.0);
  EXPECT_EQ(*r->tensor_bits(*ck->find("model.layers.1.mlp.experts.9.gate_proj.weight")), 3.0);
  EXPECT_EQ(*r->tensor_bits(*ck->find("model.layers.1.mlp.gate.weight")), kKeepBits);
  auto fr = compute_footprint(*ck, *r);
  ASSERT_TRUE(fr.ok()) << fr.error().to_string();
  auto& f = *fr;
  EXPECT_NEAR(f.expert_avg_bits(), 3.0, 1e-9);  // layer 0 averages 3, others 3
}
