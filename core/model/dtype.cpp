#include "model/dtype.h"

namespace razor {

std::string_view dtype_name(dtype t) {
  switch (t) {
#define X(id, name, size) \
  case dtype::id:         \
    return name;
    RAZOR_DTYPES(X)
#undef X
    default:
      return "unknown";
  }
}

size_t dtype_size(dtype t) {
  switch (t) {
#define X(id, name, size) \
  case dtype::id:         \
    return size;
    RAZOR_DTYPES(X)
#undef X
    default:
      return 0;
  }
}

dtype dtype_from_name(std::string_view n) {
#define X(id, name, size) \
  if (n == name) return dtype::id;
  RAZOR_DTYPES(X)
#undef X
  return dtype::unknown;
}

bool dtype_is_float(dtype t) {
  return t == dtype::f64 || t == dtype::f32 || t == dtype::f16 || t == dtype::bf16 || t == dtype::f8_e4m3 ||
         t == dtype::f8_e5m2;
}

}  // namespace razor
