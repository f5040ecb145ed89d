// What razor may replace when it writes an output (non-negotiable: never delete or replace what razor did not
// write). The rules, for every command and worker method:
//
// - A folder output (`quantize`, `merge`, `synth`, `pack --layers`) may go where nothing is, into an empty folder,
//   or over a folder razor wrote itself: one whose marker file ".razor-output" (written last, when the output is
//   complete) lists every file and folder in it. A folder without the marker, with files added since, a file,
//   or a symbolic link is refused, and so is a folder that is, contains or lies inside one of the job's inputs
//   (`razor quantize M --out M`). Refusals are errc::invalid_argument and name the path and the reason;
//   nothing is touched.
// - A file output (a GGUF, a recipe, a report, an HDF5 probe file) may go where nothing is, or over a file of
//   the same kind razor wrote (each writer passes the test for its kind: own_test), never over one of the job's
//   inputs, a folder or a link.
//
// No flag overrides these rules: what razor did not write is never replaced (--force exists nowhere). Replacing
// razor's own output needs no flag: re-running a command replaces its earlier result, as a build does.
//
// Marker (JSON): {"format": "razor.output/1", "command": "quantize", "version": "0.9.0",
//                 "created": "2025-01-31T12:00:00Z", "host": "...", "pid": 123, "files": ["config.json", ...]}
// "files" holds every path under the folder relative to it, folders with a trailing '/', the marker excluded.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "util/status.h"

namespace razor {

inline constexpr const char* kOutputMarker = ".razor-output";

// Whether `dir` may be written as a folder output (see above). `inputs` are the files and folders the job reads.
status check_output_dir(const std::string& dir, const std::vector<std::string>& inputs = {});

// Writes the marker into `dir` (the finished temporary folder, just before its rename), listing what is in it.
status write_output_marker(const std::string& dir, const std::string& command);

// The test an existing file must pass to be replaced: ok when it is razor's own output of the kind being
// written, else an error whose message says what the file is instead ("not JSON", "written by llama.cpp").
using own_test = std::function<status(const std::string& path)>;

// Whether `path` may be written as a file output (see above).
status check_output_file(const std::string& path, const own_test& own, const std::vector<std::string>& inputs = {});

// own_test for razor's JSON outputs: a JSON object whose "format" starts with `format_prefix` ("razor.").
status razor_json_file(const std::string& path, const std::string& format_prefix = "razor.");
// own_test for razor's text outputs: a text file whose first line starts with `first_line`.
own_test razor_text_file(const std::string& first_line);

}  // namespace razor
