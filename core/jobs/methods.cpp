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
#include "jobs/job_handlers.h"
#include "jobs/slurm.h"
#include "model/checkpoint.h"
#include "model/footprint.h"
#include "model/inventory.h"
#include "model/layer_selection.h"
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
result<json> job_echo(const json& p, job_context& ctx) {
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

result<json> job_sleep(const json& p, job_context& ctx) {
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

result<json> job_inspect(const json& p, job_context& ctx) {
  RAZOR_ASSIGN_OR_RETURN(bool tensors, bool_param(p, "tensors", false));
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, open_model(p, ctx));
  auto st = check_adapter_config(ck.adapter(), ck.config(), p["model"].get<std::string>() + "/config.json");
  if (!st && ck.adapter().name != "generic") ctx.log("warn", st.to_string());
  json j = inventory_json(ck, tensors);
  j["stale_partials"] = stale_partials_json(stale_partials_near(p["model"].get<std::string>()));
  return j;
}

result<json> job_footprint(const json& p, job_context& ctx) {
  RAZOR_ASSIGN_OR_RETURN(std::string recipe_name, str_param(p, "recipe", "seed-default"));
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, open_model(p, ctx));
  RAZOR_ASSIGN_OR_RETURN(recipe r, load_recipe(recipe_name));
  RAZOR_ASSIGN_OR_RETURN(footprint fp, compute_footprint(ck, r));
  json j = fp.to_json();
  j["recipe"] = r.name;
  j["model"] = p["model"];
  return j;
}

result<json> job_quantize(const json& p, job_context& ctx) {
  RAZOR_ASSIGN_OR_RETURN(std::string recipe_name, str_param(p, "recipe", "seed-default"));
  RAZOR_ASSIGN_OR_RETURN(std::string out, str_param(p, "out"));
  RAZOR_ASSIGN_OR_RETURN(bool cpu, bool_param(p, "cpu", false));
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, open_model(p, ctx));
  RAZOR_ASSIGN_OR_RETURN(recipe r, load_recipe(recipe_name));
  RAZOR_ASSIGN_OR_RETURN(std::string layers, str_param(p, "layers", "all"));
  quant::quantize_options opt;
  opt.allow_gpu = ctx.allow_gpu && !cpu;
  RAZOR_ASSIGN_OR_RETURN(opt.layers, parse_layer_selection(layers, int(ck.config().num_layers)));
  std::shared_ptr<void> calib_tokens;  // what opt.calib reads (a recipe method that needs tokens)
  RAZOR_ASSIGN_OR_RETURN(opt.calib, quantize_calibration(p, ck, r, opt.layers, ctx, calib_tokens, opt.calib_info));
  RAZOR_ASSIGN_OR_RETURN(quant::quantize_report rep, quant::quantize_checkpoint(ck, r, out, opt, ctx.progress));
  artifact a{out, "checkpoint", "", {}, {{"bytes_in", rep.bytes_in}}};
  ctx.emit_artifact(a);
  if (opt.layers.all) ctx.emit_artifact({out + "/" + opt.summary_name, "summary", "", {}, json::object()});
  json res{{"out", out}, {"recipe", r.name}, {"backend", rep.backend}, {"seconds", rep.seconds},
           {"bytes_in", rep.bytes_in}, {"totals", rep.summary.value("totals", json::object())},
           {"files", rep.summary.value("files", json::array()).size()}};
  if (!opt.layers.all) res["part_layers"] = opt.layers.to_string();
  // The five routed experts with the largest error, for a first look.
  std::vector<std::pair<double, json>> worst;
  for (auto& e : rep.summary.value("experts", json::array()))
    worst.push_back({e.value("rel_error", 0.0), json{{"layer", e.value("layer", -1)}, {"expert", e.value("expert", -1)},
                                                     {"proj", e.value("proj", "")}, {"rel_error", e.value("rel_error", 0.0)}}});
  std::sort(worst.begin(), worst.end(), [](auto& a, auto& b) { return a.first > b.first; });
  json w = json::array();
  for (size_t i = 0; i < std::min<size_t>(5, worst.size()); ++i) w.push_back(worst[i].second);
  res["worst_experts"] = w;
  return res;
}

result<json> job_synth(const json& p, job_context& ctx) {
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
  RAZOR_ASSIGN_OR_RETURN(opt.heavy_tails, bool_param(p, "heavy_tails", false));
  RAZOR_ASSIGN_OR_RETURN(opt.vision, bool_param(p, "vision", false));
  RAZOR_ASSIGN_OR_RETURN(double stddev, num_param(p, "stddev", 0.02, 0.0, 100.0));
  opt.stddev = float(stddev);
  RAZOR_ASSIGN_OR_RETURN(std::string dt, str_param(p, "dtype", "bf16"));
  opt.dt = dt == "fp8" ? dtype::f8_e4m3 : dt == "f16" ? dtype::f16 : dt == "f32" ? dtype::f32 : dtype::bf16;
  opt.mxfp4_experts = dt == "mxfp4";  // gpt_oss's experts MXFP4, the rest BF16
  RAZOR_TRY(synth_checkpoint(config, out, opt, ctx.progress));
  ctx.emit_artifact({out, "checkpoint", "", {}, json::object()});
  return json{{"out", out}};
}

// ---- serve / eval (docs/serving.md) ----
// A list of strings: a JSON array of strings, or (when `split` is set) one comma-separated string.
result<std::vector<std::string>> str_list_param(const json& p, const std::string& key, bool split = false) {
  std::vector<std::string> v;
  auto it = p.find(key);
  if (it == p.end() || it->is_null()) return v;
  if (it->is_string() && split) return split_list(it->get<std::string>());
  if (!it->is_array()) return bad_param(key, split ? "an array of strings or a string" : "an array of strings");
  for (auto& e : *it) {
    if (!e.is_string()) return bad_param(key, "an array of strings");
    v.push_back(e.get<std::string>());
  }
  return v;
}

result<json> job_serve(const json& p, job_context& ctx) {
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
  RAZOR_ASSIGN_OR_RETURN(int64_t n_cpu_moe, int_param(p, "n_cpu_moe", 0, 0, 100000));
  o.n_cpu_moe = int(n_cpu_moe);
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
  if (it->is_string())
    if (auto v = eval::parse_token_count(it->get<std::string>(), "budget"); v.ok()) return *v;
  return bad_param("budget", "a token count or \"32k\" / \"64k\"");
}

result<json> job_eval(const json& p, job_context& ctx) {
  eval::eval_options o;
  RAZOR_ASSIGN_OR_RETURN(o.client.endpoint, str_param(p, "endpoint"));
  RAZOR_ASSIGN_OR_RETURN(o.model, str_param(p, "model", ""));
  RAZOR_ASSIGN_OR_RETURN(o.benchmarks, str_list_param(p, "benchmarks", true));
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
  RAZOR_ASSIGN_OR_RETURN(o.artifact, str_param(p, "artifact", ""));
  RAZOR_ASSIGN_OR_RETURN(o.server_command, str_list_param(p, "server_command"));
  RAZOR_ASSIGN_OR_RETURN(std::vector<std::string> speed_ctx, str_list_param(p, "speed_contexts"));
  for (const std::string& c : speed_ctx) {
    RAZOR_ASSIGN_OR_RETURN(int ctx_tokens, eval::parse_token_count(c, "speed_contexts"));
    o.speed.contexts.push_back(ctx_tokens);
  }
  RAZOR_ASSIGN_OR_RETURN(int64_t speed_gen, int_param(p, "speed_gen", 128, 2, 1 << 20));
  o.speed.gen_tokens = int(speed_gen);
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
result<json> job_slurm(const json& p, job_context& ctx) {
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

namespace {
// Short builders for the table's fields.
struct fb {
  field_def f;
  fb& pos() { f.positional = true; return *this; }
  fb& vals(std::string v) { f.values = std::move(v); return *this; }
  fb& one_of(std::vector<std::string> c) { f.choices = std::move(c); return *this; }
  fb& alias(std::string a) { f.cli_alias = std::move(a); return *this; }
  fb& worker_only() { f.worker_only = true; return *this; }
  operator field_def() const { return f; }  // NOLINT: the table's rows convert
};
constexpr auto S = field_type::string, P = field_type::path, I = field_type::integer, N = field_type::number,
               B = field_type::boolean, L = field_type::string_list, O = field_type::object, A = field_type::any;
fb need(std::string name, field_type t, std::string help) { return fb{{std::move(name), t, nullptr, std::move(help), true}}; }
fb opt(std::string name, field_type t, json def, std::string help) { return fb{{std::move(name), t, std::move(def), std::move(help)}}; }
fb opt(std::string name, field_type t, std::string help) { return fb{{std::move(name), t, nullptr, std::move(help)}}; }
// The engine jobs' device choice (job_handlers.cpp engine_device).
fb engine_device() {
  return opt("device", S, "cpu", "cpu (the reference), cuda, or auto (cuda when a GPU is present)").one_of({"cpu", "cuda", "gpu", "auto"});
}
// eval-ppl defaults to f32 (KL against a reference is measured to float32 rounding; BF16 GEMM inputs alone move
// the fixtures' logits by KL ~3e-3), the probe to bf16 (its statistics barely move, the pass is 3x faster).
fb engine_gpu_weights(const char* def) {
  return opt("gpu_weights", S, def, "the GPU engine's weights: bf16 (half the memory and upload, tensor cores) or f32 (the reference math)")
      .one_of({"bf16", "f32"});
}
}  // namespace

const std::vector<method_def>& method_table() {
  static const std::vector<method_def> table = {
      {"echo", "returns its params (test hook: params.stdout / params.stderr are printed there)", {}, job_echo, true},
      {"sleep", "sleeps with progress; cancellable",
       {opt("ms", I, 1000, "milliseconds"), opt("step_ms", I, 10, "progress step")}, job_sleep},
      {"inspect", "the inventory of `razor inspect --json`",
       {need("model", P, "Hugging Face checkpoint directory").pos(), opt("tensors", B, false, "list every tensor")},
       job_inspect},
      {"footprint", "`razor footprint --json`",
       {need("model", P, "Hugging Face checkpoint directory").pos(),
        opt("recipe", S, "seed-default", "razor.recipe/1 file or bundled recipe name")},
       job_footprint},
      {"quantize", "`razor quantize`: fake-quantized checkpoint, written atomically",
       {need("model", P, "Hugging Face checkpoint directory").pos(), need("out", P, "output checkpoint directory"),
        opt("recipe", S, "seed-default", "razor.recipe/1 file or bundled recipe name"),
        opt("cpu", B, false, "never use a GPU"),
        opt("layers", S, "all", "only layers A:B (half-open), 'rest' (tensors outside the layers) or 'A:B,rest': "
                                "writes a part for merge (docs/slurm.md)"),
        opt("text", P, "recipe method awq / gptq: calibration text (default: the bundled kernel-docs-calib.txt)"),
        opt("calib_tokens", I, 12288, "recipe method awq / gptq: calibration tokens (the seed: 24 x 512)"),
        opt("calib_seqlen", I, 512, "recipe method awq / gptq: tokens per calibration sequence"),
        opt("tokens_per_expert", I, 64, "recipe method awq / gptq: tokens kept per expert (the seed's checkpoints: 64)")},
       job_quantize},
      {"compare-methods", "`razor compare-methods`: held-out NMSE per expert and projection of each quantization method, "
                          "and KL / ppl of each method's model (razor.method_compare/1)",
       {need("model", P, "Hugging Face checkpoint directory").pos(),
        opt("methods", S, "clip,absmax,rtn-asym,awq,gptq,hqq", "comma list of methods (core/quant/methods.h)"),
        opt("bits", N, 3.0, "expert bits"), opt("group", I, 128, "group size"),
        opt("clip_steps", I, 16, "clip's search candidates"),
        opt("text", P, "calibration text (default: the bundled kernel-docs-calib.txt)"),
        opt("probe", P, "take the calibration token range (offset, tokens, seqlen) of this probe file (razor probe) of the same text"),
        opt("calib_tokens", I, 8192, "calibration tokens run through the model"),
        opt("seqlen", I, 256, "tokens per calibration sequence"),
        opt("tokens_per_expert", I, 256, "tokens kept per expert: the first half calibrates, the second is held out (the seed's moe_compare: 256)"),
        opt("min_tokens", I, 8, "held-out tokens an expert needs to be scored"),
        opt("eval_text", P, "KL / ppl text (default: the bundled held-out kernel-docs-eval.txt)"),
        opt("windows", I, 32, "KL / ppl windows"), opt("ctx", I, 256, "tokens per window"),
        opt("no_kl", B, false, "NMSE only: no full-model KL / ppl (streams per layer; for large models)"),
        opt("cpu", B, false, "never use a GPU (GPTQ otherwise runs batched over a layer's experts on one when present)"),
        opt("out", P, "result JSON (razor.method_compare/1)")},
       job_compare_methods},
      {"synth", "`razor synth`: a synthetic checkpoint",
       {need("config", A, "config.json to synthesise (e.g. resources/configs/qwen3.5-122b-a10b.json; the worker also "
                          "takes the object itself)"),
        need("out", P, "output directory"),
        opt("sparse", B, false, "zero data as sparse-file holes (instant, no disk blocks)"),
        opt("per_expert", B, false, "experts.E.gate_proj layout instead of fused gate_up_proj"),
        opt("shard_gb", N, 5.0, "shard size in GB"), opt("seed", I, 1, "random seed for the data"),
        opt("stddev", N, 0.02, "standard deviation of the random weights (about 0.5 on a tiny model: logits far "
                               "from uniform, to compare two implementations)"),
        opt("dtype", S, "bf16", "bf16, f16, f32, fp8: FP8 E4M3 linear weights with 128x128 block scales "
                                "(<weight>_scale_inv, the Hub's fine-grained FP8 layout), or mxfp4: gpt_oss's experts "
                                "as MXFP4 <name>_blocks / _scales (the Hub's release), the rest BF16")
            .one_of({"bf16", "f16", "f32", "fp8", "mxfp4"}),
        opt("heavy_tails", B, false, "realistic tails for scale tests: 0.5% of values 5x wider, 0.5% of input "
                                     "columns 6x larger (outliers); drawn on all cores"),
        opt("vision", B, false, "also the vision tower of the config's vision_config (model.visual.*, Qwen3-VL / "
                                "Qwen3.5) and its preprocessor_config.json: the fixture of mmproj")},
       job_synth},
      {"pack", "`razor pack`: GGUF in the requested ggml types, written atomically (dry_run: the plan only)",
       {need("model", P, "checkpoint folder (config.json + *.safetensors)").pos(),
        opt("type", S, "default ggml type").vals("ggml_types").alias("-t"),
        opt("recipe", P, "tensor-type recipe (llama-quantize --tensor-type-file syntax) or razor.recipe/1 JSON").alias("-r"),
        opt("ftype", S, "llama-quantize file type, its per-tensor mix exactly").vals("ftypes").alias("-f"),
        opt("pure", B, false, "with ftype: the file type's default type for every tensor (llama-quantize --pure)"),
        opt("imatrix", P, "importance matrix (.gguf or legacy .dat)"),
        opt("output_tensor_type", S, "type of output.weight").vals("ggml_types"),
        opt("token_embedding_type", S, "type of token_embd.weight").vals("ggml_types"),
        opt("out", P, "output .gguf (required unless dry_run)").alias("-o"),
        opt("name", S, "general.name (default: the folder name)"),
        opt("split_max_gb", N, 0.0, "split into shards of at most this many GB (0: one file)"),
        opt("threads", I, 0, "quantizer threads (0: all)"),
        opt("cpu", B, false, "never use the GPU packer (the bytes are the same; for comparisons)"),
        opt("dry_run", B, false, "the plan (every tensor's type, size and why) without writing"),
        opt("layers", S, "all", "only layers A:B (half-open), 'rest' or 'A:B,rest': out is a part directory (docs/slurm.md)"),
        opt("from_part", L, "assemble these parts (repeat) into out instead of quantizing; same type options as the parts"),
        opt("allow_missing_imatrix", B, false,
            "quantize types that need an importance matrix without one (comparisons only; llama-quantize refuses)")},
       job_pack},
      {"mmproj", "`razor mmproj`: the vision tower's mmproj GGUF (llama.cpp's clip file, projector qwen3vl_merger) "
                 "for llama-server --mmproj, written atomically (dry_run: the plan only)",
       {need("model", P, "checkpoint folder (config.json with vision_config, preprocessor_config.json, *.safetensors)").pos(),
        opt("out", P, "output .gguf (required unless dry_run)").alias("-o"),
        opt("type", S, "f16", "type of the weights, as convert_hf_to_gguf.py --outtype (the patch embedding is f16 "
                              "in an f16 file, else f32; biases, norms and the position embedding f32)")
            .one_of({"f16", "bf16", "q8_0", "f32"}).alias("-t"),
        opt("name", S, "general.name (default: the folder name)"),
        opt("threads", I, 0, "threads (0: all)"),
        opt("dry_run", B, false, "the plan (every tensor's GGUF name, shape, type, bytes) without writing")},
       job_mmproj},
      {"allocate", "`razor allocate`: per-expert bits from a probe (mode fake: razor.recipe/1) or a ggml type per GGUF "
                   "tensor of the whole file (mode gguf: tensor-type recipe for pack); artifacts: the recipe, the report",
       {need("model", P, "Hugging Face checkpoint directory").pos(),
        need("target", S, "budget: packed footprint ('47GB', '45GiB', '7879360B') or bits ('3.05bits': average "
                          "routed-expert bits in fake mode, bits per weight of the whole file in gguf mode)"),
        need("out", P, "output recipe"),
        opt("mode", S, "fake", "fake (razor.recipe/1 for quantize) or gguf (tensor-type recipe for pack)").one_of({"fake", "gguf"}),
        opt("probe", P, "fake mode: probe file written by probe (HDF5)"),
        opt("strategy", S, "solver", "fake mode: the allocation strategy").vals("strategies"),
        opt("base", S, "seed-default", "fake mode: recipe for everything but the routed experts"),
        opt("report", P, "report file (default <out>.report.json)"),
        opt("tags", S, "1.58,4", "seed strategies: lo,hi tags"),
        opt("per_layer", B, false, "seed strategies: rank within each layer instead of globally"),
        opt("seed", I, 0, "random strategy: seed"),
        opt("choices", S, "1.58,2,3,4,8", "solver: allowed bits"),
        opt("per_proj", B, false, "solver: choose gate_up and down bits separately (per-expert layouts)"),
        opt("salience", S, "output", "solver salience").vals("saliences"),
        opt("plain_error", B, false, "solver: unweighted relative error (ignore the imatrix)"),
        opt("no_cache", B, false, "measure again and do not write the cache"),
        opt("measure", B, false, "also measure KL against the unquantized model"),
        opt("text", P, "fake mode: the measure text (default the bundled held-out text); gguf mode: the calibration "
                       "text (default the bundled calibration text)"),
        opt("eval_text", P, "gguf mode: the measure text (default the bundled held-out text)"),
        opt("windows", I, 32, "measure: windows"),
        opt("ctx", I, 256, "tokens per window"),
        opt("eval_offset", I, -1, "measure: first token evaluated (-1: after the probe's tokens, rounded to ctx; gguf mode: 0)"),
        opt("imatrix", P, "gguf mode: importance matrix (the quantizers' weights, as pack uses it)"),
        opt("types", S, "gguf mode: the type ladder, comma-separated (default: every ggml type and f16)"),
        opt("role_types", A, "gguf mode: ROLE=TYPE[,TYPE...]: the only types for a role; repeatable (worker: also {role: \"types\"})"),
        opt("allow_missing_imatrix", B, false, "gguf mode: offer types that need an importance matrix without one"),
        opt("calib_windows", I, 8, "gguf mode: calibration windows of ctx tokens from text"),
        opt("calib_offset", I, 0, "gguf mode: first calibration token"),
        opt("sensitivity", S, "full", "gguf mode: full (KL at every type), fit (KL at fit_types types, fitted curve) or "
                                      "weights (no forward pass: imatrix-weighted output error on sampled rows, for "
                                      "models too large to run per tensor)").one_of({"full", "fit", "weights"}),
        opt("fit_types", I, 3, "gguf mode, sensitivity fit: types measured per tensor"),
        opt("sample_rows", I, 256, "gguf mode, sensitivity weights: rows sampled per tensor (0: every row)"),
        opt("cache", P, "gguf mode: sensitivity measurements, reused when model, imatrix, tokens and ladder match "
                        "(default <out>.sensitivity.json)")},
       job_allocate},
      {"eval-ppl", "`razor eval-ppl`: perplexity with the reference engine (and KL against ref; with recipe or gguf the "
                   "quantized model against the source)",
       {need("model", P, "Hugging Face checkpoint directory").pos(),
        opt("ref", P, "reference checkpoint: also report KL divergence against it"),
        opt("text", P, "UTF-8 text file (default: the bundled held-out text, kernel-docs-eval.txt)"),
        opt("offset", I, 0, "tokens of the text skipped before the first window"),
        opt("recipe", P, "razor.recipe/1 fake-quant recipe: score MODEL fake-quantized in memory"),
        opt("gguf", P, "score this GGUF export of MODEL (dequantized back to MODEL's layout)"),
        opt("llamacpp", B, false, "with gguf: also score the file in llama.cpp (validate-gguf)"),
        opt("windows", I, 200, "number of windows scored"), opt("ctx", I, 256, "tokens per window"),
        opt("batch", I, 16, "windows run through the layers together"), opt("topk", I, 256, "K of topk_kl"),
        engine_device(), engine_gpu_weights("f32"),
        opt("plan", B, false, "print the memory plan on stderr")},
       job_eval_ppl},
      {"probe", "`razor probe`: routing statistics, weight norms and imatrix inputs to HDF5 and/or a GGUF imatrix",
       {need("model", P, "Hugging Face checkpoint directory").pos(),
        opt("text", P, "UTF-8 calibration text (default: the bundled kernel-docs-calib.txt)"),
        opt("tokens", I, 8192, "tokens probed from offset on"),
        opt("seqlen", I, 256, "tokens per sequence, each from an empty cache"),
        opt("offset", I, 0, "tokens of the stream skipped first (the reference imatrix: 65536)"),
        opt("out", P, "output HDF5 file"),
        opt("imatrix", P, "also write a llama.cpp GGUF importance matrix (GGUF tensor names)"),
        opt("dataset", S, "imatrix.datasets entry (default: the text and token range)"),
        opt("no_imatrix", B, false, "skip the per-tensor input statistics"),
        engine_device(), engine_gpu_weights("bf16")},
       job_probe},
      {"validate-gguf", "`razor validate-gguf`: loads a GGUF in the real llama.cpp: perplexity, and KL against ref",
       {need("file", P, "GGUF file (the first shard of a split file)").pos(),
        opt("text", P, "evaluation text (default: the bundled held-out kernel-docs-eval.txt)"),
        opt("ref", P, "reference GGUF (the unquantized export): also KL(REF || FILE) and same top-1"),
        opt("windows", I, 200, "windows of window tokens to score"),
        opt("first_window", I, 0, "score windows from this one on (skip the windows calibration used)").alias("--window-offset"),
        opt("window", I, 256, "tokens per window, each from an empty cache").alias("--ctx"),
        opt("batch", I, 256, "llama.cpp batch size"), opt("threads", I, 0, "llama.cpp threads (0: cores - 1)"),
        opt("node", P, "node executable"), opt("oracle", P, "folder with node_modules/node-llama-cpp"),
        opt("fast", B, false, "llama.cpp defaults (flash attention auto, F16 KV) instead of exact mode"),
        opt("generate", I, 0, "also generate N tokens greedily after the first 16 tokens of the text")},
       job_validate_gguf},
      {"gguf-info", "`razor gguf-info --json`: a GGUF file's metadata, tensors, types and bits per weight by role",
       {need("file", P, "GGUF file").pos(), opt("max_items", I, 8, "array items shown per metadata value")},
       job_gguf_info},
      {"study", "`razor study`: KL / ppl of every strategy x budget, fake-quantized in memory (razor.study/1)",
       {need("model", P, "Hugging Face checkpoint directory").pos(), need("probe", P, "probe file (razor probe)"),
        opt("budgets", S, "3.0,2.5", "comma list: expert bits (3.0) or sizes (47GB)"),
        opt("strategies", S, "solver,asal,wmass,freq,composite,wfro,random,blind,inverse",
            "comma list of allocate strategies (the hello's enums.strategies), plus 'flat' (every expert at the "
            "budget's bits)"),
        opt("text", P, "evaluation text (default: the bundled held-out kernel-docs-eval.txt)"),
        opt("windows", I, 32, "windows evaluated"), opt("ctx", I, 256, "tokens per window"),
        opt("batch", I, 16, "windows run together"),
        opt("eval_offset", I, -1, "first token evaluated (-1: after the probe's tokens, rounded up to ctx)"),
        opt("base", S, "seed-default", "recipe for the rest of the model"),
        opt("choices", S, "1.58,2,3,4,8", "solver bit choices"),
        opt("salience", S, "output", "solver salience").vals("saliences"), opt("seed", I, 0, "random strategy seed"),
        opt("per_layer", B, false, "seed strategies rank within each layer"), opt("out", P, "study JSON (razor.study/1)")},
       job_study},
      {"merge", "`razor merge`: assembles `quantize --layers` parts into the full quantized checkpoint",
       {need("model", P, "the source checkpoint directory the parts were made from").pos(),
        opt("recipe", S, "seed-default", "the recipe the parts were made with"),
        need("out", P, "output checkpoint directory"), opt("part", L, "a part directory (repeat; every part of the job)"),
        opt("parts_dir", P, "a folder whose subfolders are the parts")},
       job_merge},
      {"serve", "`razor serve`: an inference server until cancelled (artifact `endpoint`; cancel stops it)",
       {opt("engine", S, "vllm", "server program").one_of({"vllm", "llama-server", "command"}),
        opt("model", P, "model path"), opt("host", S, "127.0.0.1", "listen address"),
        opt("port", I, 0, "port (0: a free one)"), opt("tensor_parallel", I, 0, "GPUs (0: the visible ones)"),
        opt("name", S, "served model name"), opt("program", P, "the engine's executable"),
        opt("args", L, "extra arguments"), opt("command", L, "command engine: argv with {model} {port} {host} {name}"),
        opt("ctx", I, 0, "context length"), opt("gpu_memory_utilization", N, "vLLM's share of GPU memory"),
        opt("n_cpu_moe", I, 0, "llama-server: experts of the first N layers on the CPU (--n-cpu-moe)"),
        opt("ready_timeout_s", N, 900.0, "seconds to wait for the server"),
        opt("stop_grace_s", N, 4.0, "seconds between SIGTERM and SIGKILL"), opt("log", P, "server log file")},
       job_serve},
      {"eval", "`razor eval`: benchmarks against an OpenAI-compatible server (artifact `result`)",
       {need("endpoint", S, "base URL of the server"), need("data", P, "folder of <benchmark>.jsonl"),
        need("out", P, "result JSON"), opt("model", S, "served model (default: the first of /v1/models)"),
        opt("benchmarks", L, json::array({"mmlu_pro", "gpqa", "mmmlu"}), "benchmarks").vals("benchmarks"),
        opt("n", I, 0, "questions per benchmark (0: its default)"), opt("budget", A, "token budget (int or \"32k\")"),
        opt("concurrency", I, "parallel requests"), opt("tag", S, "run tag"), opt("api_key", S, "API key"),
        opt("timeout_s", N, "request timeout"), opt("retries", I, "retries per request"),
        opt("targets", P, "targets file"), opt("official_model", S, "the official model's name in the targets"),
        opt("require_sandbox_netns", B, false, "refuse to run code without a network namespace"),
        opt("artifact", P, "what the server serves (GGUF, checkpoint folder or recipe), fingerprinted into the provenance"),
        opt("server_command", L, "the server's argv (the `serve` job's endpoint artifact), recorded in the provenance"),
        opt("speed_contexts", L, "prompt lengths (tokens, \"4k\" allowed) at which to measure prefill / decode speed"),
        opt("speed_gen", I, 128, "tokens generated per speed point")},
       job_eval},
      {"recover", "`razor recover`: on-policy distillation of a quantized student toward its BF16 teacher (phases A "
                  "rollouts, B teacher top-k, C LoRA training in PyTorch, D merge + re-quantize, E KL / ppl before and "
                  "after; docs/recovery-cli.md)",
       {need("teacher", P, "the BF16 teacher checkpoint (the unquantized source of the student)").pos(),
        opt("student", P, "the quantized student checkpoint (razor quantize's output)"),
        opt("recipe", S, "the recipe the student was made with (phase D re-quantizes with it)"),
        opt("out", P, "the recovered checkpoint (phase D)"),
        opt("work", P, "work folder of the phases' files (default <out>.opd)"),
        opt("phases", S, "A,B,C,D,E", "the phases to run (each reads what the earlier ones wrote in the work folder)"),
        opt("text", P, "prompts' text (default: the bundled calibration text)"),
        opt("eval_text", P, "phase E's held-apart text (default: the bundled evaluation text)"),
        opt("prompts", I, 16, "A: prompts (pieces of the text at evenly spaced offsets)"),
        opt("k", I, 4, "A: samples per prompt"), opt("prompt_len", I, 32, "A: tokens per prompt"),
        opt("max_new", I, 48, "A: new tokens at most"), opt("temperature", N, 0.6, "A: sampling temperature"),
        opt("top_p", N, 0.95, "A: nucleus"), opt("top_k", I, 20, "A: top-k (0: whole vocabulary)"),
        opt("seed", I, 0, "A: sampling seed (and the trainer's)"),
        opt("gen_batch", I, 64, "A: sequences through the engine at once"),
        opt("text_pieces", I, 0, "A: teacher-forced pieces of the calibration text added to the rollouts (off-policy)"),
        opt("text_piece_len", I, 128, "A: tokens per text piece"),
        opt("topk", I, 20, "B: the teacher's top-k"), opt("max_len", I, 18432, "B: rollouts longer than this are dropped"),
        opt("python", P, "C: the Python interpreter (default: $RAZOR_PYTHON, /usr/bin/python3 with torch, python3)"),
        opt("rank", I, 16, "C: LoRA rank"), opt("scale", N, 2.0, "C: LoRA scale"), opt("epochs", I, 1, "C: epochs"),
        opt("accum", I, 8, "C: micro-samples per optimizer step"), opt("lr", N, 5e-5, "C: AdamW learning rate"),
        opt("tau", N, 1.0, "C: student temperature in the loss"),
        opt("kl", S, "reverse", "C: reverse KL (the seed's default) or forward").one_of({"reverse", "forward"}),
        opt("all_rollouts", B, false, "C: train on unfinished rollouts too (default: complete trajectories only)"),
        opt("train_max_len", I, 8192, "C: longest rollout trained on"),
        opt("no_qat", B, false, "C: train the LoRA beside the student's quantized experts instead of through "
                                "fakequant(W_teacher + s B A) (quantization-aware, the default)"),
        opt("nproc", I, 1, "C: trainer processes (gloo)"), opt("threads", I, 0, "C: torch threads (0: its default)"),
        opt("eval_windows", I, 32, "E: windows of the evaluation text"), opt("eval_ctx", I, 256, "E: tokens per window"),
        opt("eval_batch", I, 16, "E: windows run together"),
        engine_device(), engine_gpu_weights("bf16"),
        opt("cpu", B, false, "D: never use the GPU for the fake-quant")},
       job_recover},
      {"slurm", "`razor slurm submit`, then follows the array job and its merge until the merge ends (cancel: scancel)",
       {need("kind", S, "job kind").one_of({"quantize", "pack"}), need("model", P, "checkpoint"),
        need("out", P, "output"), need("work_dir", P, "shared work folder"), opt("tasks", I, 0, "array tasks"),
        opt("layers_per_task", I, 0, "layers per task"), opt("job_args", L, "arguments of the job"),
        opt("task_args", L, "arguments of each task"), opt("partition", S, "partition"), opt("gres", S, "gres"),
        opt("time", S, "time limit"), opt("mem", S, "memory"), opt("account", S, "account"),
        opt("job_name", S, "razor", "job name"), opt("razor", P, "razor on the nodes (default: this program)"),
        opt("sbatch", P, "sbatch", "sbatch program"), opt("scontrol", P, "scontrol", "scontrol program"),
        opt("scancel", P, "scancel", "scancel program"), opt("cpus_per_task", I, 0, "CPUs per task"),
        opt("poll_s", N, 10.0, "seconds between polls")},
       job_slurm},
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
