#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <new>
#include <string_view>

#include "cli/commands.h"
#include "util/printable.h"
#include "util/mapped_file.h"
#include "util/temp_registry.h"

namespace razor::cli {

std::vector<command_def>& command_table() {
  static std::vector<command_def> t;
  return t;
}

int report(const status& st) {
  if (st.ok()) return 0;
  // Messages quote users' bytes (names, keys, recipe words); whatever a caller forgot to escape is escaped here.
  std::fprintf(stderr, "razor: %s\n", razor::printable_lines(st.to_string()).c_str());
  return st.code() == errc::cancelled ? 130 : (st.code() == errc::invalid_argument ? 2 : 1);
}

static double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

stderr_progress::stderr_progress(std::string label) : label_(std::move(label)), tty_(isatty(2)) {}

bool stderr_progress::operator()(double done, double total, const char* what) {
  double t = now_s();
  if (t - last_ < (tty_ ? 0.1 : 5.0) && done < total) return true;
  last_ = t;
  double pct = total > 0 ? 100.0 * done / total : 0.0;
  std::fprintf(stderr, tty_ ? "\r%s %5.1f%% %s\033[K" : "%s %5.1f%% %s\n", label_.c_str(), pct, what ? what : "");
  std::fflush(stderr);
  return true;
}

void stderr_progress::finish() {
  if (tty_) std::fprintf(stderr, "\n");
}

}  // namespace razor::cli

int main(int argc, char** argv) {
  using namespace razor::cli;
  // SIGINT / SIGTERM / SIGHUP remove the temporaries of the outputs being written (util/temp_registry.h).
  razor::install_cleanup_signal_handlers();
  CLI::App app{"razor: compress Mixture-of-Experts models below 4 bits and prove what was kept"};
  app.set_version_flag("--version", std::string("razor ") + RAZOR_VERSION);
  app.require_subcommand(1);
  auto& table = command_table();
  std::sort(table.begin(), table.end(), [](auto& a, auto& b) { return a.order < b.order; });
  std::function<int()> run;
  for (auto& c : table) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    auto fn = c.setup(*sub);
    sub->callback([&run, fn] { run = fn; });
  }
  // "--layers=" (nothing after '='): CLI11 would take the next word as the value or report a different option as
  // missing ("--out is required"). Say which option is empty instead.
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") break;
    if (a.size() > 3 && a.rfind("--", 0) == 0 && a.back() == '=' && a.find('=') == a.size() - 1) {
      std::fprintf(stderr, "razor: invalid_argument: %s has an empty value (give %s VALUE; see --help)\n",
                   razor::printable(a).c_str(), razor::printable(a.substr(0, a.size() - 1)).c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!run) return 0;
  const uint64_t truncations = razor::mapped_file::truncation_count();
  // The last resort: core reports errors as values, and the readers bound what they allocate, so nothing should
  // arrive here. If something does (bad_alloc, a library's exception), say so plainly and exit 1 instead of
  // std::terminate's abort and core dump.
  int rc = 1;
  try {
    rc = run();
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "razor: internal: out of memory (an input asked for more than this machine has)\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "razor: internal: unexpected error: %s\n", razor::printable(e.what(), 1000).c_str());
  } catch (...) {
    std::fprintf(stderr, "razor: internal: unexpected error of unknown type\n");
  }
  // An input truncated under a reader that had no check of its own (util/mapped_file.h) is no success.
  if (razor::status st = razor::mapped_file::check_since(truncations); !st.ok()) {
    report(st);
    return rc == 0 ? 1 : rc;
  }
  return rc;
}
