#include "util/strformat.h"

#include <cstdarg>
#include <cstdio>

namespace razor {

std::string strformat(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list again;
  va_copy(again, ap);
  const int n = std::vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::string s;
  if (n > 0) {
    s.resize(size_t(n));
    std::vsnprintf(s.data(), size_t(n) + 1, fmt, again);  // writes the NUL into the string's terminator slot
  }
  va_end(again);
  return s;
}

}  // namespace razor
