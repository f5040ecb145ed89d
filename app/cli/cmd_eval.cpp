// razor eval --endpoint URL --model NAME --benchmarks mmlu_pro,gpqa --data DIR [--n N] [--budget 32k]
//            [--concurrency 8] --out results.json
// Benchmarks against an OpenAI-compatible server, graded as the seed's harness does (docs/eval.md).
#include <cstdio>

#include "cli/commands.h"
#include "eval/benchmarks.h"
#include "eval/runner.h"
#include "jobs/methods.h"

namespace {
struct eval_args {
  razor::eval::eval_options o;
  std::string benchmarks = "mmlu_pro,gpqa,mmmlu", budget = "32k", speed_contexts;
  bool list_models = false;
};

// The command's work; errors are values (reported once, by the caller).
razor::status run_eval(eval_args& a) {
  using namespace razor;
  auto& o = a.o;
  if (a.list_models) {
    eval::client c(o.client);
    RAZOR_ASSIGN_OR_RETURN(const std::vector<std::string> models, c.models());
    for (auto& id : models) std::printf("%s\n", id.c_str());
    return {};
  }
  RAZOR_ASSIGN_OR_RETURN(o.budget, eval::parse_token_count(a.budget, "--budget"));
  if (o.model.empty()) return make_error(errc::invalid_argument, "--model is required");
  if (o.out.empty()) return make_error(errc::invalid_argument, "--out is required");
  o.benchmarks = jobs::split_list(a.benchmarks);
  for (const std::string& c : jobs::split_list(a.speed_contexts)) {
    RAZOR_ASSIGN_OR_RETURN(int tokens, eval::parse_token_count(c, "--speed-contexts"));
    o.speed.contexts.push_back(tokens);
  }
  if (!o.benchmarks.empty() && o.data_dir.empty()) return make_error(errc::invalid_argument, "--data is required");
  o.log = [](const std::string& s) { std::fprintf(stderr, "[eval] %s\n", s.c_str()); };
  RAZOR_TRY(eval::run_eval(o).error());  // the results are in o.out
  std::printf("wrote %s and %s\n", o.out.c_str(), eval::samples_path(o.out).c_str());
  return {};
}

RAZOR_COMMAND("eval", "Run benchmarks against an OpenAI-compatible server, graded as the seed's harness", 450,
              [](CLI::App& sub) {
  auto a = std::make_shared<eval_args>();
  auto& o = a->o;
  sub.add_option("--endpoint", o.client.endpoint, "server URL, e.g. http://127.0.0.1:8080")->required();
  sub.add_option("--model", o.model, "served model name (also matched against the official targets)");
  sub.add_option("--benchmarks", a->benchmarks, "comma-separated: " + razor::eval::bench_keys());
  sub.add_option("--data", o.data_dir, "folder with <benchmark>.jsonl files (docs/eval.md)");
  sub.add_option("--n", o.n, "questions per benchmark (default: the seed's n for each)");
  sub.add_option("--budget", a->budget, "max new tokens: 32k (default), 64k or a number");
  sub.add_option("--concurrency", o.concurrency, "requests in flight")->check(CLI::Range(1, 1024));
  sub.add_option("--out", o.out, "result JSON (samples go to <out>.samples.jsonl; re-running resumes)");
  sub.add_option("--tag", o.tag, "run name (default: the file name of --out)");
  sub.add_option("--api-key", o.client.api_key, "bearer token for the server");
  sub.add_option("--timeout", o.client.timeout_s, "seconds per request (default 3600)");
  sub.add_option("--retries", o.client.retries, "retries on connect errors, 429 and 5xx (default 4)");
  sub.add_option("--targets", o.targets_path, "official targets JSON (default: the bundled one)");
  sub.add_option("--official-model", o.official_model, "model whose official numbers gate this run (default --model)");
  sub.add_option("--artifact", o.artifact,
                 "what the server serves (a GGUF, a checkpoint folder or a recipe): its fingerprint goes into the "
                 "result's provenance");
  sub.add_flag("--require-sandbox-netns", o.sandbox.require_no_network,
               "fail code samples when no network namespace can be made");
  sub.add_option("--speed-contexts", a->speed_contexts,
                 "also measure prefill / decode tokens/s at these prompt lengths, e.g. 512,4k,16k (docs/eval.md)");
  sub.add_option("--speed-gen", o.speed.gen_tokens, "tokens generated per speed point (default 128)")
      ->check(CLI::Range(2, 1 << 20));
  sub.add_flag("--list-models", a->list_models, "print the ids of GET /v1/models and exit");
  return [a] { return razor::cli::report(run_eval(*a)); };
});
}  // namespace
