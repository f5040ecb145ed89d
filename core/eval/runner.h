// `razor eval`: runs benchmarks against an OpenAI-compatible endpoint with N requests in flight, grades every
// answer as the seed does, and writes
//   <out>                    the seed's schema A (seed-reference §4.6): tag, model, think, budget, seconds,
//                            <b>_acc, <b>_acc_finished, <b>_n, <b>_n_finished, <b>_trunc (HumanEval:
//                            humaneval_pass1 / he_*, MBPP: mbpp_pass1 / mbpp_*), plus backend, endpoint and
//                            "gate": {bench: {state, official, off_by, target_model, gate_points}} (§4.5),
//                            "provenance": what was measured (eval/provenance.h)
//   <out minus .json>.samples.jsonl
//                            one line per graded sample: {bench, id, raw, extracted, gold, correct, tokens,
//                            prompt_tokens, finish_reason, attempts}; appended and flushed as each answer
//                            arrives. A re-run with the same --out skips every (bench, id) already there, so an
//                            interrupted run resumes; the summary is computed from the side file.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/client.h"
#include "eval/sandbox.h"
#include "eval/speed.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor::eval {

struct eval_options {
  client_options client;
  std::string model;                   // the served model name (sent in every request)
  std::string tag;                     // default: --out's file stem
  std::vector<std::string> benchmarks; // keys of bench_table()
  std::string data_dir;
  int n = 0;                           // questions per benchmark; 0 = the seed's default n
  int budget = 32768;                  // max_tokens
  int concurrency = 8;
  std::string out;                     // results.json
  std::string targets_path;            // official_targets.json ("" = the bundled one, when found)
  std::string official_model;          // model whose official numbers gate this run ("" = --model)
  std::string artifact;                // what the server serves (a GGUF, a checkpoint folder or a recipe), fingerprinted
                                       // into the result's provenance (eval/provenance.h); "" = not recorded
  std::vector<std::string> server_command;  // the server's argv when razor started it (serve-and-evaluate)
  sandbox_limits sandbox;
  speed_options speed;                 // contexts empty: no speed measurement (eval/speed.h; "speed" in the result)
  std::function<void(const std::string&)> log;  // one line per finished benchmark / progress; may be empty
  // After each graded question (and once at the start): done = questions graded (resumed ones included),
  // total = all questions, what = "<bench> <id>". Called under a lock, from the request threads. Returning
  // false cancels: requests in flight are aborted, the samples so far stay in the side file (a re-run resumes)
  // and run_eval returns errc::cancelled. client.cancelled, when set, cancels the same way. May be empty.
  progress_fn progress;
};

struct bench_summary {
  std::string key;
  int n = 0, n_finished = 0, trunc = 0, correct = 0, correct_finished = 0;
  double acc = 0, acc_finished = 0;
};

// The samples side file of `out`: "results.json" -> "results.samples.jsonl".
std::string samples_path(const std::string& out);
// Summaries from sample records (the seed's truncation accounting, §4.1).
bench_summary summarize(const std::string& key, const std::vector<nlohmann::json>& records);
// The gate object of one benchmark given the targets document (nlohmann) and a model name.
nlohmann::json gate_entry(const std::string& bench, double acc, const nlohmann::json& targets,
                          const std::string& model);

// Runs everything; on a request error the samples written so far stay in the side file and the error comes back.
result<nlohmann::json> run_eval(const eval_options& o);
// "512", "4k" / "4K" (x1024), "32k": a token count in [1, 2^24); errors name `what`.
result<int> parse_token_count(const std::string& s, const std::string& what);

}  // namespace razor::eval
