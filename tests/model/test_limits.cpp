// Hostile checkpoints: every one is a clear error naming the file (and the tensor, key or byte), never a crash,
// a hang or an allocation sized by the input (issue 15: safetensors headers, index.json, config.json, synth,
// symlink loops, FIFOs).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/test_util.h"
#include "model/checkpoint.h"
#include "model/hf_config.h"
#include "model/recipe.h"
#include "model/safetensors.h"
#include "model/synth.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

const std::string kModels = RAZOR_MODELS_DIR;

struct temp_dir : razor::test::scratch_dir {
  temp_dir() : scratch_dir("mlimits") {}
  const fs::path& p = dir;
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

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

// The tiny fixture's config with `key` set to the raw JSON `value`.
std::string config_with(const std::string& key, const std::string& value) {
  auto cfg = read_text_file(kModels + "/tiny-qwen3-moe/config.json");
  EXPECT_TRUE(cfg.ok());
  auto j = nlohmann::json::parse(*cfg);
  j[key] = nlohmann::json::parse(value);
  return j.dump();
}

}  // namespace

TEST(SafetensorsLimits, HeaderOfOpenBracketsIsRefusedAtOnce) {
  // The issue's 50 MB header of '[' took 4 GB and 23 s as a DOM; 8 MB shows the same path.
  temp_dir td;
  const auto p = td.p / "brackets.safetensors";
  write_bytes(p, st_file(std::string(8u << 20, '['), 0));
  auto f = safetensors_file::open(p.string());
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), errc::bad_format);
  EXPECT_TRUE(contains(f.error().message(), p.string())) << f.error().message();
  EXPECT_TRUE(contains(f.error().message(), "nested deeper than 64 levels at byte 72")) << f.error().message();
  // Inside a tensor entry (an unknown key): the same.
  write_bytes(p, st_file(R"({"w":{"x":)" + std::string(100000, '[') , 0));
  f = safetensors_file::open(p.string());
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(contains(f.error().message(), "nested deeper")) << f.error().message();
}

TEST(SafetensorsLimits, StructuralErrorsStopAtTheFirstBadValue) {
  struct c {
    const char* what;
    std::string header;
    const char* needle;
  };
  const std::vector<c> cases = {
      {"array header", "[1,2]", "not a JSON object"},
      {"entry not object", R"({"w":[1]})", "tensor 'w': entry is not an object"},
      {"metadata not object", R"({"__metadata__":[]})", "__metadata__ is not an object"},
      {"nested metadata", R"({"__metadata__":{"k":{"a":1}}})", "__metadata__ value 'k' is not a string"},
      {"9 dims", R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", "more than 8 dimensions"},
      {"float dim", R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", "non-integer or negative"},
      {"nested dim", R"({"w":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}})", "non-integer or negative"},
      {"3 offsets", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", "data_offsets [begin, end]"},
      {"float offset", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}})", "not non-negative integers"},
      {"dtype twice", R"({"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", "'dtype' appears twice"},
      {"bad json", R"({"w":{"dtype":"F32",})", "not valid JSON at byte"},
      {"invalid utf-8", std::string("{\"w\xff\":1}"), "not valid JSON"},
  };
  temp_dir td;
  for (auto& x : cases) {
    const auto p = td.p / "bad.safetensors";
    write_bytes(p, st_file(x.header, 64));
    auto f = safetensors_file::open(p.string());
    ASSERT_FALSE(f.ok()) << x.what;
    EXPECT_TRUE(contains(f.error().message(), x.needle)) << x.what << ": " << f.error().message();
    EXPECT_TRUE(contains(f.error().message(), "bad.safetensors")) << x.what;
  }
  // Unknown keys and scalar metadata are tolerated as before.
  const auto p = td.p / "ok.safetensors";
  write_bytes(p, st_file(R"({"__metadata__":{"format":"pt","n":3,"ok":true},"w":{"dtype":"F32","shape":[1],)"
                         R"("data_offsets":[0,4],"extra":{"deep":[1,[2,{"x":null}]]}}})",
                         4));
  auto f = safetensors_file::open(p.string());
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  EXPECT_EQ(f->header().metadata.at("format"), "pt");
  EXPECT_EQ(f->header().metadata.at("n"), "3");
  EXPECT_EQ(f->header().metadata.at("ok"), "true");
  ASSERT_EQ(f->header().tensors.size(), 1u);
  EXPECT_EQ(f->header().tensors[0].shape, std::vector<int64_t>{1});
}

TEST(CheckpointLimits, DuplicateTensorNamesAreErrorsNamingBothPlaces) {
  temp_dir td;
  fs::copy_file(kModels + "/tiny-qwen3-moe/config.json", td.p / "config.json");
  // Twice in one header: JSON would silently keep the last.
  write_bytes(td.p / "a.safetensors", st_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                              R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                              8));
  auto ck = checkpoint::open(td.p.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_TRUE(contains(ck.error().message(), "a.safetensors: tensor 'w' appears twice in the header"))
      << ck.error().message();
  // In two shards.
  write_bytes(td.p / "a.safetensors", st_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4));
  write_bytes(td.p / "b.safetensors", st_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4));
  ck = checkpoint::open(td.p.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_TRUE(contains(ck.error().message(), "b.safetensors: tensor 'w' is also in")) << ck.error().message();
  EXPECT_TRUE(contains(ck.error().message(), "a.safetensors")) << ck.error().message();
  // Twice in the index's weight_map.
  fs::remove(td.p / "b.safetensors");
  write_bytes(td.p / "model.safetensors.index.json", R"({"weight_map":{"w":"a.safetensors","w":"a.safetensors"}})");
  ck = checkpoint::open(td.p.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_TRUE(contains(ck.error().message(), "model.safetensors.index.json: key 'w' appears twice"))
      << ck.error().message();
}

TEST(CheckpointLimits, IndexMustCoverEveryTensorOfItsShards) {
  temp_dir td;
  fs::copy_file(kModels + "/tiny-qwen3-moe/config.json", td.p / "config.json");
  write_bytes(td.p / "a.safetensors", st_file(R"({"v":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                              R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                              8));
  // Empty: names no shard, and quantize used to copy the unquantized shard beside it and report success.
  write_bytes(td.p / "model.safetensors.index.json", R"({"metadata":{},"weight_map":{}})");
  auto ck = checkpoint::open(td.p.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_EQ(ck.error().code(), errc::bad_format);
  EXPECT_TRUE(contains(ck.error().message(), "model.safetensors.index.json: weight_map is empty"))
      << ck.error().message();
  // Covers only one of the shard's tensors.
  write_bytes(td.p / "model.safetensors.index.json", R"({"weight_map":{"w":"a.safetensors"}})");
  ck = checkpoint::open(td.p.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_TRUE(contains(ck.error().message(), "tensor 'v' is missing from model.safetensors.index.json"))
      << ck.error().message();
  write_bytes(td.p / "model.safetensors.index.json", R"({"weight_map":{"w":"a.safetensors","v":"a.safetensors"}})");
  ck = checkpoint::open(td.p.string());
  EXPECT_TRUE(ck.ok()) << ck.error().to_string();
  // Nested deep: refused by depth, naming the index.
  write_bytes(td.p / "model.safetensors.index.json", R"({"weight_map":)" + std::string(200000, '['));
  ck = checkpoint::open(td.p.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_TRUE(contains(ck.error().message(), "index.json: JSON nested deeper")) << ck.error().message();
}

TEST(CheckpointLimits, SymlinkLoopsAreErrorsNamingThePath) {
  temp_dir td;
  fs::copy_file(kModels + "/tiny-qwen3-moe/config.json", td.p / "config.json");
  write_bytes(td.p / "a.safetensors", st_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4));
  // A loop that does not look like a shard is not opened.
  fs::create_symlink(td.p / "loop2", td.p / "loop1");
  fs::create_symlink(td.p / "loop1", td.p / "loop2");
  EXPECT_TRUE(checkpoint::open(td.p.string()).ok());
  // One that does: an error, not a filesystem_error thrown through the caller.
  fs::create_symlink(td.p / "x.safetensors", td.p / "y.safetensors");
  fs::create_symlink(td.p / "y.safetensors", td.p / "x.safetensors");
  auto ck = checkpoint::open(td.p.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_TRUE(contains(ck.error().message(), ".safetensors")) << ck.error().message();
  EXPECT_TRUE(contains(ck.error().message(), td.p.string())) << ck.error().message();
  // config.json itself a loop.
  fs::remove(td.p / "x.safetensors");
  fs::remove(td.p / "y.safetensors");
  fs::remove(td.p / "config.json");
  fs::create_symlink(td.p / "c2.json", td.p / "config.json");
  fs::create_symlink(td.p / "config.json", td.p / "c2.json");
  ck = checkpoint::open(td.p.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_TRUE(contains(ck.error().message(), "config.json")) << ck.error().message();
  // The folder itself.
  fs::create_symlink(td.p / "d2", td.p / "d1");
  fs::create_symlink(td.p / "d1", td.p / "d2");
  ck = checkpoint::open((td.p / "d1").string());
  ASSERT_FALSE(ck.ok());
  EXPECT_TRUE(contains(ck.error().message(), "d1")) << ck.error().message();
}

TEST(CheckpointLimits, FifoAsConfigOrShardIsRefused) {
  temp_dir td;
  ASSERT_EQ(::mkfifo((td.p / "config.json").c_str(), 0600), 0);
  auto ck = checkpoint::open(td.p.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_TRUE(contains(ck.error().message(), "config.json: is a FIFO")) << ck.error().message();
  fs::remove(td.p / "config.json");
  fs::copy_file(kModels + "/tiny-qwen3-moe/config.json", td.p / "config.json");
  ASSERT_EQ(::mkfifo((td.p / "a.safetensors").c_str(), 0600), 0);
  write_bytes(td.p / "model.safetensors.index.json", R"({"weight_map":{"w":"a.safetensors"}})");
  ck = checkpoint::open(td.p.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_TRUE(contains(ck.error().message(), "a.safetensors: is a FIFO")) << ck.error().message();
}

TEST(ConfigLimits, CountsBeyondRazorsLimitsNameTheKey) {
  struct c {
    const char* key;
    const char* value;
    const char* needle;
  };
  const std::vector<c> cases = {
      {"num_hidden_layers", "1e9", "num_hidden_layers = 1000000000.0 is out of range (outside razor's limit [0, 4096])"},
      {"vocab_size", "1e12", "vocab_size = 1000000000000.0 is out of range"},
      {"vocab_size", "1e300", "vocab_size = 1e+300 is out of range"},
      {"num_local_experts", "18446744073709551615", "num_local_experts = 18446744073709551615 is out of range"},
      {"hidden_size", "-8", "hidden_size = -8 is out of range"},
      {"moe_intermediate_size", "64.5", "moe_intermediate_size = 64.5 is not an integer"},
  };
  for (auto& x : cases) {
    auto cfg = parse_model_config(nlohmann::json::parse(config_with(x.key, x.value)), "config.json");
    ASSERT_FALSE(cfg.ok()) << x.key;
    EXPECT_EQ(cfg.error().code(), errc::bad_config);
    EXPECT_TRUE(contains(cfg.error().message(), std::string("config.json: ") + x.needle)) << cfg.error().message();
  }
  // Nested text_config keys are named with their prefix; an integral float is an integer.
  auto nested = parse_model_config(
      nlohmann::json::parse(R"({"text_config":{"hidden_size":8,"num_hidden_layers":100000}})"), "c.json");
  ASSERT_FALSE(nested.ok());
  EXPECT_TRUE(contains(nested.error().message(), "text_config.num_hidden_layers")) << nested.error().message();
  auto ok = parse_model_config(nlohmann::json::parse(config_with("num_hidden_layers", "4.0")), "config.json");
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  EXPECT_EQ(ok->num_layers, 4);
}

TEST(ConfigLimits, ConfigJsonIsReadWithinBounds) {
  temp_dir td;
  write_bytes(td.p / "config.json", std::string(200000, '[') + std::string(200000, ']'));
  auto c = load_model_config((td.p / "config.json").string());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), errc::bad_config);
  EXPECT_TRUE(contains(c.error().message(), "config.json: JSON nested deeper than 64 levels at byte 64"))
      << c.error().message();
  write_bytes(td.p / "recipe.json", "{\"roles\":" + std::string(300000, '{'));
  auto r = load_recipe((td.p / "recipe.json").string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), errc::bad_recipe);
  EXPECT_TRUE(contains(r.error().message(), "recipe.json: JSON nested deeper")) << r.error().message();
}

TEST(SynthLimits, ProductsOfValidKeysAreBounded) {
  temp_dir td;
  synth_options opt;
  opt.sparse = true;
  // Each key within its limit, but vocab x hidden alone is 2^42 parameters, twice over with lm_head.
  auto j = nlohmann::json::parse(config_with("vocab_size", "16777216"));
  j["hidden_size"] = 262144;
  auto st = synth_checkpoint(j, (td.p / "big").string(), opt);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), errc::bad_config);
  EXPECT_TRUE(contains(st.message(), "synth's limit")) << st.message();
  EXPECT_TRUE(contains(st.message(), "vocab_size 16777216")) << st.message();
  EXPECT_FALSE(fs::exists(td.p / "big"));
  // Per-expert layout: layers x experts tensors.
  auto k = nlohmann::json::parse(config_with("num_hidden_layers", "4096"));
  k["num_local_experts"] = 65536;
  opt.fused_experts = false;
  st = synth_checkpoint(k, (td.p / "many").string(), opt);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), "num_hidden_layers 4096 x num_experts 65536")) << st.message();
  EXPECT_FALSE(fs::exists(td.p / "many"));
}
