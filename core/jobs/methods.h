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

// ---- the job registry's field schema ----
// Each method's params are described field by field. The runner checks a request against it before the handler
// runs (apply_schema), `razor worker`'s hello lists it (schema_json), the CLI builds a command's options from it
// (app/cli/job_command.h: --name-with-dashes for name_with_underscores, positional where marked) and the
// workbench builds its forms and combo boxes from the hello. Allowed values come from the one table of their
// enumeration (enums_json: ggml types, strategies, saliences, benchmarks, roles, file types), never a copy.
enum class field_type { string, path, integer, number, boolean, string_list, object, any };
std::string_view field_type_name(field_type t);

struct field_def {
  std::string name;                     // the params key (snake_case)
  field_type type = field_type::string;
  nlohmann::json def = nullptr;         // the default filled in when the key is absent; null: none
  std::string help;
  bool required = false;
  std::string values;                   // an enumeration of enums_json() the value (each item of a list) must be in
  std::vector<std::string> choices;     // or a short fixed list of allowed values
  bool positional = false;              // the CLI takes it as a positional argument
  std::string cli_alias;                // further CLI names, comma-separated ("-t", "--ctx")
  bool worker_only = false;             // no CLI option (the CLI has its own way: e.g. an object param)
};

struct method_def {
  std::string name;
  std::string help;
  std::vector<field_def> fields;
  method_fn run;
  bool open_params = false;             // any params accepted as they come (echo)
  std::string params_line() const;      // "model (path, required), tensors (bool, default false)"
};

// The enumerations as {"ggml_types":[...], "strategies":[...], "saliences":[...], "benchmarks":[...],
// "roles":[...], "ftypes":[...]}, each read from its one table.
const nlohmann::json& enums_json();
// Every method with its fields: [{"name","help","params":[{"name","type","default","help","required",
// "values"|"choices","positional"}]}].
nlohmann::json schema_json();
// Checks params against the method's fields and returns them with the defaults filled in. Errors
// (errc::invalid_argument) name the key: a missing required one, a wrong type, a value not among the allowed
// ones, a key the method does not take (listing those it takes).
result<nlohmann::json> apply_schema(const method_def& m, const nlohmann::json& params);
// The items of a comma-separated list param ("a, b,c" -> a, b, c; spaces and empty items dropped).
std::vector<std::string> split_list(const std::string& s);

const std::vector<method_def>& method_table();
const method_def* find_method(std::string_view name);
std::vector<std::string> method_names();

}  // namespace razor::jobs
