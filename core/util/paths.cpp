#include "util/paths.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace fs = std::filesystem;

namespace razor {

std::string source_dir() { return RAZOR_SOURCE_DIR; }

std::string exe_dir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  buf[n] = 0;
  return fs::path(buf).parent_path().string();
}

std::vector<std::string> data_dirs(const std::string& sub) {
  std::vector<std::string> out;
  if (const char* e = std::getenv("RAZOR_DATA")) out.push_back((fs::path(e) / sub).string());
  if (auto d = exe_dir(); !d.empty()) out.push_back((fs::path(d).parent_path() / "share" / "razor" / sub).string());
  out.push_back((fs::path(source_dir()) / "resources" / sub).string());
  out.push_back((fs::path(source_dir()) / sub).string());
  return out;
}

std::string find_data_dir(const std::string& sub) {
  std::error_code ec;
  for (auto& d : data_dirs(sub))
    if (fs::is_directory(d, ec)) return d;
  return {};
}

namespace {
std::string bundled_text(const char* name) {
  std::error_code ec;
  for (auto& d : data_dirs("data"))
    if (const fs::path p = fs::path(d) / name; fs::is_regular_file(p, ec)) return p.string();
  return {};
}
}  // namespace

std::string bundled_eval_text() { return bundled_text("kernel-docs-eval.txt"); }
std::string bundled_calib_text() { return bundled_text("kernel-docs-calib.txt"); }

}  // namespace razor
