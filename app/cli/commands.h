// The razor command line: every heavy job exists here first. Each subcommand lives in its own
// cmd_<name>.cpp and registers itself with RAZOR_COMMAND, so main.cpp never changes when one is added.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "util/status.h"

namespace razor::cli {

// A command adds its options to `sub` and returns the function that runs it (exit code).
using setup_fn = std::function<std::function<int()>(CLI::App& sub)>;

struct command_def {
  std::string name, help;
  setup_fn setup;
  int order;
};

std::vector<command_def>& command_table();

struct registrar {
  registrar(std::string name, std::string help, int order, setup_fn fn) {
    command_table().push_back({std::move(name), std::move(help), std::move(fn), order});
  }
};

// Prints "razor: <code>: <message>" on stderr and returns the exit code for the status.
int report(const status& st);
// The text a command reads when --text is left out: the bundled held-out evaluation text (perplexity, KL,
// validation) or the bundled calibration text (probe), resources/data/README.md. Leaves a given `path` alone;
// an error (not_found) when no data folder holds the file.
enum class bundled_text { evaluation, calibration };
status default_text(std::string& path, bundled_text which);

// Progress on stderr: a single self-overwriting line on a terminal, a line every few seconds otherwise.
class stderr_progress {
 public:
  explicit stderr_progress(std::string label);
  bool operator()(double done, double total, const char* what);
  void finish();

 private:
  std::string label_;
  double last_ = -1e9;
  bool tty_;
};

}  // namespace razor::cli

#define RAZOR_COMMAND(name, help, order, ...) \
  static ::razor::cli::registrar RAZOR_CONCAT(_razor_cmd_, __LINE__)(name, help, order, __VA_ARGS__)
