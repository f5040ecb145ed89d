// The mmproj (clip) GGUF of a Qwen3-VL / Qwen3.5 vision tower: plan, write, and the check against what
// llama.cpp's clip loader requires (gguf/mmproj.h).
#include "gguf/mmproj.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "ggml/quants.h"
#include "gguf/output_check.h"
#include "model/checkpoint.h"
#include "util/json_limits.h"

namespace fs = std::filesystem;

namespace razor::gguf {

namespace {

// The architectures conversion/qwen3vl.py's Qwen3VLVisionModel is registered for.
constexpr const char* kArchitectures[] = {"Qwen3VLForConditionalGeneration", "Qwen3VLMoeForConditionalGeneration",
                                          "Qwen3_5ForConditionalGeneration", "Qwen3_5MoeForConditionalGeneration"};

// The checkpoint's tower prefixes the converter accepts ("model.visual." is renamed "visual." first).
constexpr const char* kPrefixes[] = {"model.visual.", "visual."};

// image_mean / image_std: preprocessor_config.json, overridden by processor_config.json's image_processor, as
// MmprojModel merges them.
status read_image_norm(const std::string& dir, std::vector<float>& mean, std::vector<float>& stdev) {
  nlohmann::json merged = nlohmann::json::object();
  bool any = false;
  for (const char* f : {"preprocessor_config.json", "processor_config.json"}) {
    const std::string path = (fs::path(dir) / f).string();
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) continue;
    json_limits lim;
    lim.max_bytes = 1u << 20;
    lim.code = errc::bad_config;
    RAZOR_ASSIGN_OR_RETURN(nlohmann::json j, read_json_file(path, lim));
    if (!j.is_object()) return make_error(errc::bad_config, path + ": not a JSON object");
    for (const char* sub : {"media_proc_cfg", "image_processor"})
      if (j.contains(sub) && j[sub].is_object()) j.update(j[sub]);
    merged.update(j);
    any = true;
  }
  auto get = [&](const char* key, std::vector<float>& out) -> status {
    auto it = merged.find(key);
    if (it == merged.end())
      return make_error(errc::bad_config, dir + ": " + (any ? "preprocessor_config.json has no " + std::string(key)
                                                              : std::string("no preprocessor_config.json")) +
                                              " (the image normalisation the mmproj file carries; llama.cpp's converter "
                                              "reads it there too)");
    if (!it->is_array() || it->size() < 3 || it->size() > 16)
      return make_error(errc::bad_config, dir + ": " + key + " is not a list of 3 numbers");
    for (auto& x : *it) {
      if (!x.is_number()) return make_error(errc::bad_config, dir + ": " + key + " holds " + x.dump() + ", not a number");
      out.push_back(x.get<float>());
    }
    return {};
  };
  RAZOR_TRY(get("image_mean", mean));
  RAZOR_TRY(get("image_std", stdev));
  return {};
}

uint64_t numel(const std::vector<int64_t>& ne) {
  uint64_t n = 1;
  for (auto d : ne) n *= uint64_t(d);
  return n;
}

// ggml order of a PyTorch shape.
std::vector<int64_t> reversed(std::vector<int64_t> s) {
  std::reverse(s.begin(), s.end());
  return s;
}

// GGUF name of a tower tensor (model/vision_tower.h's name), "" when the converter cannot map it.
std::string gguf_name(const std::string& n, const vision_tower_config& v) {
  auto starts = [&](const char* p) { return n.rfind(p, 0) == 0; };
  auto tail = [&](size_t from) { return n.substr(from); };  // ".weight" / ".bias"
  if (n == "patch_embed.proj.bias") return "v.patch_embd.bias";
  if (n == "pos_embed.weight") return "v.position_embd.weight";
  if (starts("blocks.")) {
    const size_t dot = n.find('.', 7);
    if (dot == std::string::npos) return "";
    const std::string b = n.substr(7, dot - 7), rest = n.substr(dot + 1);
    static const std::pair<const char*, const char*> map[] = {
        {"norm1", "ln1"},          {"norm2", "ln2"},          {"attn.qkv", "attn_qkv"},
        {"attn.proj", "attn_out"}, {"mlp.linear_fc1", "ffn_up"}, {"mlp.linear_fc2", "ffn_down"}};
    for (auto& [hf, gg] : map)
      for (const char* suf : {".weight", ".bias"})
        if (rest == std::string(hf) + suf) return "v.blk." + b + "." + gg + suf;
    return "";
  }
  auto merger = [&](const std::string& rest, const std::string& norm, const std::string& fc1, const std::string& fc2) {
    for (const char* suf : {".weight", ".bias"}) {
      if (rest == std::string("norm") + suf) return norm + suf;
      if (rest == std::string("linear_fc1") + suf) return fc1 + suf;
      if (rest == std::string("linear_fc2") + suf) return fc2 + suf;
    }
    return std::string();
  };
  if (starts("merger.")) return merger(tail(7), "v.post_ln", "mm.0", "mm.2");
  if (starts("deepstack_merger_list.")) {
    const size_t dot = n.find('.', 22);
    if (dot == std::string::npos) return "";
    const std::string k = n.substr(22, dot - 22);
    size_t ki = 0;
    for (char c : k)
      if (c < '0' || c > '9') return "";
    if (k.empty() || k.size() > 6) return "";
    ki = size_t(std::stoul(k));
    if (ki >= v.deepstack_visual_indexes.size()) return "";
    const std::string p = "v.deepstack." + std::to_string(v.deepstack_visual_indexes[ki]);
    return merger(n.substr(dot + 1), p + ".norm", p + ".fc1", p + ".fc2");
  }
  return "";
}

// The converter's type of a GGUF tensor (MmprojModel.tensor_force_quant, ModelBase.prepare_tensors).
void choose_type(mmproj_tensor& t, ggml::type want) {
  const size_t n_dims = t.ne.size();
  if (t.name.find(".patch_embd.weight") != std::string::npos) {
    t.type = want == ggml::type::f16 ? ggml::type::f16 : ggml::type::f32;
    t.why = std::string(ggml::type_name(t.type)) + " (the patch embedding: f16 in an f16 file, else f32)";
  } else if (n_dims <= 1) {
    t.type = ggml::type::f32;
    t.why = "f32 (1-D)";
  } else if (t.name == "v.position_embd.weight") {
    t.type = ggml::type::f32;
    t.why = "f32 (position embedding)";
  } else if (want == ggml::type::q8_0 && t.ne[0] % ggml::info(ggml::type::q8_0).block_size != 0) {
    t.type = ggml::type::f16;
    t.why = "f16 (rows of " + std::to_string(t.ne[0]) + " are not a multiple of q8_0's 32: the converter's fallback)";
  } else {
    t.type = want;
    t.why = std::string(ggml::type_name(want));
  }
  t.bytes = ggml::row_size(t.type, t.ne[0]) * (numel(t.ne) / uint64_t(t.ne[0]));
}

}  // namespace

result<mmproj_plan> plan_mmproj(const checkpoint& ck, const mmproj_options& o) {
  if (o.type != ggml::type::f32 && o.type != ggml::type::f16 && o.type != ggml::type::bf16 && o.type != ggml::type::q8_0)
    return make_error(errc::invalid_argument, "mmproj type " + std::string(ggml::type_name(o.type)) +
                                                  " is not one of f32, f16, bf16, q8_0 (the converter's --outtype)");
  const model_config& cfg = ck.config();
  const std::string where = (fs::path(ck.dir()) / "config.json").string();
  bool arch_ok = false;
  std::string archs;
  for (auto& a : cfg.architectures) {
    archs += (archs.empty() ? "" : ", ") + a;
    for (const char* k : kArchitectures) arch_ok = arch_ok || a == k;
  }
  if (!arch_ok)
    return make_error(errc::unsupported, where + ": architectures [" + archs +
                                             "]: the mmproj export covers Qwen3-VL and Qwen3.5 vision towers "
                                             "(llama.cpp's Qwen3VLVisionModel, projector qwen3vl_merger)");
  mmproj_plan plan;
  RAZOR_ASSIGN_OR_RETURN(plan.vision, parse_vision_config(cfg.raw, where));
  const vision_tower_config& v = plan.vision;
  if (v.temporal_patch_size != 2)
    return make_error(errc::unsupported, where + ": vision_config.temporal_patch_size is " +
                                             std::to_string(v.temporal_patch_size) +
                                             "; llama.cpp's patch embedding takes two temporal slices (2)");
  if (v.out_hidden_size != cfg.hidden_size)
    return make_error(errc::bad_config, where + ": vision_config.out_hidden_size " + std::to_string(v.out_hidden_size) +
                                            " differs from the text model's hidden_size " +
                                            std::to_string(cfg.hidden_size) + " (llama.cpp refuses such a pair)");
  if (v.spatial_merge_size != 2)
    return make_error(errc::unsupported, where + ": vision_config.spatial_merge_size is " +
                                             std::to_string(v.spatial_merge_size) +
                                             "; llama.cpp's qwen3vl_merger graph merges 2 x 2 patches");
  {  // llama.cpp resizes the learned positions as a square grid of image_size / patch_size a side
    const int64_t side = int64_t(std::llround(std::sqrt(double(v.num_position_embeddings))));
    if (side * side != v.num_position_embeddings)
      return make_error(errc::unsupported, where + ": vision_config.num_position_embeddings " +
                                               std::to_string(v.num_position_embeddings) + " is not a square grid");
    if (v.image_size > 0 && v.image_size != side * v.patch_size)
      return make_error(errc::bad_config, where + ": vision_config.image_size " + std::to_string(v.image_size) +
                                              " is not the position grid's " + std::to_string(side) + " x patch_size " +
                                              std::to_string(v.patch_size));
  }
  if (v.hidden_size % v.num_heads != 0)
    return make_error(errc::bad_config, where + ": vision_config.hidden_size " + std::to_string(v.hidden_size) +
                                            " is not a multiple of num_heads " + std::to_string(v.num_heads));
  std::vector<float> mean, stdev;
  RAZOR_TRY(read_image_norm(ck.dir(), mean, stdev));

  // The tower's tensors: the ones it must have, then nothing else under its prefix.
  std::string prefix;
  for (const char* p : kPrefixes)
    if (prefix.empty() && ck.find(std::string(p) + "pos_embed.weight")) prefix = p;
  if (prefix.empty())
    return make_error(errc::not_found, ck.dir() + ": no vision tower tensors (model.visual.pos_embed.weight); the "
                                                  "checkpoint was saved without its vision tower");
  const std::vector<vision_tensor> want = vision_tower_tensors(v);
  std::set<std::string> expected;
  for (auto& t : want) {
    const std::string src = prefix + t.name;
    expected.insert(src);
    const tensor_entry* e = ck.find(src);
    if (!e) return make_error(errc::not_found, ck.dir() + ": tensor " + src + " of the vision tower is missing");
    if (e->shape != t.shape) {
      std::string got, exp;
      for (auto d : e->shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
      for (auto d : t.shape) exp += (exp.empty() ? "" : ", ") + std::to_string(d);
      return make_error(errc::shape_mismatch, ck.dir() + ": " + src + " is [" + got + "], vision_config makes it [" + exp + "]");
    }
  }
  for (auto& e : ck.tensors())
    if (e.name.rfind(prefix, 0) == 0 && !expected.count(e.name))
      return make_error(errc::unsupported, ck.dir() + ": " + e.name +
                                               " is not a tensor of the Qwen3-VL vision tower (llama.cpp's converter "
                                               "cannot map it either)");
  // The converter's order: shards by file name, each shard's tensors by name (gguf-py's SafetensorsLocal sorts them).
  std::vector<std::pair<std::string, const vision_tensor*>> order;
  for (auto& t : want) {
    const tensor_entry* e = ck.find(prefix + t.name);
    order.push_back({fs::path(ck.shards()[size_t(e->shard)]).filename().string() + '\n' + e->name, &t});
  }
  std::sort(order.begin(), order.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (auto& [key, tp] : order) {
    const vision_tensor& t = *tp;
    const std::string src = prefix + t.name;
    if (t.name == "patch_embed.proj.weight") {  // the Conv3d, split along its temporal axis
      const std::vector<int64_t> slice = {t.shape[0], t.shape[1], t.shape[3], t.shape[4]};
      plan.tensors.push_back({"v.patch_embd.weight", src, 0, reversed(slice), ggml::type::f32, "", 0});
      plan.tensors.push_back({"v.patch_embd.weight.1", src, 1, reversed(slice), ggml::type::f32, "", 0});
      continue;
    }
    const std::string name = gguf_name(t.name, v);
    if (name.empty()) return make_error(errc::internal, "mmproj: no GGUF name for " + src);
    plan.tensors.push_back({name, src, -1, reversed(t.shape), ggml::type::f32, "", 0});
  }
  for (auto& t : plan.tensors) {
    choose_type(t, o.type);
    if (t.type != o.type && o.type == ggml::type::q8_0 && t.type == ggml::type::f16) plan.notes.push_back(t.name + ": " + t.why);
  }

  // Metadata, in the converter's order (GGUFWriter keeps insertion order).
  std::string name = o.name;
  if (name.empty()) name = fs::path(ck.dir()).filename().string();
  if (name.empty()) name = fs::path(ck.dir()).parent_path().filename().string();
  const int64_t image_size =
      v.image_size > 0 ? v.image_size
                       : int64_t(std::sqrt(double(v.num_position_embeddings)) * double(v.patch_size));
  const double eps = cfg.nested ? cfg.rms_norm_eps : 1e-6;  // text_config.rms_norm_eps, as the converter reads it
  auto u32 = [](int64_t x) { return value::u32(uint32_t(x)); };
  auto& kv = plan.metadata;
  kv.push_back({"general.architecture", value::str("clip")});
  kv.push_back({"general.type", value::str("mmproj")});
  kv.push_back({"general.name", value::str(name)});
  kv.push_back({"general.quantized_by", value::str("razor " RAZOR_VERSION)});
  kv.push_back({"general.file_type", value::u32(ggml::info(o.type).ftype)});
  kv.push_back({"clip.has_vision_encoder", value::boolean(true)});
  kv.push_back({"clip.vision.projection_dim", u32(cfg.hidden_size)});
  kv.push_back({"clip.vision.image_size", u32(image_size)});
  kv.push_back({"clip.vision.patch_size", u32(v.patch_size)});
  kv.push_back({"clip.vision.embedding_length", u32(v.hidden_size)});
  kv.push_back({"clip.vision.feed_forward_length", u32(v.intermediate_size)});
  kv.push_back({"clip.vision.block_count", u32(v.depth)});
  kv.push_back({"clip.vision.attention.head_count", u32(v.num_heads)});
  kv.push_back({"clip.vision.image_mean", value::f32s(mean)});
  kv.push_back({"clip.vision.image_std", value::f32s(stdev)});
  kv.push_back({"clip.projector_type", value::str(kMmprojProjector)});
  kv.push_back({"clip.use_gelu", value::boolean(true)});
  if (v.has_spatial_merge_size) kv.push_back({"clip.vision.spatial_merge_size", u32(v.spatial_merge_size)});
  kv.push_back({"clip.vision.attention.layer_norm_epsilon", value::f32(float(eps))});
  std::vector<uint8_t> deep(size_t(v.depth), 0);
  for (auto i : v.deepstack_visual_indexes) deep[size_t(i)] = 1;
  kv.push_back({"clip.vision.is_deepstack_layers", value::array_raw(value_type::boolean, deep, deep.size())});
  kv.push_back({"general.quantization_version", value::u32(2)});

  writer w;
  for (auto& [k, val] : kv) w.set(k, val);
  for (auto& t : plan.tensors) RAZOR_TRY(w.add_tensor(t.name, t.ne, uint32_t(t.type)));
  plan.file_bytes = w.planned_bytes();
  return plan;
}

result<mmproj_plan> write_mmproj(const std::string& model_dir, const std::string& out_path, const mmproj_options& o) {
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model_dir));
  const std::vector<std::string> inputs = {model_dir};
  RAZOR_TRY(check_gguf_output(out_path, inputs).error());
  RAZOR_ASSIGN_OR_RETURN(mmproj_plan plan, plan_mmproj(ck, o));
  writer w;
  for (auto& [k, val] : plan.metadata) w.set(k, val);
  for (auto& t : plan.tensors) RAZOR_TRY(w.add_tensor(t.name, t.ne, uint32_t(t.type)));
  RAZOR_TRY(w.begin(out_path));
  uint64_t total = 0, done = 0;
  for (auto& t : plan.tensors) total += t.bytes;
  std::vector<float> src, f;  // src: the patch embedding's Conv3d, read once for its two slices
  std::string src_name;
  std::vector<uint8_t> q;
  ggml::quantize_options qo;
  qo.threads = o.threads;
  for (auto& t : plan.tensors) {
    const tensor_entry* e = ck.find(t.source);
    if (!e) return make_error(errc::not_found, model_dir + ": " + t.source + " disappeared");
    const uint64_t n = numel(t.ne);
    if (t.temporal >= 0) {  // [H, C, 2, P, P]: the P x P kernels of temporal slice t
      if (src_name != t.source) {
        RAZOR_ASSIGN_OR_RETURN(src, ck.read_f32(*e));
        src_name = t.source;
      }
      if (src.size() != 2 * n) return make_error(errc::internal, t.source + ": read " + std::to_string(src.size()) + " values");
      const uint64_t kk = uint64_t(t.ne[0] * t.ne[1]);
      f.resize(n);
      for (uint64_t hc = 0; hc < n / kk; ++hc)
        std::copy_n(src.data() + (hc * 2 + uint64_t(t.temporal)) * kk, kk, f.data() + hc * kk);
    } else {
      RAZOR_ASSIGN_OR_RETURN(f, ck.read_f32(*e));
      if (f.size() != n) return make_error(errc::internal, t.source + ": read " + std::to_string(f.size()) + " values");
    }
    q.resize(t.bytes);
    const int64_t per_row = t.ne[0], rows = int64_t(n / uint64_t(per_row));
    RAZOR_ASSIGN_OR_RETURN(size_t wrote, ggml::quantize_tensor(t.type, f.data(), q.data(), q.size(), rows, per_row, nullptr, qo));
    if (wrote != q.size()) return make_error(errc::internal, t.name + ": quantizer wrote " + std::to_string(wrote) + " bytes");
    RAZOR_TRY(w.write(q.data(), q.size()));
    done += q.size();
    if (o.progress && !o.progress(double(done), double(total), t.name.c_str())) {
      w.abort();
      return make_error(errc::cancelled, "mmproj export cancelled at " + t.name);
    }
  }
  RAZOR_TRY(ck.check_mapped());
  RAZOR_TRY(check_gguf_output(out_path, inputs).error());  // a file may have appeared there meanwhile
  RAZOR_TRY(w.finish());
  plan.paths = w.paths();
  plan.file_bytes = w.total_bytes();
  // Read back through the clip table; a file that fails it is ours and wrong: removed (plan_mmproj refuses every
  // input that would lead there, so this is an internal error).
  status back = [&]() -> status {
    RAZOR_ASSIGN_OR_RETURN(file f, file::open(out_path));
    return check_mmproj(f);
  }();
  if (!back.ok()) {
    std::error_code ec;
    fs::remove(out_path, ec);
    return make_error(errc::internal, "mmproj: the written file fails llama.cpp's requirements, removed: " + back.message());
  }
  return plan;
}

// ---- what llama.cpp's clip loader requires (tools/mtmd/clip.cpp, models/qwen3vl.cpp) -----------------------
namespace {

// Keys load_hparams reads for a vision qwen3vl_merger file, with the GGUF type its gguf_get_val_* asserts.
struct key_rule {
  const char* key;
  value_type type;
  bool required;
  value_type elem = value_type::u8;  // arrays
};
constexpr key_rule kClipKeys[] = {
    {"clip.has_vision_encoder", value_type::boolean, true},
    {"clip.projector_type", value_type::string, true},
    {"clip.vision.embedding_length", value_type::u32, true},
    {"clip.vision.attention.head_count", value_type::u32, true},
    {"clip.vision.attention.head_dim", value_type::u32, false},
    {"clip.vision.attention.head_count_kv", value_type::u32, false},
    {"clip.vision.feed_forward_length", value_type::u32, true},
    {"clip.vision.block_count", value_type::u32, true},
    {"clip.vision.projection_dim", value_type::u32, true},
    {"clip.vision.attention.layer_norm_epsilon", value_type::f32, true},
    {"clip.vision.image_size", value_type::u32, true},
    {"clip.vision.patch_size", value_type::u32, true},
    {"clip.use_gelu", value_type::boolean, false},
    {"clip.use_silu", value_type::boolean, false},
    {"clip.vision.image_mean", value_type::array, true, value_type::f32},   // at least 3
    {"clip.vision.image_std", value_type::array, true, value_type::f32},
    {"clip.vision.spatial_merge_size", value_type::u32, false},
    {"clip.vision.n_wa_pattern", value_type::u32, false},
    {"clip.vision.is_deepstack_layers", value_type::array, false, value_type::boolean},  // the converter's; unread
};

// A tensor the loader / graph takes: its shape (-1: any) and the types allowed.
struct tensor_rule {
  std::vector<int64_t> ne;
  std::vector<ggml::type> types;
  bool required = true;
};

}  // namespace

status check_mmproj(const file& f) {
  const std::string& fn = f.path();
  auto bad = [&](const std::string& m) { return make_error(errc::bad_format, fn + ": " + m); };
  for (auto& r : kClipKeys) {
    const value* val = f.find(r.key);
    if (!val) {
      if (r.required) return bad(std::string("key ") + r.key + " is missing (clip.cpp requires it)");
      continue;
    }
    if (val->type() != r.type)
      return bad(std::string("key ") + r.key + " is " + std::string(value_type_name(val->type())) + ", clip.cpp reads " +
                 std::string(value_type_name(r.type)));
    if (r.type == value_type::array && val->elem_type() != r.elem)
      return bad(std::string("key ") + r.key + " holds " + std::string(value_type_name(val->elem_type())) + ", not " +
                 std::string(value_type_name(r.elem)));
    if (r.type == value_type::u32 && *val->as_uint() > uint64_t(INT32_MAX))
      return bad(std::string("key ") + r.key + " exceeds INT32_MAX");
  }
  if (!f.find("clip.vision.image_mean") || f.find("clip.vision.image_mean")->size() < 3 ||
      f.find("clip.vision.image_std")->size() < 3)
    return bad("image_mean / image_std hold fewer than 3 values");
  if (*f.get_int("clip.has_vision_encoder") != 1) return bad("clip.has_vision_encoder is false");
  if (*f.get_string("clip.projector_type") != kMmprojProjector)
    return bad("clip.projector_type is \"" + *f.get_string("clip.projector_type") + "\", not " + kMmprojProjector);
  if (f.get_int("clip.use_gelu").value_or(0) && f.get_int("clip.use_silu").value_or(0))
    return bad("both clip.use_gelu and clip.use_silu are set");
  const int64_t E = *f.get_int("clip.vision.embedding_length"), H = *f.get_int("clip.vision.attention.head_count"),
                F = *f.get_int("clip.vision.feed_forward_length"), L = *f.get_int("clip.vision.block_count"),
                P = *f.get_int("clip.vision.projection_dim"), ps = *f.get_int("clip.vision.patch_size"),
                img = *f.get_int("clip.vision.image_size");
  const int64_t merge = f.get_int("clip.vision.spatial_merge_size").value_or(2);
  if (E <= 0 || H <= 0 || E % H != 0) return bad("embedding_length " + std::to_string(E) + " is not a multiple of head_count " + std::to_string(H));
  if (L <= 0 || L > kMaxVisionDepth) return bad("block_count " + std::to_string(L) + " is out of range");
  if (merge != 2) return bad("spatial_merge_size " + std::to_string(merge) + ": the qwen3vl_merger graph merges 2 x 2");
  if (ps <= 0) return bad("patch_size is 0");
  if (auto* ds = f.find("clip.vision.is_deepstack_layers"); ds && int64_t(ds->size()) != L)
    return bad("is_deepstack_layers has " + std::to_string(ds->size()) + " entries for " + std::to_string(L) + " blocks");

  using T = ggml::type;
  const std::vector<T> f32{T::f32}, conv{T::f32, T::f16}, mat{T::f32, T::f16, T::bf16, T::q8_0};
  std::map<std::string, tensor_rule> rules;
  rules["v.patch_embd.weight"] = {{ps, ps, 3, E}, conv};
  rules["v.patch_embd.weight.1"] = {{ps, ps, 3, E}, conv};
  rules["v.patch_embd.bias"] = {{E}, f32};
  rules["v.position_embd.weight"] = {{E, -1}, f32};
  for (int64_t l = 0; l < L; ++l) {
    const std::string b = "v.blk." + std::to_string(l) + ".";
    rules[b + "attn_qkv.weight"] = {{E, 3 * E}, mat};
    rules[b + "attn_qkv.bias"] = {{3 * E}, f32};
    rules[b + "attn_out.weight"] = {{E, E}, mat};
    rules[b + "attn_out.bias"] = {{E}, f32};
    for (const char* ln : {"ln1", "ln2"}) {
      rules[b + ln + ".weight"] = {{E}, f32};
      rules[b + ln + ".bias"] = {{E}, f32};
    }
    rules[b + "ffn_up.weight"] = {{E, F}, mat};
    rules[b + "ffn_up.bias"] = {{F}, f32};
    rules[b + "ffn_down.weight"] = {{F, E}, mat};
    rules[b + "ffn_down.bias"] = {{E}, f32};
    // deepstack merger of block l: optional, all of it or none (the graph builds it when fc1 is there)
    const std::string d = "v.deepstack." + std::to_string(l) + ".";
    rules[d + "norm.weight"] = {{4 * E}, f32, false};
    rules[d + "norm.bias"] = {{4 * E}, f32, false};
    rules[d + "fc1.weight"] = {{4 * E, -1}, mat, false};
    rules[d + "fc1.bias"] = {{-1}, f32, false};
    rules[d + "fc2.weight"] = {{-1, P}, mat, false};
    rules[d + "fc2.bias"] = {{P}, f32, false};
  }
  rules["v.post_ln.weight"] = {{E}, f32, false};
  rules["v.post_ln.bias"] = {{E}, f32, false};
  rules["mm.0.weight"] = {{4 * E, -1}, mat};  // the graph reshapes the blocks' output to 4 x n_embd rows
  rules["mm.0.bias"] = {{-1}, f32};
  rules["mm.2.weight"] = {{-1, P}, mat};
  rules["mm.2.bias"] = {{P}, f32};
  for (auto& t : f.tensors()) {
    auto it = rules.find(t.name);
    if (it == rules.end()) return bad("tensor " + t.name + " is not one clip.cpp's qwen3vl_merger loader reads");
    const tensor_rule& r = it->second;
    bool shape_ok = t.ne.size() == r.ne.size();
    for (size_t i = 0; shape_ok && i < r.ne.size(); ++i) shape_ok = r.ne[i] < 0 || t.ne[i] == r.ne[i];
    if (!shape_ok) {
      std::string got, exp;
      for (auto d : t.ne) got += (got.empty() ? "" : ", ") + std::to_string(d);
      for (auto d : r.ne) exp += (exp.empty() ? "" : ", ") + (d < 0 ? std::string("*") : std::to_string(d));
      return bad("tensor " + t.name + " is {" + got + "}, clip.cpp expects {" + exp + "}");
    }
    if (std::find_if(r.types.begin(), r.types.end(), [&](T x) { return uint32_t(x) == t.type; }) == r.types.end()) {
      const type_traits* tt = find_type(t.type);
      return bad("tensor " + t.name + " is " + (tt ? tt->name : std::to_string(t.type)) + ", not a type clip.cpp takes there");
    }
  }
  for (auto& [name, r] : rules)
    if (r.required && !f.find_tensor(name)) return bad("tensor " + name + " is missing (clip.cpp requires it)");
  // Widths that must agree across tensors.
  auto ne = [&](const char* n, size_t i) { return f.find_tensor(n)->ne[i]; };
  const int64_t npos = ne("v.position_embd.weight", 1), side = int64_t(std::llround(std::sqrt(double(npos))));
  if (side * side != npos) return bad("v.position_embd.weight holds " + std::to_string(npos) + " positions, not a square grid");
  if (side * ps != img)
    return bad("image_size " + std::to_string(img) + " is not the position grid's " + std::to_string(side) + " x patch_size " +
               std::to_string(ps));
  if (ne("mm.0.bias", 0) != ne("mm.0.weight", 1) || ne("mm.2.weight", 0) != ne("mm.0.weight", 1))
    return bad("mm.0 / mm.2 widths disagree");
  for (int64_t l = 0; l < L; ++l) {
    const std::string d = "v.deepstack." + std::to_string(l) + ".";
    int present = 0;
    for (const char* s : {"norm.weight", "norm.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"})
      present += f.find_tensor(d + s) != nullptr;
    if (present != 0 && present != 6) return bad("deepstack merger " + d + "* is incomplete");
    if (present && (ne((d + "fc1.bias").c_str(), 0) != ne((d + "fc1.weight").c_str(), 1) ||
                    ne((d + "fc2.weight").c_str(), 0) != ne((d + "fc1.weight").c_str(), 1)))
      return bad("deepstack merger " + d + "* widths disagree");
    if (auto* ds = f.find("clip.vision.is_deepstack_layers"); ds && (ds->int_at(size_t(l)) != 0) != (present == 6))
      return bad("is_deepstack_layers[" + std::to_string(l) + "] disagrees with the tensors of " + d + "*");
  }
  return {};
}

}  // namespace razor::gguf
