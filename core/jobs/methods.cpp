#include "jobs/methods.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "alloc/job.h"
#include "engine/eval.h"
#include "engine/probe.h"
#include "eval/runner.h"
#include "eval/serve.h"
#include "ggml/types.h"
#include "gguf/convert.h"
#include "gguf/imatrix.h"
#include "jobs/slurm.h"
#include "model/checkpoint.h"
#include "model/footprint.h"
#include "model/inventory.h"
#include "model/recipe.h"
#include "model/synth.h"
#include "quant/quantize.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"
#include "util/paths.h"
#include "util/output_guard.h"
#include "util/stale_partials.h"
#include "util/shell.h"

namespace razor::jobs {

using nlohmann::json;

namespace {

// ---- typed access to params: a missing required key or a wrong type is errc::invalid_argument ----
status bad_param(const std::string& key, const std::string& want) {
  return make_error(errc::invalid_argument, "params." + key + " must be " + want);
}

result<std::string> str_param(const json& p, const std::string& key, std::optional<std::string> def = std::nullopt) {
  auto it = p.find(key);
  if (it == p.end() || it->is_null()) {
    if (def) return *def;
    return make_error(errc::invalid_argument, "params." + key + " is required (a string)");
  }
  if (!it->is_string()) return bad_param(key, "a string");
  return it->get<std::string>();
}

result<bool> bool_param(const json& p, const std::string& key, bool def) {
  auto it = p.find(key);
  if (it == p.end() || it->is_null()) return def;
  if (!it->is_boolean()) return bad_param(key, "true or false");
  return it->get<bool>();
}

result<double> num_param(const json& p, const std::string& key, double def, double lo, double hi) {
  auto it = p.find(key);
  if (it == p.end() || it->is_null()) return def;
  if (!it->is_number()) return bad_param(key, "a number");
  double v = it->get<double>();
  if (!(v >= lo && v <= hi)) return bad_param(key, "in [" + json(lo).dump() + ", " + json(hi).dump() + "]");
  return v;
}

result<int64_t> int_param(const json& p, const std::string& key, int64_t def, int64_t lo, int64_t hi) {
  auto it = p.find(key);
  if (it == p.end() || it->is_null()) return def;
  if (!it->is_number_integer()) return bad_param(key, "an integer");
  if (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX))
    return bad_param(key, "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  int64_t v = it->get<int64_t>();
  if (v < lo || v > hi) return bad_param(key, "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

// The checkpoint of params.model, with the adapter's config check as a warning (as `razor inspect`).
result<checkpoint> open_model(const json& p, job_context& ctx, const std::string& key = "model") {
  RAZOR_ASSIGN_OR_RETURN(std::string dir, str_param(p, key));
  return checkpoint::open(dir);
}

// ---- the methods ----
result<json> m_echo(const json& p, job_context& ctx) {
  // Test hooks: text written to the worker's stdout / stderr must end on stderr (docs/protocol.md).
  if (auto it = p.find("stdout"); it != p.end() && it->is_string()) {
    std::fputs(it->get<std::string>().c_str(), stdout);
    std::fflush(stdout);
  }
  if (auto it = p.find("stderr"); it != p.end() && it->is_string()) {
    std::fputs(it->get<std::string>().c_str(), stderr);
    std::fflush(stderr);
  }
  return p;
}

result<json> m_sleep(const json& p, job_context& ctx) {
  RAZOR_ASSIGN_OR_RETURN(int64_t ms, int_param(p, "ms", 1000, 0, int64_t(24) * 3600 * 1000));
  RAZOR_ASSIGN_OR_RETURN(int64_t step, int_param(p, "step_ms", 10, 1, 60000));
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t t = 0; t < ms; t += step) {
    if (!ctx.progress(double(t), double(ms), "sleeping")) return make_error(errc::cancelled, "sleep cancelled");
    std::this_thread::sleep_until(t0 + std::chrono::milliseconds(std::min(t + step, ms)));
  }
  if (!ctx.progress(double(ms), double(ms), "sleeping")) return make_error(errc::cancelled, "sleep cancelled");
  return json{{"slept_ms", ms}};
}

result<json> m_inspect(const json& p, job_context& ctx) {
  RAZOR_ASSIGN_OR_RETURN(bool tensors, bool_param(p, "tensors", false));
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, open_model(p, ctx));
  auto st = check_adapter_config(ck.adapter(), ck.config(), p["model"].get<std::string>() + "/config.json");
  if (!st && ck.adapter().name != "generic") ctx.log("warn", st.to_string());
  json j = inventory_json(ck, tensors);
  j["stale_partials"] = stale_partials_json(stale_partials_near(p["model"].get<std::string>()));
  return j;
}

result<json> m_footprint(const json& p, job_context& ctx) {
  RAZOR_ASSIGN_OR_RETURN(std::string recipe_name, str_param(p, "recipe", "seed-default"));
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, open_model(p, ctx));
  RAZOR_ASSIGN_OR_RETURN(recipe r, load_recipe(recipe_name));
  RAZOR_ASSIGN_OR_RETURN(footprint fp, compute_footprint(ck, r));
  json j = fp.to_json();
  j["recipe"] = r.name;
  j["model"] = p["model"];
  return j;
}

result<json> m_quantize(const json& p, job_context& ctx) {
  RAZOR_ASSIGN_OR_RETURN(std::string recipe_name, str_param(p, "recipe", "seed-default"));
  RAZOR_ASSIGN_OR_RETURN(std::string out, str_param(p, "out"));
  RAZOR_ASSIGN_OR_RETURN(bool cpu, bool_param(p, "cpu", false));
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, open_model(p, ctx));
  RAZOR_ASSIGN_OR_RETURN(recipe r, load_recipe(recipe_name));
  quant::quantize_options opt;
  opt.allow_gpu = ctx.allow_gpu && !cpu;
  RAZOR_ASSIGN_OR_RETURN(quant::quantize_report rep, quant::quantize_checkpoint(ck, r, out, opt, ctx.progress));
  artifact a{out, "checkpoint", "", {}, {{"bytes_in", rep.bytes_in}}};
  ctx.emit_artifact(a);
  ctx.emit_artifact({out + "/" + opt.summary_name, "summary", "", {}, json::object()});
  return json{{"out", out}, {"recipe", r.name}, {"backend", rep.backend}, {"seconds", rep.seconds},
              {"bytes_in", rep.bytes_in}, {"totals", rep.summary.value("totals", json::object())}};
}

result<json> m_synth(const json& p, job_context& ctx) {
  RAZOR_ASSIGN_OR_RETURN(std::string out, str_param(p, "out"));
  RAZOR_ASSIGN_OR_RETURN(bool sparse, bool_param(p, "sparse", false));
  RAZOR_ASSIGN_OR_RETURN(bool per_expert, bool_param(p, "per_expert", false));
  RAZOR_ASSIGN_OR_RETURN(double shard_gb, num_param(p, "shard_gb", 5.0, 1e-6, 1e6));
  RAZOR_ASSIGN_OR_RETURN(int64_t seed, int_param(p, "seed", 1, 0, INT64_MAX));
  json config;
  auto c = p.find("config");
  if (c != p.end() && c->is_object()) {
    config = *c;
  } else {
    RAZOR_ASSIGN_OR_RETURN(std::string path, str_param(p, "config"));
    json_limits lim;
    lim.max_bytes = 16u << 20;
    lim.code = errc::bad_config;
    RAZOR_ASSIGN_OR_RETURN(config, read_json_file(path, lim));
  }
  synth_options opt;
  opt.sparse = sparse;
  opt.fused_experts = !per_expert;
  opt.shard_bytes = uint64_t(shard_gb * 1e9);
  opt.seed = uint64_t(seed);
  RAZOR_TRY(synth_checkpoint(config, out, opt, ctx.progress));
  ctx.emit_artifact({out, "checkpoint", "", {}, json::object()});
  return json{{"out", out}};
}

result<json> m_pack(const json& p, job_context& ctx) {
  RAZOR_ASSIGN_OR_RETURN(std::string model, str_param(p, "model"));
  RAZOR_ASSIGN_OR_RETURN(std::string out, str_param(p, "out"));
  RAZOR_ASSIGN_OR_RETURN(std::string type, str_param(p, "type", ""));
  RAZOR_ASSIGN_OR_RETURN(std::string recipe_path, str_param(p, "recipe", ""));
  RAZOR_ASSIGN_OR_RETURN(std::string imatrix_path, str_param(p, "imatrix", ""));
  RAZOR_ASSIGN_OR_RETURN(std::string output_type, str_param(p, "output_type", ""));
  RAZOR_ASSIGN_OR_RETURN(std::string embd_type, str_param(p, "token_embedding_type", ""));
  RAZOR_ASSIGN_OR_RETURN(std::string name, str_param(p, "name", ""));
  RAZOR_ASSIGN_OR_RETURN(double split_gb, num_param(p, "split_max_gb", 0.0, 0.0, 1e6));
  RAZOR_ASSIGN_OR_RETURN(int64_t threads, int_param(p, "threads", 0, 0, 4096));
  gguf::convert_options o;
  if (!recipe_path.empty()) {
    RAZOR_ASSIGN_OR_RETURN(o.recipe, gguf::load_type_recipe(recipe_path));
  }
  auto parse_type = [](const std::string& s, std::optional<ggml::type>* dst) -> status {
    if (s.empty()) return {};
    auto t = ggml::type_from_name(s);
    if (!t.ok()) return make_error(errc::invalid_argument, "unknown ggml type '" + s + "'");
    *dst = *t;
    return {};
  };
  std::optional<ggml::type> def;
  RAZOR_TRY(parse_type(type, &def));
  if (def) o.recipe.default_type = def;
  if (!o.recipe.default_type && recipe_path.empty())
    return make_error(errc::invalid_argument, "params.type or params.recipe is required");
  RAZOR_TRY(parse_type(output_type, &o.recipe.output_type));
  RAZOR_TRY(parse_type(embd_type, &o.recipe.token_embedding_type));
  gguf::imatrix im;
  if (!imatrix_path.empty()) {
    RAZOR_ASSIGN_OR_RETURN(im, gguf::read_imatrix(imatrix_path));
    o.imat = &im;
  }
  o.threads = int(threads);
  o.name = name;
  o.max_shard_bytes = uint64_t(split_gb * 1e9);
  o.progress = ctx.progress;
  RAZOR_ASSIGN_OR_RETURN(gguf::convert_report rep, gguf::convert_to_gguf(model, out, o));
  for (auto& n : rep.notes) ctx.log("info", n);
  for (auto& path : rep.paths) ctx.emit_artifact({path, "gguf", "", {}, json::object()});
  uint64_t tensor_bytes = 0;
  int64_t nel = 0;
  json by_type = json::object();
  for (auto& t : rep.tensors) {
    tensor_bytes += t.bytes;
    nel += t.nelements();
    auto& e = by_type[std::string(ggml::type_name(t.stored))];
    if (e.is_null()) e = {{"tensors", 0}, {"bytes", 0}};
    e["tensors"] = e["tensors"].get<int64_t>() + 1;
    e["bytes"] = e["bytes"].get<uint64_t>() + t.bytes;
  }
  return json{{"out", out},
              {"paths", rep.paths},
              {"arch", rep.arch},
              {"tensors", rep.tensors.size()},
              {"tensor_bytes", tensor_bytes},
              {"file_bytes", rep.file_bytes},
              {"bpw", nel ? 8.0 * double(tensor_bytes) / double(nel) : 0.0},
              {"by_type", by_type},
              {"notes", rep.notes}};
}

// params.text, or the bundled text (resources/data/README.md) when it is left out.
result<std::string> text_param(const json& p, bool calibration) {
  const std::string bundled = calibration ? bundled_calib_text() : bundled_eval_text();
  RAZOR_ASSIGN_OR_RETURN(std::string text, str_param(p, "text", bundled));
  if (text.empty())
    return make_error(errc::not_found, std::string("params.text is not given and the bundled ") +
                                           (calibration ? "kernel-docs-calib.txt" : "kernel-docs-eval.txt") +
                                           " was not found (no data folder)");
  return text;
}

// `razor allocate --mode gguf` (core/alloc/job.h): the whole-file allocation, recipe and report as artifacts.
result<json> m_allocate_gguf(const json& p, job_context& ctx) {
  alloc::gguf_alloc_params a;
  RAZOR_ASSIGN_OR_RETURN(a.model, str_param(p, "model"));
  RAZOR_ASSIGN_OR_RETURN(a.target, str_param(p, "target"));
  RAZOR_ASSIGN_OR_RETURN(a.out, str_param(p, "out"));
  RAZOR_ASSIGN_OR_RETURN(a.report, str_param(p, "report", ""));
  RAZOR_ASSIGN_OR_RETURN(a.imatrix, str_param(p, "imatrix", ""));
  RAZOR_ASSIGN_OR_RETURN(a.types, str_param(p, "types", ""));
  RAZOR_ASSIGN_OR_RETURN(a.text, text_param(p, true));
  RAZOR_ASSIGN_OR_RETURN(a.measure_text, str_param(p, "eval_text", bundled_eval_text()));
  RAZOR_ASSIGN_OR_RETURN(a.sensitivity, str_param(p, "sensitivity", "full"));
  RAZOR_ASSIGN_OR_RETURN(a.cache, str_param(p, "cache", ""));
  RAZOR_ASSIGN_OR_RETURN(a.allow_missing_imatrix, bool_param(p, "allow_missing_imatrix", false));
  RAZOR_ASSIGN_OR_RETURN(a.measure, bool_param(p, "measure", false));
  RAZOR_ASSIGN_OR_RETURN(int64_t windows, int_param(p, "calib_windows", 8, 1, 1 << 16));
  RAZOR_ASSIGN_OR_RETURN(int64_t ctx_len, int_param(p, "ctx", 256, 2, 1 << 20));
  RAZOR_ASSIGN_OR_RETURN(a.offset, int_param(p, "calib_offset", 0, 0, int64_t(1) << 40));
  RAZOR_ASSIGN_OR_RETURN(int64_t fit_types, int_param(p, "fit_types", 3, 1, 64));
  RAZOR_ASSIGN_OR_RETURN(int64_t mwin, int_param(p, "windows", 8, 1, 1 << 16));
  RAZOR_ASSIGN_OR_RETURN(a.measure_offset, int_param(p, "eval_offset", -1, -1, int64_t(1) << 40));
  a.windows = int(windows);
  a.ctx = int(ctx_len);
  a.fit_types = int(fit_types);
  a.measure_windows = int(mwin);
  if (auto it = p.find("role_types"); it != p.end() && !it->is_null()) {
    if (!it->is_object()) return bad_param("role_types", "an object {role: \"type,type\"}");
    for (auto& [role, types] : it->items()) {
      if (!types.is_string()) return bad_param("role_types." + role, "a string of comma-separated types");
      a.role_types.push_back(role + "=" + types.get<std::string>());
    }
  }
  RAZOR_ASSIGN_OR_RETURN(json rep, alloc::run_gguf_allocation(a, ctx.progress));
  ctx.emit_artifact({a.out, "file", "", {}, {{"what", "tensor-type recipe"}}});
  ctx.emit_artifact({rep.value("report", ""), "file", "", {}, {{"what", "razor.gguf_allocation/2 report"}}});
  return rep;
}

result<std::vector<int32_t>> protocol_tokens_of(const std::string& model, const std::string& text_path) {
  RAZOR_ASSIGN_OR_RETURN(std::string text, read_text_file(text_path));
  RAZOR_ASSIGN_OR_RETURN(bpe_tokenizer tk, bpe_tokenizer::load(model + "/tokenizer.json"));
  return engine::protocol_tokens(tk, text, text_path);
}

result<json> m_eval_ppl(const json& p, job_context& ctx) {
  RAZOR_ASSIGN_OR_RETURN(std::string model, str_param(p, "model"));
  RAZOR_ASSIGN_OR_RETURN(std::string ref, str_param(p, "ref", ""));
  RAZOR_ASSIGN_OR_RETURN(std::string text, text_param(p, false));
  engine::eval_options opt;
  RAZOR_ASSIGN_OR_RETURN(int64_t windows, int_param(p, "windows", opt.windows, 1, 1 << 20));
  RAZOR_ASSIGN_OR_RETURN(int64_t ctx_len, int_param(p, "ctx", opt.ctx, 2, 1 << 20));
  RAZOR_ASSIGN_OR_RETURN(int64_t batch, int_param(p, "batch", opt.batch_windows, 1, 1 << 16));
  RAZOR_ASSIGN_OR_RETURN(int64_t topk, int_param(p, "topk", opt.topk, 1, 1 << 20));
  opt.windows = int(windows);
  opt.ctx = int(ctx_len);
  opt.batch_windows = int(batch);
  opt.topk = int(topk);
  opt.run.progress = ctx.progress;
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model));
  RAZOR_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, protocol_tokens_of(model, text));
  auto wp = engine::checkpoint_weights(ck);
  json out = {{"model", model}, {"text", text}, {"windows", opt.windows}, {"ctx", opt.ctx},
              {"n_tokens", tokens.size()}};
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
  auto rtokens = protocol_tokens_of(ref, text);
  if (rtokens.ok() && *rtokens != tokens)
    return make_error(errc::invalid_argument, "model and ref tokenize the text differently");
  auto rp = engine::checkpoint_weights(rck);
  RAZOR_ASSIGN_OR_RETURN(engine::kl_result r, engine::kl_divergence(*wp, *rp, tokens, opt));
  out["ref"] = ref;
  out["ppl"] = r.model.ppl;
  out["ref_ppl"] = r.ref.ppl;
  out["kl_mean"] = r.kl_mean;
  out["kl_p99"] = r.kl_p99;
  out["kl_p999"] = r.kl_p999;
  out["kl_max"] = r.kl_max;
  out["topk_kl"] = r.topk_kl;
  out["topk"] = opt.topk;
  out["same_top1"] = r.same_top1;
  out["n_predictions"] = r.n_positions;
  out["tokens_per_s"] = r.model.tokens_per_s;
  return out;
}

result<json> m_probe(const json& p, job_context& ctx) {
  RAZOR_ASSIGN_OR_RETURN(std::string model, str_param(p, "model"));
  RAZOR_ASSIGN_OR_RETURN(std::string text, text_param(p, true));
  RAZOR_ASSIGN_OR_RETURN(std::string out, str_param(p, "out"));
  engine::probe_options opt;
  RAZOR_ASSIGN_OR_RETURN(int64_t n_tokens, int_param(p, "tokens", int64_t(opt.n_tokens), 1, int64_t(1) << 40));
  RAZOR_ASSIGN_OR_RETURN(int64_t seqlen, int_param(p, "seqlen", int64_t(opt.seqlen), 1, 1 << 20));
  RAZOR_ASSIGN_OR_RETURN(bool no_imatrix, bool_param(p, "no_imatrix", false));
  opt.n_tokens = size_t(n_tokens);
  opt.seqlen = size_t(seqlen);
  opt.collect_inputs = !no_imatrix;
  opt.progress = ctx.progress;
  RAZOR_TRY(check_output_file(out, engine::probe_h5_file, {model, text}));  // before the work (util/output_guard.h)
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model));
  RAZOR_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, protocol_tokens_of(model, text));
  auto wp = engine::checkpoint_weights(ck);
  RAZOR_ASSIGN_OR_RETURN(engine::probe_result r, engine::run_probe(*wp, tokens, opt));
  r.model = model;
  RAZOR_TRY(engine::write_probe_h5(r, out));
  ctx.emit_artifact({out, "h5", "f64", {int64_t(r.n_layers), int64_t(r.n_experts)},
                     {{"datasets", "freq, wmass, asal, wfro_gate_up, wfro_down, rnorm"}}});
  return json{{"out", out},         {"n_tokens", r.n_tokens},   {"n_seqs", r.n_seqs},
              {"seconds", r.seconds}, {"tokens_per_s", r.tokens_per_s}, {"layers", r.n_layers},
              {"experts", r.n_experts}, {"entropy", r.entropy},   {"max_mean", r.max_mean},
              {"cold_frac", r.cold_frac}};
}

// ---- serve / eval (docs/serving.md) ----
// A list of strings: a JSON array of strings, or (when `split` is given) one string split on it.
result<std::vector<std::string>> str_list_param(const json& p, const std::string& key, char split = 0) {
  std::vector<std::string> v;
  auto it = p.find(key);
  if (it == p.end() || it->is_null()) return v;
  if (it->is_string() && split) {
    std::string cur;
    for (char ch : it->get<std::string>() + split) {
      if (ch == split) {
        if (!cur.empty()) v.push_back(cur);
        cur.clear();
      } else if (ch != ' ') {
        cur += ch;
      }
    }
    return v;
  }
  if (!it->is_array()) return bad_param(key, split ? "an array of strings or a string" : "an array of strings");
  for (auto& e : *it) {
    if (!e.is_string()) return bad_param(key, "an array of strings");
    v.push_back(e.get<std::string>());
  }
  return v;
}

result<json> m_serve(const json& p, job_context& ctx) {
  eval::serve_options o;
  RAZOR_ASSIGN_OR_RETURN(o.engine, str_param(p, "engine", "vllm"));
  RAZOR_ASSIGN_OR_RETURN(o.model, str_param(p, "model", ""));
  RAZOR_ASSIGN_OR_RETURN(o.host, str_param(p, "host", "127.0.0.1"));
  RAZOR_ASSIGN_OR_RETURN(int64_t port, int_param(p, "port", 0, 0, 65535));
  RAZOR_ASSIGN_OR_RETURN(int64_t tp, int_param(p, "tensor_parallel", 0, 0, 4096));
  RAZOR_ASSIGN_OR_RETURN(o.name, str_param(p, "name", ""));
  RAZOR_ASSIGN_OR_RETURN(o.program, str_param(p, "program", ""));
  RAZOR_ASSIGN_OR_RETURN(o.args, str_list_param(p, "args"));
  RAZOR_ASSIGN_OR_RETURN(o.command, str_list_param(p, "command"));
  RAZOR_ASSIGN_OR_RETURN(int64_t ctx_len, int_param(p, "ctx", 0, 0, int64_t(1) << 30));
  RAZOR_ASSIGN_OR_RETURN(o.gpu_memory_utilization, num_param(p, "gpu_memory_utilization", 0.0, 0.0, 1.0));
  RAZOR_ASSIGN_OR_RETURN(o.ready_timeout_s, num_param(p, "ready_timeout_s", o.ready_timeout_s, 0.0, 7 * 86400.0));
  RAZOR_ASSIGN_OR_RETURN(o.stop_grace_s, num_param(p, "stop_grace_s", o.stop_grace_s, 0.0, 3600.0));
  RAZOR_ASSIGN_OR_RETURN(o.log_path, str_param(p, "log", ""));
  o.port = int(port);
  o.tensor_parallel = int(tp);
  o.ctx = int(ctx_len);
  RAZOR_ASSIGN_OR_RETURN(auto srv, eval::inference_server::start(o, ctx.progress));
  auto& s = *srv;
  ctx.log("info", "serving " + s.url() + " (pid " + std::to_string(s.pid()) + "): " + shell_join(s.argv()) +
                      "; log " + s.log_path());
  ctx.emit_artifact({s.url(), "endpoint", "", {},
                     {{"engine", o.engine},
                      {"model", o.model},
                      {"name", !o.name.empty() ? o.name : s.served_models().empty() ? "" : s.served_models()[0]},
                      {"served_models", s.served_models()},
                      {"pid", s.pid()},
                      {"port", s.port()},
                      {"tensor_parallel", s.gpus()},
                      {"log", s.log_path()},
                      {"argv", s.argv()}}});
  // Runs until cancelled (the normal way to stop it: error "cancelled") or until the server dies ("external").
  return s.serve(ctx.progress, [&ctx] { return ctx.is_cancelled(); });
}

result<int> budget_param(const json& p) {
  auto it = p.find("budget");
  if (it == p.end() || it->is_null()) return 32768;
  if (it->is_number_integer() && it->get<int64_t>() > 0 && it->get<int64_t>() < (1 << 24)) return it->get<int>();
  if (it->is_string()) {
    std::string s = it->get<std::string>();
    int mul = 1;
    if (!s.empty() && (s.back() == 'k' || s.back() == 'K')) {
      mul = 1024;
      s.pop_back();
    }
    if (!s.empty() && s.size() < 8 && s.find_first_not_of("0123456789") == std::string::npos) {
      int64_t v = std::stoll(s) * mul;
      if (v > 0 && v < (1 << 24)) return int(v);
    }
  }
  return bad_param("budget", "a token count or \"32k\" / \"64k\"");
}

result<json> m_eval(const json& p, job_context& ctx) {
  eval::eval_options o;
  RAZOR_ASSIGN_OR_RETURN(o.client.endpoint, str_param(p, "endpoint"));
  RAZOR_ASSIGN_OR_RETURN(o.model, str_param(p, "model", ""));
  RAZOR_ASSIGN_OR_RETURN(o.benchmarks, str_list_param(p, "benchmarks", ','));
  if (p.find("benchmarks") == p.end()) o.benchmarks = {"mmlu_pro", "gpqa", "mmmlu"};  // as `razor eval`
  RAZOR_ASSIGN_OR_RETURN(o.data_dir, str_param(p, "data"));
  RAZOR_ASSIGN_OR_RETURN(o.out, str_param(p, "out"));
  RAZOR_ASSIGN_OR_RETURN(int64_t n, int_param(p, "n", 0, 0, 1 << 24));
  RAZOR_ASSIGN_OR_RETURN(o.budget, budget_param(p));
  RAZOR_ASSIGN_OR_RETURN(int64_t conc, int_param(p, "concurrency", o.concurrency, 1, 1024));
  RAZOR_ASSIGN_OR_RETURN(o.tag, str_param(p, "tag", ""));
  RAZOR_ASSIGN_OR_RETURN(o.client.api_key, str_param(p, "api_key", ""));
  RAZOR_ASSIGN_OR_RETURN(o.client.timeout_s, num_param(p, "timeout_s", o.client.timeout_s, 1e-3, 7 * 86400.0));
  RAZOR_ASSIGN_OR_RETURN(int64_t retries, int_param(p, "retries", o.client.retries, 0, 100));
  RAZOR_ASSIGN_OR_RETURN(o.targets_path, str_param(p, "targets", ""));
  RAZOR_ASSIGN_OR_RETURN(o.official_model, str_param(p, "official_model", ""));
  RAZOR_ASSIGN_OR_RETURN(o.sandbox.require_no_network, bool_param(p, "require_sandbox_netns", false));
  o.n = int(n);
  o.concurrency = int(conc);
  o.client.retries = int(retries);
  o.client.cancelled = [&ctx] { return ctx.is_cancelled(); };
  if (o.model.empty()) {  // the served model: the first id of GET /v1/models
    eval::client c(o.client);
    RAZOR_ASSIGN_OR_RETURN(auto ids, c.models());
    if (ids.empty()) return make_error(errc::external, c.base_url() + "/models lists no model; pass params.model");
    o.model = ids[0];
    ctx.log("info", "model " + o.model + " (the first of " + c.base_url() + "/models)");
  }
  o.log = [&ctx](const std::string& line) { ctx.log("info", line); };
  o.progress = ctx.progress;
  RAZOR_ASSIGN_OR_RETURN(json res, eval::run_eval(o));
  std::string side = eval::samples_path(o.out);
  ctx.emit_artifact({o.out, "result", "", {}, {{"samples", side}}});
  ctx.emit_artifact({side, "file", "", {}, json::object()});
  res["out"] = o.out;
  res["samples"] = side;
  return res;
}

// ---- slurm (docs/slurm.md): `razor slurm submit`, then the jobs are followed until the merge job ends ----
result<json> m_slurm(const json& p, job_context& ctx) {
  namespace fs = std::filesystem;
  auto absolute = [](const std::string& s) {
    std::error_code ec;
    auto a = fs::absolute(s, ec);
    return ec ? s : a.lexically_normal().string();
  };
  slurm_options o;
  RAZOR_ASSIGN_OR_RETURN(std::string kind, str_param(p, "kind"));
  if (kind != "quantize" && kind != "pack") return bad_param("kind", "\"quantize\" or \"pack\"");
  o.kind = kind == "pack" ? slurm_job_kind::pack : slurm_job_kind::quantize;
  RAZOR_ASSIGN_OR_RETURN(o.model, str_param(p, "model"));
  RAZOR_ASSIGN_OR_RETURN(o.out, str_param(p, "out"));
  RAZOR_ASSIGN_OR_RETURN(o.work_dir, str_param(p, "work_dir"));
  RAZOR_ASSIGN_OR_RETURN(int64_t tasks, int_param(p, "tasks", 0, 0, 1 << 20));
  RAZOR_ASSIGN_OR_RETURN(int64_t lpt, int_param(p, "layers_per_task", 0, 0, 1 << 20));
  RAZOR_ASSIGN_OR_RETURN(o.job_args, str_list_param(p, "job_args"));
  RAZOR_ASSIGN_OR_RETURN(o.task_args, str_list_param(p, "task_args"));
  RAZOR_ASSIGN_OR_RETURN(o.partition, str_param(p, "partition", ""));
  RAZOR_ASSIGN_OR_RETURN(o.gres, str_param(p, "gres", ""));
  RAZOR_ASSIGN_OR_RETURN(o.time, str_param(p, "time", ""));
  RAZOR_ASSIGN_OR_RETURN(o.mem, str_param(p, "mem", ""));
  RAZOR_ASSIGN_OR_RETURN(o.account, str_param(p, "account", ""));
  RAZOR_ASSIGN_OR_RETURN(int64_t cpus, int_param(p, "cpus_per_task", 0, 0, 1 << 16));
  RAZOR_ASSIGN_OR_RETURN(o.job_name, str_param(p, "job_name", "razor"));
  RAZOR_ASSIGN_OR_RETURN(o.razor, str_param(p, "razor", ""));
  RAZOR_ASSIGN_OR_RETURN(std::string sbatch, str_param(p, "sbatch", "sbatch"));
  slurm_follow_options fo;
  RAZOR_ASSIGN_OR_RETURN(fo.scontrol, str_param(p, "scontrol", "scontrol"));
  RAZOR_ASSIGN_OR_RETURN(fo.scancel, str_param(p, "scancel", "scancel"));
  RAZOR_ASSIGN_OR_RETURN(fo.poll_s, num_param(p, "poll_s", 10.0, 0.0, 3600.0));
  o.tasks = int(tasks);
  o.layers_per_task = int(lpt);
  o.cpus_per_task = int(cpus);
  // As `razor slurm submit`: paths absolute (the tasks do not run in this directory), a --recipe / --imatrix
  // that names a file too; a bare recipe name is left for razor to look up.
  o.model = absolute(o.model);
  o.out = absolute(o.out);
  o.work_dir = absolute(o.work_dir);
  for (size_t i = 1; i < o.job_args.size(); ++i) {
    std::error_code ec;
    if ((o.job_args[i - 1] == "--recipe" || o.job_args[i - 1] == "--imatrix") && fs::is_regular_file(o.job_args[i], ec))
      o.job_args[i] = absolute(o.job_args[i]);
  }
  if (o.kind == slurm_job_kind::pack && std::find(o.job_args.begin(), o.job_args.end(), "--type") == o.job_args.end() &&
      std::find(o.job_args.begin(), o.job_args.end(), "--recipe") == o.job_args.end())
    return make_error(errc::invalid_argument, "slurm pack: params.job_args needs --type or --recipe");
  if (o.razor.empty()) {  // the compute nodes run this very binary
    std::error_code ec;
    auto self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return make_error(errc::io, "cannot find this program's path; pass params.razor");
    o.razor = self.string();
  } else {
    o.razor = absolute(o.razor);
  }
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(o.model));
  o.n_layers = int(ck.config().num_layers);
  RAZOR_ASSIGN_OR_RETURN(slurm_plan plan, make_slurm_plan(o));
  RAZOR_ASSIGN_OR_RETURN(slurm_submission sub, submit_slurm_plan(plan, sbatch));
  for (const std::string* path : {&plan.array_path, &plan.merge_path, &plan.submit_path})
    ctx.emit_artifact({*path, "file", "", {}, json::object()});
  ctx.log("info", "submitted array job " + sub.array_job_id + " (" + std::to_string(plan.ranges.size()) +
                      " tasks) and merge job " + sub.merge_job_id + " (afterok:" + sub.array_job_id + "); logs in " +
                      plan.logs_dir);
  fo.cancelled = [&ctx] { return ctx.is_cancelled(); };
  fo.log = [&ctx](const std::string& line) { ctx.log("info", line); };
  RAZOR_ASSIGN_OR_RETURN(slurm_outcome oc, follow_slurm_jobs(sub, plan, fo, ctx.progress));
  std::error_code ec;
  if (o.kind == slurm_job_kind::quantize) {
    ctx.emit_artifact({o.out, "checkpoint", "", {}, json::object()});
    ctx.emit_artifact({o.out + "/razor_quant_summary.json", "summary", "", {}, json::object()});
  } else if (fs::exists(o.out, ec)) {
    ctx.emit_artifact({o.out, "gguf", "", {}, json::object()});
  }
  return json{{"array_job_id", sub.array_job_id}, {"merge_job_id", sub.merge_job_id}, {"out", o.out},
              {"work_dir", o.work_dir},           {"tasks", plan.ranges.size()},      {"states", oc.task_states},
              {"merge_state", oc.merge_state}};
}

}  // namespace

const std::vector<method_def>& method_table() {
  static const std::vector<method_def> table = {
      {"echo", "any", "returns its params (test hook: params.stdout / params.stderr are printed there)", m_echo},
      {"sleep", "ms (int, default 1000), step_ms (int, default 10)", "sleeps with progress; cancellable", m_sleep},
      {"inspect", "model (string), tensors (bool, default false)", "the inventory of `razor inspect --json`",
       m_inspect},
      {"footprint", "model (string), recipe (string, default seed-default)", "`razor footprint --json`",
       m_footprint},
      {"quantize", "model, out (strings), recipe (default seed-default), cpu (bool)",
       "`razor quantize`: fake-quantized checkpoint, written atomically", m_quantize},
      {"synth", "config (path or object), out (string), sparse, per_expert (bool), shard_gb, seed",
       "`razor synth`: a synthetic checkpoint", m_synth},
      {"pack", "model, out (strings), type | recipe, imatrix, output_type, token_embedding_type, name, split_max_gb, threads",
       "`razor pack`: GGUF, written atomically", m_pack},
      {"allocate-gguf", "model, target, out (strings), text (default: the bundled calibration text), eval_text (--measure; "
                        "default: the bundled held-out text), imatrix, types, sensitivity (full | fit), cache, report "
                        "(strings), role_types ({role: \"type,type\"}), calib_windows, calib_offset, ctx, fit_types (ints), "
                        "allow_missing_imatrix, measure (bools), windows, eval_offset (ints: --measure)",
       "`razor allocate --mode gguf`: a ggml type per tensor of the whole file under a byte budget (artifacts: the "
       "recipe, the report)", m_allocate_gguf},
      {"eval-ppl", "model (string), text (string, default: the bundled held-out text), ref (string), windows, ctx, batch, topk (ints)",
       "`razor eval-ppl`: perplexity (and KL against ref)", m_eval_ppl},
      {"probe", "model, out (strings), text (string, default: the bundled calibration text), tokens, seqlen (ints), no_imatrix (bool)",
       "`razor probe`: routing statistics to HDF5", m_probe},
      {"serve", "engine (vllm | llama-server | command), model, host, port (0: free), tensor_parallel (0: visible GPUs), "
                "name, program, args (array), command (array, {model} {port} {host} {name}), ctx, "
                "gpu_memory_utilization, ready_timeout_s (default 900), stop_grace_s (default 4), log",
       "`razor serve`: an inference server until cancelled (artifact `endpoint`; cancel stops it)", m_serve},
      {"eval", "endpoint, data, out (strings), model (default: first of /v1/models), benchmarks (array or "
               "comma list), n, budget (int or \"32k\"), concurrency, tag, api_key, timeout_s, retries, targets, "
               "official_model, require_sandbox_netns",
       "`razor eval`: benchmarks against an OpenAI-compatible server (artifact `result`)", m_eval},
      {"slurm", "kind (quantize | pack), model, out, work_dir (strings), tasks | layers_per_task (ints), job_args, "
                "task_args (arrays of strings), partition, gres, time, mem, account, job_name, razor, sbatch, scontrol, "
                "scancel (strings), cpus_per_task (int), poll_s (default 10)",
       "`razor slurm submit`, then follows the array job and its merge until the merge ends (cancel: scancel)",
       m_slurm},
  };
  return table;
}

const method_def* find_method(std::string_view name) {
  for (auto& m : method_table())
    if (m.name == name) return &m;
  return nullptr;
}

std::vector<std::string> method_names() {
  std::vector<std::string> v;
  for (auto& m : method_table()) v.push_back(m.name);
  return v;
}

}  // namespace razor::jobs
