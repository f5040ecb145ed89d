// razor clean-partials DIR... [--dry-run]
// Lists and removes the temporaries razor processes that no longer run left in each DIR (not below): the
// "<DIR>/.<name>.partial-<pid>" files and "<name>.partial-<pid>" folders of outputs interrupted by a SIGKILL, a
// crash or a power cut, and "<name>.old-<pid>" folders of an interrupted replacement (util/stale_partials.h).
// A temporary whose process still runs, here or (through its lock) on another machine, is left alone.
#include <cstdio>

#include "cli/commands.h"
#include "util/stale_partials.h"

namespace {

struct clean_opts {
  std::vector<std::string> dirs;
  bool dry_run = false;
};

RAZOR_COMMAND("clean-partials", "List and remove the temporaries of razor processes that no longer run", 900,
              [](CLI::App& sub) {
                auto o = std::make_shared<clean_opts>();
                sub.add_option("DIR", o->dirs, "folders to look in (where outputs were written)")->required();
                sub.add_flag("--dry-run", o->dry_run, "only list them");
                return [o] {
                  using namespace razor;
                  int failed = 0;
                  size_t n = 0;
                  uint64_t bytes = 0;
                  for (auto& d : o->dirs) {
                    auto found = find_stale_partials(d);
                    if (!found) {
                      cli::report(found.error());
                      ++failed;
                      continue;
                    }
                    for (auto& p : *found) {
                      if (o->dry_run) {
                        std::printf("stale %s (%s, %llu bytes, pid %lld)\n", p.path.c_str(), p.is_dir ? "folder" : "file",
                                    (unsigned long long)p.bytes, (long long)p.pid);
                      } else if (status st = remove_stale_partial(p); !st.ok()) {
                        cli::report(st);
                        ++failed;
                        continue;
                      } else {
                        std::printf("removed %s (%s, %llu bytes, pid %lld)\n", p.path.c_str(),
                                    p.is_dir ? "folder" : "file", (unsigned long long)p.bytes, (long long)p.pid);
                      }
                      ++n;
                      bytes += p.bytes;
                    }
                  }
                  std::printf("%zu stale partial output(s), %llu bytes%s\n", n, (unsigned long long)bytes,
                              o->dry_run ? " (dry run: nothing removed)" : " removed");
                  return failed ? 1 : 0;
                };
              });

}  // namespace
