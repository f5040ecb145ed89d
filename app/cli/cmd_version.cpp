#include <cstdio>

#include "cli/commands.h"
#include "kernels/cuda_info.h"

namespace {
RAZOR_COMMAND("devices", "List the GPUs this build can use", 900, [](CLI::App&) {
  return [] {
    std::string why;
    auto devs = razor::cu::devices(&why);
    if (devs.empty()) {
      std::printf("no GPU: %s (CPU paths are used)\n", why.c_str());
      return 0;
    }
    for (auto& d : devs)
      std::printf("%d: %s, %.1f GiB, %d SMs, sm_%d%d\n", d.index, d.name.c_str(), d.total_memory / 1073741824.0,
                  d.sm_count, d.cc_major, d.cc_minor);
    return 0;
  };
});
}  // namespace
