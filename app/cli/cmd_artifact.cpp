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

RAZOR_COMMAND("artifact", "For a remote workbench: describe (info: size, SHA-256), stream (send) or store from stdin (receive) a file", 910,
              [](CLI::App& sub) {
                auto a = std::make_shared<artifact_args>();
                sub.add_option("mode", a->mode, "info or send")->required()->check(CLI::IsMember({"info", "send", "receive"}));
                sub.add_option("path", a->path, "the file")->required();
                auto* max = sub.add_option("--max-bytes", a->max_bytes, "refuse larger files (default 2 GiB; receive: 256 MiB)");
                return [a, max] {
                  if (a->mode == "receive") {
                    razor::status st = razor::jobs::receive_artifact(
                        a->path, STDIN_FILENO, max->count() ? a->max_bytes : razor::jobs::kMaxUploadBytes);
                    if (!st.ok()) {
                      std::fprintf(stderr, "razor artifact: %s\n", st.to_string().c_str());
                      return 1;
                    }
                    return 0;
                  }
                  if (a->mode == "info") {
                    auto info = razor::jobs::artifact_info(a->path, a->max_bytes);
                    if (!info) {
                      std::fprintf(stderr, "razor artifact: %s\n", info.error().to_string().c_str());
                      return 1;
                    }
                    std::printf("%s\n", razor::jobs::encode_line(*info).c_str());
                    return 0;
                  }
                  std::fflush(stdout);
                  razor::status st = razor::jobs::send_artifact(a->path, STDOUT_FILENO, a->max_bytes);
                  if (!st.ok()) {
                    std::fprintf(stderr, "razor artifact: %s\n", st.to_string().c_str());
                    return 1;
                  }
                  return 0;
                };
              });
}  // namespace
