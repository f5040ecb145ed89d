// Runs generated code (HumanEval, MBPP) in a child process: python3 -I on a file in a fresh temporary
// directory, a new network namespace (unshare(CLONE_NEWNET), else an unprivileged user+network namespace; when
// neither is permitted the code runs with the host network and `net_isolated` says so), its own process group
// (killed as a whole at the time limit), RLIMIT_AS / RLIMIT_CPU / RLIMIT_FSIZE / RLIMIT_CORE, stdin from
// `stdin_data` (a file beside the program; /dev/null when empty), stdout and stderr to files (16 MiB each at
// most: RLIMIT_FSIZE). Pass = exit code 0 within the time limit.
#pragma once
#include <string>

namespace razor::eval {

struct sandbox_limits {
  double timeout_s = 10;
  size_t memory_bytes = size_t(2) << 30;  // address space; python3 needs a few hundred MB to start with numpy
  bool require_no_network = false;        // refuse to run (exit 126) when no namespace can be made
  std::string python = "python3";
};

struct sandbox_result {
  bool passed = false;
  int exit_code = -1;       // -1: killed by a signal (timed_out tells whether by us)
  bool timed_out = false;
  bool net_isolated = false;
  std::string output_tail;  // stdout then stderr, last 2 KB
  std::string stdout_text;  // the whole of stdout (at most RLIMIT_FSIZE)
  std::string error;        // could not run at all (fork, temp dir)
};

sandbox_result run_python(const std::string& program, const sandbox_limits& lim, const std::string& stdin_data = {});

}  // namespace razor::eval
