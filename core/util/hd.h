// Code that both the C++ compiler and nvcc compile (the CPU reference and the CUDA kernels share one copy of
// an algorithm, house style 1). RAZOR_HD marks such a function: __host__ __device__ under nvcc, `inline` for
// the C++ compiler. RAZOR_UNROLL asks nvcc to unroll a loop with a known trip count (register arrays stay in
// registers), RAZOR_NO_UNROLL to keep one rolled; the C++ compiler ignores both. float_to_bits /
// bits_to_float reinterpret a float's bits on either side.
#pragma once
#include <cstdint>
#include <string.h>

#if defined(__CUDACC__)
#define RAZOR_HD __host__ __device__ __forceinline__
#define RAZOR_UNROLL _Pragma("unroll")
#define RAZOR_NO_UNROLL _Pragma("unroll 1")
#else
#define RAZOR_HD inline
#define RAZOR_UNROLL
#define RAZOR_NO_UNROLL
#endif

namespace razor {

// std::bit_cast for either side (memcpy: nvcc turns a register-sized one into a move).
template <class To, class From>
RAZOR_HD To bit_cast_hd(const From& v) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast_hd: sizes differ");
  To t;
  memcpy(&t, &v, sizeof(To));
  return t;
}
RAZOR_HD uint32_t float_to_bits(float f) { return bit_cast_hd<uint32_t>(f); }
RAZOR_HD float bits_to_float(uint32_t u) { return bit_cast_hd<float>(u); }

}  // namespace razor
