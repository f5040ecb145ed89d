#include "util/status.h"

#include "util/enum_table.h"

namespace razor {

namespace {
constexpr enum_row<errc, std::string_view> k_errcs[] = {  // name: the enumerator, as the protocol writes it
#define X(name, num, text) {errc::name, #name, text},
    RAZOR_ERROR_CODES(X)
#undef X
};
}  // namespace

std::string_view errc_name(errc c) { return enum_name(k_errcs, c, "unknown"); }

std::string_view errc_text(errc c) { return enum_info(k_errcs, c, "unknown error"); }

std::string status::to_string() const {
  if (ok()) return "ok";
  return std::string(errc_name(code_)) + ": " + message_;
}

}  // namespace razor
