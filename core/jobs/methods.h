// The worker's methods: one table (house style 10) mapping a method name to a handler that calls the same
// core functions as the `razor` command of that name. The table drives the worker's dispatch, the "methods"
// list of its hello, docs/protocol.md and the tests.
//
// A handler gets the request's params (a JSON object) and a job_context, and returns the result object or a
// status (errc name = the error code on the wire). Handlers never throw across the runner: the runner turns
// an escaped exception into errc::internal. Missing or mistyped params are errc::invalid_argument.
#pragma once
#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "jobs/protocol.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor::jobs {

struct job_context {
  // Reports progress (throttled to 10/s by the runner, last value wins); returns false once the job was
  // cancelled: pass it as the core function's progress_fn.
  progress_fn progress;
  std::function<void(std::string_view level, std::string_view msg)> log;
  std::function<void(const artifact&)> emit_artifact;
  const std::atomic<bool>* cancelled = nullptr;
  bool allow_gpu = true;  // false in a worker started with --cpu

  bool is_cancelled() const { return cancelled && cancelled->load(std::memory_order_relaxed); }
};

using method_fn = std::function<result<nlohmann::json>(const nlohmann::json& params, job_context& ctx)>;

struct method_def {
  std::string name;
  std::string params;  // one line for docs and `razor worker --list`: "model (string), tensors (bool)"
  std::string help;
  method_fn run;
};

const std::vector<method_def>& method_table();
const method_def* find_method(std::string_view name);
std::vector<std::string> method_names();

}  // namespace razor::jobs
