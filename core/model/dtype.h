// Element types of checkpoint tensors, one table (house style 10): safetensors name, bytes per element.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace razor {

#define RAZOR_DTYPES(X)        \
  X(f64, "F64", 8)             \
  X(f32, "F32", 4)             \
  X(f16, "F16", 2)             \
  X(bf16, "BF16", 2)           \
  X(f8_e4m3, "F8_E4M3", 1)     \
  X(f8_e5m2, "F8_E5M2", 1)     \
  X(i64, "I64", 8)             \
  X(i32, "I32", 4)             \
  X(i16, "I16", 2)             \
  X(i8, "I8", 1)               \
  X(u8, "U8", 1)               \
  X(boolean, "BOOL", 1)

enum class dtype : uint8_t {
#define X(id, name, size) id,
  RAZOR_DTYPES(X)
#undef X
      unknown
};

std::string_view dtype_name(dtype t);
size_t dtype_size(dtype t);
dtype dtype_from_name(std::string_view safetensors_name);  // unknown when not in the table
bool dtype_is_float(dtype t);
// Bits of storage per element as a recipe prices a kept tensor (BF16 -> 16, FP8 -> 8).
inline double dtype_bits(dtype t) { return 8.0 * double(dtype_size(t)); }

}  // namespace razor
