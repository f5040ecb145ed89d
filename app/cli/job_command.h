// A `razor` command built from its job's registry row (core/jobs/methods.h): the options are the job's fields
// (--name-with-dashes for name_with_underscores, positional where the row says so, the allowed values checked),
// and the command runs the very handler `razor worker` runs, so the CLI and the worker agree by construction.
// The command only adds its own output (--json, or text printed from the job's result).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "jobs/methods.h"
#include "util/status.h"

namespace razor::cli {

// Adds the options of registry job `method` to `sub`; the returned object holds the params given, filled on parse.
std::shared_ptr<nlohmann::json> add_job_options(CLI::App& sub, const std::string& method);

// Runs the job as the worker does (schema check, then the handler): progress and the job's messages on stderr.
// Errors name the CLI's option (--first-window) where the job names its param (params.first_window).
result<nlohmann::json> run_job(const std::string& method, const nlohmann::json& params);

// The usual command of a job: the job's options plus --json (`json_help`), running `run(params, json)` and
// reporting its status once (the exit code of cli::report).
using job_run_fn = std::function<status(nlohmann::json& params, bool json)>;
setup_fn job_command_with_json(const std::string& method, const std::string& json_help, job_run_fn run);

// default_text (commands.h) for a job's param: params[key], the text's path, filled when left out.
status default_text(nlohmann::json& params, const std::string& key, bundled_text which);

// "--first-window" for "first_window".
std::string option_name(const std::string& field);

}  // namespace razor::cli
