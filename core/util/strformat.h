// printf into a std::string: any length (the output is measured first, then written), the format checked by
// the compiler against the arguments. For the numbers in messages and reports ("%g", "%+.1f").
#pragma once
#include <string>

namespace razor {

std::string strformat(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace razor
