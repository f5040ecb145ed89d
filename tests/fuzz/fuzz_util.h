// Helpers for the libFuzzer targets whose reader takes a file (a folder, a path) rather than bytes: a scratch
// folder per process (on /dev/shm when there is one, so that each input is written to memory), removed at exit.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace razor::fuzz {

inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::string base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path().string();
    std::string tmpl = base + "/razor-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) std::abort();
    static const std::string keep = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return tmpl;
  }();
  return dir;
}

inline void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

// Splits the input into at most `n` parts at the separator line "\n--8<--\n" (so a seed is readable: one file
// per part, in order). Missing parts are absent (std::nullopt-like: `present` false).
struct part {
  std::string_view bytes;
  bool present = false;
};
inline std::vector<part> split_parts(std::string_view s, size_t n) {
  constexpr std::string_view sep = "\n--8<--\n";
  std::vector<part> out(n);
  for (size_t i = 0; i < n; ++i) {
    size_t at = i + 1 < n ? s.find(sep) : std::string_view::npos;
    out[i] = {s.substr(0, at), true};
    if (at == std::string_view::npos) break;
    s.remove_prefix(at + sep.size());
  }
  return out;
}

}  // namespace razor::fuzz
