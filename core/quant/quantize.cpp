#include "quant/quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "model/footprint.h"
#include "model/safetensors.h"
#include "quant/fake_quant.h"
#include "util/atomic_file.h"
#include "util/output_guard.h"
#include "util/stale_partials.h"
#include "util/fnv.h"
#include "util/json_limits.h"
#include "util/numeric.h"
#include "util/printable.h"

static_assert(razor::quant::kMaxClipSteps == razor::kMaxRecipeClipSteps, "a recipe's clip_steps bound is the quantizer's");

namespace fs = std::filesystem;

namespace razor::quant {

namespace {

elem_type to_elem(dtype d) {
  return d == dtype::bf16 ? elem_type::bf16 : d == dtype::f16 ? elem_type::f16 : elem_type::f32;
}

nlohmann::json stats_json(const fq_stats& s, double bits, int n_ratios) {
  nlohmann::json j;
  j["bits"] = bits;
  j["rel_error"] = s.rel_error();
  j["groups"] = s.groups;
  if (n_ratios > 1) {
    std::vector<uint64_t> h(s.clip_hist.begin(), s.clip_hist.begin() + n_ratios);
    j["clip_hist"] = h;
  }
  return j;
}

fq_stats stats_from_json(const nlohmann::json& j) {
  fq_stats s;
  s.n = j.at("n").get<uint64_t>();
  s.groups = j.at("groups").get<uint64_t>();
  s.sq_err = j.at("sq_err").get<double>();
  s.sq_ref = j.at("sq_ref").get<double>();
  s.sum_checksum = j.at("sum_checksum").get<uint64_t>();
  auto h = j.at("clip_hist").get<std::vector<uint64_t>>();
  for (size_t i = 0; i < std::min(h.size(), s.clip_hist.size()); ++i) s.clip_hist[i] = h[i];
  return s;
}

nlohmann::json raw_stats_json(const fq_stats& s) {
  return {{"n", s.n},
          {"groups", s.groups},
          {"sq_err", s.sq_err},
          {"sq_ref", s.sq_ref},
          {"sum_checksum", s.sum_checksum},
          {"clip_hist", std::vector<uint64_t>(s.clip_hist.begin(), s.clip_hist.end())}};
}

// What the tensors of one run (whole or part) add up to, in the order they were written.
struct run_acc {
  fq_stats all;
  nlohmann::json tensors = nlohmann::json::object();
  nlohmann::json experts = nlohmann::json::array();
  nlohmann::json raw = nlohmann::json::object();  // tensor -> raw fq_stats (parts only)
  std::map<double, int64_t> params_by_bits;
  bool used_cpu = false, used_gpu = false;
  std::vector<uint8_t> buf;
  std::vector<uint8_t> fp8_bf16;  // an FP8 slice dequantized to BF16
  std::vector<float> fp8_f32;
  std::vector<float> xf_f32;      // a slice rewritten by quantize_options::transform
  // The recipe's expert method (recipe_method) and what it did: slices quantized, RTN fallbacks by reason.
  quant_method method = quant_method::clip;
  calib_source calib;
  int64_t method_slices = 0;
  std::map<std::string, int64_t> fallbacks;
  std::vector<float> qf;          // a slice through method_fake_quant
  // GPTQ batched over one layer's expert slices of one projection and shape (gptq_fake_quant_batch, when
  // quantize_options::allow_gpu): results by (tensor, slice) until written; gq_seen: slices already batched.
  struct gq_result {
    std::vector<float> q;
    method_report rep;
  };
  std::map<std::pair<const tensor_entry*, size_t>, gq_result> gq;
  std::set<std::pair<const tensor_entry*, size_t>> gq_seen;
  bool gptq_cpu = false, gptq_gpu = false;  // where GPTQ ran (ptq_meta "gptq_device": cpu, cuda or cpu+cuda)
};

// The seed's _ptq_meta fields for the summary (and a part's manifest).
nlohmann::json ptq_meta_json(const recipe& r, const run_acc& acc, const nlohmann::json& calib_info) {
  nlohmann::json j = calib_info.is_object() ? calib_info : nlohmann::json::object();
  j["method"] = std::string(quant_method_name(acc.method));
  auto role = [&](tensor_role ro) -> nlohmann::json {
    auto it = r.role_bits.find(ro);
    return it == r.role_bits.end() ? nlohmann::json(kKeepBits) : nlohmann::json(it->second);
  };
  j["expert_bits"] = r.expert_bits.empty() ? role(tensor_role::routed_expert) : nlohmann::json("per-expert");
  j["linear_bits"] = role(tensor_role::attention);
  j["group"] = r.group;
  j["backbone"] = r.clip_steps > 0 ? "clip search " + std::to_string(r.clip_steps) : std::string("absmax");
  j["expert_slices"] = acc.method_slices;
  nlohmann::json fb = nlohmann::json::object();
  int64_t nfb = 0;
  for (auto& [why, n] : acc.fallbacks) fb[why] = n, nfb += n;
  j["fallbacks"] = fb;
  j["fallback_slices"] = nfb;
  if (acc.method == quant_method::gptq && (acc.gptq_cpu || acc.gptq_gpu))
    j["gptq_device"] = acc.gptq_cpu && acc.gptq_gpu ? "cpu+cuda" : acc.gptq_gpu ? "cuda" : "cpu";
  return j;
}

// FP8 sources (model/checkpoint.h): every F8_E4M3 weight is written dequantized as BF16 (fake-quantized or
// kept), its *_scale_inv is not written, and config.json loses quantization_config: the output is a plain BF16
// checkpoint any evaluator loads.
dtype out_dtype(const tensor_entry& t) { return t.dt == dtype::f8_e4m3 ? dtype::bf16 : t.dt; }

// The block scales bound to an FP8 weight (dropped from the output), by tensor index.
std::vector<bool> bound_scales(const checkpoint& ck) {
  std::vector<bool> out(ck.tensors().size(), false);
  for (auto& t : ck.tensors())
    if (t.scale >= 0) out[size_t(t.scale)] = true;
  return out;
}
bool is_bound_scale(const checkpoint& ck, const std::vector<bool>& bound, const tensor_entry& t) {
  return bound[size_t(&t - ck.tensors().data())];
}

// config.json without quantization_config, the index without the dropped scales (and the output's size).
status rewrite_fp8_side_files(const checkpoint& ck, const std::string& dst, const std::vector<bool>& bound) {
  json_limits lim;
  lim.max_bytes = 256u << 20;
  const std::string cfg = dst + "/config.json";
  RAZOR_ASSIGN_OR_RETURN(nlohmann::json c, read_json_file(cfg, lim));
  if (c.is_object()) c.erase("quantization_config");
  RAZOR_TRY(write_file_atomic(cfg, c.dump(2) + "\n"));
  const std::string idx = dst + "/model.safetensors.index.json";
  std::error_code ec;
  if (!fs::exists(idx, ec)) return {};
  RAZOR_ASSIGN_OR_RETURN(nlohmann::json j, read_json_file(idx, lim));
  uint64_t total = 0;
  for (auto& t : ck.tensors()) {
    if (is_bound_scale(ck, bound, t)) {
      j["weight_map"].erase(t.name);
      continue;
    }
    total += uint64_t(t.numel()) * dtype_size(out_dtype(t));
  }
  if (j.contains("metadata") && j["metadata"].is_object()) j["metadata"]["total_size"] = total;
  return write_file_atomic(idx, j.dump(2) + "\n");
}

std::string backend_name(bool cpu, bool gpu) { return cpu && gpu ? "cpu+cuda" : gpu ? "cuda" : "cpu"; }

// The source tensors of each shard, in file order (the order every output shard repeats).
std::vector<std::vector<const tensor_entry*>> tensors_by_shard(const checkpoint& ck) {
  std::vector<std::vector<const tensor_entry*>> out(ck.shards().size());
  for (auto& t : ck.tensors()) out[size_t(t.shard)].push_back(&t);
  for (auto& v : out) std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  return out;
}

status copy_side_files(const checkpoint& ck, const std::string& dst, const std::string& summary_name) {
  std::error_code ec;
  std::set<std::string> shard_names;
  for (auto& s : ck.shards()) shard_names.insert(fs::path(s).filename().string());
  // error_code overloads throughout: an entry that cannot be examined (a symlink loop) is an error naming it.
  fs::directory_iterator it(ck.dir(), ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code fe;
    const bool regular = it->is_regular_file(fe);
    if (fe) return make_error(errc::io, printable(it->path().string()) + ": " + fe.message());
    if (!regular) continue;
    std::string name = it->path().filename().string();
    int64_t pid = 0;
    // Not the source's own output marker, nor a temporary another razor process writes (or left) there.
    if (shard_names.count(name) || name == summary_name || name == kOutputMarker || is_partial_name(name, &pid)) continue;
    fs::copy_file(it->path(), fs::path(dst) / name, fs::copy_options::overwrite_existing, fe);
    if (fe) return make_error(errc::io, printable((fs::path(dst) / name).string()) + ": " + fe.message());
  }
  if (ec) return make_error(errc::io, printable(ck.dir()) + ": " + ec.message());
  return {};
}

status check_dtypes(const checkpoint& ck, const recipe& r, const layer_selection& sel) {
  for (auto& t : ck.tensors()) {
    if (!sel.contains(t.cls.layer)) continue;
    RAZOR_ASSIGN_OR_RETURN(double b, r.tensor_bits(t));
    bool any_q = b < kKeepBits;
    if (t.cls.fused && r.expert_bits.count(t.cls.layer)) any_q = true;
    if (any_q && t.dt != dtype::bf16 && t.dt != dtype::f16 && t.dt != dtype::f32 && t.dt != dtype::f8_e4m3)
      return make_error(errc::unsupported, t.name + ": cannot fake-quantize " + std::string(dtype_name(t.dt)));
  }
  return {};
}

// Quantizes (or copies) one tensor into w and records its statistics in acc. done/total: progress in bytes.
status quantize_tensor(const checkpoint& ck, const recipe& r, const tensor_entry& t, const quantize_options& opt,
                       safetensors_writer& w, run_acc& acc, bool keep_raw, uint64_t done, uint64_t total,
                       const progress_fn& progress, const std::string& out_dir) {
  const uint8_t* src = ck.data(t);
  const bool fused_mixed = t.cls.fused && t.shape.size() == 3 && r.expert_bits.count(t.cls.layer);
  RAZOR_ASSIGN_OR_RETURN(const double tbits, r.tensor_bits(t));
  // Slice by slice: one expert of a fused tensor, or the whole 2-D tensor.
  const size_t cols = size_t(t.cols());
  const size_t rows = size_t(t.rows());
  const size_t n_slices = t.shape.size() == 3 ? size_t(t.shape[0]) : 1;
  const size_t slice_rows = rows / n_slices;
  const bool fp8 = t.dt == dtype::f8_e4m3;
  const dtype odt = out_dtype(t);
  const size_t es = dtype_size(odt);
  // Slice sl's bytes in the output dtype: the source's, or an FP8 slice dequantized (its block scales) to BF16.
  auto slice_bytes = [&](size_t sl) -> result<const uint8_t*> {
    const size_t n = slice_rows * cols;
    if (!fp8) return src + sl * n * es;
    acc.fp8_f32.resize(n);
    acc.fp8_bf16.resize(n * 2);
    RAZOR_TRY(ck.read_f32(t, int64_t(sl * n), int64_t(n), acc.fp8_f32.data()));
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = f32_to_bf16(acc.fp8_f32[i]);
      std::memcpy(&acc.fp8_bf16[2 * i], &h, 2);
    }
    return acc.fp8_bf16.data();
  };
  const bool transformed = opt.transform && opt.transform.applies(t);
  if (!fused_mixed && tbits >= kKeepBits && !transformed) {
    if (!fp8) {
      RAZOR_TRY(w.write(src, t.nbytes));
    } else {
      for (size_t sl = 0; sl < n_slices; ++sl) {
        RAZOR_ASSIGN_OR_RETURN(const uint8_t* in, slice_bytes(sl));
        RAZOR_TRY(w.write(in, slice_rows * cols * es));
      }
    }
    acc.params_by_bits[kKeepBits] += t.numel();
    return {};
  }
  fq_stats tstats;
  auto slice_bits = [&](size_t sl) -> result<double> {
    if (fused_mixed) return r.expert_tag(t, int(sl));
    return tbits;
  };
  const bool gptq_batched =
      t.cls.role == tensor_role::routed_expert && acc.method == quant_method::gptq && opt.allow_gpu;
  // GPTQ of slice sl and of the layer's other expert slices of this shape and bits not yet batched (the fused
  // tensor's later slices, or the other experts' tensors: down with down, gate with up), bounded to ~256 MiB of weights, into acc.gq.
  auto gptq_chunk = [&](size_t sl0, double bits) -> status {
    const size_t n = slice_rows * cols;
    const size_t cap = std::max<size_t>(1, (size_t(64) << 20) / n);
    std::vector<std::pair<const tensor_entry*, size_t>> cand{{&t, sl0}};
    auto same = [&](const tensor_entry& u) {
      return u.cls.role == tensor_role::routed_expert && u.cls.layer == t.cls.layer &&
             (u.cls.proj == t.cls.proj || (u.cls.proj != expert_proj::down && t.cls.proj != expert_proj::down)) &&
             u.cls.fused == t.cls.fused && u.shape == t.shape && u.dt == t.dt;
    };
    if (n_slices > 1) {
      for (size_t s2 = sl0 + 1; s2 < n_slices && cand.size() < cap; ++s2) {
        RAZOR_ASSIGN_OR_RETURN(double b2, slice_bits(s2));
        if (b2 == bits) cand.push_back({&t, s2});
      }
    } else {
      for (auto& u : ck.tensors()) {
        if (cand.size() >= cap) break;
        if (&u == &t || !same(u) || acc.gq_seen.count({&u, 0}) || !opt.layers.contains(u.cls.layer)) continue;
        auto b2 = r.tensor_bits(u);
        if (b2.ok() && *b2 == bits) cand.push_back({&u, 0});
      }
    }
    std::vector<float> ws(cand.size() * n);
    std::vector<gptq_batch_item> items(cand.size());
    std::vector<run_acc::gq_result*> res(cand.size());
    for (size_t k = 0; k < cand.size(); ++k) {
      const tensor_entry& u = *cand[k].first;
      const size_t s2 = cand[k].second;
      float* wk = ws.data() + k * n;
      // the float32 values the per-slice path quantizes (quantize_tensor's `wf`)
      RAZOR_TRY(ck.read_f32(u, int64_t(s2 * n), int64_t(n), wk));
      if (opt.transform && opt.transform.applies(u)) {
        RAZOR_TRY(opt.transform.apply(u, s2, slice_rows, cols, wk));
      } else if (out_dtype(u) == dtype::bf16) {
        for (size_t i = 0; i < n; ++i) wk[i] = bf16_to_f32(f32_to_bf16(wk[i]));
      }
      const int expert = u.cls.fused ? int(s2) : u.cls.expert;
      run_acc::gq_result& g = acc.gq[cand[k]];
      g.q.resize(n);
      res[k] = &g;
      acc.gq_seen.insert(cand[k]);
      items[k].w = wk;
      items[k].tokens = acc.calib ? acc.calib(u.cls.layer, expert, u.cls.proj == expert_proj::down) : calib_view{};
      items[k].out = g.q.data();
      items[k].rep = &g.rep;
    }
    bool gpu = false;
    status st = gptq_fake_quant_batch(items, slice_rows, cols, bits, r.group, true, &gpu);
    if (!st.ok())
      return make_error(st.code(), t.name + " (GPTQ of " + std::to_string(cand.size()) + " expert slices of layer " +
                                       std::to_string(t.cls.layer) + "): " + st.message());
    (gpu ? acc.gptq_gpu : acc.gptq_cpu) = true;
    (gpu ? acc.used_gpu : acc.used_cpu) = true;
    return {};
  };
  for (size_t sl = 0; sl < n_slices; ++sl) {
    RAZOR_ASSIGN_OR_RETURN(const double bits, slice_bits(sl));
    const size_t nbytes = slice_rows * cols * es;
    const uint8_t* in = nullptr;
    elem_type in_type = to_elem(odt);
    if (transformed) {  // the slice as float32, rewritten by the transform (quantize_options::transform)
      const size_t n = slice_rows * cols;
      acc.xf_f32.resize(n);
      RAZOR_TRY(ck.read_f32(t, int64_t(sl * n), int64_t(n), acc.xf_f32.data()));
      RAZOR_TRY(opt.transform.apply(t, sl, slice_rows, cols, acc.xf_f32.data()));
      in = reinterpret_cast<const uint8_t*>(acc.xf_f32.data());
      in_type = elem_type::f32;
    } else {
      RAZOR_ASSIGN_OR_RETURN(in, slice_bytes(sl));
    }
    acc.params_by_bits[bits] += int64_t(slice_rows * cols);
    if (bits >= kKeepBits) {
      if (!transformed) {
        RAZOR_TRY(w.write(in, nbytes));
      } else {  // kept: the transformed values in the output dtype (identity tag: a rounded copy)
        acc.buf.resize(nbytes);
        RAZOR_TRY(fake_quant(in, in_type, acc.buf.data(), to_elem(odt), slice_rows, cols,
                             fq_params{float(kKeepBits), r.group, 0}));
        RAZOR_TRY(w.write(acc.buf.data(), nbytes));
      }
      continue;
    }
    if (t.cls.role == tensor_role::routed_expert && acc.method != quant_method::clip) {
      // The recipe's expert method (recipe_method): float32 in, the dequantized values written in the output dtype.
      const size_t n = slice_rows * cols;
      const float* wf = reinterpret_cast<const float*>(in);
      if (in_type != elem_type::f32) {
        acc.xf_f32.resize(n);
        RAZOR_TRY(fake_quant(in, in_type, acc.xf_f32.data(), elem_type::f32, slice_rows, cols,
                             fq_params{float(kKeepBits), r.group, 0}));
        wf = acc.xf_f32.data();
      }
      const int expert = t.cls.fused ? int(sl) : t.cls.expert;
      acc.qf.resize(n);
      method_report mr;
      if (gptq_batched) {
        const std::pair<const tensor_entry*, size_t> key{&t, sl};
        if (!acc.gq.count(key)) RAZOR_TRY(gptq_chunk(sl, bits));
        auto it = acc.gq.find(key);
        if (it == acc.gq.end()) return make_error(errc::internal, t.name + ": GPTQ batch lost a slice");
        acc.qf.swap(it->second.q);
        mr = it->second.rep;
        acc.gq.erase(it);
      } else {
        const calib_view cv =
            acc.calib ? acc.calib(t.cls.layer, expert, t.cls.proj == expert_proj::down) : calib_view{};
        status st =
            method_fake_quant(acc.method, wf, slice_rows, cols, bits, r.group, r.clip_steps, cv, acc.qf.data(), &mr);
        if (!st.ok()) return make_error(st.code(), t.name + " (expert " + std::to_string(expert) + "): " + st.message());
        acc.used_cpu = true;
        if (acc.method == quant_method::gptq) acc.gptq_cpu = true;
      }
      ++acc.method_slices;
      if (!mr.fallback.empty()) ++acc.fallbacks[mr.fallback];
      acc.buf.resize(nbytes);
      RAZOR_TRY(fake_quant(acc.qf.data(), elem_type::f32, acc.buf.data(), to_elem(odt), slice_rows, cols,
                           fq_params{float(kKeepBits), r.group, 0}));
      fq_stats ss;
      ss.n = n;
      const size_t glen = (r.group > 0 && cols % size_t(r.group) == 0) ? size_t(r.group) : cols;
      ss.groups = slice_rows * (cols / glen);
      for (size_t i = 0; i < n; ++i) {
        const double e = double(acc.qf[i]) - wf[i];
        ss.sq_err += e * e;
        ss.sq_ref += double(wf[i]) * wf[i];
      }
      RAZOR_TRY(w.write(acc.buf.data(), nbytes));
      auto ej = stats_json(ss, bits, 1);
      ej["layer"] = t.cls.layer;
      ej["expert"] = expert;
      ej["proj"] = proj_name(t.cls.proj);
      ej["tensor"] = t.name;
      if (!mr.fallback.empty()) ej["fallback"] = mr.fallback;
      acc.experts.push_back(std::move(ej));
      tstats.merge(ss);
      if (progress && !progress(double(done + (sl + 1) * slice_rows * cols * dtype_size(t.dt)), double(total), t.name.c_str()))
        return make_error(errc::cancelled, out_dir + ": cancelled; nothing was written under the final name");
      continue;
    }
    acc.buf.resize(nbytes);
    fq_params p{float(bits), r.group, r.clip_steps};
    fq_stats ss;
    if (in_type == elem_type::bf16 && opt.allow_gpu) {
      RAZOR_ASSIGN_OR_RETURN(fq_backend be, fake_quant_bf16_auto(reinterpret_cast<const uint16_t*>(in),
                                                                 reinterpret_cast<uint16_t*>(acc.buf.data()),
                                                                 slice_rows, cols, p, &ss));
      (be == fq_backend::cuda ? acc.used_gpu : acc.used_cpu) = true;
    } else {
      RAZOR_TRY(fake_quant(in, in_type, acc.buf.data(), to_elem(odt), slice_rows, cols, p, &ss));
      acc.used_cpu = true;
    }
    RAZOR_TRY(w.write(acc.buf.data(), nbytes));
    if (t.cls.role == tensor_role::routed_expert) {
      auto ej = stats_json(ss, bits, r.clip_steps);
      ej["layer"] = t.cls.layer;
      ej["expert"] = t.cls.fused ? int(sl) : t.cls.expert;
      ej["proj"] = proj_name(t.cls.proj);
      ej["tensor"] = t.name;
      acc.experts.push_back(std::move(ej));
    }
    tstats.merge(ss);
    if (progress && !progress(double(done + (sl + 1) * slice_rows * cols * dtype_size(t.dt)), double(total), t.name.c_str()))
      return make_error(errc::cancelled, out_dir + ": cancelled; nothing was written under the final name");
  }
  acc.all.merge(tstats);
  auto tj = stats_json(tstats, fused_mixed ? -1.0 : tbits, r.clip_steps);
  tj["group"] = (r.group > 0 && cols % size_t(r.group) == 0) ? r.group : int(cols);
  tj["role"] = role_name(t.cls.role);
  acc.tensors[t.name] = std::move(tj);
  if (keep_raw) acc.raw[t.name] = raw_stats_json(tstats);
  return {};
}

nlohmann::json params_by_bits_json(const std::map<double, int64_t>& m) {
  nlohmann::json pbb = nlohmann::json::object();
  for (auto& [b, n] : m) {
    char key[32];
    std::snprintf(key, sizeof key, "%g", b);
    pbb[key] = n;
  }
  return pbb;
}

result<nlohmann::json> make_summary(const checkpoint& ck, const recipe& r, const run_acc& acc,
                                    const std::string& backend, double seconds) {
  RAZOR_ASSIGN_OR_RETURN(footprint fp, compute_footprint(ck, r));
  nlohmann::json sum;
  sum["format"] = "razor.quant_summary/1";
  sum["source"] = ck.dir();
  sum["recipe"] = r.to_json();
  sum["backend"] = backend;
  sum["seconds"] = seconds;
  sum["totals"] = {{"quantized_elements", acc.all.n},
                   {"rel_error", acc.all.rel_error()},
                   {"seed_effective_bits", fp.seed_effective_bits()},
                   {"effective_bits_with_scales", fp.effective_bits_with_scales()},
                   {"packed_gb", fp.packed_bytes() / 1e9},
                   {"seed_footprint_gb", fp.seed_footprint_gb()}};
  sum["totals"]["params_by_bits"] = params_by_bits_json(acc.params_by_bits);
  sum["tensors"] = acc.tensors;
  sum["experts"] = acc.experts;
  return sum;
}

// The recipe's method and its tokens into acc; an error when the method needs tokens the options lack.
status set_method(const recipe& r, const quantize_options& opt, run_acc& acc) {
  RAZOR_ASSIGN_OR_RETURN(acc.method, recipe_method(r));
  acc.calib = opt.calib;
  if (quant_method_needs_tokens(acc.method) && !opt.calib)
    return make_error(errc::invalid_argument, "recipe " + (r.path.empty() ? r.name : r.path) + ": method " +
                                                  std::string(quant_method_name(acc.method)) +
                                                  " needs calibration tokens per expert (razor quantize --text / "
                                                  "--calib-tokens; core/engine/calib_tokens.h)");
  return {};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One tensor written: progress advanced, cancellation reported naming the output.
status tensor_done(const progress_fn& progress, uint64_t& done, uint64_t total, const tensor_entry& t,
                   const std::string& out_dir) {
  done += t.nbytes;
  if (progress && !progress(double(done), double(total), t.name.c_str()))
    return make_error(errc::cancelled, out_dir + ": cancelled; nothing was written under the final name");
  return {};
}

// The report's common part: time, bytes read, where it ran.
quantize_report start_report(std::chrono::steady_clock::time_point t0, uint64_t total, const run_acc& acc) {
  quantize_report rep;
  rep.seconds = seconds_since(t0);
  rep.bytes_in = total;
  rep.backend = backend_name(acc.used_cpu, acc.used_gpu);
  return rep;
}

}  // namespace

result<quant_method> recipe_method(const recipe& r) {
  const std::string where = "recipe " + (r.path.empty() ? r.name : r.path);
  if (!r.extra.is_object() || !r.extra.contains("method") || r.extra["method"].is_null()) return quant_method::clip;
  const nlohmann::json& m = r.extra["method"];
  if (!m.is_string()) return make_error(errc::bad_recipe, where + ": \"method\" must be a string");
  auto q = parse_quant_method(m.get<std::string>());
  if (!q.ok()) return make_error(errc::bad_recipe, where + ": \"method\": " + q.error().message());
  return *q;
}

namespace {
// method_fake_quant's options for the methods other than clip / absmax: integer bits 2..8, a group dividing cols.
result<method_options> method_opts(quant_method m, size_t cols, double bits, int group) {
  const long b = std::lround(bits);
  if (std::fabs(bits - double(b)) > 1e-9 || b < 2 || b > 8)
    return make_error(errc::bad_recipe, "method " + std::string(quant_method_name(m)) +
                                            " quantizes to integer bits 2 to 8, not " + bits_text(bits));
  method_options o;
  o.bits = int(b);
  o.group = (group > 0 && cols % size_t(group) == 0) ? group : int64_t(cols);
  return o;
}
}  // namespace

status method_fake_quant(quant_method m, const float* w, size_t rows, size_t cols, double bits, int group,
                         int clip_steps, const calib_view& tokens, float* out, method_report* rep) {
  if (m == quant_method::clip || m == quant_method::absmax)
    return fake_quant(w, elem_type::f32, out, elem_type::f32, rows, cols,
                      fq_params{float(bits), group, m == quant_method::clip ? clip_steps : 0});
  RAZOR_ASSIGN_OR_RETURN(method_options o, method_opts(m, cols, bits, group));
  RAZOR_ASSIGN_OR_RETURN(std::vector<float> q, fake_quant_method(m, w, int64_t(rows), int64_t(cols), tokens, o, rep));
  if (q.size() != rows * cols) return make_error(errc::internal, "fake_quant_method returned a wrong size");
  std::copy(q.begin(), q.end(), out);
  return {};
}

status gptq_fake_quant_batch(const std::vector<gptq_batch_item>& items, size_t rows, size_t cols, double bits,
                             int group, bool allow_gpu, bool* used_gpu) {
  if (used_gpu) *used_gpu = false;
  RAZOR_ASSIGN_OR_RETURN(method_options o, method_opts(quant_method::gptq, cols, bits, group));
  o.device = allow_gpu ? compute_device::auto_ : compute_device::cpu;
  return gptq_quantize_batch(items, int64_t(rows), int64_t(cols), o, used_gpu);
}

std::string checkpoint_fingerprint(const checkpoint& ck) {
  fnv1a64 h;
  for (auto& t : ck.tensors()) {
    h.field(t.name);
    h.field(dtype_name(t.dt));
    for (auto d : t.shape) h.field(std::to_string(d));
    h.field(fs::path(ck.shards()[size_t(t.shard)]).filename().string());
  }
  return h.hex();
}

result<quantize_report> quantize_checkpoint(const checkpoint& ck, const recipe& rin, const std::string& out_dir,
                                            const quantize_options& opt, const progress_fn& progress) {
  auto t0 = std::chrono::steady_clock::now();
  recipe r = rin;
  r.resolve(ck.config());  // a two-level study recipe gets its per-expert bits for this model
  const layer_selection& sel = opt.layers;
  const bool part = !sel.all;
  if (part && sel.has_range() && sel.last > ck.config().num_layers)
    return make_error(errc::invalid_argument, "--layers " + sel.to_string() + ": " + ck.dir() + " has " +
                                                  std::to_string(ck.config().num_layers) + " layers");
  // Reject what we cannot write faithfully before anything is written.
  RAZOR_TRY(check_dtypes(ck, r, sel));
  const std::vector<bool> bound = bound_scales(ck);
  const bool fp8_source = std::find(bound.begin(), bound.end(), true) != bound.end();
  if (fp8_source && part)
    return make_error(errc::unsupported, ck.dir() + ": quantize --layers of an FP8 checkpoint is not supported (its "
                                                    "parts would change dtypes that merge checks): quantize it whole");
  atomic_dir dir;
  std::vector<std::string> inputs{ck.dir()};
  inputs.insert(inputs.end(), opt.extra_inputs.begin(), opt.extra_inputs.end());
  RAZOR_TRY(dir.open(out_dir, part ? "quantize --layers " + sel.to_string() : "quantize", std::move(inputs)));
  if (!part) RAZOR_TRY(copy_side_files(ck, dir.path(), opt.summary_name));  // config, tokenizer, index, ...
  if (fp8_source) RAZOR_TRY(rewrite_fp8_side_files(ck, dir.path(), bound));
  uint64_t total = 0;
  for (auto& t : ck.tensors())
    if (sel.contains(t.cls.layer)) total += t.nbytes;
  uint64_t done = 0;
  run_acc acc;
  RAZOR_TRY(set_method(r, opt, acc));
  nlohmann::json files = nlohmann::json::object();
  auto by_shard = tensors_by_shard(ck);
  for (size_t s = 0; s < by_shard.size(); ++s) {
    std::vector<const tensor_entry*> in_shard;
    for (auto* t : by_shard[s])
      if (sel.contains(t->cls.layer) && !is_bound_scale(ck, bound, *t)) in_shard.push_back(t);
    if (part && in_shard.empty()) continue;
    const std::string file = fs::path(ck.shards()[s]).filename().string();
    safetensors_writer w;
    for (auto* t : in_shard) RAZOR_TRY(w.add(t->name, out_dtype(*t), t->shape));
    RAZOR_TRY(w.begin(dir.path() + "/" + file));
    for (auto* tp : in_shard) {
      RAZOR_TRY(quantize_tensor(ck, r, *tp, opt, w, acc, part, done, total, progress, out_dir));
      RAZOR_TRY(ck.check_mapped());  // a shard truncated while it was read (util/mapped_file.h)
      if (part) files[tp->name] = file;
      RAZOR_TRY(tensor_done(progress, done, total, *tp, out_dir));
    }
    RAZOR_TRY(w.finish());
  }
  quantize_report rep = start_report(t0, total, acc);
  if (part) {
    nlohmann::json pj;
    pj["format"] = "razor.quant_part/1";
    pj["source"] = ck.dir();
    pj["source_fingerprint"] = checkpoint_fingerprint(ck);
    pj["layers"] = sel.to_string();
    pj["recipe"] = r.to_json();
    pj["backend"] = rep.backend;
    pj["seconds"] = rep.seconds;
    pj["bytes"] = total;
    pj["files"] = files;
    pj["tensors"] = acc.tensors;
    pj["tensor_stats"] = acc.raw;
    pj["experts"] = acc.experts;
    pj["ptq_meta"] = ptq_meta_json(r, acc, opt.calib_info);
    nlohmann::json pbb = nlohmann::json::array();
    for (auto& [b, n] : acc.params_by_bits) pbb.push_back({b, n});
    pj["params_by_bits"] = pbb;
    RAZOR_TRY(write_file_atomic(dir.path() + "/" + kQuantPartManifest, dump_json(pj, 1) + "\n"));
    RAZOR_TRY(dir.commit());
    rep.summary = std::move(pj);
    return rep;
  }
  // The index (when the source had one) is copied above unchanged: same tensor -> shard mapping.
  RAZOR_ASSIGN_OR_RETURN(nlohmann::json sum, make_summary(ck, r, acc, rep.backend, rep.seconds));
  sum["ptq_meta"] = ptq_meta_json(r, acc, opt.calib_info);
  RAZOR_TRY(write_file_atomic(dir.path() + "/" + opt.summary_name, dump_json(sum, 1) + "\n"));
  RAZOR_TRY(dir.commit());
  rep.summary = std::move(sum);
  return rep;
}

namespace {

struct loaded_part {
  std::string dir;
  nlohmann::json manifest;
  std::map<std::string, std::unique_ptr<safetensors_file>> files;  // file name -> opened shard
};

status part_error(const loaded_part& p, const std::string& what) {
  return make_error(errc::bad_format, "part " + p.dir + ": " + what);
}

}  // namespace

result<quantize_report> merge_quantize_parts(const checkpoint& ck, const recipe& rin,
                                             const std::vector<std::string>& part_dirs, const std::string& out_dir,
                                             const quantize_options& opt, const progress_fn& progress) {
  auto t0 = std::chrono::steady_clock::now();
  recipe r = rin;
  r.resolve(ck.config());
  const nlohmann::json recipe_json = r.to_json();
  const std::string fingerprint = checkpoint_fingerprint(ck);
  if (part_dirs.empty()) return make_error(errc::invalid_argument, "merge: no parts given");
  std::vector<loaded_part> parts(part_dirs.size());
  std::map<std::string, size_t> owner;  // tensor -> part index
  for (size_t i = 0; i < part_dirs.size(); ++i) {
    loaded_part& p = parts[i];
    p.dir = part_dirs[i];
    const std::string mpath = p.dir + "/" + kQuantPartManifest;
    std::error_code ec;
    if (!fs::is_directory(p.dir, ec))
      return make_error(errc::not_found, "part " + p.dir + " does not exist (its task did not finish or failed)");
    if (!fs::exists(mpath, ec))
      return make_error(errc::not_found, "part " + p.dir + ": " + kQuantPartManifest +
                                             " is missing (not a finished razor quantize --layers part)");
    auto mj = read_json_file(mpath);
    if (!mj.ok()) return mj.error();
    p.manifest = std::move(mj).value();
    if (!p.manifest.is_object()) return part_error(p, std::string(kQuantPartManifest) + " is not a JSON object");
    if (p.manifest.value("format", "") != "razor.quant_part/1")
      return part_error(p, "not a razor.quant_part/1 manifest");
    if (p.manifest.value("source_fingerprint", "") != fingerprint)
      return make_error(errc::invalid_argument, "part " + p.dir + " was made from another checkpoint (" +
                                                    p.manifest.value("source", "?") + ") than " + ck.dir());
    if (p.manifest["recipe"] != recipe_json)
      return make_error(errc::invalid_argument, "part " + p.dir + " was made with another recipe than the merge's");
    for (auto& [name, file] : p.manifest["files"].items()) {
      auto [it, fresh] = owner.emplace(name, i);
      if (!fresh)
        return make_error(errc::invalid_argument, "tensor " + name + " is in two parts: " + parts[it->second].dir +
                                                      " and " + p.dir + " (overlapping layer ranges)");
      const std::string fname = file.get<std::string>();
      if (fname.find('/') != std::string::npos) return part_error(p, "bad file name " + fname);
      if (!p.files.count(fname)) {
        auto f = safetensors_file::open(p.dir + "/" + fname);
        if (!f.ok()) return make_error(f.error().code(), "part " + p.dir + ": " + f.error().message());
        p.files[fname] = std::make_unique<safetensors_file>(std::move(f).value());
      }
    }
  }
  // Every source tensor exactly once, with the same dtype and shape.
  std::map<std::string, const st_tensor*> found;
  for (auto& t : ck.tensors()) {
    auto it = owner.find(t.name);
    if (it == owner.end())
      return make_error(errc::not_found, "tensor " + t.name + " (" +
                                             (t.cls.layer >= 0 ? "layer " + std::to_string(t.cls.layer) : std::string("rest")) +
                                             ") is in no part: the task for it is missing or failed");
    loaded_part& p = parts[it->second];
    const auto& f = *p.files.at(p.manifest["files"][t.name].get<std::string>());
    const st_tensor* st = nullptr;
    for (auto& h : f.header().tensors)
      if (h.name == t.name) st = &h;
    if (!st) return part_error(p, f.path() + " lacks " + t.name + " that its manifest lists");
    if (st->dt != t.dt || st->shape != t.shape || st->end - st->begin != t.nbytes)
      return part_error(p, t.name + " has another dtype, shape or size than in " + ck.dir());
    found[t.name] = st;
  }
  if (owner.size() != ck.tensors().size()) {
    for (auto& [name, i] : owner)
      if (!ck.find(name)) return part_error(parts[i], "holds " + name + ", which " + ck.dir() + " does not have");
  }

  std::vector<std::string> inputs = part_dirs;
  inputs.push_back(ck.dir());
  atomic_dir dir;
  RAZOR_TRY(dir.open(out_dir, "merge", std::move(inputs)));
  RAZOR_TRY(copy_side_files(ck, dir.path(), opt.summary_name));
  uint64_t total = 0, done = 0;
  for (auto& t : ck.tensors()) total += t.nbytes;
  run_acc acc;
  std::map<std::string, std::vector<const nlohmann::json*>> experts_of;  // tensor -> its expert entries
  for (auto& p : parts)
    for (auto& e : p.manifest["experts"]) experts_of[e.value("tensor", "")].push_back(&e);
  std::set<std::string> backends;
  nlohmann::json part_list = nlohmann::json::array();
  RAZOR_ASSIGN_OR_RETURN(acc.method, recipe_method(r));
  nlohmann::json calib_info = nlohmann::json::object();
  for (auto& p : parts) {
    const nlohmann::json& pm = p.manifest.value("ptq_meta", nlohmann::json::object());
    if (pm.is_object()) {
      acc.method_slices += pm.value("expert_slices", int64_t(0));
      if (pm.contains("fallbacks") && pm["fallbacks"].is_object())
        for (auto& [why, n] : pm["fallbacks"].items())
          if (n.is_number_integer()) acc.fallbacks[why] += n.get<int64_t>();
      for (const char* k : {"text", "calib_tokens", "calib_seqlen", "max_tok_per_expert"})
        if (pm.contains(k)) calib_info[k] = pm[k];
      const std::string gd = pm.contains("gptq_device") && pm["gptq_device"].is_string() ? pm["gptq_device"].get<std::string>() : "";
      acc.gptq_cpu |= gd.find("cpu") != std::string::npos;
      acc.gptq_gpu |= gd.find("cuda") != std::string::npos;
    }
    for (auto& pb : p.manifest["params_by_bits"]) acc.params_by_bits[pb[0].get<double>()] += pb[1].get<int64_t>();
    const std::string be = p.manifest.value("backend", "cpu");
    acc.used_cpu |= be.find("cpu") != std::string::npos;
    acc.used_gpu |= be.find("cuda") != std::string::npos;
    part_list.push_back({{"dir", p.dir}, {"layers", p.manifest.value("layers", "")},
                         {"backend", be}, {"seconds", p.manifest.value("seconds", 0.0)}});
  }
  auto by_shard = tensors_by_shard(ck);
  for (size_t s = 0; s < by_shard.size(); ++s) {
    safetensors_writer w;
    for (auto* t : by_shard[s]) RAZOR_TRY(w.add(t->name, t->dt, t->shape));
    RAZOR_TRY(w.begin(dir.path() + "/" + fs::path(ck.shards()[s]).filename().string()));
    for (auto* t : by_shard[s]) {
      loaded_part& p = parts[owner.at(t->name)];
      const auto& f = *p.files.at(p.manifest["files"][t->name].get<std::string>());
      RAZOR_TRY(w.write(f.tensor_data(*found.at(t->name)), t->nbytes));
      RAZOR_TRY(f.map().check());
      // The summary in the single run's order: same floating-point sums.
      auto& tensors = p.manifest["tensors"];
      if (tensors.contains(t->name)) {
        if (!p.manifest["tensor_stats"].contains(t->name)) return part_error(p, "no statistics for " + t->name);
        acc.all.merge(stats_from_json(p.manifest["tensor_stats"][t->name]));
        acc.tensors[t->name] = tensors[t->name];
        for (auto* e : experts_of[t->name]) acc.experts.push_back(*e);
      }
      RAZOR_TRY(tensor_done(progress, done, total, *t, out_dir));
    }
    RAZOR_TRY(w.finish());
  }
  quantize_report rep = start_report(t0, total, acc);
  double part_seconds = 0;
  for (auto& p : parts) part_seconds += p.manifest.value("seconds", 0.0);
  RAZOR_ASSIGN_OR_RETURN(nlohmann::json sum, make_summary(ck, r, acc, rep.backend, part_seconds + rep.seconds));
  sum["parts"] = part_list;
  sum["ptq_meta"] = ptq_meta_json(r, acc, calib_info);
  RAZOR_TRY(write_file_atomic(dir.path() + "/" + opt.summary_name, dump_json(sum, 1) + "\n"));
  RAZOR_TRY(dir.commit());
  rep.summary = std::move(sum);
  return rep;
}

}  // namespace razor::quant
