// The allocation jobs: allocate (expert bits from a probe, or whole-file GGUF types) and study.
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
#include "jobs/job_params.h"

namespace razor::jobs {

using nlohmann::json;
using namespace job_params;

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
  RAZOR_ASSIGN_OR_RETURN(auto st, alloc::stats_from_probe(pr));
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
  RAZOR_ASSIGN_OR_RETURN(auto errs, quant::load_or_measure_errors(ck, st, mo, cache, alloc::probe_identity(probe, pr), &cached));
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
    RAZOR_ASSIGN_OR_RETURN(auto kl, alloc::measure_recipe_kl(ck, al.r, tokens, offset, eo));
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
  RAZOR_ASSIGN_OR_RETURN(auto st, alloc::stats_from_probe(pr));
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
  RAZOR_ASSIGN_OR_RETURN(auto errs, quant::load_or_measure_errors(ck, st, mo, cache, alloc::probe_identity(probe, pr), &cached));
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
      RAZOR_ASSIGN_OR_RETURN(auto kl, alloc::measure_recipe_kl(ck, r, tokens, offset, eopt));
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
  nlohmann::ordered_json out = {{"format", "razor.study/1"}, {"model", model},
                                 {"probe", probe},           {"probe_tokens", pr.n_tokens},
                                 {"base_recipe", base.name}, {"text", text},
                                 {"windows", windows},       {"ctx", ctx_len},
                                 {"eval_offset_tokens", offset}, {"ref_ppl", ref_ppl},
                                 {"choices", choices},       {"salience", salience},
                                 {"error_cache", cache},     {"rows", rows}};
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

}  // namespace razor::jobs
