// Temporaries that an earlier razor process left behind: a SIGKILL, a power cut or a crash end a process before
// it can remove its "<dir>/.<name>.partial-<pid>" files and "<dir>.partial-<pid>" folders (util/atomic_file.h),
// or the folder an output replacement had moved aside ("<dir>.old-<pid>", listed only when it carries razor's
// marker and "<dir>" exists again: otherwise it is the only copy of the earlier output). `razor inspect` lists those beside a
// model, `razor clean-partials DIR` lists and removes them.
//
// A temporary is stale only when its process is gone: no process of that pid runs on this machine, and no
// process holds the flock its writer takes on it (which also covers a writer on another machine sharing the
// file system, where flock reaches it). A temporary whose process still runs is never reported stale and never
// removed. A pid reused by an unrelated process keeps its temporary listed as live (safe side).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/status.h"

namespace razor {

struct stale_partial {
  std::string path;
  int64_t pid = 0;
  bool is_dir = false;
  uint64_t bytes = 0;  // the file's size, or the sum over the folder's files
};

// Whether `name` (a file name, no folder) is a razor temporary; sets *pid.
bool is_partial_name(const std::string& name, int64_t* pid);

// The stale temporaries directly in `dir` (not below). Errors: `dir` cannot be listed.
result<std::vector<stale_partial>> find_stale_partials(const std::string& dir);

// The stale temporaries in folder `path` and in the folder that holds it (where razor writes the outputs made
// from a model: "<out>.partial-<pid>" beside it), unreadable folders skipped.
std::vector<stale_partial> stale_partials_near(const std::string& path);

// [{"path", "pid", "dir", "bytes"}, ...]: `razor inspect --json` and the worker's inspect ("stale_partials").
nlohmann::json stale_partials_json(const std::vector<stale_partial>& v);

// Removes one found by find_stale_partials, after checking once more that it is still stale.
status remove_stale_partial(const stale_partial& p);

}  // namespace razor
