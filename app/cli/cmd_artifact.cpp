// razor artifact info|send|receive PATH: what a remote workbench runs through ssh to fetch a file it draws (a
// probe HDF5, a summary, a result JSON; never weights) or to upload one it chose locally (a recipe)
// (core/jobs/remote_files.h, docs/remote.md).
#include <unistd.h>

#include <cstdio>

#include "cli/commands.h"
#include "jobs/protocol.h"
#include "jobs/remote_files.h"

namespace {
struct artifact_args {
  std::string mode, path;
  uint64_t max_bytes = razor::jobs::kMaxArtifactBytes;
};

// The command's work; errors are values (reported once, by the caller, as "razor artifact: ...": a remote
// workbench reads that line).
razor::status run_artifact(const artifact_args& a, bool max_given) {
  using namespace razor;
  if (a.mode == "receive")
    return jobs::receive_artifact(a.path, STDIN_FILENO, max_given ? a.max_bytes : jobs::kMaxUploadBytes);
  if (a.mode == "info") {
    RAZOR_ASSIGN_OR_RETURN(const auto info, jobs::artifact_info(a.path, a.max_bytes));
    std::printf("%s\n", jobs::encode_line(info).c_str());
    return {};
  }
  std::fflush(stdout);
  return jobs::send_artifact(a.path, STDOUT_FILENO, a.max_bytes);
}

RAZOR_COMMAND("artifact", "For a remote workbench: describe (info: size, SHA-256), stream (send) or store from stdin (receive) a file", 910,
              [](CLI::App& sub) {
                auto a = std::make_shared<artifact_args>();
                sub.add_option("mode", a->mode, "info or send")->required()->check(CLI::IsMember({"info", "send", "receive"}));
                sub.add_option("path", a->path, "the file")->required();
                auto* max = sub.add_option("--max-bytes", a->max_bytes, "refuse larger files (default 2 GiB; receive: 256 MiB)");
                return [a, max]() -> int {
                  const razor::status st = run_artifact(*a, max->count() > 0);
                  if (st.ok()) return 0;
                  std::fprintf(stderr, "razor artifact: %s\n", st.to_string().c_str());
                  return 1;
                };
              });
}  // namespace
