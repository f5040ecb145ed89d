// --text defaults: the texts of resources/data (installed: <prefix>/share/razor/data).
#include <cstdio>

#include "cli/commands.h"
#include "cli/job_command.h"
#include "util/paths.h"

namespace razor::cli {

status default_text(std::string& path, bundled_text which) {
  if (!path.empty()) return {};
  const bool eval = which == bundled_text::evaluation;
  path = eval ? bundled_eval_text() : bundled_calib_text();
  if (!path.empty()) {
    std::fprintf(stderr, "razor: no --text: the bundled %s text %s\n", eval ? "held-out evaluation" : "calibration",
                 path.c_str());
    return {};
  }
  std::string where;
  for (auto& d : data_dirs("data")) where += (where.empty() ? "" : ", ") + d;
  return make_error(errc::not_found, std::string("no --text given and the bundled ") +
                                         (eval ? "kernel-docs-eval.txt" : "kernel-docs-calib.txt") +
                                         " is in none of " + where + " (set RAZOR_DATA or give --text)");
}

status default_text(nlohmann::json& params, const std::string& key, bundled_text which) {
  std::string path = params.value(key, "");
  RAZOR_TRY(default_text(path, which));
  params[key] = path;
  return {};
}

}  // namespace razor::cli
