#include "util/python.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "util/child_process.h"
#include "util/paths.h"

namespace fs = std::filesystem;

namespace razor {

namespace {
bool plain_module_name(const std::string& m) {
  if (m.empty()) return false;
  for (char c : m)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) return false;
  return true;
}
}  // namespace

bool python_imports(const std::string& python, const std::string& module) {
  if (!plain_module_name(module)) return false;
  // find_spec, not an import: whether the module is installed, without the seconds importing torch takes
  auto r = run_child({python, "-c",
                      "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 1)",
                      module});
  return r.ok() && r->exit_code == 0;
}

result<std::string> find_python_with(const std::string& module) {
  if (!plain_module_name(module))
    return make_error(errc::invalid_argument, "find_python_with: '" + module + "' is not a Python module name");
  if (const char* e = std::getenv("RAZOR_PYTHON"); e && *e) {
    if (python_imports(e, module)) return std::string(e);
    return make_error(errc::not_found, std::string("RAZOR_PYTHON=") + e + ": cannot import " + module +
                                           " (or cannot be run); point it at an interpreter that has " + module);
  }
  for (const char* cand : {"/usr/bin/python3", "python3"})
    if (python_imports(cand, module)) return std::string(cand);
  return make_error(errc::not_found, "no Python interpreter imports " + module +
                                         ": tried /usr/bin/python3 and python3 on PATH; install it (Debian: apt-get "
                                         "install python3-" + module + ") or set RAZOR_PYTHON to an interpreter "
                                         "that has it");
}

std::string opd_tool_dir() {
  std::error_code ec;
  for (const auto& d : data_dirs("tools/opd"))
    if (fs::is_regular_file(fs::path(d) / "train.py", ec)) return d;
  return {};
}

}  // namespace razor
