// The GGUF jobs: pack (HF -> GGUF, whole or in parts), validate-gguf, gguf-info.
#include "jobs/job_handlers.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>

#include "engine/eval.h"
#include "engine/probe.h"
#include "engine/tokenizer.h"
#include "ggml/types.h"
#include "gguf/convert.h"
#include "gguf/ftype.h"
#include "gguf/gguf_file.h"
#include "gguf/imatrix.h"
#include "gguf/output_check.h"
#include "gguf/validate.h"
#include "model/checkpoint.h"
#include "model/footprint.h"
#include "model/layer_selection.h"
#include "model/recipe.h"
#include "quant/allocate.h"
#include "alloc/expert_engine.h"
#include "quant/quantize.h"
#include "alloc/job.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"
#include "util/mapped_file.h"
#include "util/output_guard.h"
#include "util/paths.h"
#include "util/strformat.h"
#include "jobs/job_params.h"

namespace razor::jobs {

using nlohmann::json;
using namespace job_params;

// ---- pack ----
namespace {
bool is_json_recipe(const std::string& path) {
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) return true;
  // Not a regular file (a FIFO would block here): not JSON; load_type_recipe then says what it is.
  auto fd = open_regular_file(path);
  if (!fd.ok()) return false;
  std::FILE* f = ::fdopen(*fd, "rb");
  if (!f) {
    ::close(*fd);
    return false;
  }
  int c = 0;
  while ((c = std::fgetc(f)) != EOF && std::isspace(c)) {
  }
  std::fclose(f);
  return c == '{';
}

std::string type_names(bool imatrix_only) {
  std::string s;
  for (const auto& ti : ggml::all_types())
    if (!imatrix_only || ti.needs_imatrix) s += (s.empty() ? "" : ", ") + std::string(ti.name);
  return s;
}
}  // namespace

result<json> job_pack(const json& p, job_context& ctx) {
  const std::string model = str(p, "model"), recipe_path = str(p, "recipe"), type = str(p, "type"),
                    ftype = str(p, "ftype"), imatrix = str(p, "imatrix"), out = str(p, "out"),
                    layers = str(p, "layers").empty() ? std::string("all") : str(p, "layers");
  const bool dry_run = flag(p, "dry_run"), pure = flag(p, "pure"), allow_missing = flag(p, "allow_missing_imatrix");
  const std::vector<std::string> from_parts = list(p, "from_part");
  RAZOR_TRY(range(p, "threads", 0, 4096));
  const double split_gb = real(p, "split_max_gb", 0.0);
  if (!(split_gb >= 0 && split_gb <= 1e6)) return make_error(errc::invalid_argument, "params.split_max_gb must be in [0, 1e6]");
  gguf::convert_options o;
  if (!ftype.empty() && !type.empty()) return make_error(errc::invalid_argument, "give params.ftype or params.type, not both");
  if (!ftype.empty() && !recipe_path.empty() && is_json_recipe(recipe_path))
    return make_error(errc::invalid_argument, "params.ftype takes a tensor-type params.recipe (its overrides), not a fake-quant JSON recipe");
  if (pure && ftype.empty()) return make_error(errc::invalid_argument, "params.pure goes with params.ftype");
  if (!recipe_path.empty() && is_json_recipe(recipe_path)) {
    RAZOR_ASSIGN_OR_RETURN(recipe fr, load_recipe(recipe_path));
    RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model));
    const bool iq3 = !imatrix.empty();
    RAZOR_ASSIGN_OR_RETURN(auto cr, gguf::collapse_bits_recipe(ck, fr, iq3));
    int changed = 0;
    for (auto& t : cr.tensors)
      if (!t.change.empty()) ++changed;
    ctx.log("info", "pack: fake-quant recipe " + recipe_path + ": " + std::to_string(cr.tensors.size()) +
                        " GGUF tensors typed from its bits (3 bits -> " +
                        (iq3 ? "iq3_xxs, imatrix given" : "q3_K") + "), " + std::to_string(changed) + " changed:");
    for (auto& t : cr.tensors)
      if (!t.change.empty()) ctx.log("info", "  " + t.name + "  " + t.change);
    o.recipe = std::move(cr.recipe);
  } else if (!recipe_path.empty()) {
    RAZOR_ASSIGN_OR_RETURN(o.recipe, gguf::load_type_recipe(recipe_path));
  }
  auto parse_type = [](const std::string& s, std::optional<ggml::type>* dst) -> status {
    if (s.empty()) return {};
    RAZOR_ASSIGN_OR_RETURN(ggml::type t, ggml::type_from_name(s));  // the error names the known types
    *dst = t;
    return {};
  };
  std::optional<ggml::type> def;
  RAZOR_TRY(parse_type(type, &def));
  if (def) o.recipe.default_type = def;
  if (!o.recipe.default_type && recipe_path.empty() && ftype.empty())
    return make_error(errc::invalid_argument, "give params.type, params.ftype or params.recipe");
  auto named = [](status st, const char* key) {
    return st.ok() ? st : status(st.code(), std::string("params.") + key + ": " + st.message());
  };
  RAZOR_TRY(named(parse_type(str(p, "output_tensor_type"), &o.recipe.output_type), "output_tensor_type"));
  RAZOR_TRY(named(parse_type(str(p, "token_embedding_type"), &o.recipe.token_embedding_type), "token_embedding_type"));
  gguf::imatrix im;
  if (!imatrix.empty()) {
    RAZOR_ASSIGN_OR_RETURN(im, gguf::read_imatrix(imatrix));
    o.imat = &im;
  }
  o.allow_missing_imatrix = allow_missing;
  std::optional<gguf::ftype_plan> fplan;
  if (!ftype.empty()) {
    RAZOR_ASSIGN_OR_RETURN(gguf::ftype f, gguf::ftype_from_name(ftype));
    RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model));
    gguf::ftype_options fo;
    fo.overrides = o.recipe.rules;  // a tensor-type recipe: llama-quantize's --tensor-type overrides
    fo.output_type = o.recipe.output_type;
    fo.token_embedding_type = o.recipe.token_embedding_type;
    fo.pure = pure;
    RAZOR_ASSIGN_OR_RETURN(gguf::ftype_plan fp, gguf::plan_ftype(ck, f, fo, o.imat, allow_missing));
    o.recipe = fp.recipe;
    o.file_type = gguf::info(f).id;
    fplan = std::move(fp);
    for (auto& n : fplan->notes) ctx.log("info", "note: " + n);
  }
  if (allow_missing)
    ctx.log("warn", "allow_missing_imatrix: types that need an importance matrix (" + type_names(true) +
                        ") are quantized WITHOUT one where none is given. llama-quantize refuses such files; they are "
                        "much worse. Use this only to measure what the imatrix buys.");
  o.threads = int(num(p, "threads", 0));
  o.allow_gpu = ctx.allow_gpu && !flag(p, "cpu");
  o.name = str(p, "name");
  o.max_shard_bytes = uint64_t(split_gb * 1e9);
  o.progress = ctx.progress;
  gguf::convert_report rep;
  layer_selection sel;
  if (layers != "all") {
    RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model));
    RAZOR_ASSIGN_OR_RETURN(sel, parse_layer_selection(layers, int(ck.config().num_layers)));
    if (!from_parts.empty() || dry_run)
      return make_error(errc::invalid_argument, "params.layers goes with neither params.from_part nor params.dry_run");
  }
  if (!dry_run && out.empty()) return make_error(errc::invalid_argument, "params.out is required (the output .gguf)");
  auto make_parent = [&] {
    std::error_code ec;
    if (auto parent = std::filesystem::path(out).parent_path(); !parent.empty())
      std::filesystem::create_directories(parent, ec);
  };
  if (!sel.all) {
    RAZOR_ASSIGN_OR_RETURN(rep, gguf::convert_gguf_part(model, out, o, sel));
  } else if (!from_parts.empty()) {
    make_parent();
    RAZOR_ASSIGN_OR_RETURN(rep, gguf::merge_gguf_parts(model, from_parts, out, o));
  } else if (dry_run) {
    RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model));
    RAZOR_ASSIGN_OR_RETURN(rep, gguf::plan_gguf(ck, o));
  } else {
    make_parent();
    RAZOR_ASSIGN_OR_RETURN(rep, gguf::convert_to_gguf(model, out, o));
  }
  if (fplan) {  // the mix's reasons instead of "ftype X line 0"
    std::map<std::string, const gguf::ftype_choice*> by_name;
    for (auto& c : fplan->tensors) by_name[c.name] = &c;
    for (auto& t : rep.tensors)
      if (auto it = by_name.find(t.name); it != by_name.end() && it->second->quantized) t.why = it->second->why;
  }
  for (auto& n : rep.notes) ctx.log("info", "note: " + n);
  if (const gguf::convert_times& t = rep.times; t.read + t.quantize_gpu + t.quantize_cpu > 0)
    ctx.log("info", strformat("time: waited %.2f s for reading (+ %.2f s read beside the quantizer), quantize %.2f s on the GPU "
                              "and %.2f s on the CPU, write %.2f s",
                              t.read, t.read_ahead, t.quantize_gpu, t.quantize_cpu, t.write));
  if (!dry_run)
    for (auto& path : rep.paths) ctx.emit_artifact({path, sel.all ? "gguf" : "file", "", {}, json::object()});
  std::map<std::string, std::pair<uint64_t, int64_t>> by_type, by_role;
  uint64_t total = 0;
  int64_t nel = 0;
  json ts = json::array();
  for (auto& t : rep.tensors) {
    auto& e = by_type[std::string(ggml::type_name(t.stored))];
    e.first += t.bytes;
    e.second += t.nelements();
    auto& r = by_role[t.role];
    r.first += t.bytes;
    r.second += t.nelements();
    total += t.bytes;
    nel += t.nelements();
    ts.push_back({{"name", t.name}, {"role", t.role}, {"ne", t.ne}, {"type", ggml::type_name(t.stored)},
                  {"requested", ggml::type_name(t.requested)}, {"bytes", t.bytes}, {"why", t.why},
                  {"fallback", t.fallback}, {"imatrix", t.imatrix_used}});
  }
  json j;
  j["out"] = out;
  j["arch"] = rep.arch;
  j["ftype"] = fplan ? json(std::string(gguf::info(*gguf::ftype_from_name(ftype)).name)) : json();
  j["dry_run"] = dry_run;
  j["tensors"] = ts;
  j["n_tensors"] = rep.tensors.size();
  auto& bt = j["by_type"] = json::object();
  for (auto& [t, e] : by_type)
    bt[t] = {{"bytes", e.first}, {"elements", e.second}, {"bpw", e.second > 0 ? 8.0 * double(e.first) / double(e.second) : 0.0}};
  auto& br = j["by_role"] = json::object();
  for (auto& [r, e] : by_role)
    br[r] = {{"bytes", e.first}, {"elements", e.second}, {"bpw", e.second > 0 ? 8.0 * double(e.first) / double(e.second) : 0.0}};
  j["tensor_bytes"] = total;
  j["elements"] = nel;
  j["bpw"] = nel > 0 ? 8.0 * double(total) / double(nel) : 0.0;
  j["notes"] = rep.notes;
  if (!sel.all) j["part_layers"] = sel.to_string();
  j["file_bytes"] = rep.file_bytes;  // written, or (dry run) exactly what would be; a part: its data bytes
  if (!dry_run) j["paths"] = rep.paths;
  return j;
}

// ---- validate-gguf ----
result<json> job_validate_gguf(const json& p, job_context& ctx) {
  const std::string file = str(p, "file");
  gguf::validate_options o;
  RAZOR_ASSIGN_OR_RETURN(o.text_path, text_or_bundled(p, false));
  RAZOR_TRY(range(p, "windows", 1, 1 << 20));
  RAZOR_TRY(range(p, "first_window", 0, 1 << 30));
  RAZOR_TRY(range(p, "window", 2, 1 << 20));
  RAZOR_TRY(range(p, "batch", 1, 1 << 20));
  RAZOR_TRY(range(p, "threads", 0, 4096));
  RAZOR_TRY(range(p, "generate", 0, 1 << 20));
  o.ref_path = str(p, "ref");
  o.windows = int(num(p, "windows", o.windows));
  o.first_window = int(num(p, "first_window", 0));
  o.window = int(num(p, "window", o.window));
  o.batch = int(num(p, "batch", o.batch));
  o.threads = int(num(p, "threads", 0));
  o.generate = int(num(p, "generate", 0));
  if (!str(p, "node").empty()) o.node = str(p, "node");
  o.oracle_dir = str(p, "oracle");
  o.exact = !flag(p, "fast");
  ctx.log("info", "validate-gguf: llama.cpp scoring " + std::to_string(o.windows) + " windows of " +
                      std::to_string(o.window) + " tokens" +
                      (o.first_window > 0 ? " from window " + std::to_string(o.first_window) : std::string()) +
                      (o.ref_path.empty() ? std::string() : ", against " + o.ref_path) + "...");
  if (!ctx.progress(0, 1, "llama.cpp")) return make_error(errc::cancelled, "validate-gguf cancelled");
  RAZOR_ASSIGN_OR_RETURN(gguf::validate_result r, gguf::validate_with_llamacpp(file, o));
  ctx.progress(1, 1, "llama.cpp");
  if (o.generate > 0 && r.generated_ids.empty())
    return make_error(errc::external, file + ": llama.cpp generated no tokens");
  json j = {{"file", file},       {"text", o.text_path},          {"ppl", r.ppl},           {"nll", r.nll},
            {"windows", r.windows}, {"first_window", r.first_window}, {"window", o.window}, {"predictions", r.predictions},
            {"exact", o.exact},   {"load_ms", r.load_ms},         {"eval_ms", r.eval_ms}};
  if (r.kl) {
    const auto& k = *r.kl;
    j["ref"] = o.ref_path;
    j["kl"] = {{"positions", k.positions}, {"mean", k.mean},       {"mean_err", k.mean_err}, {"median", k.median},
               {"p90", k.p90},             {"p99", k.p99},         {"p999", k.p999},         {"max", k.max},
               {"same_top1", k.same_top1}, {"same_top1_err", k.same_top1_err}, {"ppl_ref", k.ppl_ref},
               {"ln_ppl_ratio", k.ln_ppl_ratio}, {"delta_p_mean", k.delta_p_mean}, {"delta_p_rms", k.delta_p_rms},
               {"clamped", k.clamped}, {"window_kl", k.window_kl}};
  }
  if (o.generate > 0) {
    j["generated"] = r.generated;
    j["generated_ids"] = r.generated_ids;
  }
  auto raw = json::parse(r.json, nullptr, false);
  if (!raw.is_discarded()) j["llamacpp"] = raw;
  return j;
}

// ---- gguf-info ----
namespace {
json value_json(const gguf::value& v, size_t max_items) {
  using gguf::value_type;
  if (auto s = v.as_string()) return *s;
  if (!v.is_array()) {
    if (v.type() == value_type::boolean) return *v.as_int() != 0;
    if (v.type() == value_type::f32 || v.type() == value_type::f64) return *v.as_float();
    if (v.type() == value_type::u64) return *v.as_uint();
    return *v.as_int();
  }
  json j = json::array();
  size_t n = std::min(v.size(), max_items);
  for (size_t i = 0; i < n; ++i) {
    if (v.elem_type() == value_type::string) j.push_back(v.str_at(i));
    else if (v.elem_type() == value_type::array) j.push_back(value_json(v.array_at(i), max_items));
    else if (v.elem_type() == value_type::f32 || v.elem_type() == value_type::f64) j.push_back(v.float_at(i));
    else j.push_back(v.int_at(i));
  }
  return j;
}
}  // namespace

result<json> job_gguf_info(const json& p, job_context&) {
  const std::string file = str(p, "file");
  RAZOR_TRY(range(p, "max_items", 0, 1 << 20));
  const size_t max_items = size_t(num(p, "max_items", 8));
  RAZOR_ASSIGN_OR_RETURN(gguf::file f, gguf::file::open(file));
  struct agg {
    uint64_t bytes = 0;
    int64_t n = 0, count = 0;
  };
  std::map<std::string, agg> by_role, by_type;
  agg total;
  for (auto& t : f.tensors()) {
    const auto* tt = gguf::find_type(t.type);
    for (auto* m : {&by_role[gguf::gguf_role(t.name)], &by_type[tt ? tt->name : "?"], &total}) {
      m->bytes += t.nbytes;
      m->n += t.nelements();
      m->count += 1;
    }
  }
  auto bpw = [](const agg& g) { return g.n ? 8.0 * double(g.bytes) / double(g.n) : 0.0; };
  json j;
  j["file"] = file;
  j["version"] = f.version();
  j["alignment"] = f.alignment();
  j["file_bytes"] = f.file_size();
  j["data_offset"] = f.data_offset();
  j["metadata"] = json::object();
  for (auto& kv : f.metadata()) {
    j["metadata"][kv.key] = value_json(kv.val, max_items);
    if (kv.val.is_array()) j["array_lengths"][kv.key] = kv.val.size();
  }
  j["tensors"] = json::array();
  for (auto& t : f.tensors()) {
    const auto* tt = gguf::find_type(t.type);
    j["tensors"].push_back({{"name", t.name}, {"type", tt ? tt->name : "?"}, {"ne", t.ne}, {"bytes", t.nbytes},
                            {"offset", t.offset}, {"role", gguf::gguf_role(t.name)}});
  }
  for (auto* grp : {&by_role, &by_type})
    for (auto& [k, g] : *grp)
      j[grp == &by_role ? "by_role" : "by_type"][k] = {{"tensors", g.count}, {"elements", g.n}, {"bytes", g.bytes},
                                                       {"bpw", bpw(g)}};
  j["total"] = {{"tensors", total.count}, {"elements", total.n}, {"bytes", total.bytes}, {"bpw", bpw(total)}};
  // GGUF strings are a file's bytes: the result is sent through encode_line / dump_json, which replace invalid
  // UTF-8 (util/json_limits.h) instead of throwing.
  return j;
}

}  // namespace razor::jobs
