// Running a program to its end and capturing what it prints: validate-gguf's llama.cpp child, Slurm's sbatch /
// scontrol / scancel. No shell: argv[0] is looked up in PATH, every argument is passed as it is.
#pragma once
#include <string>
#include <vector>

#include "util/status.h"

namespace razor {

struct child_output {
  int exit_code = 0;    // 128 + signal when killed by one
  int term_signal = 0;
  std::string out, err;
};

// Runs argv with stdin on /dev/null and captures stdout and stderr. errc::not_found when it cannot be started.
result<child_output> run_child(const std::vector<std::string>& argv);

}  // namespace razor
