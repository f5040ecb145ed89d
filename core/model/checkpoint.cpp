#include "model/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "model/mxfp4.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"
#include "util/numeric.h"
#include "util/parallel.h"
#include "util/printable.h"

namespace fs = std::filesystem;

namespace razor {

// tensor_entry::scale of an FP8 weight whose scales have a layout razor does not read.
constexpr int kOtherScale = -2;

static uint64_t expert_key(int layer, int expert, expert_proj p) {
  return (uint64_t(uint32_t(layer)) << 32) | (uint64_t(uint32_t(expert)) << 4) | uint64_t(p);
}

result<checkpoint> checkpoint::open(const std::string& dir_in) {
  checkpoint ck;
  fs::path dir(dir_in);
  // Every filesystem query takes an error_code: a symlink loop (ELOOP) or an unreadable entry in the folder is
  // an error that names the path, never a filesystem_error thrown through the caller.
  std::error_code ec;
  const bool is_dir = fs::is_directory(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory)
    return make_error(errc::io, printable(dir_in) + ": " + ec.message());
  if (!is_dir) return make_error(errc::not_found, printable(dir_in) + ": not a directory");
  ck.dir_ = dir.string();
  fs::path cfg_path = dir / "config.json";
  auto present = [&](const fs::path& p) -> result<bool> {
    std::error_code e;
    auto st = fs::status(p, e);
    if (e && e != std::errc::no_such_file_or_directory)
      return make_error(errc::io, printable(p.string()) + ": " + e.message());
    return fs::exists(st);
  };
  RAZOR_ASSIGN_OR_RETURN(bool has_cfg, present(cfg_path));
  if (!has_cfg)
    return make_error(errc::not_found,
                      printable(cfg_path.string()) + ": missing (a checkpoint directory needs config.json)");
  RAZOR_ASSIGN_OR_RETURN(ck.cfg_, load_model_config(cfg_path.string()));
  ck.adapter_ = &adapter_for(ck.cfg_);

  // Which shards, and which tensor the index places in which shard.
  std::vector<std::string> shard_names;
  std::unordered_map<std::string, std::string> index_map;
  fs::path index_path = dir / "model.safetensors.index.json";
  RAZOR_ASSIGN_OR_RETURN(bool has_index, present(index_path));
  if (has_index) {
    const std::string ip = printable(index_path.string());
    json_limits lim;
    lim.max_bytes = 256u << 20;
    lim.unique_keys = true;  // a tensor named twice in weight_map: which shard holds it?
    RAZOR_ASSIGN_OR_RETURN(nlohmann::json j, read_json_file(index_path.string(), lim));
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      return make_error(errc::bad_format, ip + ": needs a \"weight_map\" object");
    // An empty map names no shard: the checkpoint would silently have no tensors (and quantize would copy
    // whatever *.safetensors lie beside it unchanged).
    if (j["weight_map"].empty())
      return make_error(errc::bad_format, ip + ": weight_map is empty (it must name the shard of every tensor)");
    std::set<std::string> seen;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string())
        return make_error(errc::bad_format, ip + ": weight_map['" + printable(it.key()) + "'] is not a file name");
      std::string f = it.value().get<std::string>();
      if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
        return make_error(errc::bad_format, ip + ": shard name '" + printable(f) + "' is not a plain file name");
      index_map[it.key()] = f;
      if (seen.insert(f).second) shard_names.push_back(f);
    }
    std::sort(shard_names.begin(), shard_names.end());
    for (auto& s : shard_names) {
      RAZOR_ASSIGN_OR_RETURN(bool has_shard, present(dir / s));
      if (!has_shard)
        return make_error(errc::not_found, printable((dir / s).string()) + ": shard named by " +
                                               index_path.filename().string() + " is missing");
    }
  } else {
    fs::directory_iterator it(dir, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      const fs::path& p = it->path();
      if (p.extension() != ".safetensors") continue;
      std::error_code fe;
      const bool regular = it->is_regular_file(fe);
      if (fe) return make_error(errc::io, printable(p.string()) + ": " + fe.message());
      if (regular) shard_names.push_back(p.filename());
    }
    if (ec) return make_error(errc::io, printable(dir_in) + ": cannot list the folder: " + ec.message());
    std::sort(shard_names.begin(), shard_names.end());
    if (shard_names.empty()) return make_error(errc::not_found, printable(dir_in) + ": no *.safetensors files");
  }

  for (size_t s = 0; s < shard_names.size(); ++s) {
    std::string p = (dir / shard_names[s]).string();
    RAZOR_ASSIGN_OR_RETURN(safetensors_file f, safetensors_file::open(p));
    ck.shard_paths_.push_back(p);
    ck.files_.push_back(std::make_unique<safetensors_file>(std::move(f)));
    const auto& h = ck.files_.back()->header();
    for (auto& t : h.tensors) {
      if (ck.by_name_.count(t.name))
        return make_error(errc::bad_format, printable(p) + ": tensor '" + printable(t.name) + "' is also in " +
                                                printable(ck.shard_paths_[size_t(ck.tensors_[ck.by_name_[t.name]].shard)]) +
                                                " (a tensor name must be unique in the checkpoint)");
      if (!index_map.empty()) {
        auto it = index_map.find(t.name);
        if (it == index_map.end())
          return make_error(errc::bad_format, printable(p) + ": tensor '" + printable(t.name) + "' is missing from " +
                                                  index_path.filename().string() +
                                                  "'s weight_map (the index must cover every tensor of its shards)");
        if (it->second != shard_names[s])
          return make_error(errc::bad_format, printable(p) + ": tensor '" + printable(t.name) +
                                                  "' is here but the index places it in " + printable(it->second));
      }
      tensor_entry e;
      static_cast<tensor_desc&>(e) = t;
      e.shard = int(s);
      e.offset = h.data_offset + t.begin;
      e.nbytes = t.nbytes();
      e.cls = classify_tensor(e.name, e.shape, ck.cfg_);
      ck.by_name_[e.name] = ck.tensors_.size();
      ck.tensors_.push_back(std::move(e));
    }
  }
  for (auto& [name, file] : index_map)
    if (!ck.by_name_.count(name))
      return make_error(errc::not_found, printable((dir / file).string()) + ": does not hold tensor '" +
                                             printable(name) + "' that the index places there");

  RAZOR_TRY(ck.bind_block_scales());
  RAZOR_TRY(ck.bind_mxfp4());

  // Prefix of the text model's layers.
  ck.prefix_ = "model.";
  for (auto& t : ck.tensors_) {
    if (t.name.rfind("model.language_model.", 0) == 0) {
      ck.prefix_ = "model.language_model.";
      break;
    }
  }
  // Expert views.
  for (auto& t : ck.tensors_) {
    if (t.cls.role != tensor_role::routed_expert || t.cls.layer < 0 || t.shape.size() < 2) continue;
    const int L = t.cls.layer;
    if (!t.cls.fused && t.cls.expert >= 0 && t.shape.size() == 2) {
      if (t.cls.proj == expert_proj::gate_up) {
        int64_t half = t.shape[0] / 2;
        ck.experts_[expert_key(L, t.cls.expert, expert_proj::gate)] = {&t, 0, half, t.shape[1]};
        ck.experts_[expert_key(L, t.cls.expert, expert_proj::up)] = {&t, half, half, t.shape[1]};
      } else if (t.cls.proj != expert_proj::none) {
        ck.experts_[expert_key(L, t.cls.expert, t.cls.proj)] = {&t, 0, t.shape[0], t.shape[1]};
      }
    } else if (t.cls.fused && t.shape.size() == 3 && ck.adapter_->name != "gpt_oss") {
      const int64_t E = t.shape[0], out = t.shape[1], in = t.shape[2];
      for (int64_t e = 0; e < E; ++e) {
        if (t.cls.proj == expert_proj::gate_up) {
          ck.experts_[expert_key(L, int(e), expert_proj::gate)] = {&t, e * out, out / 2, in};
          ck.experts_[expert_key(L, int(e), expert_proj::up)] = {&t, e * out + out / 2, out / 2, in};
        } else if (t.cls.proj != expert_proj::none) {
          ck.experts_[expert_key(L, int(e), t.cls.proj)] = {&t, e * out, out, in};
        }
      }
    }
  }
  if (ck.adapter_->name == "gpt_oss") ck.bind_gpt_oss_experts();
  return ck;
}

void checkpoint::bind_gpt_oss_experts() {
  // gate_up_proj (gate = even rows, up = odd rows of each expert's [2 x intermediate, hidden]) and down_proj: BF16
  // as [E, in, out], MXFP4 (_blocks, values [E, out, in] once bound) as the other linear maps.
  for (int64_t L = 0; L < cfg_.num_layers; ++L) {
    for (const bool gate_up : {true, false}) {
      const std::string base = prefix_ + "layers." + std::to_string(L) + ".mlp.experts." + (gate_up ? "gate_up_proj" : "down_proj");
      const tensor_entry* t = find(base);
      bool transposed = true;
      if (!t || t->shape.size() != 3) {
        t = find(base + "_blocks");
        transposed = false;
        if (!t || !t->mxfp4 || t->shape.size() != 3) continue;
      }
      const int64_t E = t->shape[0], out = transposed ? t->shape[2] : t->shape[1], in = transposed ? t->shape[1] : t->shape[2];
      if (gate_up && out % 2) continue;  // config_check names the shape
      for (int64_t e = 0; e < E; ++e) {
        if (gate_up) {
          experts_[expert_key(int(L), int(e), expert_proj::gate)] = {t, e * out, out / 2, in, 2, transposed};
          experts_[expert_key(int(L), int(e), expert_proj::up)] = {t, e * out + 1, out / 2, in, 2, transposed};
        } else {
          experts_[expert_key(int(L), int(e), expert_proj::down)] = {t, e * out, out, in, 1, transposed};
        }
      }
    }
  }
}

const tensor_entry* checkpoint::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

const tensor_entry* checkpoint::find_text(std::string_view suffix) const {
  if (auto* t = find(prefix_ + std::string(suffix))) return t;
  return find(suffix);
}

const uint8_t* checkpoint::data(const tensor_entry& t) const {
  return files_[size_t(t.shard)]->map().data() + t.offset;
}

status checkpoint::check_mapped() const {
  for (auto& f : files_) RAZOR_TRY(f->map().check());
  return {};
}

status checkpoint::bind_block_scales() {
  const std::string cfg_name = printable((fs::path(dir_) / "config.json").string());
  int64_t br = 0, bc = 0;
  bool block_fp8 = false, other_fp8 = false;  // other_fp8: FP8 with per-tensor / per-channel scales
  if (cfg_.raw.is_object() && cfg_.raw.contains("quantization_config")) {
    const auto& qc = cfg_.raw["quantization_config"];
    const bool fp8 = qc.is_object() && qc.contains("quant_method") && qc["quant_method"] == "fp8";
    if (fp8 && !qc.contains("weight_block_size")) other_fp8 = true;
    if (fp8 && qc.contains("weight_block_size")) {
      const auto& b = qc["weight_block_size"];
      constexpr int64_t kMaxBlock = 1 << 16;  // the Hub uses 128; anything this large is a broken file
      if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer() ||
          b[0].get<int64_t>() < 1 || b[1].get<int64_t>() < 1 || b[0].get<int64_t>() > kMaxBlock ||
          b[1].get<int64_t>() > kMaxBlock)
        return make_error(errc::bad_format, cfg_name + ": quantization_config.weight_block_size must be two integers in [1, " +
                                                std::to_string(kMaxBlock) + "], got " + printable(b.dump()));
      br = b[0].get<int64_t>();
      bc = b[1].get<int64_t>();
      block_fp8 = true;
    }
  }
  static constexpr std::string_view kSuffix = "_scale_inv";
  for (size_t i = 0; i < tensors_.size(); ++i) {
    tensor_entry& t = tensors_[i];
    if (t.dt != dtype::f8_e4m3) continue;
    auto it = by_name_.find(t.name + std::string(kSuffix));
    if (it == by_name_.end()) {
      if (block_fp8 && t.shape.size() >= 2)
        return make_error(errc::bad_format, printable(shard_paths_[size_t(t.shard)]) + ": FP8 weight '" + printable(t.name) +
                                                "' has no '" + printable(t.name) + std::string(kSuffix) +
                                                "' although config.json declares FP8 block scales");
      // Scales of another layout (a "weight_scale" beside it, or fp8 without weight_block_size): read_f32 refuses
      // it rather than returning unscaled values. Without any scale, FP8 is read as is (scale 1).
      const std::string base = t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".weight") == 0
                                   ? t.name.substr(0, t.name.size() - 7)
                                   : t.name;
      if (other_fp8 || by_name_.count(base + ".weight_scale") || by_name_.count(t.name + "_scale")) t.scale = kOtherScale;
      continue;
    }
    const tensor_entry& s = tensors_[it->second];
    const std::string where = printable(shard_paths_[size_t(s.shard)]) + ": '" + printable(s.name) + "'";
    if (!block_fp8)
      return make_error(errc::bad_format, where + " is a block scale but " + cfg_name +
                                              " has no quantization_config {\"quant_method\": \"fp8\", \"weight_block_size\": [..]}");
    if (s.dt != dtype::f32 && s.dt != dtype::bf16 && s.dt != dtype::f16)
      return make_error(errc::bad_format, where + ": a block scale must be F32, BF16 or F16, not " + std::string(dtype_name(s.dt)));
    if (t.shape.size() < 2)
      return make_error(errc::bad_format, where + ": block scales need a weight of at least 2 dimensions, '" +
                                              printable(t.name) + "' has " + std::to_string(t.shape.size()));
    std::vector<int64_t> want(t.shape.begin(), t.shape.end() - 2);
    want.push_back((t.shape[t.shape.size() - 2] + br - 1) / br);
    want.push_back((t.shape.back() + bc - 1) / bc);
    if (s.shape != want) {
      auto str = [](const std::vector<int64_t>& v) {
        std::string o = "[";
        for (size_t k = 0; k < v.size(); ++k) o += (k ? ", " : "") + std::to_string(v[k]);
        return o + "]";
      };
      return make_error(errc::shape_mismatch, where + " has shape " + str(s.shape) + ", the " + std::to_string(br) + "x" +
                                                  std::to_string(bc) + " blocks of '" + printable(t.name) + "' " +
                                                  str(t.shape) + " need " + str(want));
    }
    t.scale = int(it->second);
    t.block_rows = br;
    t.block_cols = bc;
  }
  return {};
}

status checkpoint::bind_mxfp4() {
  const std::string cfg_name = printable((fs::path(dir_) / "config.json").string());
  bool declared = false;
  if (cfg_.raw.is_object() && cfg_.raw.contains("quantization_config")) {
    const auto& qc = cfg_.raw["quantization_config"];
    declared = qc.is_object() && qc.contains("quant_method") && qc["quant_method"] == "mxfp4";
  }
  static constexpr std::string_view kBlocks = "_blocks", kScales = "_scales";
  auto shape_str = [](const std::vector<int64_t>& v) {
    std::string o = "[";
    for (size_t k = 0; k < v.size(); ++k) o += (k ? ", " : "") + std::to_string(v[k]);
    return o + "]";
  };
  for (tensor_entry& t : tensors_) {
    if (t.dt != dtype::u8 || t.name.size() <= kBlocks.size() ||
        t.name.compare(t.name.size() - kBlocks.size(), kBlocks.size(), kBlocks) != 0)
      continue;
    const std::string base = t.name.substr(0, t.name.size() - kBlocks.size());
    const std::string where = printable(shard_paths_[size_t(t.shard)]) + ": '" + printable(t.name) + "'";
    auto it = by_name_.find(base + std::string(kScales));
    if (it == by_name_.end()) {
      if (declared)
        return make_error(errc::bad_format, where + " has no '" + printable(base) + std::string(kScales) + "' although " +
                                                cfg_name + " declares MXFP4 (quant_method mxfp4)");
      continue;  // a plain U8 tensor
    }
    if (!declared)
      return make_error(errc::bad_format, where + " and its scales are MXFP4, but " + cfg_name +
                                              " has no quantization_config {\"quant_method\": \"mxfp4\"}");
    const tensor_entry& s = tensors_[it->second];
    const std::string swhere = printable(shard_paths_[size_t(s.shard)]) + ": '" + printable(s.name) + "'";
    if (t.shape.size() < 3 || t.shape.back() != kMxfp4BlockBytes)
      return make_error(errc::shape_mismatch, where + " has shape " + shape_str(t.shape) + "; MXFP4 blocks are [..., rows, " +
                                                  "blocks, 16] (16 bytes of codes a block of 32 values)");
    const std::vector<int64_t> want(t.shape.begin(), t.shape.end() - 1);
    if (s.dt != dtype::u8 || s.shape != want)
      return make_error(errc::shape_mismatch, swhere + " is " + std::string(dtype_name(s.dt)) + " " + shape_str(s.shape) +
                                                  "; the MXFP4 scales of " + printable(t.name) + " " + shape_str(t.shape) +
                                                  " are U8 " + shape_str(want) + " (one E8M0 exponent a block)");
    t.scale = int(it->second);
    t.mxfp4 = true;
    t.shape = want;
    t.shape.back() *= kMxfp4Block;  // the values: [..., rows, blocks x 32]
  }
  return {};
}

status checkpoint::read_mxfp4(const tensor_entry& t, int64_t first, int64_t count, float* out) const {
  const tensor_entry& s = tensors_[size_t(t.scale)];
  if (!mxfp4_decode(data(t), data(s), first, count, out)) {
    const uint8_t* sc = data(s);
    int64_t b = first / kMxfp4Block;
    while (b < (first + count + kMxfp4Block - 1) / kMxfp4Block && sc[b] != kE8m0Nan) ++b;
    return make_error(errc::bad_format, printable(shard_paths_[size_t(s.shard)]) + ": '" + printable(s.name) +
                                            "': the scale of block " + std::to_string(b) +
                                            " is 255, NaN in E8M0 (values " + std::to_string(b * kMxfp4Block) + " to " +
                                            std::to_string(b * kMxfp4Block + kMxfp4Block - 1) + " of '" +
                                            printable(t.name) + "')");
  }
  return {};
}

status checkpoint::read_f32(const tensor_entry& t, int64_t first, int64_t count, float* out) const {
  // A large read (an embedding, an output head: 3 GB of floats in the 122B) widens on all cores.
  constexpr int64_t kPiece = int64_t(1) << 22;
  if (count > 4 * kPiece) {
    if (first < 0 || count < 0 || first + count > t.numel())
      return make_error(errc::invalid_argument, t.name + ": element range out of bounds");
    const size_t pieces = size_t((count + kPiece - 1) / kPiece);
    std::vector<status> st(pieces);
    parallel_for(pieces, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) {
        const int64_t off = int64_t(i) * kPiece;
        st[i] = read_f32_unchecked(t, first + off, std::min(kPiece, count - off), out + off);
      }
    });
    for (auto& s : st) RAZOR_TRY(std::move(s));
  } else {
    RAZOR_TRY(read_f32_unchecked(t, first, count, out));
  }
  if (t.scale >= 0) RAZOR_TRY(files_[size_t(tensors_[size_t(t.scale)].shard)]->map().check());
  return files_[size_t(t.shard)]->map().check();
}

status checkpoint::read_fp8_scaled(const tensor_entry& t, int64_t first, int64_t count, float* out) const {
  const tensor_entry& s = tensors_[size_t(t.scale)];
  const uint8_t* p = data(t);
  const int64_t C = t.shape.back(), R = t.shape[t.shape.size() - 2];
  const int64_t nbr = (R + t.block_rows - 1) / t.block_rows, nbc = (C + t.block_cols - 1) / t.block_cols;
  std::vector<float> srow(static_cast<size_t>(nbc));
  int64_t loaded = -1;  // the block row of the scales in srow
  for (int64_t i = 0; i < count;) {
    const int64_t e = first + i, row = e / C, col0 = e % C;
    const int64_t n = std::min(count - i, C - col0);
    const int64_t brow = (row / R) * nbr + (row % R) / t.block_rows;
    if (brow != loaded) {
      RAZOR_TRY(read_f32_unchecked(s, brow * nbc, nbc, srow.data()));
      loaded = brow;
    }
    // Column block by column block: one scale for each run of up to block_cols elements.
    for (int64_t c = col0; c < col0 + n;) {
      const int64_t bc = c / t.block_cols, end = std::min(col0 + n, (bc + 1) * t.block_cols);
      const float sc = srow[size_t(bc)];
      for (; c < end; ++c) out[i + c - col0] = fp8_e4m3_to_f32(p[e + c - col0]) * sc;
    }
    i += n;
  }
  return {};
}

// count stored values of type T (unaligned, little-endian as the host) to float through `to_f32`.
template <class T, class F>
static void widen(const uint8_t* p, int64_t count, float* out, F to_f32) {
  for (int64_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, p + sizeof(T) * size_t(i), sizeof(T));
    out[i] = to_f32(v);
  }
}

status checkpoint::read_f32_unchecked(const tensor_entry& t, int64_t first, int64_t count, float* out) const {
  if (first < 0 || count < 0 || first + count > t.numel())
    return make_error(errc::invalid_argument, t.name + ": element range out of bounds");
  if (t.mxfp4) return read_mxfp4(t, first, count, out);
  const uint8_t* p = data(t) + uint64_t(first) * dtype_size(t.dt);
  switch (t.dt) {
    case dtype::f32:
      std::memcpy(out, p, size_t(count) * 4);
      return {};
    case dtype::bf16:
      widen<uint16_t>(p, count, out, bf16_to_f32);
      return {};
    case dtype::f16:
      widen<uint16_t>(p, count, out, f16_to_f32);
      return {};
    case dtype::f64:
      widen<double>(p, count, out, [](double d) { return float(d); });
      return {};
    case dtype::f8_e4m3:
      if (t.scale >= 0) return read_fp8_scaled(t, first, count, out);
      if (t.scale == kOtherScale)
        return make_error(errc::unsupported, t.name + ": FP8 with per-tensor or per-channel scales (weight_scale) is not "
                                                      "supported; razor reads the block layout (weight_scale_inv per "
                                                      "quantization_config.weight_block_size block)");
      for (int64_t i = 0; i < count; ++i) out[i] = fp8_e4m3_to_f32(p[i]);
      return {};
    default:
      return make_error(errc::unsupported, t.name + ": cannot read " + std::string(dtype_name(t.dt)) + " as float");
  }
}

result<std::vector<float>> checkpoint::read_f32(const tensor_entry& t) const {
  std::vector<float> v(size_t(t.numel()));
  RAZOR_TRY(read_f32(t, 0, t.numel(), v.data()));
  return v;
}

status checkpoint::read_rows_f32(const matrix_view& v, float* out) const {
  if (!v.t) return make_error(errc::invalid_argument, "empty matrix view");
  if (v.plain()) return read_f32(*v.t, v.row0 * v.n_cols, v.n_rows * v.n_cols, out);
  if (!v.transposed) {
    for (int64_t i = 0; i < v.n_rows; ++i)
      RAZOR_TRY(read_f32(*v.t, (v.row0 + i * v.row_step) * v.n_cols, v.n_cols, out + i * v.n_cols));
    return {};
  }
  // [E, in, out]: the expert's slab, then its columns row0 % out, + row_step, ...
  const int64_t width = v.t->shape.back(), in = v.n_cols, e = v.row0 / width, j0 = v.row0 % width;
  if (width <= 0 || j0 + (v.n_rows - 1) * v.row_step >= width)
    return make_error(errc::invalid_argument, v.t->name + ": a transposed view crosses an expert");
  std::vector<float> slab(size_t(in * width));
  RAZOR_TRY(read_f32(*v.t, e * in * width, in * width, slab.data()));
  for (int64_t i = 0; i < v.n_rows; ++i)
    for (int64_t c = 0; c < in; ++c) out[i * in + c] = slab[size_t(c * width + j0 + i * v.row_step)];
  return {};
}

std::optional<matrix_view> checkpoint::expert_matrix(int layer, int expert, expert_proj p) const {
  auto it = experts_.find(expert_key(layer, expert, p));
  if (it == experts_.end()) return std::nullopt;
  return it->second;
}

void checkpoint::advise_sequential(const tensor_entry& t) const {
  files_[size_t(t.shard)]->map().will_need(t.offset, t.nbytes);
}

void checkpoint::release(const tensor_entry& t) const {
  files_[size_t(t.shard)]->map().dont_need(t.offset, t.nbytes);
}

}  // namespace razor
