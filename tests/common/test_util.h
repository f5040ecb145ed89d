// Small helpers shared by the GoogleTest suites under tests/ (no Qt): running the razor CLI, finding a program
// on PATH, reading a whole file, the bundled texts. tests/ is on every suite's include path:
// #include "common/test_util.h".
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace razor::test {

// A fresh folder under /tmp (mkdtemp, "razor-<tag>.XXXXXX"), removed with everything in it when the object goes.
struct scratch_dir {
  std::filesystem::path dir;
  explicit scratch_dir(const std::string& tag) {
    std::string t = "/tmp/razor-" + tag + ".XXXXXX";
    if (const char* d = ::mkdtemp(t.data())) dir = d;
  }
  ~scratch_dir() {
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  std::string operator/(const std::string& s) const { return (dir / s).string(); }
};

// The absolute path of `exe` on $PATH, or "" when it is not there.
inline std::string find_on_path(const std::string& exe) {
  const char* p = std::getenv("PATH");
  std::stringstream ss(p ? p : "");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    const std::filesystem::path c = std::filesystem::path(dir) / exe;
    if (::access(c.c_str(), X_OK) == 0) return c.string();
  }
  return {};
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

#ifdef RAZOR_SOURCE_DIR_T
// The bundled texts (resources/data/README.md), split once: quality is measured on the evaluation text,
// calibration (probe, imatrix) reads the calibration text. Tests read nothing outside the repository.
inline std::string eval_text_path() { return RAZOR_SOURCE_DIR_T "/resources/data/kernel-docs-eval.txt"; }
inline std::string calib_text_path() { return RAZOR_SOURCE_DIR_T "/resources/data/kernel-docs-calib.txt"; }
#endif

#ifdef RAZOR_CLI_EXE
struct run_result {
  int code;
  std::string out;  // stdout and stderr
};
// Runs `razor <args>` through the shell (args are shell words: quote them) and returns its exit code and output.
inline run_result run_razor(const std::string& args) {
  const std::string cmd = std::string(RAZOR_CLI_EXE) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  const int st = pclose(p);
  return {WEXITSTATUS(st), out};
}
#endif

}  // namespace razor::test
