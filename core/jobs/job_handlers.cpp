// The engine jobs (probe, eval-ppl), merge, and the bundled texts; the GGUF jobs are in job_gguf.cpp, the
// allocation jobs in job_allocate.cpp.
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
#include "util/strformat.h"
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


// params.device and params.gpu_weights of the engine jobs; a worker without GPU permission runs on the CPU.
void engine_device(const json& p, const job_context& ctx, engine::backend& device, engine::gpu_precision& weights) {
  const std::string dev = str(p, "device");
  device = dev == "cuda" || dev == "gpu" ? engine::backend::cuda
           : dev == "auto"                ? engine::backend::automatic
                                          : engine::backend::cpu;
  if (!ctx.allow_gpu) device = engine::backend::cpu;
  weights = str(p, "gpu_weights") == "f32" ? engine::gpu_precision::f32 : engine::gpu_precision::bf16;
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
  engine::probe_options opt;
  engine_device(p, ctx, opt.device, opt.gpu_weights);
  engine::run_options where;
  where.device = opt.device;
  if (engine::resolve_backend(where) == engine::backend::cuda)
    ctx.log("info", "GPU " + engine::gpu_memory_plan(d, n, 512, opt.gpu_weights).to_string());
  else
    ctx.log("info", engine::plan_memory(d, n, (n + seqlen - 1) / seqlen, seqlen, 512).to_string());
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
  if (r.gpu_times.compute > 0) {
    const auto& g = r.gpu_times;
    res["gpu_time_split"] = {{"load", g.load},       {"observe", g.observe},   {"stage", g.stage},
                             {"wait", g.wait},       {"compute", g.compute},   {"layer_done", g.layer_done},
                             {"steady_layer_seconds", g.steady_layer_seconds()}};
    ctx.log("info", strformat("GPU path: loader thread load %.2f s, weight norms %.2f s (beside) stage + upload %.2f s; "
                              "GPU side waited %.2f s for weights, ran layers %.2f s", g.load, g.observe, g.stage,
                              g.wait, g.compute));
    if (g.layer_done.size() >= 2)
      ctx.log("info", strformat("GPU path: first layer done after %.2f s, then %.3f s a layer (steady state over "
                                "%zu layers)", g.layer_done.front(), g.steady_layer_seconds(), g.layer_done.size() - 1));
  }
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
  engine_device(p, ctx, opt.run.device, opt.run.gpu_weights);
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
