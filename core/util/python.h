// The Python interpreter that runs razor's Python tools (tools/opd: the OPD trainer), chosen in one place:
// $RAZOR_PYTHON when set, else /usr/bin/python3 when it can import the module (Debian's python3-torch installs
// for it), else `python3` from PATH. The CLI's `razor recover`, the worker and the tests all call this.
#pragma once
#include <string>

#include "util/status.h"

namespace razor {

// The interpreter for a tool that needs `module` ("torch"). $RAZOR_PYTHON is taken as it is (the user's choice;
// errc::not_found when it cannot import the module, naming it); otherwise the first of /usr/bin/python3 and
// `python3` that imports the module. errc::not_found, naming every candidate tried and how to install the module,
// when none can.
result<std::string> find_python_with(const std::string& module);

// Whether `python` finds `module` installed (importlib.util.find_spec; the module itself is not imported).
bool python_imports(const std::string& python, const std::string& module);

// The folder of the OPD trainer (tools/opd: train.py, razor_opd/): $RAZOR_DATA/tools/opd, the installed
// <exe>/../share/razor/tools/opd or the source tree's tools/opd; "" when none holds train.py.
std::string opd_tool_dir();

}  // namespace razor
