#include "quant/quantize.h"

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

}  // namespace

result<quantize_report> quantize_checkpoint(const checkpoint& ck, const recipe& rin, const std::string& out_dir,
                                            const quantize_options& opt, const progress_fn& progress) {
  auto t0 = std::chrono::steady_clock::now();
  recipe r = rin;
  r.resolve(ck.config());  // a two-level study recipe gets its per-expert bits for this model
  // Reject what we cannot write faithfully before anything is written.
  for (auto& t : ck.tensors()) {
    double b = r.tensor_bits(t);
    bool any_q = b < kKeepBits;
    if (t.cls.fused && r.expert_bits.count(t.cls.layer)) any_q = true;
    if (any_q && t.dt != dtype::bf16 && t.dt != dtype::f16 && t.dt != dtype::f32)
      return make_error(errc::unsupported, t.name + ": cannot fake-quantize " + std::string(dtype_name(t.dt)) +
                                               " (dequantize FP8 checkpoints to BF16 first)");
  }
  atomic_dir dir;
  RAZOR_TRY(dir.open(out_dir));
  std::error_code ec;
  // Copy every file that is not a weight shard.
  std::set<std::string> shard_names;
  for (auto& s : ck.shards()) shard_names.insert(fs::path(s).filename().string());
  for (auto& e : fs::directory_iterator(ck.dir(), ec)) {
    if (!e.is_regular_file()) continue;
    std::string name = e.path().filename().string();
    if (shard_names.count(name) || name == opt.summary_name) continue;
    fs::copy_file(e.path(), fs::path(dir.path()) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return make_error(errc::io, (fs::path(dir.path()) / name).string() + ": " + ec.message());
  }
  uint64_t total = 0;
  for (auto& t : ck.tensors()) total += t.nbytes;
  uint64_t done = 0;
  fq_stats all;
  nlohmann::json tensors = nlohmann::json::object();
  nlohmann::json experts = nlohmann::json::array();
  bool used_cpu = false, used_gpu = false;
  std::vector<uint8_t> buf;
  std::map<double, int64_t> params_by_bits;

  for (size_t s = 0; s < ck.shards().size(); ++s) {
    std::vector<const tensor_entry*> in_shard;
    for (auto& t : ck.tensors())
      if (t.shard == int(s)) in_shard.push_back(&t);
    std::sort(in_shard.begin(), in_shard.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    safetensors_writer w;
    for (auto* t : in_shard) RAZOR_TRY(w.add(t->name, t->dt, t->shape));
    RAZOR_TRY(w.begin(dir.path() + "/" + fs::path(ck.shards()[s]).filename().string()));
    for (auto* tp : in_shard) {
      const tensor_entry& t = *tp;
      const uint8_t* src = ck.data(t);
      const bool fused_mixed = t.cls.fused && t.shape.size() == 3 && r.expert_bits.count(t.cls.layer);
      const double tbits = r.tensor_bits(t);
      if (!fused_mixed && tbits >= kKeepBits) {
        RAZOR_TRY(w.write(src, t.nbytes));
        params_by_bits[kKeepBits] += t.numel();
      } else {
        // Quantize slice by slice: one expert of a fused tensor, or the whole 2-D tensor.
        const size_t cols = size_t(t.cols());
        const size_t rows = size_t(t.rows());
        const size_t n_slices = t.shape.size() == 3 ? size_t(t.shape[0]) : 1;
        const size_t slice_rows = rows / n_slices;
        const size_t es = dtype_size(t.dt);
        fq_stats tstats;
        for (size_t sl = 0; sl < n_slices; ++sl) {
          const double bits = fused_mixed ? r.expert_tag(t, int(sl)) : tbits;
          const uint8_t* in = src + sl * slice_rows * cols * es;
          const size_t nbytes = slice_rows * cols * es;
          params_by_bits[bits] += int64_t(slice_rows * cols);
          if (bits >= kKeepBits) {
            RAZOR_TRY(w.write(in, nbytes));
            continue;
          }
          buf.resize(nbytes);
          fq_params p{float(bits), r.group, r.clip_steps};
          fq_stats ss;
          if (t.dt == dtype::bf16 && opt.allow_gpu) {
            RAZOR_ASSIGN_OR_RETURN(fq_backend be, fake_quant_bf16_auto(reinterpret_cast<const uint16_t*>(in),
                                                                       reinterpret_cast<uint16_t*>(buf.data()),
                                                                       slice_rows, cols, p, &ss));
            (be == fq_backend::cuda ? used_gpu : used_cpu) = true;
          } else {
            RAZOR_TRY(fake_quant(in, to_elem(t.dt), buf.data(), to_elem(t.dt), slice_rows, cols, p, &ss));
            used_cpu = true;
          }
          RAZOR_TRY(w.write(buf.data(), nbytes));
          if (t.cls.role == tensor_role::routed_expert) {
            auto ej = stats_json(ss, bits, r.clip_steps);
            ej["layer"] = t.cls.layer;
            ej["expert"] = t.cls.fused ? int(sl) : t.cls.expert;
            ej["proj"] = proj_name(t.cls.proj);
            ej["tensor"] = t.name;
            experts.push_back(std::move(ej));
          }
          tstats.merge(ss);
          if (progress && !progress(double(done + (sl + 1) * nbytes), double(total), t.name.c_str()))
            return make_error(errc::cancelled, out_dir + ": cancelled; nothing was written under the final name");
        }
        all.merge(tstats);
        auto tj = stats_json(tstats, fused_mixed ? -1.0 : tbits, r.clip_steps);
        tj["group"] = (r.group > 0 && cols % size_t(r.group) == 0) ? r.group : int(cols);
        tj["role"] = role_name(t.cls.role);
        tensors[t.name] = std::move(tj);
      }
      done += t.nbytes;
      if (progress && !progress(double(done), double(total), t.name.c_str()))
        return make_error(errc::cancelled, out_dir + ": cancelled; nothing was written under the final name");
    }
    RAZOR_TRY(w.finish());
  }
  // The index (when the source had one) is copied above unchanged: same tensor -> shard mapping.
  auto fp = compute_footprint(ck, r);
  quantize_report rep;
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rep.bytes_in = total;
  rep.backend = used_gpu && used_cpu ? "cpu+cuda" : used_gpu ? "cuda" : "cpu";
  nlohmann::json sum;
  sum["format"] = "razor.quant_summary/1";
  sum["source"] = ck.dir();
  sum["recipe"] = r.to_json();
  sum["backend"] = rep.backend;
  sum["seconds"] = rep.seconds;
  sum["totals"] = {{"quantized_elements", all.n},
                   {"rel_error", all.rel_error()},
                   {"seed_effective_bits", fp.seed_effective_bits()},
                   {"effective_bits_with_scales", fp.effective_bits_with_scales()},
                   {"packed_gb", fp.packed_bytes() / 1e9},
                   {"seed_footprint_gb", fp.seed_footprint_gb()}};
  nlohmann::json pbb = nlohmann::json::object();
  for (auto& [b, n] : params_by_bits) {
    char key[32];
    std::snprintf(key, sizeof key, "%g", b);
    pbb[key] = n;
  }
  sum["totals"]["params_by_bits"] = pbb;
  sum["tensors"] = tensors;
  sum["experts"] = experts;
  RAZOR_TRY(write_file_atomic(dir.path() + "/" + opt.summary_name, sum.dump(1) + "\n"));
  RAZOR_TRY(dir.commit());
  rep.summary = std::move(sum);
  return rep;
}

}  // namespace razor::quant
