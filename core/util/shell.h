// POSIX shell quoting, for the scripts razor writes (Slurm) and the command lines it logs (serve, Slurm).
#pragma once
#include <string>
#include <vector>

namespace razor {

// Always single-quoted: abc -> 'abc', it's -> 'it'\''s'. Safe for every byte but NUL.
std::string shell_quote(const std::string& s);

// One line for people: the words joined by spaces, each quoted only where a shell needs it ('a b', 'it'\''s').
std::string shell_join(const std::vector<std::string>& argv);

}  // namespace razor
