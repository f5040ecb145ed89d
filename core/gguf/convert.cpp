// Writing the converted GGUF: every planned tensor quantized matrix by matrix into the file (one file, a part
// of a split conversion, or the merge of parts), committed only when complete.
#include "gguf/convert_internal.h"

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <numeric>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ggml/quants.h"
#include "gguf/ftype.h"
#include "gguf/gguf_file.h"
#include "gguf/output_check.h"
#include "model/checkpoint.h"
#include "model/config_check.h"
#include "model/recipe.h"
#include "quant/ggml_auto.h"
#include "util/atomic_file.h"
#include "util/fnv.h"
#include "util/json_limits.h"
#include "util/mapped_file.h"
#include "util/parallel.h"
#include "util/printable.h"
#include "util/regex.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace razor::gguf {

using namespace convert_detail;

namespace {

// Matrices of a stacked tensor are produced and quantized in groups of at most this many floats (1 GiB):
// one quantizer call per group instead of one per expert (the GPU packer's set-up per call cost more than its
// kernels when it was called 768 times a layer of the 122B).
constexpr int64_t kGroupFloats = int64_t(1) << 28;

// Quantizes the planned tensors `which` (plan order) into `sink`, group by group: a stacked tensor's matrices
// in groups of up to kGroupFloats, any other tensor whole. The next group (of this tensor or the next one) is
// produced on all cores while the current one is quantized. After a tensor's last group: the shards'
// truncation check, then tensor_done(i). `t` gathers where the time went.
status quantize_tensors(const checkpoint& ck, const full_plan& fp, const std::vector<size_t>& which,
                        const convert_options& o, const std::function<status(const uint8_t*, size_t)>& sink,
                        const std::function<void(size_t)>& tensor_done, convert_times& t) {
  using clock = std::chrono::steady_clock;
  auto since = [](clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); };
  struct group {
    size_t i;       // the tensor
    int64_t m0, g;  // its matrices [m0, m0 + g)
  };
  std::vector<group> groups;
  uint64_t total = 0, done = 0;
  for (size_t i : which) {
    const planned& p = fp.tensors[i];
    const int64_t per_group = std::clamp<int64_t>(kGroupFloats / std::max<int64_t>(p.slice(), 1), 1, p.n_mat);
    for (int64_t m0 = 0; m0 < p.n_mat; m0 += per_group) groups.push_back({i, m0, std::min(per_group, p.n_mat - m0)});
    total += fp.report.tensors[i].bytes;
  }
  // A tensor written from its source's own blocks (planned::produce_raw): no floats, no quantizer.
  auto raw = [&](size_t i) { return fp.tensors[i].produce_raw && fp.report.tensors[i].stored == fp.tensors[i].raw_type; };
  // Produces a group's matrices into `dst`, one matrix per task.
  auto produce = [&](const group& gr, std::vector<float>& dst) -> status {
    const planned& p = fp.tensors[gr.i];
    if (raw(gr.i)) {
      dst.clear();
      return {};
    }
    const int64_t slice = p.slice();
    dst.resize(size_t(gr.g * slice));
    std::vector<status> st(static_cast<size_t>(gr.g));
    parallel_for(size_t(gr.g), [&](size_t b, size_t e) {
      for (size_t k = b; k < e; ++k) st[k] = p.produce(gr.m0 + int64_t(k), dst.data() + int64_t(k) * slice);
    }, 1, o.threads);
    for (auto& s : st) RAZOR_TRY(std::move(s));
    return {};
  };
  std::vector<float> cur, next;
  std::vector<uint8_t> qbuf;
  auto t0 = clock::now();
  if (!groups.empty()) RAZOR_TRY(produce(groups[0], cur));
  t.read += since(t0);
  for (size_t k = 0; k < groups.size(); ++k) {
    const group& gr = groups[k];
    const planned& p = fp.tensors[gr.i];
    const tensor_plan_row& row = fp.report.tensors[gr.i];
    std::future<status> ahead;
    if (k + 1 < groups.size())
      ahead = std::async(std::launch::async, [&, k] {
        auto t1 = clock::now();
        status s = produce(groups[k + 1], next);
        t.read_ahead += since(t1);
        return s;
      });
    const int64_t n_per_row = p.ne.empty() ? 1 : p.ne[0];
    const int64_t rows = p.slice() / n_per_row;
    qbuf.resize(size_t(row.bytes / uint64_t(p.n_mat)) * size_t(gr.g));
    if (raw(gr.i)) {  // the source's blocks, repacked matrix by matrix
      const size_t per_mat = size_t(row.bytes / uint64_t(p.n_mat));
      std::vector<status> st(size_t(gr.g));
      t0 = clock::now();
      parallel_for(size_t(gr.g), [&](size_t b, size_t e) {
        for (size_t m = b; m < e; ++m) st[m] = p.produce_raw(gr.m0 + int64_t(m), qbuf.data() + m * per_mat);
      }, 1, o.threads);
      t.read += since(t0);
      for (auto& x : st)
        if (!x.ok()) return make_error(x.code(), p.name + ": " + x.message());
    }
    std::vector<float> weights;  // one imatrix vector per matrix of the group
    if (row.imatrix_used && !raw(gr.i))
      for (int64_t m = gr.m0; m < gr.m0 + gr.g; ++m) {
        RAZOR_ASSIGN_OR_RETURN(auto w, o.imat->weights_for(p.name, m));
        weights.insert(weights.end(), w.begin(), w.end());
      }
    // The GPU packer when a device is present (bytes identical to the CPU path, tests/kernels/test_ggml_cuda.cpp).
    quant::quantize_auto_options qo;
    qo.cpu.threads = o.threads;
    qo.allow_gpu = o.allow_gpu;
    qo.cpu.allow_missing_imatrix = true;  // the refusal happened at planning, per llama.cpp's rule
    qo.rows_per_imatrix = rows;
    t0 = clock::now();
    result<quant::quantize_auto_result> n = quant::quantize_auto_result{qbuf.size(), false};
    if (!raw(gr.i))
      n = quant::quantize_tensor_auto(row.stored, cur.data(), qbuf.data(), qbuf.size(), gr.g * rows, n_per_row,
                                      weights.empty() ? nullptr : weights.data(), qo);
    (n.ok() && n->gpu ? t.quantize_gpu : t.quantize_cpu) += since(t0);
    t0 = clock::now();
    status ahead_st = ahead.valid() ? ahead.get() : status{};
    t.read += since(t0);  // what the quantizer waited for beyond the reading beside it
    if (!n.ok()) return make_error(n.error().code(), p.name + ": " + n.error().message());
    RAZOR_TRY(std::move(ahead_st));
    if (n->bytes != qbuf.size())
      return make_error(errc::internal, p.name + ": quantizer wrote " + std::to_string(n->bytes) +
                                            " bytes, expected " + std::to_string(qbuf.size()));
    t0 = clock::now();
    RAZOR_TRY(sink(qbuf.data(), qbuf.size()));
    t.write += since(t0);
    std::swap(cur, next);
    if (k + 1 == groups.size() || groups[k + 1].i != gr.i) {
      RAZOR_TRY(ck.check_mapped());  // a shard truncated while it was read (util/mapped_file.h)
      if (tensor_done) tensor_done(gr.i);
    }
    done += qbuf.size();
    if (o.progress && !o.progress(double(done), double(total), p.name.c_str()))
      return make_error(errc::cancelled, "conversion cancelled at " + p.name);
  }
  return {};
}

// The decoder layer of a GGUF tensor ("blk.12.ffn_up_exps.weight" -> 12), -1 for the others.
int gguf_layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  int l = 0;
  size_t i = 4;
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) l = l * 10 + (name[i++] - '0');
  return l;
}

// What a part must agree on with the merge: the source tensors and every planned GGUF tensor's name, shape,
// type and size (so the recipe, the types and the imatrix coverage were the same).
std::string plan_fingerprint(const checkpoint& ck, const convert_report& rep, const convert_options& o) {
  fnv1a64 h;
  auto mix = [&](std::string_view s) { h.field(s); };
  for (auto& t : ck.tensors()) {
    mix(t.name);
    mix(std::string(dtype_name(t.dt)));
    for (auto d : t.shape) mix(std::to_string(d));
  }
  for (auto& r : rep.tensors) {
    mix(r.name);
    mix(std::to_string(uint32_t(r.stored)));
    mix(r.imatrix_used ? "imatrix" : "-");
    for (auto d : r.ne) mix(std::to_string(d));
  }
  if (o.imat) mix(o.imat->source);
  if (o.file_type) mix("ftype " + std::to_string(*o.file_type));
  return h.hex();
}

writer_options output_options(const convert_options& o) {
  writer_options wo;
  wo.alignment = o.alignment;
  wo.max_shard_bytes = o.max_shard_bytes;
  return wo;
}

// Declares the header (metadata and every tensor, in plan order) and opens the output's temporary files.
status begin_output(writer& w, const checkpoint& ck, const convert_report& rep, const std::string& model_dir,
                    const std::string& out_path, const convert_options& o) {
  RAZOR_TRY(declare_output(w, ck, rep, model_dir, o));
  return w.begin(out_path);
}

// Commits the written GGUF after checking its name once more (a file may have appeared there meanwhile), then
// removes the files of the earlier output of that name the new one did not overwrite.
status finish_output(writer& w, const std::string& out_path, const std::vector<std::string>& inputs,
                     convert_report& rep) {
  auto earlier = check_gguf_output(out_path, inputs);
  if (!earlier) {
    w.abort();
    return earlier.error();
  }
  RAZOR_TRY(w.finish());
  rep.paths = w.paths();
  rep.file_bytes = w.total_bytes();
  for (auto& p : remove_stale_gguf_files(*earlier, rep.paths))
    rep.notes.push_back("removed " + p + ", a file of the earlier output of this name that the new one replaces");
  return {};
}

}  // namespace

result<convert_report> convert_to_gguf(const std::string& model_dir, const std::string& out_path,
                                       const convert_options& o) {
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model_dir));
  // What is at out_path may be replaced only if razor wrote it (gguf/output_check.h): refused before any work.
  const std::vector<std::string> inputs = {model_dir, o.imat ? o.imat->source : std::string()};
  RAZOR_TRY(check_gguf_output(out_path, inputs).error());
  RAZOR_ASSIGN_OR_RETURN(full_plan fp, make_plan(ck, o));
  convert_report& rep = fp.report;

  writer w(output_options(o));
  RAZOR_TRY(begin_output(w, ck, rep, model_dir, out_path, o));

  std::vector<size_t> all(fp.tensors.size());
  std::iota(all.begin(), all.end(), size_t(0));
  auto sink = [&w](const uint8_t* d, size_t n) { return w.write(d, n); };
  if (status st = quantize_tensors(ck, fp, all, o, sink, {}, rep.times); !st.ok()) {
    w.abort();
    return st;
  }
  RAZOR_TRY(finish_output(w, out_path, inputs, rep));
  return rep;
}

result<convert_report> convert_gguf_part(const std::string& model_dir, const std::string& part_dir,
                                         const convert_options& o, const layer_selection& sel) {
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model_dir));
  if (sel.has_range() && sel.last > ck.config().num_layers)
    return make_error(errc::invalid_argument, "--layers " + sel.to_string() + ": " + model_dir + " has " +
                                                  std::to_string(ck.config().num_layers) + " layers");
  RAZOR_ASSIGN_OR_RETURN(full_plan fp, make_plan(ck, o));
  convert_report& rep = fp.report;
  atomic_dir dir;
  RAZOR_TRY(dir.open(part_dir, "pack --layers " + sel.to_string(), {model_dir}));
  atomic_writer out;
  RAZOR_TRY(out.open(dir.path() + "/" + kGgufPartData));
  std::vector<size_t> chosen;
  for (size_t i = 0; i < rep.tensors.size(); ++i)
    if (sel.contains(gguf_layer_of(rep.tensors[i].name))) chosen.push_back(i);
  nlohmann::json tensors = nlohmann::json::array();
  auto sink = [&out](const uint8_t* d, size_t n) { return out.write(d, n); };
  convert_report part_rep = rep;
  part_rep.tensors.clear();
  uint64_t offset = 0;  // of the next tensor in the part's data
  auto tensor_done = [&](size_t i) {
    const tensor_plan_row& row = rep.tensors[i];
    tensors.push_back({{"name", row.name}, {"type", uint32_t(row.stored)}, {"ne", row.ne}, {"offset", offset},
                       {"bytes", row.bytes}});
    part_rep.tensors.push_back(row);
    offset = out.bytes_written();
  };
  RAZOR_TRY(quantize_tensors(ck, fp, chosen, o, sink, tensor_done, part_rep.times));
  const uint64_t data_bytes = out.bytes_written();
  RAZOR_TRY(out.commit());
  nlohmann::json pj;
  pj["format"] = "razor.gguf_part/1";
  pj["source"] = ck.dir();
  pj["plan_fingerprint"] = plan_fingerprint(ck, rep, o);
  pj["layers"] = sel.to_string();
  pj["data_bytes"] = data_bytes;
  pj["tensors"] = tensors;
  RAZOR_TRY(write_file_atomic(dir.path() + "/" + kGgufPartManifest, dump_json(pj, 1) + "\n"));
  RAZOR_TRY(dir.commit());
  part_rep.paths = {part_dir};
  part_rep.file_bytes = data_bytes;
  return part_rep;
}

result<convert_report> merge_gguf_parts(const std::string& model_dir, const std::vector<std::string>& part_dirs,
                                        const std::string& out_path, const convert_options& o) {
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model_dir));
  std::vector<std::string> inputs = part_dirs;
  inputs.push_back(model_dir);
  if (o.imat) inputs.push_back(o.imat->source);
  RAZOR_TRY(check_gguf_output(out_path, inputs).error());
  RAZOR_ASSIGN_OR_RETURN(full_plan fp, make_plan(ck, o));
  convert_report& rep = fp.report;
  const std::string fingerprint = plan_fingerprint(ck, rep, o);
  if (part_dirs.empty()) return make_error(errc::invalid_argument, "pack: no parts given");
  struct src {
    const mapped_file* data;
    uint64_t offset, bytes;
  };
  std::vector<mapped_file> maps(part_dirs.size());
  std::map<std::string, std::pair<src, size_t>> found;  // tensor -> bytes, part index
  for (size_t i = 0; i < part_dirs.size(); ++i) {
    const std::string& d = part_dirs[i];
    auto bad = [&](const std::string& m) { return make_error(errc::bad_format, "part " + d + ": " + m); };
    std::error_code ec;
    if (!fs::is_directory(d, ec))
      return make_error(errc::not_found, "part " + d + " does not exist (its task did not finish or failed)");
    const std::string mpath = d + "/" + kGgufPartManifest;
    if (!fs::exists(mpath, ec))
      return make_error(errc::not_found, "part " + d + ": " + kGgufPartManifest +
                                             " is missing (not a finished razor pack --layers part)");
    auto pjr = read_json_file(mpath);
    if (!pjr.ok()) return bad(pjr.error().message());
    nlohmann::json& pj = *pjr;
    if (!pj.is_object() || pj.value("format", "") != "razor.gguf_part/1")
      return bad("not a razor.gguf_part/1 manifest");
    if (pj.value("plan_fingerprint", "") != fingerprint)
      return make_error(errc::invalid_argument, "part " + d + " was made from another checkpoint or with other " +
                                                    "types / recipe / imatrix than this pack");
    auto m = mapped_file::open(d + "/" + kGgufPartData);
    if (!m.ok()) return make_error(m.error().code(), "part " + d + ": " + m.error().message());
    maps[i] = std::move(m).value();
    if (maps[i].size() != pj.value("data_bytes", uint64_t(0)))
      return bad(std::string(kGgufPartData) + " has " + std::to_string(maps[i].size()) + " bytes, the manifest says " +
                 std::to_string(pj.value("data_bytes", uint64_t(0))) + " (truncated)");
    for (auto& t : pj["tensors"]) {
      const std::string name = t.value("name", "");
      const uint64_t off = t.value("offset", uint64_t(0)), n = t.value("bytes", uint64_t(0));
      if (off + n > maps[i].size()) return bad(name + " runs past the end of " + kGgufPartData);
      auto [it, fresh] = found.emplace(name, std::pair{src{&maps[i], off, n}, i});
      if (!fresh)
        return make_error(errc::invalid_argument, "GGUF tensor " + name + " is in two parts: " +
                                                      part_dirs[it->second.second] + " and " + d);
    }
  }
  for (auto& r : rep.tensors) {
    auto it = found.find(r.name);
    if (it == found.end()) {
      int l = gguf_layer_of(r.name);
      return make_error(errc::not_found, "GGUF tensor " + r.name + " (" +
                                             (l >= 0 ? "layer " + std::to_string(l) : std::string("rest")) +
                                             ") is in no part: the task for it is missing or failed");
    }
    if (it->second.first.bytes != r.bytes)
      return make_error(errc::bad_format, "part " + part_dirs[it->second.second] + ": " + r.name + " has " +
                                              std::to_string(it->second.first.bytes) + " bytes, the plan " +
                                              std::to_string(r.bytes));
  }
  if (found.size() != rep.tensors.size())
    return make_error(errc::invalid_argument, "the parts hold GGUF tensors this plan does not have");

  writer w(output_options(o));
  RAZOR_TRY(begin_output(w, ck, rep, model_dir, out_path, o));
  uint64_t total = 0, done = 0;
  for (auto& r : rep.tensors) total += r.bytes;
  for (auto& r : rep.tensors) {
    const src& s = found.at(r.name).first;
    RAZOR_TRY(w.write(s.data->data() + s.offset, size_t(s.bytes)));
    RAZOR_TRY(s.data->check());  // truncated while it was read (util/mapped_file.h)
    done += s.bytes;
    if (o.progress && !o.progress(double(done), double(total), r.name.c_str())) {
      w.abort();
      return make_error(errc::cancelled, "merge cancelled at " + r.name);
    }
  }
  RAZOR_TRY(finish_output(w, out_path, inputs, rep));
  return rep;
}

}  // namespace razor::gguf
