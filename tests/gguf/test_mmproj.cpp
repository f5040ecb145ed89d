// The mmproj (clip) GGUF of a vision tower (gguf/mmproj.h). The npm llama.cpp ships no libmtmd / clip loader, so the
// file is checked by our reader against our table of what tools/mtmd/clip.cpp requires for qwen3vl_merger
// (check_mmproj), and key by key / tensor by tensor against what convert_hf_to_gguf.py --mmproj writes
// (conversion/qwen3vl.py, conversion/base.py MmprojModel), written out here as the expected file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "common/config_fixture.h"
#include "common/test_util.h"
#include "ggml/quants.h"
#include "gguf/convert.h"
#include "gguf/gguf_file.h"
#include "gguf/mmproj.h"
#include "model/checkpoint.h"
#include "model/synth.h"
#include "model/vision_tower.h"
#include "util/atomic_file.h"
#include "util/numeric.h"
#include "util/sha256.h"

namespace fs = std::filesystem;
using namespace razor;
using namespace razor::gguf;
using nlohmann::json;

namespace {

// A tiny Qwen3.5-MoE (Qwen3_5MoeForConditionalGeneration, the Hub's nested layout) with a two-block vision tower:
// feed_forward 80 is not a multiple of 32, so q8_0 exercises the converter's f16 fallback.
json tiny_config(json vision_edit = json::object()) {
  json text = {{"model_type", "qwen3_5_moe_text"},
               {"hidden_size", 64},
               {"num_hidden_layers", 4},
               {"layer_types", {"linear_attention", "linear_attention", "linear_attention", "full_attention"}},
               {"full_attention_interval", 4},
               {"num_attention_heads", 2},
               {"num_key_value_heads", 1},
               {"head_dim", 32},
               {"linear_num_key_heads", 2},
               {"linear_key_head_dim", 16},
               {"linear_num_value_heads", 4},
               {"linear_value_head_dim", 16},
               {"linear_conv_kernel_dim", 4},
               {"num_experts", 4},
               {"num_experts_per_tok", 2},
               {"moe_intermediate_size", 32},
               {"shared_expert_intermediate_size", 32},
               {"vocab_size", 256},
               {"rms_norm_eps", 1e-5},
               {"partial_rotary_factor", 0.25},
               {"rope_parameters", {{"rope_theta", 10000000}, {"partial_rotary_factor", 0.25}, {"rope_type", "default"}}},
               {"max_position_embeddings", 1024},
               {"tie_word_embeddings", false},
               {"hidden_act", "silu"}};
  json vision = {{"deepstack_visual_indexes", json::array()},
                 {"depth", 2},
                 {"hidden_act", "gelu_pytorch_tanh"},
                 {"hidden_size", 64},
                 {"in_channels", 3},
                 {"intermediate_size", 80},
                 {"model_type", "qwen3_5_moe"},
                 {"num_heads", 2},
                 {"num_position_embeddings", 16},
                 {"out_hidden_size", 64},
                 {"patch_size", 16},
                 {"spatial_merge_size", 2},
                 {"temporal_patch_size", 2}};
  vision.update(vision_edit);
  return {{"architectures", {"Qwen3_5MoeForConditionalGeneration"}},
          {"model_type", "qwen3_5_moe"},
          {"tie_word_embeddings", false},
          {"text_config", text},
          {"vision_config", vision}};
}

// synth --vision of `cfg` into dir/name.
std::string synth_vision(const test::scratch_dir& d, const std::string& name, const json& cfg) {
  synth_options o;
  o.vision = true;
  o.stddev = 0.5f;
  const std::string out = d / name;
  status st = synth_checkpoint(cfg, out, o);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return out;
}

// The file convert_hf_to_gguf.py --mmproj --outtype T writes for tiny_config(): every key (in its order) and every
// tensor (GGUF name, ggml shape, type), from reading conversion/qwen3vl.py and conversion/base.py.
struct expected_tensor {
  std::string name;
  std::vector<int64_t> ne;
  ggml::type type;
};
std::vector<expected_tensor> expected_tensors(ggml::type t, int depth, const std::vector<int>& deepstack = {}) {
  using T = ggml::type;
  const T w = t;
  const T patch = t == T::f16 ? T::f16 : T::f32;
  const T down = t == T::q8_0 ? T::f16 : t;  // rows of 80
  std::vector<expected_tensor> e;
  for (int b = 0; b < depth; ++b) {
    const std::string p = "v.blk." + std::to_string(b) + ".";
    e.push_back({p + "attn_out.bias", {64}, T::f32});
    e.push_back({p + "attn_out.weight", {64, 64}, w});
    e.push_back({p + "attn_qkv.bias", {192}, T::f32});
    e.push_back({p + "attn_qkv.weight", {64, 192}, w});
    e.push_back({p + "ffn_up.bias", {80}, T::f32});
    e.push_back({p + "ffn_up.weight", {64, 80}, w});
    e.push_back({p + "ffn_down.bias", {64}, T::f32});
    e.push_back({p + "ffn_down.weight", {80, 64}, down});
    e.push_back({p + "ln1.bias", {64}, T::f32});
    e.push_back({p + "ln1.weight", {64}, T::f32});
    e.push_back({p + "ln2.bias", {64}, T::f32});
    e.push_back({p + "ln2.weight", {64}, T::f32});
  }
  for (int i : deepstack) {
    const std::string p = "v.deepstack." + std::to_string(i) + ".";
    e.push_back({p + "fc1.bias", {256}, T::f32});
    e.push_back({p + "fc1.weight", {256, 256}, w});
    e.push_back({p + "fc2.bias", {64}, T::f32});
    e.push_back({p + "fc2.weight", {256, 64}, w});
    e.push_back({p + "norm.bias", {256}, T::f32});
    e.push_back({p + "norm.weight", {256}, T::f32});
  }
  e.push_back({"mm.0.bias", {256}, T::f32});
  e.push_back({"mm.0.weight", {256, 256}, w});
  e.push_back({"mm.2.bias", {64}, T::f32});
  e.push_back({"mm.2.weight", {256, 64}, w});
  e.push_back({"v.post_ln.bias", {64}, T::f32});
  e.push_back({"v.post_ln.weight", {64}, T::f32});
  e.push_back({"v.patch_embd.bias", {64}, T::f32});
  e.push_back({"v.patch_embd.weight", {16, 16, 3, 64}, patch});
  e.push_back({"v.patch_embd.weight.1", {16, 16, 3, 64}, patch});
  e.push_back({"v.position_embd.weight", {64, 16}, T::f32});
  return e;
}

void expect_file(const file& f, ggml::type t, int depth = 2, const std::vector<int>& deepstack = {}) {
  // Keys: name, GGUF type, value.
  auto u32 = [&](const char* k, int64_t v) {
    const value* x = f.find(k);
    ASSERT_NE(x, nullptr) << k;
    EXPECT_EQ(x->type(), value_type::u32) << k;
    EXPECT_EQ(x->as_int().value_or(-1), v) << k;
  };
  EXPECT_EQ(f.get_string("general.architecture").value_or(""), "clip");
  EXPECT_EQ(f.get_string("general.type").value_or(""), "mmproj");
  EXPECT_EQ(f.get_string("clip.projector_type").value_or(""), "qwen3vl_merger");
  EXPECT_EQ(f.find("clip.has_vision_encoder")->type(), value_type::boolean);
  EXPECT_EQ(f.get_int("clip.has_vision_encoder").value_or(0), 1);
  EXPECT_EQ(f.find("clip.use_gelu")->type(), value_type::boolean);
  EXPECT_EQ(f.get_int("clip.use_gelu").value_or(0), 1);
  u32("general.file_type", ggml::info(t).ftype);
  u32("general.quantization_version", 2);
  u32("clip.vision.projection_dim", 64);
  u32("clip.vision.image_size", 64);  // sqrt(16) x 16
  u32("clip.vision.patch_size", 16);
  u32("clip.vision.embedding_length", 64);
  u32("clip.vision.feed_forward_length", 80);
  u32("clip.vision.block_count", depth);
  u32("clip.vision.attention.head_count", 2);
  u32("clip.vision.spatial_merge_size", 2);
  const value* eps = f.find("clip.vision.attention.layer_norm_epsilon");
  ASSERT_NE(eps, nullptr);
  EXPECT_EQ(eps->type(), value_type::f32);
  EXPECT_EQ(float(eps->as_float().value_or(0)), 1e-5f);  // text_config.rms_norm_eps
  for (const char* k : {"clip.vision.image_mean", "clip.vision.image_std"}) {
    const value* x = f.find(k);
    ASSERT_NE(x, nullptr) << k;
    EXPECT_EQ(x->elem_type(), value_type::f32) << k;
    ASSERT_EQ(x->size(), 3u) << k;
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(x->float_at(i), 0.5) << k;
  }
  const value* ds = f.find("clip.vision.is_deepstack_layers");
  ASSERT_NE(ds, nullptr);
  EXPECT_EQ(ds->elem_type(), value_type::boolean);
  ASSERT_EQ(ds->size(), size_t(depth));
  for (int i = 0; i < depth; ++i)
    EXPECT_EQ(ds->int_at(size_t(i)) != 0, std::find(deepstack.begin(), deepstack.end(), i) != deepstack.end()) << i;
  // Tensors: exactly the converter's.
  auto want = expected_tensors(t, depth, deepstack);
  EXPECT_EQ(f.tensors().size(), want.size());
  for (auto& w : want) {
    const tensor_info* ti = f.find_tensor(w.name);
    ASSERT_NE(ti, nullptr) << w.name;
    EXPECT_EQ(ti->ne, w.ne) << w.name;
    EXPECT_EQ(ti->type, uint32_t(w.type)) << w.name << " is " << find_type(ti->type)->name;
  }
  status st = check_mmproj(f);
  EXPECT_TRUE(st.ok()) << st.to_string();
}

// Values of a stored tensor as floats.
std::vector<float> values(const file& f, const std::string& name) {
  const tensor_info* t = f.find_tensor(name);
  if (!t) return {};
  std::vector<float> out(size_t(t->nelements()));
  auto ty = ggml::type_from_id(t->type);
  EXPECT_TRUE(ty.ok());
  const int64_t row = t->ne[0];
  const size_t rb = ggml::row_size(*ty, row);
  for (int64_t r = 0; r < t->nelements() / row; ++r)
    EXPECT_TRUE(ggml::dequantize_row(*ty, f.tensor_data(*t) + size_t(r) * rb, out.data() + r * row, row).ok());
  return out;
}

TEST(Mmproj, EveryTypeHoldsTheConvertersKeysTensorsAndBytes) {
  test::scratch_dir d("mmproj");
  const std::string model = synth_vision(d, "tiny", tiny_config());
  auto ck = checkpoint::open(model);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  auto src = [&](const std::string& n) { return *ck->read_f32(*ck->find("model.visual." + n)); };
  for (ggml::type t : {ggml::type::f32, ggml::type::f16, ggml::type::bf16, ggml::type::q8_0}) {
    SCOPED_TRACE(std::string(ggml::type_name(t)));
    mmproj_options o;
    o.type = t;
    const std::string out = d / ("mmproj-" + std::string(ggml::type_name(t)) + ".gguf");
    auto r = write_mmproj(model, out, o);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    auto f = file::open(out);
    ASSERT_TRUE(f.ok()) << f.error().to_string();
    expect_file(*f, t);
    EXPECT_EQ(r->file_bytes, f->file_size());
    auto plan = plan_mmproj(*ck, o);  // the dry run's size is the file's
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->file_bytes, f->file_size());
    EXPECT_EQ(f->get_string("general.name").value_or(""), "tiny");
    // Bytes: each tensor is the source (bf16 -> f32 exact) in the stored type, by ggml's quantizer.
    auto same_bytes = [&](const std::string& gguf, const std::vector<float>& x) {
      const tensor_info* ti = f->find_tensor(gguf);
      ASSERT_NE(ti, nullptr) << gguf;
      auto ty = *ggml::type_from_id(ti->type);
      std::vector<uint8_t> q(ti->nbytes);
      auto n = ggml::quantize_tensor(ty, x.data(), q.data(), q.size(), int64_t(x.size()) / ti->ne[0], ti->ne[0], nullptr);
      ASSERT_TRUE(n.ok());
      EXPECT_EQ(std::memcmp(q.data(), f->tensor_data(*ti), q.size()), 0) << gguf;
    };
    same_bytes("v.blk.1.attn_qkv.weight", src("blocks.1.attn.qkv.weight"));
    same_bytes("v.blk.0.ffn_down.weight", src("blocks.0.mlp.linear_fc2.weight"));
    same_bytes("mm.2.weight", src("merger.linear_fc2.weight"));
    same_bytes("v.post_ln.weight", src("merger.norm.weight"));
    same_bytes("v.position_embd.weight", src("pos_embed.weight"));
    // The Conv3d [64, 3, 2, 16, 16] split by its temporal index.
    const std::vector<float> conv = src("patch_embed.proj.weight");
    for (int tt = 0; tt < 2; ++tt) {
      std::vector<float> slice;
      for (int oc = 0; oc < 64 * 3; ++oc)
        slice.insert(slice.end(), conv.begin() + (oc * 2 + tt) * 256, conv.begin() + (oc * 2 + tt + 1) * 256);
      same_bytes(tt == 0 ? "v.patch_embd.weight" : "v.patch_embd.weight.1", slice);
    }
    if (t == ggml::type::f32) {  // and the values are the checkpoint's own
      EXPECT_EQ(values(*f, "v.blk.0.ln2.bias"), src("blocks.0.norm2.bias"));
      EXPECT_EQ(values(*f, "mm.0.weight"), src("merger.linear_fc1.weight"));
    }
  }
}

// Byte for byte what llama.cpp's converter wrote for this checkpoint (tests/gguf/data/mmproj-converter-reference.json,
// made by tools/mmproj/converter_reference.py running convert_hf_to_gguf.py --mmproj of the oracle's llama.cpp on
// the same synth --vision checkpoint): every key in order with its GGUF types and value, every tensor in order with
// its type, shape and SHA-256. Only general.name (the converter title-cases the folder: "Tiny"), general.size_label
// (its parameter-count label) and our general.quantized_by differ.
TEST(Mmproj, SameFileAsTheConverter) {
  const json ref = json::parse(test::slurp(std::string(RAZOR_SOURCE_DIR_T) + "/tests/gguf/data/mmproj-converter-reference.json"));
  test::scratch_dir d("mmproj-ref");
  const std::string model = synth_vision(d, "tiny", tiny_config());
  const std::set<std::string> ours_only = {"general.quantized_by"}, theirs_only = {"general.size_label"},
                              differ = {"general.name"};
  ASSERT_EQ(ref["files"].size(), 4u);
  for (auto& [tname, rf] : ref["files"].items()) {
    SCOPED_TRACE(tname);
    mmproj_options o;
    o.type = *ggml::type_from_name(tname);
    const std::string out = d / ("ours-" + tname + ".gguf");
    auto r = write_mmproj(model, out, o);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    auto f = file::open(out);
    ASSERT_TRUE(f.ok());
    std::vector<std::string> ours_keys, ref_keys;
    for (auto& kv : f->metadata())
      if (!ours_only.count(kv.key)) ours_keys.push_back(kv.key);
    for (auto& k : rf["keys"]) {
      const std::string key = k["key"];
      if (theirs_only.count(key)) continue;
      ref_keys.push_back(key);
      if (differ.count(key)) continue;
      const value* v = f->find(key);
      ASSERT_NE(v, nullptr) << key;
      const auto types = k["types"].get<std::vector<int>>();
      EXPECT_EQ(int(v->type()), types[0]) << key;
      if (types[0] == int(value_type::array)) {
        EXPECT_EQ(int(v->elem_type()), types[1]) << key;
        ASSERT_EQ(v->size(), k["value"].size()) << key;
        for (size_t i = 0; i < v->size(); ++i) {
          if (types[1] == int(value_type::boolean)) EXPECT_EQ(v->int_at(i) != 0, k["value"][i].get<bool>()) << key;
          else EXPECT_EQ(float(v->float_at(i)), k["value"][i].get<float>()) << key;
        }
      } else if (types[0] == int(value_type::string)) {
        EXPECT_EQ(*v->as_string(), k["value"].get<std::string>()) << key;
      } else if (types[0] == int(value_type::f32)) {
        EXPECT_EQ(float(*v->as_float()), k["value"].get<float>()) << key;
      } else if (types[0] == int(value_type::boolean)) {
        EXPECT_EQ(*v->as_int() != 0, k["value"].get<bool>()) << key;
      } else {
        EXPECT_EQ(*v->as_int(), k["value"].get<int64_t>()) << key;
      }
    }
    EXPECT_EQ(ours_keys, ref_keys);  // the same keys, in the same order
    ASSERT_EQ(f->tensors().size(), rf["tensors"].size());
    for (size_t i = 0; i < f->tensors().size(); ++i) {
      const tensor_info& t = f->tensors()[i];
      const json& rt = rf["tensors"][i];
      EXPECT_EQ(t.name, rt["name"].get<std::string>());
      EXPECT_EQ(std::string(find_type(t.type)->name), rt["type"].get<std::string>()) << t.name;
      EXPECT_EQ(t.ne, rt["ne"].get<std::vector<int64_t>>()) << t.name;
      EXPECT_EQ(sha256_hex(std::string_view(reinterpret_cast<const char*>(f->tensor_data(t)), t.nbytes)),
                rt["sha256"].get<std::string>()) << t.name;
    }
  }
}

TEST(Mmproj, DeepstackMergersTakeTheirBlockIndex) {
  // Qwen3-VL's deepstack mergers (Qwen3.5 has none): merger K is stored under the K-th deepstack index.
  test::scratch_dir d("mmproj-ds");
  const std::string model = synth_vision(d, "ds", tiny_config({{"deepstack_visual_indexes", {1}}}));
  mmproj_options o;
  o.type = ggml::type::f32;
  auto r = write_mmproj(model, d / "ds.gguf", o);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  auto f = file::open(d / "ds.gguf");
  ASSERT_TRUE(f.ok());
  expect_file(*f, ggml::type::f32, 2, {1});
  auto ck = checkpoint::open(model);
  ASSERT_TRUE(ck.ok());
  EXPECT_EQ(values(*f, "v.deepstack.1.fc2.weight"),
            *ck->read_f32(*ck->find("model.visual.deepstack_merger_list.0.linear_fc2.weight")));
}

TEST(Mmproj, TheTextGgufOfTheSameCheckpointLeavesTheTowerOut) {
  test::scratch_dir d("mmproj-text");
  json cfg = tiny_config();
  cfg["text_config"]["vocab_size"] = 4096;  // the bundled fixture's tokenizer
  const std::string model = synth_vision(d, "tiny", cfg);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fs::path(RAZOR_MODELS_DIR) / "tiny-qwen3-5-moe" / f, fs::path(model) / f);
  auto ck = checkpoint::open(model);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  convert_options o;
  o.default_type = ggml::type::f16;
  auto rep = plan_gguf(*ck, o);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  for (auto& t : rep->tensors) EXPECT_TRUE(t.name.rfind("v.", 0) != 0 && t.name.rfind("mm.", 0) != 0) << t.name;
}

TEST(Mmproj, Real122BTowerShapes) {
  // The real Qwen3.5-122B-A10B tower (resources/configs: 27 blocks of 1152, MLP 4304, 2304 positions, out 3072),
  // synthesised sparse and planned without writing: names, shapes, types and the exact file size.
  test::scratch_dir d("mmproj-122b");
  auto cfg_text = test::slurp(std::string(RAZOR_SOURCE_DIR_T) + "/resources/configs/qwen3.5-122b-a10b.json");
  json cfg = json::parse(cfg_text);
  ASSERT_TRUE(cfg.contains("vision_config"));
  synth_options so;
  so.sparse = true;
  so.vision = true;
  const std::string model = d / "q122";
  ASSERT_TRUE(synth_checkpoint(cfg, model, so).ok());
  auto ck = checkpoint::open(model);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  ASSERT_NE(ck->find("model.visual.patch_embed.proj.weight"), nullptr);
  EXPECT_EQ(ck->find("model.visual.patch_embed.proj.weight")->shape, (std::vector<int64_t>{1152, 3, 2, 16, 16}));
  for (ggml::type t : {ggml::type::f16, ggml::type::q8_0}) {
    mmproj_options o;
    o.type = t;
    auto p = plan_mmproj(*ck, o);
    ASSERT_TRUE(p.ok()) << p.error().to_string();
    EXPECT_EQ(p->tensors.size(), 27u * 12 + 10);
    std::map<std::string, std::pair<std::vector<int64_t>, ggml::type>> by;
    uint64_t params = 0;
    for (auto& x : p->tensors) {
      by[x.name] = {x.ne, x.type};
      uint64_t n = 1;
      for (auto v : x.ne) n *= uint64_t(v);
      params += n;
    }
    using V = std::vector<int64_t>;
    EXPECT_EQ(by["v.patch_embd.weight"].first, (V{16, 16, 3, 1152}));
    EXPECT_EQ(by["v.position_embd.weight"].first, (V{1152, 2304}));
    EXPECT_EQ(by["v.blk.26.attn_qkv.weight"].first, (V{1152, 3456}));
    EXPECT_EQ(by["v.blk.26.ffn_up.weight"].first, (V{1152, 4304}));
    EXPECT_EQ(by["v.blk.26.ffn_down.weight"].first, (V{4304, 1152}));
    EXPECT_EQ(by["mm.0.weight"].first, (V{4608, 4608}));
    EXPECT_EQ(by["mm.2.weight"].first, (V{4608, 3072}));
    EXPECT_EQ(by["v.post_ln.weight"].first, (V{1152}));
    // 0.45 B parameters: 27 x 15.2 M in the blocks, 35 M in the merger, 3.5 M in the embeddings.
    EXPECT_EQ(params, 27ull * (1152 * 3456 + 3456 + 1152 * 1152 + 1152 + 2 * 1152 * 4304 + 4304 + 1152 + 4 * 1152) +
                          2 * 16 * 16 * 3 * 1152 + 1152 + 1152 * 2304 + 2 * 1152 + 4608 * 4608 + 4608 + 4608 * 3072 + 3072);
    EXPECT_EQ(by["v.blk.3.ffn_down.weight"].second, ggml::type::f16);  // rows of 4304: f16 in either file
    EXPECT_EQ(by["v.blk.3.ffn_up.weight"].second, t);
    EXPECT_EQ(by["v.patch_embd.weight"].second, t == ggml::type::f16 ? ggml::type::f16 : ggml::type::f32);
    // The converter's order: the shard's tensors sorted by name, so block 10 comes before block 2.
    auto first = [&](const std::string& prefix) {
      for (size_t i = 0; i < p->tensors.size(); ++i)
        if (p->tensors[i].name.rfind(prefix, 0) == 0) return i;
      return p->tensors.size();
    };
    EXPECT_LT(first("v.blk.10."), first("v.blk.2."));
    EXPECT_LT(first("v.blk.26."), first("mm.0."));
    // The metadata llama.cpp reads.
    std::map<std::string, std::string> kv;
    for (auto& [k, v] : p->metadata) kv[k] = v.to_string();
    EXPECT_EQ(kv["clip.vision.image_size"], "768");
    EXPECT_EQ(kv["clip.vision.projection_dim"], "3072");
    EXPECT_EQ(kv["clip.vision.block_count"], "27");
    EXPECT_EQ(kv["clip.vision.attention.head_count"], "16");
    EXPECT_EQ(kv["clip.vision.feed_forward_length"], "4304");
  }
}

TEST(Mmproj, RefusalsNameTheInput) {
  test::scratch_dir d("mmproj-bad");
  const std::string model = synth_vision(d, "tiny", tiny_config());
  mmproj_options o;
  auto refused = [&](const std::string& dir, const std::vector<std::string>& parts, const std::string& out = "") {
    auto r = write_mmproj(dir, out.empty() ? d / "x.gguf" : out, o);
    ASSERT_FALSE(r.ok());
    test::expect_mentions(r.error().message(), parts);
  };
  // No preprocessor_config.json: the image normalisation is missing.
  {
    const std::string m2 = d / "nopre";
    fs::create_directories(m2);
    for (auto& e : fs::directory_iterator(model))
      if (e.path().filename() != "preprocessor_config.json") fs::copy_file(e.path(), fs::path(m2) / e.path().filename());
    refused(m2, {"nopre", "preprocessor_config.json"});
  }
  // A text-only architecture, and a tower of another layout.
  {
    const std::string m3 = d / "arch";
    fs::create_directories(m3);
    for (auto& e : fs::directory_iterator(model)) fs::copy_file(e.path(), fs::path(m3) / e.path().filename());
    json c = json::parse(test::slurp(fs::path(m3) / "config.json"));
    c["architectures"] = {"Qwen3_5MoeForCausalLM"};
    std::ofstream(fs::path(m3) / "config.json") << c.dump();
    refused(m3, {"Qwen3_5MoeForCausalLM", "qwen3vl_merger"});
    c["architectures"] = {"Qwen3_5MoeForConditionalGeneration"};
    c["vision_config"]["temporal_patch_size"] = 3;
    std::ofstream(fs::path(m3) / "config.json") << c.dump();
    refused(m3, {"temporal_patch_size", "3"});
    c["vision_config"]["temporal_patch_size"] = 2;
    c["vision_config"]["out_hidden_size"] = 96;
    std::ofstream(fs::path(m3) / "config.json") << c.dump();
    refused(m3, {"out_hidden_size", "96", "64"});
    c["vision_config"]["out_hidden_size"] = 64;
    c["vision_config"]["num_position_embeddings"] = 15;  // llama.cpp resizes a square grid
    std::ofstream(fs::path(m3) / "config.json") << c.dump();
    refused(m3, {"num_position_embeddings", "15", "square"});
    c["vision_config"]["num_position_embeddings"] = 16;
    c["vision_config"]["depth"] = 3;  // the checkpoint holds two blocks
    std::ofstream(fs::path(m3) / "config.json") << c.dump();
    refused(m3, {"model.visual.blocks.2.", "missing"});
  }
  // An output that razor did not write is left alone.
  {
    const std::string foreign = d / "foreign.gguf";
    std::ofstream(foreign) << "not razor's";
    refused(model, {"foreign.gguf"}, foreign);
    EXPECT_EQ(test::slurp(foreign), "not razor's");
  }
  // A type the converter has no --outtype for.
  o.type = ggml::type::q4_k;
  refused(model, {"q4_K", "f16", "q8_0"});
}

TEST(Mmproj, TheClipTableRefusesWhatClipCppWouldNot) {
  // A file that passes, edited one thing at a time: each edit is refused, naming the key or tensor.
  test::scratch_dir d("mmproj-table");
  const std::string model = synth_vision(d, "tiny", tiny_config());
  mmproj_options o;
  o.type = ggml::type::f32;
  ASSERT_TRUE(write_mmproj(model, d / "ok.gguf", o).ok());
  auto good = file::open(d / "ok.gguf");
  ASSERT_TRUE(good.ok());
  auto rewrite = [&](const std::string& tag, const std::function<void(std::vector<kv_pair>&, std::vector<memory_tensor>&)>& edit,
                     const std::vector<std::string>& parts) {
    std::vector<kv_pair> kv = good->metadata();
    std::vector<memory_tensor> ts;
    for (auto& t : good->tensors())
      ts.push_back({t.name, t.ne, t.type, std::vector<uint8_t>(good->tensor_data(t), good->tensor_data(t) + t.nbytes)});
    edit(kv, ts);
    const std::string p = d / (tag + ".gguf");
    ASSERT_TRUE(write_file(p, kv, ts).ok()) << tag;
    auto f = file::open(p);
    ASSERT_TRUE(f.ok()) << tag;
    status st = check_mmproj(*f);
    ASSERT_FALSE(st.ok()) << tag;
    test::expect_mentions(st.message(), parts);
  };
  auto set = [](std::vector<kv_pair>& kv, const std::string& k, value v) {
    for (auto& e : kv)
      if (e.key == k) e.val = v;
  };
  rewrite("i32", [&](auto& kv, auto&) { set(kv, "clip.vision.block_count", value::i32(2)); }, {"clip.vision.block_count", "INT32", "UINT32"});
  rewrite("noeps", [&](auto& kv, auto&) {
    std::erase_if(kv, [](const kv_pair& e) { return e.key == "clip.vision.attention.layer_norm_epsilon"; });
  }, {"layer_norm_epsilon", "missing"});
  rewrite("proj", [&](auto& kv, auto&) { set(kv, "clip.projector_type", value::str("qwen2vl_merger")); }, {"qwen2vl_merger"});
  rewrite("noqkvb", [&](auto&, auto& ts) {
    std::erase_if(ts, [](const memory_tensor& t) { return t.name == "v.blk.1.attn_qkv.bias"; });
  }, {"v.blk.1.attn_qkv.bias", "missing"});
  rewrite("extra", [&](auto&, auto& ts) { ts.push_back({"v.blk.2.ln1.weight", {64}, type_f32, std::vector<uint8_t>(256)}); },
          {"v.blk.2.ln1.weight"});
  rewrite("f16norm", [&](auto&, auto& ts) {
    for (auto& t : ts)
      if (t.name == "v.blk.0.ln1.weight") t = {t.name, t.ne, type_f16, std::vector<uint8_t>(128)};
  }, {"v.blk.0.ln1.weight", "f16"});
  rewrite("shape", [&](auto&, auto& ts) {
    for (auto& t : ts)
      if (t.name == "mm.0.weight") t = {t.name, {128, 512}, type_f32, std::vector<uint8_t>(128 * 512 * 4)};
  }, {"mm.0.weight", "128, 512"});
}

TEST(Mmproj, SynthWithoutVisionConfigRefusesVision) {
  test::scratch_dir d("mmproj-novis");
  json cfg = tiny_config();
  cfg.erase("vision_config");
  synth_options o;
  o.vision = true;
  status st = synth_checkpoint(cfg, d / "m", o);
  ASSERT_FALSE(st.ok());
  test::expect_mentions(st.message(), {"vision_config"});
  EXPECT_FALSE(fs::exists(d / "m"));
}

}  // namespace
