// The registry's heavier jobs (job_handlers.h): one copy each, run by `razor worker` and by the CLI command of
// the same name. Messages a command used to print on stderr go through ctx.log (the CLI prints them there).
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
#include "quant/allocate_engine.h"
#include "quant/quantize.h"
#include "alloc/job.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"
#include "util/mapped_file.h"
#include "util/output_guard.h"
#include "util/paths.h"

namespace razor::jobs {

using nlohmann::json;

namespace {

std::string str(const json& p, const char* key) {
  auto it = p.find(key);
  return it != p.end() && it->is_string() ? it->get<std::string>() : std::string();
}
int64_t num(const json& p, const char* key, int64_t def) {
  auto it = p.find(key);
  return it != p.end() && it->is_number_integer() ? it->get<int64_t>() : def;
}
double real(const json& p, const char* key, double def) {
  auto it = p.find(key);
  return it != p.end() && it->is_number() ? it->get<double>() : def;
}
bool flag(const json& p, const char* key) {
  auto it = p.find(key);
  return it != p.end() && it->is_boolean() && it->get<bool>();
}
std::vector<std::string> list(const json& p, const char* key) {
  std::vector<std::string> v;
  auto it = p.find(key);
  if (it == p.end()) return v;
  if (it->is_string()) {
    v = split_list(it->get<std::string>());
  } else if (it->is_array()) {
    for (auto& e : *it)
      if (e.is_string()) v.push_back(e.get<std::string>());
  }
  return v;
}
status range(const json& p, const char* key, int64_t lo, int64_t hi) {
  int64_t v = num(p, key, lo);
  if (v < lo || v > hi)
    return make_error(errc::invalid_argument, std::string("params.") + key + " must be in [" + std::to_string(lo) +
                                                  ", " + std::to_string(hi) + "]");
  return {};
}

result<std::vector<int32_t>> protocol_tokens(const std::string& model, const std::string& text_path) {
  RAZOR_ASSIGN_OR_RETURN(std::string text, read_text_file(text_path));  // regular files only
  RAZOR_ASSIGN_OR_RETURN(bpe_tokenizer tk, bpe_tokenizer::load(model + "/tokenizer.json"));
  return engine::protocol_tokens(tk, text, text_path);
}

json kl_json(const engine::kl_result& r, int topk) {
  return {{"ppl", r.model.ppl},       {"ref_ppl", r.ref.ppl},   {"kl_mean", r.kl_mean},
          {"kl_p99", r.kl_p99},       {"kl_p999", r.kl_p999},   {"kl_max", r.kl_max},
          {"topk_kl", r.topk_kl},     {"topk", topk},           {"same_top1", r.same_top1},
          {"n_predictions", r.n_positions}, {"tokens_per_s", r.model.tokens_per_s}};
}

}  // namespace

result<std::string> text_or_bundled(const json& p, bool calibration, const std::string& key) {
  std::string t = str(p, key.c_str());
  if (!t.empty()) return t;
  t = calibration ? bundled_calib_text() : bundled_eval_text();
  if (t.empty()) {
    std::string where;
    for (auto& d : data_dirs("data")) where += (where.empty() ? "" : ", ") + d;
    return make_error(errc::not_found, "no " + key + " given and the bundled " +
                                           (calibration ? "kernel-docs-calib.txt" : "kernel-docs-eval.txt") +
                                           " is in none of " + where + " (set RAZOR_DATA or give " + key + ")");
  }
  return t;
}

// ---- probe ----
result<json> job_probe(const json& p, job_context& ctx) {
  const std::string model = str(p, "model"), out = str(p, "out"), imatrix = str(p, "imatrix");
  RAZOR_ASSIGN_OR_RETURN(std::string text, text_or_bundled(p, true));
  RAZOR_TRY(range(p, "tokens", 1, int64_t(1) << 40));
  RAZOR_TRY(range(p, "seqlen", 1, 1 << 20));
  RAZOR_TRY(range(p, "offset", 0, int64_t(1) << 40));
  const size_t n_tokens = size_t(num(p, "tokens", 8192)), seqlen = size_t(num(p, "seqlen", 256)),
               offset = size_t(num(p, "offset", 0));
  const bool no_imatrix = flag(p, "no_imatrix");
  if (out.empty() && imatrix.empty())
    return make_error(errc::invalid_argument, "give params.out (HDF5) and/or params.imatrix (GGUF)");
  if (no_imatrix && !imatrix.empty())
    return make_error(errc::invalid_argument, "params.imatrix needs the input statistics (drop params.no_imatrix)");
  // Both outputs may replace only razor's own earlier ones (util/output_guard.h): checked before the probe runs.
  if (!out.empty()) RAZOR_TRY(check_output_file(out, engine::probe_h5_file, {model, text}));
  if (!imatrix.empty()) RAZOR_TRY(check_output_file(imatrix, gguf::imatrix_file, {model, text, out}));
  RAZOR_ASSIGN_OR_RETURN(std::string text_bytes, read_text_file(text));  // regular files only: a FIFO would block
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model));
  RAZOR_ASSIGN_OR_RETURN(bpe_tokenizer tk, bpe_tokenizer::load(model + "/tokenizer.json"));
  RAZOR_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, engine::protocol_tokens(tk, text_bytes, text));
  auto wp = engine::checkpoint_weights(ck);
  RAZOR_ASSIGN_OR_RETURN(auto d, engine::dims_for(*wp));
  if (offset >= tokens.size())
    return make_error(errc::invalid_argument, "params.offset " + std::to_string(offset) + " is past the " +
                                                  std::to_string(tokens.size()) + " tokens of the text");
  const size_t n = std::min(n_tokens, tokens.size() - offset);
  ctx.log("info", engine::plan_memory(d, n, (n + seqlen - 1) / seqlen, seqlen, 512).to_string());
  engine::probe_options opt;
  opt.n_tokens = n_tokens;
  opt.seqlen = seqlen;
  opt.first_token = offset;
  opt.collect_inputs = !no_imatrix;
  opt.progress = ctx.progress;
  RAZOR_ASSIGN_OR_RETURN(engine::probe_result r, engine::run_probe(*wp, tokens, opt));
  r.model = model;
  json res = {{"model", model},           {"text", text},           {"out", out},
              {"first_token", r.first_token}, {"n_tokens", r.n_tokens}, {"n_seqs", r.n_seqs},
              {"seconds", r.seconds},     {"tokens_per_s", r.tokens_per_s}, {"layers", r.n_layers},
              {"experts", r.n_experts},   {"entropy", r.entropy},   {"max_mean", r.max_mean},
              {"maxshare", r.maxshare},   {"cold_frac", r.cold_frac}};
  if (!out.empty()) {
    RAZOR_TRY(engine::write_probe_h5(r, out));
    ctx.emit_artifact({out, "h5", "f64", {int64_t(r.n_layers), int64_t(r.n_experts)},
                       {{"datasets", "freq, wmass, asal, wfro_gate_up, wfro_down, rnorm"}}});
  }
  if (!imatrix.empty()) {
    std::vector<std::string> notes;
    std::string ds = str(p, "dataset");
    if (ds.empty())
      ds = text + " [tokens " + std::to_string(r.first_token) + ".." + std::to_string(r.first_token + r.n_tokens) + ")";
    RAZOR_ASSIGN_OR_RETURN(gguf::imatrix im, engine::probe_to_imatrix(r, ck.config(), ds, &notes));
    for (auto& n : notes) ctx.log("info", "note: " + n);
    RAZOR_TRY(gguf::write_imatrix_gguf(im, imatrix));
    ctx.emit_artifact({imatrix, "file", "", {}, {{"what", "imatrix (GGUF)"}}});
    res["imatrix"] = imatrix;
    res["imatrix_entries"] = im.entries.size();
    res["imatrix_chunks"] = im.chunk_count;
    res["imatrix_chunk_size"] = im.chunk_size;
  }
  return res;
}

// ---- eval-ppl ----
result<json> job_eval_ppl(const json& p, job_context& ctx) {
  const std::string model = str(p, "model"), recipe_path = str(p, "recipe"), gguf_path = str(p, "gguf");
  std::string ref = str(p, "ref");
  RAZOR_ASSIGN_OR_RETURN(std::string text, text_or_bundled(p, false));
  RAZOR_TRY(range(p, "windows", 1, 1 << 20));
  RAZOR_TRY(range(p, "ctx", 2, 1 << 20));
  RAZOR_TRY(range(p, "batch", 1, 1 << 16));
  RAZOR_TRY(range(p, "topk", 1, 1 << 20));
  RAZOR_TRY(range(p, "offset", 0, int64_t(1) << 40));
  if (!recipe_path.empty() && !gguf_path.empty()) return make_error(errc::invalid_argument, "give params.recipe or params.gguf, not both");
  if (flag(p, "llamacpp") && gguf_path.empty()) return make_error(errc::invalid_argument, "params.llamacpp goes with params.gguf");
  engine::eval_options opt;
  opt.windows = int(num(p, "windows", 200));
  opt.ctx = int(num(p, "ctx", 256));
  opt.batch_windows = int(num(p, "batch", 16));
  opt.topk = int(num(p, "topk", 256));
  opt.print_plan = flag(p, "plan");
  opt.run.progress = ctx.progress;
  const std::string dev = str(p, "device");
  opt.run.device = dev == "cuda" || dev == "gpu" ? engine::backend::cuda
                   : dev == "auto"                ? engine::backend::automatic
                                                  : engine::backend::cpu;
  if (!ctx.allow_gpu) opt.run.device = engine::backend::cpu;
  const size_t offset = size_t(num(p, "offset", 0));
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model));
  RAZOR_ASSIGN_OR_RETURN(std::vector<int32_t> all_tokens, protocol_tokens(model, text));
  if (offset >= all_tokens.size())
    return make_error(errc::invalid_argument, "params.offset " + std::to_string(offset) + " is past the " +
                                                  std::to_string(all_tokens.size()) + " tokens of " + text);
  const std::vector<int32_t> tokens(all_tokens.begin() + std::ptrdiff_t(offset), all_tokens.end());
  ctx.log("info", text + ": " + std::to_string(all_tokens.size()) + " tokens with the protocol; " +
                      std::to_string(opt.windows) + " windows of " + std::to_string(opt.ctx) + " from token " +
                      std::to_string(offset));
  json out = {{"model", model},   {"text", text},       {"windows", opt.windows}, {"ctx", opt.ctx},
              {"offset", offset}, {"n_tokens", all_tokens.size()}};
  std::unique_ptr<engine::weight_provider> wp;
  recipe rec;  // outlives wp, which refers to it
  if (!recipe_path.empty()) {
    RAZOR_ASSIGN_OR_RETURN(rec, load_recipe(recipe_path));
    wp = engine::fake_quant_weights(ck, rec);
    out["recipe"] = recipe_path;
    if (ref.empty()) ref = model;
    ctx.log("info", "eval-ppl: MODEL fake-quantized in memory with " + recipe_path + " (KL against " + ref + ")");
  } else if (!gguf_path.empty()) {
    RAZOR_ASSIGN_OR_RETURN(wp, engine::gguf_weights(gguf_path, ck.config()));
    out["gguf"] = gguf_path;
    if (ref.empty()) ref = model;
    ctx.log("info", "eval-ppl: " + gguf_path + " dequantized to MODEL's layout (KL against " + ref + ")");
    if (flag(p, "llamacpp")) {
      gguf::validate_options vo;
      vo.text_path = text;
      vo.windows = opt.windows;
      vo.window = opt.ctx;
      RAZOR_ASSIGN_OR_RETURN(gguf::validate_result v, gguf::validate_with_llamacpp(gguf_path, vo));
      out["llamacpp_ppl"] = v.ppl;
    }
  } else {
    wp = engine::checkpoint_weights(ck);
  }
  if (ref.empty()) {
    RAZOR_ASSIGN_OR_RETURN(engine::ppl_result r, engine::perplexity(*wp, tokens, opt));
    out["ppl"] = r.ppl;
    out["mean_nll"] = r.mean_nll;
    out["n_predictions"] = r.n_predictions;
    out["seconds"] = r.seconds;
    out["tokens_per_s"] = r.tokens_per_s;
    return out;
  }
  RAZOR_ASSIGN_OR_RETURN(checkpoint rck, checkpoint::open(ref));
  auto rtokens = protocol_tokens(ref, text);
  if (!rtokens.ok() || *rtokens != all_tokens)
    return make_error(errc::invalid_argument, "model and ref tokenize the text differently");
  auto rp = engine::checkpoint_weights(rck);
  RAZOR_ASSIGN_OR_RETURN(engine::kl_result r, engine::kl_divergence(*wp, *rp, tokens, opt));
  out["ref"] = ref;
  out.update(kl_json(r, opt.topk));
  return out;
}

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

// ---- allocate ----
namespace {
result<std::vector<double>> parse_list(const std::string& s, const char* what) {
  std::vector<double> v;
  std::string item;
  for (char ch : s + ",") {
    if (ch != ',') {
      item += ch;
      continue;
    }
    if (item.empty()) continue;
    size_t used = 0;
    double d = 0;
    try {
      d = std::stod(item, &used);
    } catch (...) {
      used = 0;
    }
    if (used != item.size())
      return make_error(errc::invalid_argument, std::string(what) + ": '" + item + "' is not a number");
    v.push_back(d);
    item.clear();
  }
  if (v.empty()) return make_error(errc::invalid_argument, std::string(what) + ": empty list");
  return v;
}

// mode gguf: one ggml type per quantized tensor of the file under an exact byte budget (core/alloc/job.h).
result<json> allocate_gguf(const json& p, job_context& ctx) {
  alloc::gguf_alloc_params a;
  a.model = str(p, "model");
  a.target = str(p, "target");
  a.out = str(p, "out");
  a.report = str(p, "report");
  a.imatrix = str(p, "imatrix");
  a.types = str(p, "types");
  if (auto it = p.find("role_types"); it != p.end()) {  // {role: "type,type"} or ["role=type,type", ...]
    if (it->is_object()) {
      for (auto& [role, types] : it->items()) {
        if (!types.is_string()) return make_error(errc::invalid_argument, "params.role_types." + role + " must be a string of comma-separated types");
        a.role_types.push_back(role + "=" + types.get<std::string>());
      }
    } else if (it->is_array()) {
      for (auto& e : *it) {
        if (!e.is_string()) return make_error(errc::invalid_argument, "params.role_types must be an object or an array of \"ROLE=TYPE,TYPE\"");
        a.role_types.push_back(e.get<std::string>());
      }
    } else if (it->is_string()) {
      a.role_types.push_back(it->get<std::string>());
    } else {
      return make_error(errc::invalid_argument, "params.role_types must be an object or an array of \"ROLE=TYPE,TYPE\"");
    }
  }
  a.allow_missing_imatrix = flag(p, "allow_missing_imatrix");
  RAZOR_ASSIGN_OR_RETURN(a.text, text_or_bundled(p, true));
  a.measure = flag(p, "measure");
  if (a.measure) {
    RAZOR_ASSIGN_OR_RETURN(a.measure_text, text_or_bundled(p, false, "eval_text"));
  }
  RAZOR_TRY(range(p, "calib_windows", 1, 1 << 16));
  RAZOR_TRY(range(p, "ctx", 2, 1 << 20));
  RAZOR_TRY(range(p, "calib_offset", 0, int64_t(1) << 40));
  RAZOR_TRY(range(p, "fit_types", 1, 64));
  RAZOR_TRY(range(p, "sample_rows", 0, int64_t(1) << 40));
  RAZOR_TRY(range(p, "windows", 1, 1 << 16));
  RAZOR_TRY(range(p, "eval_offset", -1, int64_t(1) << 40));
  a.windows = int(num(p, "calib_windows", 8));
  a.ctx = int(num(p, "ctx", 256));
  a.offset = num(p, "calib_offset", 0);
  a.sensitivity = str(p, "sensitivity").empty() ? std::string("full") : str(p, "sensitivity");
  a.fit_types = int(num(p, "fit_types", 3));
  a.sample_rows = num(p, "sample_rows", 256);
  a.cache = str(p, "cache");
  a.no_cache = flag(p, "no_cache");
  a.measure_windows = int(num(p, "windows", 32));
  a.measure_offset = num(p, "eval_offset", -1);
  RAZOR_ASSIGN_OR_RETURN(json rep, alloc::run_gguf_allocation(a, ctx.progress));
  ctx.emit_artifact({a.out, "file", "", {}, {{"what", "tensor-type recipe"}}});
  ctx.emit_artifact({rep.value("report", ""), "file", "", {}, {{"what", "razor.gguf_allocation/2 report"}}});
  rep["mode"] = "gguf";
  return rep;
}
}  // namespace

result<json> job_allocate(const json& p, job_context& ctx) {
  const std::string mode = str(p, "mode").empty() ? std::string("fake") : str(p, "mode");
  if (mode == "gguf") return allocate_gguf(p, ctx);
  const std::string model = str(p, "model"), probe = str(p, "probe"), out = str(p, "out"),
                    base_name = str(p, "base").empty() ? std::string("seed-default") : str(p, "base");
  const std::string strategy = str(p, "strategy").empty() ? std::string("solver") : str(p, "strategy");
  if (probe.empty()) return make_error(errc::invalid_argument, "params.probe is required in fake mode");
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model));
  RAZOR_ASSIGN_OR_RETURN(recipe base, load_recipe(base_name));
  RAZOR_ASSIGN_OR_RETURN(engine::probe_result pr, engine::read_probe_h5(probe));
  RAZOR_ASSIGN_OR_RETURN(auto st, quant::stats_from_probe(pr));
  RAZOR_ASSIGN_OR_RETURN(auto tgt, quant::parse_target(str(p, "target")));
  RAZOR_ASSIGN_OR_RETURN(auto strat, quant::strategy_from_name(strategy));
  std::string report_path = str(p, "report");
  if (report_path.empty()) {
    report_path = out;
    if (report_path.size() > 5 && report_path.substr(report_path.size() - 5) == ".json") report_path.resize(report_path.size() - 5);
    report_path += ".report.json";
  }
  std::string text;
  if (flag(p, "measure")) {
    RAZOR_ASSIGN_OR_RETURN(text, text_or_bundled(p, false));
  }
  // Both outputs may replace only razor's own earlier ones (util/output_guard.h): checked before the work.
  const std::vector<std::string> inputs = {model, probe, base_name, text};
  auto razor_json = [](const std::string& path) { return razor_json_file(path); };
  RAZOR_TRY(check_output_file(out, razor_json, inputs));
  RAZOR_TRY(check_output_file(report_path, razor_json, inputs));
  quant::allocate_options opt;
  opt.strat = strat;
  opt.target = tgt;
  opt.global_rank = !flag(p, "per_layer");
  RAZOR_TRY(range(p, "seed", 0, INT64_MAX));
  opt.seed = uint64_t(num(p, "seed", 0));
  opt.per_projection = flag(p, "per_proj");
  RAZOR_ASSIGN_OR_RETURN(auto tags, parse_list(str(p, "tags").empty() ? "1.58,4" : str(p, "tags"), "params.tags"));
  if (tags.size() != 2) return make_error(errc::invalid_argument, "params.tags: give lo,hi");
  opt.tags = {tags[0], tags[1]};
  RAZOR_ASSIGN_OR_RETURN(opt.choices, parse_list(str(p, "choices").empty() ? "1.58,2,3,4,8" : str(p, "choices"), "params.choices"));
  RAZOR_ASSIGN_OR_RETURN(opt.damage.salience,
                         quant::salience_from_name(str(p, "salience").empty() ? "output" : str(p, "salience")));
  opt.damage.weighted_error = !flag(p, "plain_error");

  // Measured errors: every candidate bit width the solver or the tags use, plus the standard set.
  quant::measure_options mo;
  mo.group = base.group;
  mo.clip_steps = base.clip_steps;
  std::vector<double> bits = mo.bits;
  for (double b : opt.choices) bits.push_back(b);
  bits.push_back(opt.tags.lo);
  bits.push_back(opt.tags.hi);
  std::sort(bits.begin(), bits.end());
  bits.erase(std::unique(bits.begin(), bits.end()), bits.end());
  mo.bits = bits;
  mo.progress = ctx.progress;
  bool cached = false;
  const std::string cache = flag(p, "no_cache") ? "" : quant::error_cache_path(probe, mo.group, mo.clip_steps);
  RAZOR_ASSIGN_OR_RETURN(auto errs, quant::load_or_measure_errors(ck, st, mo, cache, quant::probe_identity(probe, pr), &cached));
  ctx.log("info", std::string("quantization errors: ") + (cached ? "loaded from " : "measured; cached in ") +
                      (cache.empty() ? "(no cache)" : cache));
  RAZOR_ASSIGN_OR_RETURN(auto al, quant::allocate(ck, base, st, &errs, opt));
  RAZOR_TRY(save_recipe(al.r, out));
  json rep = al.report;
  rep["probe"] = probe;
  rep["error_cache"] = cache;
  rep["recipe"] = out;
  if (flag(p, "measure")) {
    RAZOR_TRY(range(p, "windows", 1, 1 << 20));
    RAZOR_TRY(range(p, "ctx", 2, 1 << 20));
    RAZOR_TRY(range(p, "eval_offset", -1, int64_t(1) << 40));
    const int windows = int(num(p, "windows", 32)), ctx_len = int(num(p, "ctx", 256));
    RAZOR_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, protocol_tokens(model, text));
    const int64_t eo_off = num(p, "eval_offset", -1);
    const size_t offset = eo_off >= 0 ? size_t(eo_off) : (pr.n_tokens + size_t(ctx_len) - 1) / size_t(ctx_len) * size_t(ctx_len);
    engine::eval_options eo;
    eo.windows = windows;
    eo.ctx = ctx_len;
    eo.run.progress = ctx.progress;
    RAZOR_ASSIGN_OR_RETURN(auto kl, quant::measure_recipe_kl(ck, al.r, tokens, offset, eo));
    rep["measured"] = {{"text", text},         {"windows", windows},     {"ctx", ctx_len},
                       {"eval_offset_tokens", offset}, {"kl_mean", kl.kl_mean}, {"kl_p99", kl.kl_p99},
                       {"topk_kl", kl.topk_kl}, {"same_top1", kl.same_top1}, {"ppl", kl.model.ppl},
                       {"ref_ppl", kl.ref.ppl}, {"n_positions", kl.n_positions}};
  }
  RAZOR_TRY(write_file_atomic(report_path, dump_json(rep, 2) + "\n"));
  ctx.emit_artifact({out, "file", "", {}, {{"what", "razor.recipe/1"}}});
  ctx.emit_artifact({report_path, "file", "", {}, {{"what", "razor.allocation/1 report"}}});
  rep["mode"] = "fake";
  rep["strategy"] = strategy;
  rep["target"] = str(p, "target");
  rep["report"] = report_path;
  return rep;
}

// ---- study ----

result<json> job_study(const json& p, job_context& ctx) {
  const std::string model = str(p, "model"), probe = str(p, "probe"), out_path = str(p, "out");
  const std::string base_name = str(p, "base").empty() ? std::string("seed-default") : str(p, "base");
  const std::string salience = str(p, "salience").empty() ? std::string("output") : str(p, "salience");
  RAZOR_ASSIGN_OR_RETURN(std::string text, text_or_bundled(p, false));
  RAZOR_TRY(range(p, "windows", 1, 1 << 20));
  RAZOR_TRY(range(p, "ctx", 2, 1 << 20));
  RAZOR_TRY(range(p, "batch", 1, 1 << 16));
  RAZOR_TRY(range(p, "eval_offset", -1, int64_t(1) << 40));
  RAZOR_TRY(range(p, "seed", 0, INT64_MAX));
  const int windows = int(num(p, "windows", 32)), ctx_len = int(num(p, "ctx", 256)), batch = int(num(p, "batch", 16));
  if (!out_path.empty())  // may replace only an earlier study (util/output_guard.h): checked before the work
    RAZOR_TRY(check_output_file(out_path, [](const std::string& f) { return razor_json_file(f, "razor.study/"); },
                                {model, probe, text}));
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model));
  RAZOR_ASSIGN_OR_RETURN(recipe base, load_recipe(base_name));
  RAZOR_ASSIGN_OR_RETURN(engine::probe_result pr, engine::read_probe_h5(probe));
  RAZOR_ASSIGN_OR_RETURN(auto st, quant::stats_from_probe(pr));
  RAZOR_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, protocol_tokens(model, text));
  const int64_t eo = num(p, "eval_offset", -1);
  const size_t offset = eo >= 0 ? size_t(eo) : (pr.n_tokens + size_t(ctx_len) - 1) / size_t(ctx_len) * size_t(ctx_len);
  if (offset < pr.n_tokens)
    ctx.log("warn", "evaluation starts at token " + std::to_string(offset) + ", inside the probe's " +
                        std::to_string(pr.n_tokens) + " calibration tokens");
  RAZOR_ASSIGN_OR_RETURN(std::vector<double> choices,
                         parse_list(str(p, "choices").empty() ? "1.58,2,3,4,8" : str(p, "choices"), "params.choices"));
  quant::measure_options mo;
  mo.group = base.group;
  mo.clip_steps = base.clip_steps;
  for (double b : choices) mo.bits.push_back(b);
  std::sort(mo.bits.begin(), mo.bits.end());
  mo.bits.erase(std::unique(mo.bits.begin(), mo.bits.end()), mo.bits.end());
  mo.progress = ctx.progress;
  bool cached = false;
  const std::string cache = quant::error_cache_path(probe, mo.group, mo.clip_steps);
  RAZOR_ASSIGN_OR_RETURN(auto errs, quant::load_or_measure_errors(ck, st, mo, cache, quant::probe_identity(probe, pr), &cached));
  RAZOR_ASSIGN_OR_RETURN(auto sal, quant::salience_from_name(salience));
  engine::eval_options eopt;
  eopt.windows = windows;
  eopt.ctx = ctx_len;
  eopt.batch_windows = batch;
  eopt.run.progress = ctx.progress;
  ctx.log("info", "study: " + std::to_string(tokens.size()) + " protocol tokens, evaluating " + std::to_string(windows) +
                      " windows of " + std::to_string(ctx_len) + " from token " + std::to_string(offset) + " (probe: " +
                      std::to_string(pr.n_tokens) + " tokens)");
  const std::vector<std::string> budgets = split_list(str(p, "budgets").empty() ? "3.0,2.5" : str(p, "budgets"));
  const std::vector<std::string> strategies =
      split_list(str(p, "strategies").empty() ? "solver,asal,wmass,freq,composite,wfro,random,blind,inverse" : str(p, "strategies"));
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  std::map<std::string, nlohmann::ordered_json> series;
  double ref_ppl = 0;
  for (auto& bs : budgets) {
    RAZOR_ASSIGN_OR_RETURN(auto tgt, quant::parse_target(bs.find_first_not_of("0123456789.") == std::string::npos ? bs + "bits" : bs));
    for (auto& sname : strategies) {
      if (ctx.is_cancelled()) return make_error(errc::cancelled, "study cancelled");
      auto t0 = std::chrono::steady_clock::now();
      recipe r;
      json rep;
      if (sname == "flat") {
        // every routed expert at the budget's bit width (the seed's "uniform int3" spec), when it is one
        if (tgt.k != quant::alloc_target::kind::expert_bits || !valid_bits(tgt.value)) continue;
        r = base;
        r.expert_bits.clear();
        for (int L = 0; L < st.n_layers; ++L) r.expert_bits[L] = std::vector<double>(size_t(st.n_experts), tgt.value);
        RAZOR_ASSIGN_OR_RETURN(footprint fp, compute_footprint(ck, r));
        auto dm = quant::make_damage_model(st, errs, {sal, true, 0.02});
        double d = 0;
        if (dm.ok())
          for (int L = 0; L < st.n_layers; ++L)
            for (int e = 0; e < st.n_experts; ++e) d += dm->damage(L, e, tgt.value, tgt.value);
        rep = {{"footprint", {{"expert_avg_bits", fp.expert_avg_bits()}, {"packed_bytes", fp.packed_bytes()}}},
               {"predicted_damage", std::isnan(d) ? json(nullptr) : json(d)}};
      } else {
        RAZOR_ASSIGN_OR_RETURN(auto strat, quant::strategy_from_name(sname));
        quant::allocate_options opt;
        opt.strat = strat;
        opt.target = tgt;
        opt.global_rank = !flag(p, "per_layer");
        opt.seed = uint64_t(num(p, "seed", 0));
        opt.choices = choices;
        opt.damage.salience = sal;
        RAZOR_ASSIGN_OR_RETURN(auto al, quant::allocate(ck, base, st, &errs, opt));
        r = al.r;
        rep = al.report;
      }
      RAZOR_ASSIGN_OR_RETURN(auto kl, quant::measure_recipe_kl(ck, r, tokens, offset, eopt));
      ref_ppl = kl.ref.ppl;
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double bits = rep["footprint"]["expert_avg_bits"].get<double>();
      const double bytes = rep["footprint"]["packed_bytes"].get<double>();
      nlohmann::ordered_json row;
      row["strategy"] = sname;
      row["budget"] = bs;
      row["expert_bits"] = bits;
      row["packed_bytes"] = bytes;
      row["predicted_damage"] = rep["predicted_damage"];
      row["kl_mean"] = kl.kl_mean;
      row["kl_p99"] = kl.kl_p99;
      row["kl_p999"] = kl.kl_p999;
      row["topk_kl"] = kl.topk_kl;
      row["ppl"] = kl.model.ppl;
      row["same_top1"] = kl.same_top1;
      row["n_positions"] = kl.n_positions;
      row["seconds"] = secs;
      if (rep.contains("layers")) {
        std::vector<double> lb;
        for (auto& l : rep["layers"]) lb.push_back(l["avg_bits"].get<double>());
        row["layer_bits"] = lb;
      }
      row["expert_bits_by_layer"] = r.expert_bits;
      rows.push_back(row);
      auto& s = series[sname];
      s["budget"].push_back(bs);
      s["expert_bits"].push_back(bits);
      s["kl_mean"].push_back(kl.kl_mean);
      s["kl_p99"].push_back(kl.kl_p99);
      s["ppl"].push_back(kl.model.ppl);
      s["same_top1"].push_back(kl.same_top1);
      ctx.log("info", "study: " + sname + " at " + bs + ": KL mean " + std::to_string(kl.kl_mean) + ", ppl " +
                          std::to_string(kl.model.ppl));
    }
  }
  nlohmann::ordered_json out;
  out["format"] = "razor.study/1";
  out["model"] = model;
  out["probe"] = probe;
  out["probe_tokens"] = pr.n_tokens;
  out["base_recipe"] = base.name;
  out["text"] = text;
  out["windows"] = windows;
  out["ctx"] = ctx_len;
  out["eval_offset_tokens"] = offset;
  out["ref_ppl"] = ref_ppl;
  out["choices"] = choices;
  out["salience"] = salience;
  out["error_cache"] = cache;
  out["rows"] = rows;
  nlohmann::ordered_json sj = nlohmann::ordered_json::object();
  for (auto& [k, v] : series) sj[k] = v;
  out["series"] = sj;
  const std::string doc = dump_json(out, 2);
  if (!out_path.empty()) {
    RAZOR_TRY(write_file_atomic(out_path, doc + "\n"));
    ctx.emit_artifact({out_path, "result", "", {}, {{"what", "razor.study/1"}}});
  }
  json res = json::parse(doc, nullptr, false);
  if (res.is_discarded()) return make_error(errc::internal, "study: the result is not JSON");
  res["out"] = out_path;
  return res;
}

// ---- merge ----
result<json> job_merge(const json& p, job_context& ctx) {
  namespace fs = std::filesystem;
  const std::string model = str(p, "model"), out = str(p, "out"), parts_dir = str(p, "parts_dir");
  const std::string recipe_name = str(p, "recipe").empty() ? std::string("seed-default") : str(p, "recipe");
  std::vector<std::string> parts = list(p, "part");
  if (!parts_dir.empty()) {
    std::error_code ec;
    std::vector<std::string> found;
    for (auto& e : fs::directory_iterator(parts_dir, ec)) {
      std::string n = e.path().filename().string();
      // skip hidden names and unfinished atomic outputs ("<dir>.partial-<pid>")
      if (!e.is_directory() || n.empty() || n[0] == '.' || n.find(".partial-") != std::string::npos) continue;
      found.push_back(e.path().string());
    }
    if (ec) return make_error(errc::io, parts_dir + ": " + ec.message());
    std::sort(found.begin(), found.end());
    parts.insert(parts.end(), found.begin(), found.end());
  }
  if (parts.empty()) return make_error(errc::invalid_argument, "merge: give params.part (repeated) or params.parts_dir");
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model));
  RAZOR_ASSIGN_OR_RETURN(recipe r, load_recipe(recipe_name));
  RAZOR_ASSIGN_OR_RETURN(auto rep, quant::merge_quantize_parts(ck, r, parts, out, {}, ctx.progress));
  ctx.emit_artifact({out, "checkpoint", "", {}, json::object()});
  ctx.emit_artifact({out + "/razor_quant_summary.json", "summary", "", {}, json::object()});
  return json{{"out", out}, {"parts", parts}, {"seconds", rep.seconds},
              {"totals", rep.summary.value("totals", json::object())}};
}

}  // namespace razor::jobs
