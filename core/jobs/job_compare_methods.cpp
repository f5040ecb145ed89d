// The compare-methods job (engine/method_compare.h) and the calibration tokens of `quantize` with a recipe method
// that needs them (engine/calib_tokens.h).
#include <algorithm>
#include <cmath>

#include "engine/calib_tokens.h"
#include "engine/method_compare.h"
#include "engine/probe.h"
#include "jobs/job_handlers.h"
#include "jobs/job_params.h"
#include "model/checkpoint.h"
#include "model/recipe.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"
#include "util/output_guard.h"

namespace razor::jobs {

using nlohmann::json;
using namespace job_params;

result<json> job_compare_methods(const json& p, job_context& ctx) {
  const std::string model = str(p, "model"), out_path = str(p, "out"), probe = str(p, "probe");
  RAZOR_ASSIGN_OR_RETURN(std::string text, text_or_bundled(p, true));
  RAZOR_ASSIGN_OR_RETURN(std::string eval_text, text_or_bundled(p, false, "eval_text"));
  RAZOR_TRY(range(p, "group", 0, kMaxRecipeGroup));
  RAZOR_TRY(range(p, "clip_steps", 0, kMaxRecipeClipSteps));
  RAZOR_TRY(range(p, "calib_tokens", 1, int64_t(1) << 32));
  RAZOR_TRY(range(p, "seqlen", 1, 1 << 20));
  RAZOR_TRY(range(p, "tokens_per_expert", 2, 1 << 20));
  RAZOR_TRY(range(p, "min_tokens", 1, 1 << 20));
  RAZOR_TRY(range(p, "windows", 1, 1 << 20));
  RAZOR_TRY(range(p, "ctx", 2, 1 << 20));
  const double bits = real(p, "bits", 3);
  if (!valid_bits(bits) || bits >= kKeepBits)
    return make_error(errc::invalid_argument, "params.bits must be one of " + recipe_bits_list() + " below 16");
  engine::compare_options o;
  o.bits = bits;
  o.group = int(num(p, "group", 128));
  o.clip_steps = int(num(p, "clip_steps", 16));
  o.min_tokens = num(p, "min_tokens", 8);
  for (const std::string& m : list(p, "methods")) {
    auto q = quant::parse_quant_method(m);
    if (!q.ok()) return make_error(errc::invalid_argument, "params.methods: " + q.error().message());
    o.methods.push_back(*q);
  }
  if (o.methods.empty()) return make_error(errc::invalid_argument, "params.methods is empty");
  o.calib.n_tokens = size_t(num(p, "calib_tokens", 8192));
  o.calib.seqlen = size_t(num(p, "seqlen", 256));
  o.calib.first_token = 0;
  o.calib.max_per_expert = size_t(num(p, "tokens_per_expert", 256));
  o.calib.progress = ctx.progress;
  if (!probe.empty()) {  // the probe's token range of the same text: the tokens whose routing the probe counted
    RAZOR_ASSIGN_OR_RETURN(engine::probe_result pr, engine::read_probe_h5(probe));
    o.calib.first_token = pr.first_token;
    o.calib.n_tokens = pr.n_tokens;
    o.calib.seqlen = pr.seqlen;
  }
  o.full_model = !flag(p, "no_kl");
  o.allow_gpu = ctx.allow_gpu && !flag(p, "cpu");
  o.eval.windows = int(num(p, "windows", 32));
  o.eval.ctx = int(num(p, "ctx", 256));
  o.log = [&ctx](const std::string& s) { ctx.log("info", s); };
  if (!out_path.empty())
    RAZOR_TRY(check_output_file(out_path, [](const std::string& f) { return razor_json_file(f, "razor.method_compare/"); },
                                {model, text, eval_text}));
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model));
  RAZOR_ASSIGN_OR_RETURN(std::vector<int32_t> calib, protocol_tokens(model, text));
  std::vector<int32_t> eval;
  if (o.full_model) {
    RAZOR_ASSIGN_OR_RETURN(eval, protocol_tokens(model, eval_text));
  }
  RAZOR_ASSIGN_OR_RETURN(json r, engine::compare_methods(ck, calib, eval, o));
  r["calibration"]["text"] = text;
  if (!probe.empty()) r["calibration"]["probe"] = probe;
  if (o.full_model) r["eval"]["text"] = eval_text;
  if (!out_path.empty()) {
    RAZOR_TRY(write_file_atomic(out_path, dump_json(r, 1) + "\n"));
    ctx.emit_artifact({out_path, "result", "", {}, json::object()});
    r["out"] = out_path;
  }
  return r;
}

result<quant::calib_source> quantize_calibration(const json& p, const checkpoint& ck, const recipe& r,
                                                 const layer_selection& sel, job_context& ctx,
                                                 std::shared_ptr<void>& keep, json& info) {
  RAZOR_ASSIGN_OR_RETURN(quant::quant_method m, quant::recipe_method(r));
  if (!quant::quant_method_needs_tokens(m)) return quant::calib_source{};
  RAZOR_ASSIGN_OR_RETURN(std::string text, text_or_bundled(p, true));
  RAZOR_TRY(range(p, "calib_tokens", 1, int64_t(1) << 32));
  RAZOR_TRY(range(p, "tokens_per_expert", 1, 1 << 20));
  RAZOR_TRY(range(p, "calib_seqlen", 1, 1 << 20));
  engine::calib_options co;
  co.n_tokens = size_t(num(p, "calib_tokens", 12288));
  co.max_per_expert = size_t(num(p, "tokens_per_expert", 64));
  co.seqlen = size_t(num(p, "calib_seqlen", 512));
  co.progress = ctx.progress;
  RAZOR_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, protocol_tokens(ck.dir(), text));
  auto wp = engine::checkpoint_weights(ck);
  ctx.log("info", "calibration tokens per expert for " + std::string(quant::quant_method_name(m)) + ": " +
                      std::to_string(std::min(co.n_tokens, tokens.size())) + " tokens of " + text + ", at most " +
                      std::to_string(co.max_per_expert) + " per expert");
  // Bounded: the selected layers' tokens are held while the shards are written (8 GiB at most; a --layers part
  // keeps its own layers only).
  RAZOR_ASSIGN_OR_RETURN(engine::model_dims d, engine::dims_for(*wp));
  int64_t kept_layers = 0;
  for (int L = 0; L < int(d.n_layers); ++L) kept_layers += sel.contains(L);
  const uint64_t bound = uint64_t(8) << 30;
  const uint64_t need = engine::calib_tokens_bytes(d, co.max_per_expert, co.n_tokens) / uint64_t(std::max<int64_t>(d.n_layers, 1)) *
                        uint64_t(kept_layers);
  if (need > bound)
    return make_error(errc::unsupported, "calibration tokens of " + std::to_string(kept_layers) + " layers would take up to " +
                                             std::to_string(need >> 20) + " MiB, more than 8192 MiB: lower "
                                             "params.tokens_per_expert or quantize fewer layers per part (--layers)");
  auto held = std::make_shared<std::vector<engine::layer_tokens>>(size_t(d.n_layers));
  RAZOR_TRY(engine::stream_calib_tokens(*wp, tokens, co, [&](engine::layer_tokens&& lt) -> status {
    if (lt.layer >= 0 && lt.layer < int(held->size()) && sel.contains(lt.layer)) (*held)[size_t(lt.layer)] = std::move(lt);
    return {};
  }));
  keep = held;
  info = {{"text", text}, {"calib_tokens", std::min(co.n_tokens, tokens.size())}, {"calib_seqlen", co.seqlen},
          {"max_tok_per_expert", co.max_per_expert}};
  const std::vector<engine::layer_tokens>* v = held.get();
  return quant::calib_source([v](int layer, int expert, bool down) -> quant::calib_view {
    if (layer < 0 || size_t(layer) >= v->size()) return {};
    return engine::token_view((*v)[size_t(layer)], expert, down, engine::token_half::all);
  });
}

}  // namespace razor::jobs
