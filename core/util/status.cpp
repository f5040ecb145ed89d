#include "util/status.h"

namespace razor {

std::string_view errc_name(errc c) {
  switch (c) {
#define X(name, num, text) \
  case errc::name:         \
    return #name;
    RAZOR_ERROR_CODES(X)
#undef X
  }
  return "unknown";
}

std::string_view errc_text(errc c) {
  switch (c) {
#define X(name, num, text) \
  case errc::name:         \
    return text;
    RAZOR_ERROR_CODES(X)
#undef X
  }
  return "unknown error";
}

std::string status::to_string() const {
  if (ok()) return "ok";
  return std::string(errc_name(code_)) + ": " + message_;
}

}  // namespace razor
