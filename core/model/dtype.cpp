#include "model/dtype.h"

#include "util/enum_table.h"

namespace razor {

namespace {
constexpr enum_row<dtype, size_t> k_dtypes[] = {  // info: bytes per element
#define X(id, name, size) {dtype::id, name, size},
    RAZOR_DTYPES(X)
#undef X
};
}  // namespace

std::string_view dtype_name(dtype t) { return enum_name(k_dtypes, t, "unknown"); }

size_t dtype_size(dtype t) { return enum_info(k_dtypes, t, 0); }

dtype dtype_from_name(std::string_view n) {
  const auto* r = find_row_named(k_dtypes, n);
  return r ? r->value : dtype::unknown;
}

bool dtype_is_float(dtype t) {
  return t == dtype::f64 || t == dtype::f32 || t == dtype::f16 || t == dtype::bf16 || t == dtype::f8_e4m3 ||
         t == dtype::f8_e5m2;
}

}  // namespace razor
