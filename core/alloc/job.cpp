#include "alloc/job.h"

#include <filesystem>
#include <optional>
#include <sstream>

#include "alloc/weight_damage.h"
#include "alloc/whole_file.h"
#include "engine/eval.h"
#include "engine/tokenizer.h"
#include "gguf/imatrix.h"
#include "model/checkpoint.h"
#include "quant/allocate.h"
#include "util/atomic_file.h"
#include "util/fnv.h"
#include "util/json_limits.h"
#include "util/output_guard.h"

namespace razor::alloc {

namespace {

std::string sibling(const std::string& out, const std::string& suffix) {
  std::string base = out;
  if (auto dot = base.rfind('.'); dot != std::string::npos && base.find('/', dot) == std::string::npos) base.resize(dot);
  return base + suffix;
}

result<std::vector<ggml::type>> parse_types(const std::string& list, const std::string& what) {
  std::vector<ggml::type> v;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    auto t = ggml::type_from_name(item);
    if (!t.ok()) return make_error(errc::invalid_argument, what + ": unknown type '" + item + "'");
    v.push_back(*t);
  }
  if (v.empty()) return make_error(errc::invalid_argument, what + ": no type given");
  return v;
}

// Windows [offset + i*ctx, offset + (i+1)*ctx) of the text's protocol token stream.
result<std::vector<std::vector<int32_t>>> windows_of(const std::vector<int32_t>& tokens, int64_t offset, int n, int ctx,
                                                     const std::string& text) {
  if (n <= 0 || ctx <= 1 || offset < 0)
    return make_error(errc::invalid_argument, "calibration windows: count and ctx must be positive, offset >= 0");
  const size_t need = size_t(offset) + size_t(n) * size_t(ctx);
  if (tokens.size() < need)
    return make_error(errc::invalid_argument, text + ": " + std::to_string(tokens.size()) + " tokens; " +
                                                  std::to_string(n) + " windows of " + std::to_string(ctx) +
                                                  " from token " + std::to_string(offset) + " need " + std::to_string(need));
  std::vector<std::vector<int32_t>> seqs;
  for (int w = 0; w < n; ++w) {
    auto b = tokens.begin() + ptrdiff_t(offset + int64_t(w) * ctx);
    seqs.emplace_back(b, b + ctx);
  }
  return seqs;
}

}  // namespace

result<nlohmann::json> run_gguf_allocation(const gguf_alloc_params& p, const progress_fn& progress) {
  if (p.out.empty()) return make_error(errc::invalid_argument, "--out is required");
  const bool weights_only = p.sensitivity == "weights";
  if (p.sensitivity != "full" && p.sensitivity != "fit" && !weights_only)
    return make_error(errc::invalid_argument, "--sensitivity " + p.sensitivity + ": expected full, fit or weights");
  if (p.text.empty() && !weights_only)
    return make_error(errc::invalid_argument, "--text is required: the calibration text the sensitivities are measured on");
  if (p.sample_rows < 0) return make_error(errc::invalid_argument, "--sample-rows must be >= 0");
  RAZOR_ASSIGN_OR_RETURN(wf_target target, parse_wf_target(p.target));
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(p.model));

  gguf::imatrix im;
  const bool have_imat = !p.imatrix.empty();
  if (have_imat) {
    RAZOR_ASSIGN_OR_RETURN(im, gguf::read_imatrix(p.imatrix));
  }

  plan_options po;
  if (!p.types.empty()) {
    RAZOR_ASSIGN_OR_RETURN(po.ladder, parse_types(p.types, "--types"));
  }
  for (auto& rt : p.role_types) {
    auto eq = rt.find('=');
    if (eq == std::string::npos || eq == 0)
      return make_error(errc::invalid_argument, "--role-types '" + rt + "': expected ROLE=TYPE[,TYPE...]");
    RAZOR_ASSIGN_OR_RETURN(po.role_types[rt.substr(0, eq)], parse_types(rt.substr(eq + 1), "--role-types " + rt));
  }
  po.imat = have_imat ? &im : nullptr;
  po.allow_missing_imatrix = p.allow_missing_imatrix;
  RAZOR_ASSIGN_OR_RETURN(wf_plan plan, plan_items(ck, po));
  for (auto& [role, types] : po.role_types) {
    bool any = false;
    for (auto& it : plan.items) any |= it.role == role;
    if (!any) return make_error(errc::invalid_argument, "--role-types: the model has no quantized tensor of role '" + role + "'");
  }

  RAZOR_TRY(target_file_bytes(plan, target).error());  // refuse an impossible target before measuring

  // outputs: only over razor's own earlier ones (util/output_guard.h), checked before the work
  const std::string cache = p.cache.empty() ? sibling(p.out, ".sensitivity.json") : p.cache;
  const std::string report = p.report.empty() ? sibling(p.out, ".report.json") : p.report;
  const std::vector<std::string> inputs = {p.model, p.imatrix, p.text, p.measure_text};
  RAZOR_TRY(check_output_file(p.out, razor_text_file("# razor allocate"), inputs));
  RAZOR_TRY(check_output_file(report, [](const std::string& f) { return razor_json_file(f); }, inputs));
  if (!p.no_cache) RAZOR_TRY(check_output_file(cache, [](const std::string& f) { return razor_json_file(f); }, inputs));

  // calibration windows (the text is tokenized when the sensitivities or the check need it)
  std::optional<bpe_tokenizer> tk;
  std::vector<int32_t> tokens;
  std::vector<std::vector<int32_t>> seqs;
  fnv1a64 th;
  if (!weights_only || (p.measure && (p.measure_text.empty() || p.measure_text == p.text))) {
    RAZOR_ASSIGN_OR_RETURN(std::string text, read_text_file(p.text));
    RAZOR_ASSIGN_OR_RETURN(tk, bpe_tokenizer::load(ck.dir() + "/tokenizer.json"));
    RAZOR_ASSIGN_OR_RETURN(tokens, engine::protocol_tokens(*tk, text, p.text));
  }
  if (!weights_only) {
    RAZOR_ASSIGN_OR_RETURN(seqs, windows_of(tokens, p.offset, p.windows, p.ctx, p.text));
    for (auto& s : seqs)
      for (int32_t t : s) th.field(std::to_string(t));
  }

  // measurements: reused when the key matches
  std::vector<std::string> ladder;
  for (auto t : plan.ladder) ladder.emplace_back(ggml::type_name(t));
  nlohmann::json key = {{"model", quant::weights_identity(ck)},
                        {"imatrix", have_imat ? quant::file_identity(p.imatrix) : nlohmann::json()},
                        {"tokens", weights_only ? std::string() : th.hex()},
                        {"positions", weights_only ? 0 : p.windows * p.ctx},
                        {"ladder", ladder},
                        {"allow_missing_imatrix", p.allow_missing_imatrix},
                        {"sensitivity", p.sensitivity},
                        {"fit_types", p.sensitivity == "fit" ? p.fit_types : 0},
                        {"sample_rows", weights_only ? p.sample_rows : 0},
                        {"weights_prior", weights_only ? weights_prior_id() : std::string()}};
  measure_report mr;
  bool from_cache = false;
  if (!p.no_cache) {
    if (auto j = read_json_file(cache); j.ok()) {
      if (auto r = apply_cached(*j, key, plan); r.ok()) {
        mr = *r;
        from_cache = true;
      }
    }
  }
  if (!from_cache && weights_only) {
    weights_options wo;
    wo.sample_rows = p.sample_rows;
    wo.progress = progress;
    RAZOR_ASSIGN_OR_RETURN(mr, measure_weights(ck, have_imat ? &im : nullptr, plan, wo));
    if (!p.no_cache) RAZOR_TRY(write_file_atomic(cache, dump_json(measurements_json(plan, mr, key)) + "\n"));
  } else if (!from_cache) {
    measure_options mo;
    mo.seqs = seqs;
    mo.all_types = p.sensitivity == "full";
    mo.fit_types = p.fit_types;
    mo.progress = progress;
    RAZOR_ASSIGN_OR_RETURN(mr, measure(ck, have_imat ? &im : nullptr, plan, mo));
    if (!p.no_cache) RAZOR_TRY(write_file_atomic(cache, dump_json(measurements_json(plan, mr, key)) + "\n"));
  }

  gguf::convert_options co;
  co.imat = have_imat ? &im : nullptr;
  co.allow_missing_imatrix = p.allow_missing_imatrix;
  RAZOR_ASSIGN_OR_RETURN(wf_allocation al, allocate(ck, plan, target, co));
  nlohmann::json rep = al.report;
  rep["imatrix"] = p.imatrix;
  rep["recipe"] = p.out;
  if (!weights_only)
    rep["calibration"] = {{"text", p.text}, {"offset_tokens", p.offset}, {"windows", p.windows}, {"ctx", p.ctx},
                          {"positions", mr.positions}, {"ref_nll", mr.ref_nll}};
  rep["sensitivity"] = {{"mode", p.sensitivity}, {"measurements", mr.measurements}, {"seconds", mr.seconds},
                        {"alpha", mr.alpha}, {"fit_spearman", mr.fit_spearman}, {"cache", p.no_cache ? nlohmann::json() : nlohmann::json(cache)},
                        {"from_cache", from_cache}};
  if (weights_only) rep["sensitivity"]["sample_rows"] = p.sample_rows;
  if (p.measure) {
    const bool other = !p.measure_text.empty() && p.measure_text != p.text;
    const int64_t off = p.measure_offset >= 0 ? p.measure_offset : other ? 0 : p.offset + int64_t(p.windows) * p.ctx;
    std::vector<int32_t> mtokens;
    if (other) {
      RAZOR_ASSIGN_OR_RETURN(std::string mt, read_text_file(p.measure_text));
      if (!tk) {
        RAZOR_ASSIGN_OR_RETURN(tk, bpe_tokenizer::load(ck.dir() + "/tokenizer.json"));
      }
      RAZOR_ASSIGN_OR_RETURN(mtokens, engine::protocol_tokens(*tk, mt, p.measure_text));
    }
    const std::string& mname = other ? p.measure_text : p.text;
    RAZOR_ASSIGN_OR_RETURN(auto mseqs, windows_of(other ? mtokens : tokens, off, p.measure_windows, p.ctx, mname));
    RAZOR_ASSIGN_OR_RETURN(kl_stats k, measure_allocation(ck, have_imat ? &im : nullptr, plan, al.choice, mseqs));
    rep["measured"] = {{"text", mname}, {"offset_tokens", off}, {"windows", p.measure_windows}, {"kl_mean", k.mean},
                       {"kl_p99", k.p99},       {"kl_max", k.max},             {"same_top1", k.same_top1},
                       {"nll", k.nll},          {"predicted_kl", al.predicted_kl}};
  }
  RAZOR_TRY(write_file_atomic(p.out, al.recipe_text));
  rep["report"] = report;
  RAZOR_TRY(write_file_atomic(report, dump_json(rep, 2) + "\n"));
  return rep;
}

}  // namespace razor::alloc
