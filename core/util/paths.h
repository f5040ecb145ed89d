// Where bundled data lives: installed (<prefix>/share/razor/<sub>) or in the source tree (resources/<sub>,
// recipes/). $RAZOR_DATA overrides both. Used by the CLI and the workbench alike.
#pragma once
#include <string>
#include <vector>

namespace razor {

// The source tree this build was configured from (its resources/, recipes/, tools/ and .oracle/ are used when
// running from a build directory).
std::string source_dir();
// The directory of the running executable ("" if unknown).
std::string exe_dir();
// Candidate directories for a data folder, most specific first: "$RAZOR_DATA/<sub>",
// "<exe>/../share/razor/<sub>", "<source>/resources/<sub>" (and "<source>/<sub>" for recipes).
std::vector<std::string> data_dirs(const std::string& sub);
// The first existing one, or "" when none exists.
std::string find_data_dir(const std::string& sub);

// The bundled texts of the data folder (resources/data/README.md), split once so that calibration never sees
// what quality is measured on: kernel-docs-eval.txt (perplexity, KL, validation) and kernel-docs-calib.txt
// (probe, imatrix). Full paths; "" when no data folder holds the file.
std::string bundled_eval_text();
std::string bundled_calib_text();

}  // namespace razor
