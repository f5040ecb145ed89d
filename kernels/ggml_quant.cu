// CUDA ggml packer (host API and contract: kernels/include/kernels/ggml_quant_cuda.h). A port of OUR CPU
// quantizers (core/ggml/quants_k.cpp, quants_iq3.cpp, quants_32.cpp, quant_search.cpp), operation for
// operation: every device function below names the CPU function it repeats. This file is built with
// --fmad=false (CMakeLists.txt), so `a * b + c` is a rounded product then a rounded sum, as on the CPU
// (which is built with fp-contract off); `/` and sqrtf are IEEE-exact (nvcc's -prec-div/-prec-sqrt
// defaults) and denormals are kept (no -ftz).
//
// Work split (k-quants, iq3_xxs): a CTA of 128 threads takes tiles of consecutive super-blocks. The tile
// is loaded coalesced into shared memory as float (one pad float per sub-block, so that the thread
// reading sub-block s element i hits bank (s + i) % 32), then thread s of a super-block's group
// (8 threads for 32-element sub-blocks, 16 for 16-element ones; a group never straddles a warp) copies its
// sub-block into registers and runs the sub-block search (fit_*). The per-super-block steps (sums over 256
// elements, the scale-of-scales fit) are computed redundantly by every thread of the group, in the CPU's
// order, from shared memory. The levels go to shared memory and the group writes the block's bytes.
// q8_0 uses one thread per block of 32.
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ggml/blocks.h"
#include "ggml/grid_search.h"
#include "ggml/grids.h"
#include "kernels/ggml_quant_cuda.h"
#include "util/parallel.h"

namespace razor::cu {
namespace {

constexpr int kThreads = 128;
constexpr float kGroupEps = 1e-15f;  // ggml GROUP_MAX_EPS
constexpr float kIq3Eps = 1e-8f;     // ggml GROUP_MAX_EPS_IQ3_XXS

// The types, their ids and block geometry come from the type table (ggml/types.h: the `gpu` column says
// which ones this file implements) and the block structs (ggml/blocks.h).
using ggml::type;
template <type T>
inline constexpr int block_bytes = ggml::info(T).type_size;

status cuda_error(cudaError_t e, const char* what) {
  std::string msg = std::string("CUDA ") + what + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
  cudaGetLastError();
  return make_error(errc::device, msg);
}
#define RZ_CU(call, what)                                 \
  do {                                                    \
    cudaError_t _e = (call);                              \
    if (_e != cudaSuccess) return cuda_error(_e, what);   \
  } while (0)

// ---- scalar helpers: quants_internal.h and util/numeric.cpp ---------------------------------------

__device__ __forceinline__ int nearest_int(float v) {  // ggml nearest_int
  const float s = v + 12582912.f;
  return (__float_as_int(s) & 0x007fffff) - 0x00400000;
}
template <class T>
__device__ __forceinline__ T max_of(T a, T b) { return a > b ? a : b; }
template <class T>
__device__ __forceinline__ T min_of(T a, T b) { return a < b ? a : b; }
__device__ __forceinline__ int clamp_int(int v, int lo, int hi) { return max_of(lo, min_of(hi, v)); }

__device__ __forceinline__ uint16_t f32_to_fp16(float f) {  // razor::f32_to_f16
  const uint32_t u = __float_as_uint(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t au = u & 0x7fffffffu;
  if (au > 0x7f800000u) return uint16_t(sign | 0x7e00u);
  if (au >= 0x477ff000u) return uint16_t(sign | 0x7c00u);
  if (au < 0x38800000u) {
    if (au < 0x33000000u) return uint16_t(sign);
    const uint32_t exp = au >> 23;
    const uint32_t mant = (au & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;
    uint32_t res = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (res & 1u))) ++res;
    return uint16_t(sign | res);
  }
  uint32_t res = ((au >> 13) - ((127 - 15) << 10));
  const uint32_t rem = au & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (res & 1u))) ++res;
  return uint16_t(sign | res);
}

__device__ __forceinline__ float fp16_to_f32(uint16_t h) {  // razor::f16_to_f32
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t out;
  if (exp == 0) {
    if (mant == 0) {
      out = sign;
    } else {
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      mant &= 0x3ffu;
      out = sign | (uint32_t(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    out = sign | 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0u);
  } else {
    out = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return __uint_as_float(out);
}

// a[idx] for a register array and a run-time index, without moving the array to local memory
template <class T, int N>
__device__ __forceinline__ T pick(const T (&a)[N], int idx) {
  T v = a[0];
#pragma unroll
  for (int j = 1; j < N; ++j)
    if (j == idx) v = a[j];
  return v;
}

// ---- scale searches: quant_search.cpp, on register arrays ---------------------------------------

// fit_symmetric (make_qx_quants, rmse_type 1); HW false: weights x*x (w unused)
template <int N, bool HW>
__device__ float fit_symmetric(int nmax, const float (&x)[N], const float (&w)[N], int8_t (&L)[N]) {
  float amax = 0.0f, max = 0.0f;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const float ax = fabsf(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupEps) {
#pragma unroll
    for (int i = 0; i < N; ++i) L[i] = 0;
    return 0.0f;
  }
  float iscale = float(-nmax) / max;
  float sumlx = 0.0f, suml2 = 0.0f;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l + nmax);
    const float wi = HW ? w[i] : x[i] * x[i];
    sumlx += wi * x[i] * float(l);
    suml2 += wi * float(l) * float(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  int8_t trial[N];
#pragma unroll 1
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(step)) / max;
    sumlx = suml2 = 0.0f;
#pragma unroll
    for (int i = 0; i < N; ++i) {
      const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      trial[i] = int8_t(l);
      const float wi = HW ? w[i] : x[i] * x[i];
      sumlx += wi * x[i] * float(l);
      suml2 += wi * float(l) * float(l);
    }
    if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
#pragma unroll
      for (int i = 0; i < N; ++i) L[i] = int8_t(trial[i] + nmax);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// fit_symmetric_descent (make_q3_quants with do_rmse)
template <int N>
__device__ float fit_symmetric_descent(int nmax, const float (&x)[N], int8_t (&L)[N]) {
  float amax = 0.0f, max = 0.0f;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const float ax = fabsf(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupEps) {
#pragma unroll
    for (int i = 0; i < N; ++i) L[i] = 0;
    return 0.0f;
  }
  const float iscale = float(-nmax) / max;
  float sumlx = 0.0f, suml2 = 0.0f;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
#pragma unroll 1
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
#pragma unroll
    for (int i = 0; i < N; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (slx > 0.0f) {
        float sl2 = suml2 - w * float(L[i]) * float(L[i]);
        const int nl = clamp_int(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (nl != L[i]) {
          slx += w * x[i] * float(nl);
          sl2 += w * float(nl) * float(nl);
          if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = int8_t(nl);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
#pragma unroll
  for (int i = 0; i < N; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// fit_affine_v2 (V3 false: make_qkx2_quants) and fit_affine_v3 (V3 true: make_qkx3_quants)
template <int N, bool V3>
__device__ float fit_affine(int nmax, const float (&x)[N], const float (&w)[N], uint8_t (&L)[N], float& the_min,
                            float rmin, float rdelta, int nstep, bool mad) {
  float min = x[0], max = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
#pragma unroll
  for (int i = 1; i < N; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0.0f) min = 0.0f;
  if (V3 ? (max <= min) : (max == min)) {
#pragma unroll
    for (int i = 0; i < N; ++i) L[i] = 0;
    the_min = -min;
    return 0.0f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1.0f / iscale;
  float best_error = 0.0f;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(clamp_int(l, 0, nmax));
    const float diff = scale * float(L[i]) + min - x[i];
    const float e = (!V3 && mad) ? fabsf(diff) : diff * diff;
    best_error += w[i] * e;
  }
  if (nstep < 1) {
    the_min = -min;
    return scale;
  }
  uint8_t trial[N];
#pragma unroll 1
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * float(step) + float(nmax)) / (max - min);
    float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
#pragma unroll
    for (int i = 0; i < N; ++i) {
      int l;
      if (V3) {
        const float v = iscale * (x[i] - min);
        l = v > 0.0f ? nearest_int(min_of(v, float(nmax))) : 0;
      } else {
        l = clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax);
      }
      trial[i] = uint8_t(l);
      const float wl = w[i] * float(l);
      sum_l += wl;
      sum_l2 += wl * float(l);
      sum_xl += wl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0.0f) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0.0f) {
        this_min = 0.0f;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0.0f;
#pragma unroll
      for (int i = 0; i < N; ++i) {
        const float diff = this_scale * float(trial[i]) + this_min - x[i];
        const float e = (!V3 && mad) ? fabsf(diff) : diff * diff;
        cur_error += w[i] * e;
      }
      if (cur_error < best_error) {
#pragma unroll
        for (int i = 0; i < N; ++i) L[i] = trial[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  the_min = -min;
  return scale;
}

// fit_positive (make_qp_quants)
template <int N>
__device__ float fit_positive(int nmax, const float (&x)[N], uint8_t (&L)[N], const float (&w)[N]) {
  float max = 0.0f;
#pragma unroll
  for (int i = 0; i < N; ++i) max = max_of(max, x[i]);
  if (max < kGroupEps) {
#pragma unroll
    for (int i = 0; i < N; ++i) L[i] = 0;
    return 0.0f;
  }
  float iscale = float(nmax) / max;
#pragma unroll
  for (int i = 0; i < N; ++i) L[i] = uint8_t(nearest_int(iscale * x[i]));
  const float scale = 1.0f / iscale;
  float best_mse = 0.0f;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const float diff = x[i] - scale * float(L[i]);
    best_mse += w[i] * diff * diff;
  }
#pragma unroll 1
  for (int step = -4; step <= 4; ++step) {
    if (step == 0) continue;
    const float iscale_t = (0.1f * float(step) + float(nmax)) / max;
    const float scale_t = 1.0f / iscale_t;
    float mse = 0.0f;
#pragma unroll
    for (int i = 0; i < N; ++i) {
      const int l = min_of(nmax, nearest_int(iscale_t * x[i]));
      const float diff = x[i] - scale_t * float(l);
      mse += w[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_t;
    }
  }
  float sumlx = 0.0f, suml2 = 0.0f;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const int l = min_of(nmax, nearest_int(iscale * x[i]));
    L[i] = uint8_t(l);
    sumlx += w[i] * x[i] * float(l);
    suml2 += w[i] * float(l) * float(l);
  }
#pragma unroll 1
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
#pragma unroll
    for (int i = 0; i < N; ++i) {
      float slx = sumlx - w[i] * x[i] * float(L[i]);
      float sl2 = suml2 - w[i] * float(L[i]) * float(L[i]);
      if (slx > 0.0f && sl2 > 0.0f) {
        const int nl = min_of(nmax, nearest_int(x[i] * sl2 / slx));
        if (nl != L[i]) {
          slx += w[i] * x[i] * float(nl);
          sl2 += w[i] * float(nl) * float(nl);
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = uint8_t(nl);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// ---- iq3_xxs tables: the grid (ggml/grids.h) and its search tables, built by the same code as the CPU's
// (ggml/grid_search.h; ggml's 2 nearest distances) -------------------------------------------------

constexpr const uint16_t* kgrid_256 = ggml::kgrid_iq3xxs;  // the 256 points
constexpr int kCodes = 4096;                               // 8^4 level combinations

const ggml::grid_search& host_tables() {
  static const ggml::grid_search t = ggml::build_grid_search(ggml::kgrid_iq3xxs, 256, 4, 3, 7, 2);
  return t;
}

struct iq3_dev_tables {
  const int16_t* code_to_point = nullptr;
  const int32_t* cand_begin = nullptr;
  const uint16_t* candidates = nullptr;
  const uint16_t* grid = nullptr;
};

// Uploaded once per device and kept for the process (read-only), like the CPU's tables.
result<iq3_dev_tables> device_tables(int device) {
  static std::mutex mu;
  static std::vector<std::pair<int, iq3_dev_tables>> cache;
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& [d, t] : cache)
    if (d == device) return t;
  const ggml::grid_search& h = host_tables();
  const size_t b1 = h.code_to_point.size() * 2, b2 = h.cand_begin.size() * 4, b3 = h.candidates.size() * 2,
               b4 = sizeof ggml::kgrid_iq3xxs;
  const size_t o2 = (b1 + 255) & ~size_t(255), o3 = (o2 + b2 + 255) & ~size_t(255),
               o4 = (o3 + b3 + 255) & ~size_t(255);
  char* p = nullptr;
  RZ_CU(cudaMalloc(&p, o4 + b4), "cudaMalloc (iq3 tables)");
  std::vector<char> staging(o4 + b4);
  std::memcpy(staging.data(), h.code_to_point.data(), b1);
  std::memcpy(staging.data() + o2, h.cand_begin.data(), b2);
  std::memcpy(staging.data() + o3, h.candidates.data(), b3);
  std::memcpy(staging.data() + o4, kgrid_256, b4);
  RZ_CU(cudaMemcpy(p, staging.data(), staging.size(), cudaMemcpyHostToDevice), "upload iq3 tables");
  iq3_dev_tables t{reinterpret_cast<const int16_t*>(p), reinterpret_cast<const int32_t*>(p + o2),
                   reinterpret_cast<const uint16_t*>(p + o3), reinterpret_cast<const uint16_t*>(p + o4)};
  cache.emplace_back(device, t);
  return t;
}

// ---- kernel arguments, tile geometry and loading --------------------------------------------------

struct kargs {
  const void* src;
  uint8_t* dst;
  const float* w;          // null: no importance weights
  long long nrows, n_per_row, rows_per_weight, row_offset;
  long long nsb_row;       // super-blocks (or q8_0 blocks) per row
  long long nsb_total;
  int vec_ok;              // src is 16-byte aligned
  iq3_dev_tables tab;
};

template <int SUB>
struct geom {
  static constexpr int tps = 256 / SUB;           // threads (sub-blocks) per super-block
  static constexpr int sbpb = kThreads / tps;     // super-blocks per tile
  static constexpr int stride = 256 + tps;        // floats per super-block in shared memory
};

__device__ __forceinline__ float bf16f(uint32_t h16) { return __uint_as_float(h16 << 16); }

// Tile of sbpb super-blocks starting at sb0 -> xs (padded), as float; zeros past the end.
template <class In, int SUB>
__device__ void load_tile(const kargs& a, float* xs, long long sb0) {
  using G = geom<SUB>;
  const long long e0 = sb0 * 256, total = a.nsb_total * 256;
  constexpr int V = sizeof(In) == 2 ? 8 : 4;
  constexpr int n = G::sbpb * 256;
  for (int v = threadIdx.x; v < n / V; v += kThreads) {
    const int e = v * V;
    float f[V];
    const long long ge = e0 + e;
    if (ge < total) {
      if (a.vec_ok) {
        if constexpr (sizeof(In) == 2) {
          const uint4 q = __ldg(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(a.src) + ge));
          const uint32_t w4[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            f[2 * j] = bf16f(w4[j] & 0xffffu);
            f[2 * j + 1] = __uint_as_float(w4[j] & 0xffff0000u);
          }
        } else {
          const float4 q = __ldg(reinterpret_cast<const float4*>(static_cast<const float*>(a.src) + ge));
          f[0] = q.x;
          f[1] = q.y;
          f[2] = q.z;
          f[3] = q.w;
        }
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) {
          if constexpr (sizeof(In) == 2)
            f[j] = bf16f(static_cast<const uint16_t*>(a.src)[ge + j]);
          else
            f[j] = static_cast<const float*>(a.src)[ge + j];
        }
      }
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) f[j] = 0.0f;
    }
    const int in_sb = e % 256;
    float* d = xs + (e / 256) * G::stride + in_sb + in_sb / SUB;
#pragma unroll
    for (int j = 0; j < V; ++j) d[j] = f[j];
  }
}

// Per-super-block shared scratch.
struct sb_scratch {
  float sc[16], mn[16], sw[16];
  uint8_t hdr[16];   // header bytes written by thread 0 of the group (d, dmin, scales)
  uint8_t L[256];
};

template <int SUB>
struct tile_smem {
  float xs[geom<SUB>::sbpb * geom<SUB>::stride];
  sb_scratch s[geom<SUB>::sbpb];
};

// sum of x*x over the 256 elements of the super-block, in order (every thread of the group)
template <int SUB>
__device__ __forceinline__ float sum_sq_256(const float* xsb) {
  float s = 0.0f;
#pragma unroll 8
  for (int l = 0; l < 256; ++l) {
    const float v = xsb[l + l / SUB];
    s += v * v;
  }
  return s;
}

__device__ __forceinline__ void put_half(uint8_t* p, uint16_t h) {
  p[0] = uint8_t(h & 0xff);
  p[1] = uint8_t(h >> 8);
}

// ---- the per-type super-block bodies ------------------------------------------------------------
// Each is called by every thread of a 128-thread CTA (no early exits: __syncwarp below needs the warp).
// g: super-block in the tile, s: sub-block, x: the sub-block, qb: its weights (HW), xsb: the super-block
// in shared memory, out: the block's bytes in global memory (written only when `active`).

// q6_K: quants_k.cpp q6_k_row
template <bool HW>
__device__ void body_q6_k(sb_scratch& S, const float* xsb, int s, const float (&x)[16], const float (&qb)[16],
                          uint8_t* out, bool active) {
  int8_t L[16];
  const float scale = fit_symmetric<16, HW>(32, x, HW ? qb : x, L);
  S.sc[s] = scale;
  __syncwarp();
  float max_scale = 0.0f, max_abs_scale = 0.0f;
#pragma unroll
  for (int ib = 0; ib < 16; ++ib) {
    const float v = S.sc[ib];
    const float a = fabsf(v);
    if (a > max_abs_scale) {
      max_abs_scale = a;
      max_scale = v;
    }
  }
  const bool zero = max_abs_scale < kGroupEps;
  const float iscale = -128.0f / max_scale;
  const uint16_t dh = zero ? uint16_t(0) : f32_to_fp16(1.0f / iscale);
  if (!zero) {
    const int8_t my = int8_t(min_of(127, nearest_int(iscale * scale)));
    const float dall = fp16_to_f32(dh);
    const float d = dall * float(my);
    if (d != 0.0f) {
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        const int l = nearest_int(x[i] / d);
        L[i] = int8_t(max_of(-32, min_of(31, l)) + 32);
      }
    }
    S.hdr[s] = uint8_t(my);
  }
#pragma unroll
  for (int i = 0; i < 16; ++i) S.L[16 * s + i] = uint8_t(L[i]);
  __syncwarp();
  if (!active) return;
  for (int k = s; k < block_bytes<type::q6_k>; k += 16) {
    uint8_t b = 0;
    if (zero) {
      b = 0;
    } else if (k < 128) {
      const int j = (k / 64) * 128, kk = k % 64;
      const uint8_t* Lp = S.L + j;
      // ql[l] = L[j+l] | L[j+l+64] << 4, ql[l+32] = L[j+l+32] | L[j+l+96] << 4: both L[j+kk] | L[j+kk+64] << 4
      b = uint8_t((Lp[kk] & 0xf) | ((Lp[kk + 64] & 0xf) << 4));
    } else if (k < 192) {
      const int kq = k - 128;
      const int j = (kq / 32) * 128, l = kq % 32;
      const uint8_t* Lp = S.L + j;
      b = uint8_t((Lp[l] >> 4) | ((Lp[l + 32] >> 4) << 2) | ((Lp[l + 64] >> 4) << 4) | ((Lp[l + 96] >> 4) << 6));
    } else if (k < 208) {
      b = S.hdr[k - 192];
    } else {
      b = uint8_t(k == 208 ? (dh & 0xff) : (dh >> 8));
    }
    out[k] = b;
  }
}

// q3_K: quants_k.cpp q3_k_row + q3_finish
template <bool HW>
__device__ void body_q3_k(sb_scratch& S, const float* xsb, int s, const float (&x)[16], const float (&qb)[16],
                          uint8_t* out, bool active) {
  int8_t L[16];
  float scale;
  if (!HW) {
    scale = fit_symmetric_descent<16>(4, x, L);
  } else {
    const float sumx2 = sum_sq_256<16>(xsb);
    const float sigma2 = 2.0f * sumx2 / 256.0f;
    float w[16];
    float sw = 0.0f;
#pragma unroll
    for (int l = 0; l < 16; ++l) w[l] = qb[l] * sqrtf(sigma2 + x[l] * x[l]);
#pragma unroll
    for (int l = 0; l < 16; ++l) sw += w[l];
    S.sw[s] = sw;
    scale = fit_symmetric<16, true>(4, x, w, L);
  }
  S.sc[s] = scale;
  __syncwarp();
  uint8_t sb[12];
#pragma unroll
  for (int j = 0; j < 12; ++j) sb[j] = 0;
  int8_t lsv[16];
  uint16_t dh;
  if (!HW) {
    float max_scale = 0.0f, amax = 0.0f;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const float v = S.sc[j];
      const float a = fabsf(v);
      if (a > amax) {
        amax = a;
        max_scale = v;
      }
    }
    if (max_scale != 0.0f) {
      const float iscale = -32.0f / max_scale;
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        int8_t l = int8_t(nearest_int(iscale * S.sc[j]));
        l = int8_t(max_of<int>(-32, min_of<int>(31, l)) + 32);
        lsv[j] = l;
      }
      dh = f32_to_fp16(1.0f / iscale);
    } else {
#pragma unroll
      for (int j = 0; j < 16; ++j) lsv[j] = 0;
      dh = f32_to_fp16(0.0f);
    }
  } else {
    float scs[16], sws[16];
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      scs[j] = S.sc[j];
      sws[j] = S.sw[j];
    }
    const float d_block = fit_symmetric<16, true>(32, scs, sws, lsv);
    dh = f32_to_fp16(d_block);
  }
  // pack_q3_scales for every j (a zero l packs to zero bytes, so the max_scale == 0 case matches)
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    int l = lsv[j];
    if (j < 8)
      sb[j] = uint8_t(l & 0xf);
    else
      sb[j - 8] |= uint8_t((l & 0xf) << 4);
    l >>= 4;
    sb[j % 4 + 8] |= uint8_t(l << (2 * (j / 4)));
  }
  // q3_finish on this sub-block: the stored scale is the six low bits of lsv[s], minus 32
  {
    const float dall = fp16_to_f32(dh);
    const int8_t us = int8_t((pick(lsv, s) & 63) - 32);
    const float d = dall * float(us);
    if (d != 0.0f) {
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        const int l = nearest_int(x[i] / d);
        L[i] = int8_t(max_of(-4, min_of(3, l)) + 4);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 16; ++i) S.L[16 * s + i] = uint8_t(L[i]);
  if (s == 0) {
#pragma unroll
    for (int j = 0; j < 12; ++j) S.hdr[j] = sb[j];
  }
  __syncwarp();
  if (!active) return;
  for (int k = s; k < block_bytes<type::q3_k>; k += 16) {
    uint8_t b;
    if (k < 32) {
      b = 0;
#pragma unroll
      for (int bit = 0; bit < 8; ++bit)
        if (int8_t(S.L[32 * bit + k]) > 3) b = uint8_t(b | (1u << bit));
    } else if (k < 96) {
      const int kq = k - 32;
      const int j = (kq / 32) * 128, l = kq % 32;
      const uint8_t* Lp = S.L + j;
      auto low = [](uint8_t v) { return uint8_t(int8_t(v) > 3 ? v - 4 : v); };
      b = uint8_t(low(Lp[l]) | (low(Lp[l + 32]) << 2) | (low(Lp[l + 64]) << 4) | (low(Lp[l + 96]) << 6));
    } else if (k < 108) {
      b = S.hdr[k - 96];
    } else {
      b = uint8_t(k == 108 ? (dh & 0xff) : (dh >> 8));
    }
    out[k] = b;
  }
}

// q2_K: quants_k.cpp q2_k_row + q2_requantize
template <bool HW>
__device__ void body_q2_k(sb_scratch& S, const float* xsb, int s, const float (&x)[16], const float (&qb)[16],
                          uint8_t* out, bool active) {
  uint8_t L[16];
  float w[16];
  float scale, mn;
  if (!HW) {
#pragma unroll
    for (int l = 0; l < 16; ++l) w[l] = fabsf(x[l]);
    scale = fit_affine<16, false>(3, x, w, L, mn, -0.5f, 0.1f, 15, true);
  } else {
    const float sumx2 = sum_sq_256<16>(xsb);
    const float sigma2 = sumx2 / 256.0f;
    float sw = 0.0f;
#pragma unroll
    for (int l = 0; l < 16; ++l) w[l] = qb[l] * sqrtf(sigma2 + x[l] * x[l]);
#pragma unroll
    for (int l = 0; l < 16; ++l) sw += w[l];
    S.sw[s] = sw;
    scale = fit_affine<16, true>(3, x, w, L, mn, -0.9f, 0.05f, 36, false);
  }
  S.sc[s] = scale;
  S.mn[s] = mn;
  __syncwarp();
  uint8_t my;
  uint16_t dh, mh;
  if (!HW) {
    const float q4scale = 15.0f;
    float max_scale = 0.0f, max_min = 0.0f;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const float a = S.sc[j], m = S.mn[j];
      if (a > max_scale) max_scale = a;
      if (m > max_min) max_min = m;
    }
    if (max_scale > 0.0f) {
      const float iscale = q4scale / max_scale;
      my = uint8_t(nearest_int(iscale * scale));
      dh = f32_to_fp16(max_scale / q4scale);
    } else {
      my = 0;
      dh = f32_to_fp16(0.0f);
    }
    if (max_min > 0.0f) {
      const float iscale = q4scale / max_min;
      my |= uint8_t(nearest_int(iscale * mn) << 4);
      mh = f32_to_fp16(max_min / q4scale);
    } else {
      mh = f32_to_fp16(0.0f);
    }
  } else {
    float scs[16], mns[16], sws[16];
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      scs[j] = S.sc[j];
      mns[j] = S.mn[j];
      sws[j] = S.sw[j];
    }
    uint8_t Ls[16], Lm[16];
    const float dm = fit_positive<16>(15, scs, Ls, sws);
    const float mm = fit_positive<16>(15, mns, Lm, sws);
    dh = f32_to_fp16(dm);
    mh = f32_to_fp16(mm);
    my = uint8_t(pick(Ls, s) | (pick(Lm, s) << 4));
  }
  {
    const float dall = fp16_to_f32(dh), mall = fp16_to_f32(mh);
    const float d = dall * float(my & 0xf);
    if (d != 0.0f) {
      const float m = mall * float(my >> 4);
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        const int l = nearest_int((x[i] + m) / d);
        L[i] = uint8_t(max_of(0, min_of(3, l)));
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 16; ++i) S.L[16 * s + i] = L[i];
  S.hdr[s] = my;
  __syncwarp();
  if (!active) return;
  for (int k = s; k < block_bytes<type::q2_k>; k += 16) {
    uint8_t b;
    if (k < 16) {
      b = S.hdr[k];
    } else if (k < 80) {
      const int kq = k - 16;
      const int j = (kq / 32) * 128, l = kq % 32;
      const uint8_t* Lp = S.L + j;
      b = uint8_t(Lp[l] | (Lp[l + 32] << 2) | (Lp[l + 64] << 4) | (Lp[l + 96] << 6));
    } else if (k < 82) {
      b = uint8_t(k == 80 ? (dh & 0xff) : (dh >> 8));
    } else {
      b = uint8_t(k == 82 ? (mh & 0xff) : (mh >> 8));
    }
    out[k] = b;
  }
}

// q4_K (NMAX 15) and q5_K (NMAX 31): quants_k.cpp k4_superblock + k4_requantize + pack_q4_k/pack_q5_k
template <bool HW, int NMAX>
__device__ void body_k4(sb_scratch& S, const float* xsb, int s, const float (&x)[32], const float (&qb)[32],
                        uint8_t* out, bool active) {
  uint8_t L[32];
  float w[32];
  float scale, mn;
  if (!HW) {
    const float rmin = NMAX == 15 ? -1.0f : -0.5f;
    const int nstep = NMAX == 15 ? 20 : 15;
    float sum_x2 = 0.0f;
#pragma unroll
    for (int l = 0; l < 32; ++l) sum_x2 += x[l] * x[l];
    const float av_x = sqrtf(sum_x2 / 32.0f);
#pragma unroll
    for (int l = 0; l < 32; ++l) w[l] = av_x + fabsf(x[l]);
    scale = fit_affine<32, false>(NMAX, x, w, L, mn, rmin, 0.1f, nstep, false);
  } else {
    const float sum_x2 = sum_sq_256<32>(xsb);
    const float sigma2 = 2.0f * sum_x2 / 256.0f;
    float sumw = 0.0f;
#pragma unroll
    for (int l = 0; l < 32; ++l) w[l] = qb[l] * sqrtf(sigma2 + x[l] * x[l]);
#pragma unroll
    for (int l = 0; l < 32; ++l) sumw += w[l];
    S.sw[s] = sumw;
    scale = fit_affine<32, true>(NMAX, x, w, L, mn, -0.9f, 0.05f, 36, false);
  }
  S.sc[s] = scale;
  S.mn[s] = mn;
  __syncwarp();
  uint8_t ls[8], lm[8];
  uint16_t dh, mh;
  if (!HW) {
    float max_scale = 0.0f, max_min = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float a = S.sc[j], m = S.mn[j];
      if (a > max_scale) max_scale = a;
      if (m > max_min) max_min = m;
    }
    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      uint8_t a = uint8_t(nearest_int(inv_scale * S.sc[j]));
      uint8_t b = uint8_t(nearest_int(inv_min * S.mn[j]));
      ls[j] = min_of<uint8_t>(63, a);
      lm[j] = min_of<uint8_t>(63, b);
    }
    dh = f32_to_fp16(max_scale / 63.0f);
    mh = f32_to_fp16(max_min / 63.0f);
  } else {
    float scs[8], mns[8], sws[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      scs[j] = S.sc[j];
      mns[j] = S.mn[j];
      sws[j] = S.sw[j];
    }
    uint8_t Ls[8], Lm[8];
    const float d_block = fit_positive<8>(63, scs, Ls, sws);
    const float m_block = fit_positive<8>(63, mns, Lm, sws);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      ls[j] = min_of<uint8_t>(63, Ls[j]);
      lm[j] = min_of<uint8_t>(63, Lm[j]);
    }
    dh = f32_to_fp16(d_block);
    mh = f32_to_fp16(m_block);
  }
  {
    // unpack_scale_min(pack_scale_min(ls, lm)) == (ls, lm) for values <= 63
    const float dall = fp16_to_f32(dh), mall = fp16_to_f32(mh);
    const float d = dall * float(pick(ls, s));
    if (d != 0.0f) {
      const float dm = mall * float(pick(lm, s));
#pragma unroll
      for (int i = 0; i < 32; ++i) {
        const int l = nearest_int((x[i] + dm) / d);
        L[i] = uint8_t(max_of(0, min_of(NMAX, l)));
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 32; ++i) S.L[32 * s + i] = L[i];
  if (s == 0) {
    uint8_t sc12[12];
#pragma unroll
    for (int j = 0; j < 12; ++j) sc12[j] = 0;
#pragma unroll
    for (int j = 0; j < 8; ++j) {  // pack_scale_min
      if (j < 4) {
        sc12[j] = ls[j];
        sc12[j + 4] = lm[j];
      } else {
        sc12[j + 4] = uint8_t((ls[j] & 0xf) | ((lm[j] & 0xf) << 4));
        sc12[j - 4] |= uint8_t((ls[j] >> 4) << 6);
        sc12[j] |= uint8_t((lm[j] >> 4) << 6);
      }
    }
    put_half(S.hdr, dh);
    put_half(S.hdr + 2, mh);
#pragma unroll
    for (int j = 0; j < 12; ++j) S.hdr[4 + j] = sc12[j];
  }
  __syncwarp();
  if (!active) return;
  constexpr int bytes = NMAX == 15 ? block_bytes<type::q4_k> : block_bytes<type::q5_k>;
  for (int k = s; k < bytes; k += 8) {
    uint8_t b;
    if (k < 16) {
      b = S.hdr[k];
    } else if (NMAX == 15) {
      const int kq = k - 16;
      const int c = kq / 32, l = kq % 32;
      b = uint8_t(S.L[64 * c + l] | (S.L[64 * c + l + 32] << 4));
    } else if (k < 48) {
      const int l = k - 16;
      b = 0;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        if (S.L[64 * c + l] > 15) b = uint8_t(b | (1u << (2 * c)));
        if (S.L[64 * c + l + 32] > 15) b = uint8_t(b | (2u << (2 * c)));
      }
    } else {
      const int kq = k - 48;
      const int c = kq / 32, l = kq % 32;
      b = uint8_t((S.L[64 * c + l] & 0xf) | ((S.L[64 * c + l + 32] & 0xf) << 4));
    }
    out[k] = b;
  }
}

// iq3_xxs: quants_iq3.cpp quantize_row_iq3_xxs. Groups of 4 are kept as 12-bit level codes.
// (A variant that walked each thread's off-grid groups in one flattened loop, to cut warp divergence in the
// candidate search, measured 17% slower on the same kind of card; see bench/RESULTS.md.)
struct iq3_smem {
  int16_t code_to_point[kCodes];
  uint16_t grid[256];
  float4 q[256];  // float(2l+1) of each grid point's four levels (exact)
};

__device__ __forceinline__ float lvl_q(int code, int i) { return float(2 * ((code >> (3 * i)) & 7) + 1); }

// iq3_find_best_neighbour: the first candidate at the smallest weighted distance (d2 += w*diff*diff)
__device__ __forceinline__ int best_candidate(const iq3_smem& T, const kargs& a, int code, float x0, float x1,
                                              float x2, float x3, float w0, float w1, float w2, float w3,
                                              float scale) {
  float best_d2 = FLT_MAX;
  int best = -1;
  const int c1 = __ldg(a.tab.cand_begin + code + 1);
  for (int c = __ldg(a.tab.cand_begin + code); c < c1; ++c) {
    const int k = __ldg(a.tab.candidates + c);
    const float4 q = T.q[k];
    float d2 = 0.0f;
    float diff = scale * q.x - x0;
    d2 += w0 * diff * diff;
    diff = scale * q.y - x1;
    d2 += w1 * diff * diff;
    diff = scale * q.z - x2;
    d2 += w2 * diff * diff;
    diff = scale * q.w - x3;
    d2 += w3 * diff * diff;
    if (d2 < best_d2) {
      best_d2 = d2;
      best = k;
    }
  }
  return best;
}

template <bool HW>
__device__ void body_iq3(sb_scratch& S, const iq3_smem& T, const kargs& a, const float* xsb, int s,
                         const float (&xb)[32], const float (&qb)[32], uint8_t* out, bool active) {
  float weight[32], xval[32], waux[32];
  if (HW) {
    const float sumx2 = sum_sq_256<32>(xsb);
    const float sigma2 = 2.0f * sumx2 / 256.0f;
#pragma unroll
    for (int i = 0; i < 32; ++i) weight[i] = qb[i] * sqrtf(sigma2 + xb[i] * xb[i]);
  } else {
#pragma unroll
    for (int i = 0; i < 32; ++i) weight[i] = xb[i] * xb[i];
  }
#pragma unroll
  for (int i = 0; i < 32; ++i) waux[i] = sqrtf(weight[i]);

  uint8_t block_signs[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    int nflip = 0;
    uint8_t sg = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const float v = xb[8 * k + i];
      if (v >= 0) {
        xval[8 * k + i] = v;
      } else {
        xval[8 * k + i] = -v;
        ++nflip;
        sg = uint8_t(sg | (1u << i));
      }
    }
    if (nflip % 2) {
      int imin = 0;
      float mn = weight[8 * k] * xb[8 * k] * xb[8 * k];
#pragma unroll
      for (int i = 1; i < 8; ++i) {
        const float ax = weight[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
        if (ax < mn) {
          mn = ax;
          imin = i;
        }
      }
#pragma unroll
      for (int i = 0; i < 8; ++i)
        if (i == imin) xval[8 * k + i] = -xval[8 * k + i];
      sg = uint8_t(sg ^ (1u << imin));
    }
    block_signs[k] = sg & 127;
  }
  float max = xval[0];
#pragma unroll
  for (int i = 1; i < 32; ++i) max = max_of(max, xval[i]);

  int Lc[8];  // level codes of the 8 groups (all zero: L memset to 0)
#pragma unroll
  for (int k = 0; k < 8; ++k) Lc[k] = 0;
  float scale = 0.0f;
  uint32_t sas = 0;
  if (!(max < kIq3Eps)) {
    float best = 0.0f;
    scale = max / float(2 * 8 - 1);
    unsigned on_grid = 0xffu;
#pragma unroll 1
    for (int step = -15; step <= 15; ++step) {
      const float id = (float(2 * 8 - 1) + float(step) * 0.2f) / max;
      const float this_scale = 1.0f / id;
      int La[8];
      unsigned og = 0;
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        int code = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int l = nearest_int(0.5f * (id * xval[4 * k + i] - 1.0f));
          code |= max_of(0, min_of(7, l)) << (3 * i);
        }
        if (T.code_to_point[code] >= 0) {
          og |= 1u << k;
        } else {
          const int p = best_candidate(T, a, code, xval[4 * k], xval[4 * k + 1], xval[4 * k + 2], xval[4 * k + 3],
                                       waux[4 * k], waux[4 * k + 1], waux[4 * k + 2], waux[4 * k + 3], this_scale);
          code = T.grid[p];
        }
        La[k] = code;
      }
      float sumqx = 0.0f, sumq2 = 0.0f;
#pragma unroll
      for (int i = 0; i < 32; ++i) {
        const float q = lvl_q(La[i / 4], i % 4);
        sumqx += weight[i] * xval[i] * q;
        sumq2 += weight[i] * q * q;
      }
      if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
        scale = sumqx / sumq2;
        best = scale * sumqx;
#pragma unroll
        for (int k = 0; k < 8; ++k) Lc[k] = La[k];
        on_grid = og;
      }
    }
    if (on_grid != 0xffu && scale > 0.0f) {
      const float id = 1.0f / scale;
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        if (on_grid & (1u << k)) continue;
        int code = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int l = nearest_int(0.5f * (id * xval[4 * k + i] - 1.0f));
          code |= max_of(0, min_of(7, l)) << (3 * i);
        }
        int point = T.code_to_point[code];
        if (point < 0)
          point = best_candidate(T, a, code, xval[4 * k], xval[4 * k + 1], xval[4 * k + 2], xval[4 * k + 3],
                                 waux[4 * k], waux[4 * k + 1], waux[4 * k + 2], waux[4 * k + 3], scale);
        Lc[k] = T.grid[point];
      }
      float sumqx = 0.0f, sumq2 = 0.0f;
#pragma unroll
      for (int i = 0; i < 32; ++i) {
        const float q = lvl_q(Lc[i / 4], i % 4);
        sumqx += weight[i] * xval[i] * q;
        sumq2 += weight[i] * q * q;
      }
      if (sumq2 > 0.0f) scale = sumqx / sumq2;
    }
    if (scale < 0.0f) {  // cannot happen with non-negative xval; kept as the CPU keeps it
      scale = -scale;
#pragma unroll
      for (int k = 0; k < 4; ++k) block_signs[k] = uint8_t(~block_signs[k] & 127);
    }
    sas = uint32_t(block_signs[0]) | (uint32_t(block_signs[1]) << 7) | (uint32_t(block_signs[2]) << 14) |
          (uint32_t(block_signs[3]) << 21);
  }
  S.sc[s] = scale;
  __syncwarp();
  float max_scale = 0.0f;
#pragma unroll
  for (int ib = 0; ib < 8; ++ib) max_scale = max_of(max_scale, S.sc[ib]);
  if (!active) return;
  if (max_scale == 0.0f) {
    for (int k = s; k < block_bytes<type::iq3_xxs>; k += 8) out[k] = 0;
    return;
  }
  const float d = max_scale / 31.0f;
  const uint16_t dh = f32_to_fp16(d * 1.0125f);
  const float id = 1.0f / d;
  const int l = max_of(0, min_of(15, nearest_int(0.5f * (id * scale - 1.0f))));
  sas |= uint32_t(l) << 28;
  if (s == 0) put_half(out, dh);
#pragma unroll
  for (int k = 0; k < 8; ++k) out[2 + 8 * s + k] = uint8_t(T.code_to_point[Lc[k]]);
#pragma unroll
  for (int k = 0; k < 4; ++k) out[2 + 64 + 4 * s + k] = uint8_t(sas >> (8 * k));
}

// ---- kernels ---------------------------------------------------------------------------------------

template <type T>
struct sub_of {
  static constexpr int v = (T == type::q2_k || T == type::q3_k || T == type::q6_k) ? 16 : 32;
};

template <type T, class In, bool HW>
__global__ void __launch_bounds__(kThreads) k_superblocks(const kargs a) {
  constexpr int SUB = sub_of<T>::v;
  using G = geom<SUB>;
  __shared__ tile_smem<SUB> sm;
  __shared__ std::conditional_t<T == type::iq3_xxs, iq3_smem, char> tab;
  if constexpr (T == type::iq3_xxs) {
    for (int i = threadIdx.x; i < kCodes; i += kThreads) tab.code_to_point[i] = a.tab.code_to_point[i];
    for (int i = threadIdx.x; i < 256; i += kThreads) {
      const int g = a.tab.grid[i];
      tab.grid[i] = uint16_t(g);
      tab.q[i] = make_float4(float(2 * (g & 7) + 1), float(2 * ((g >> 3) & 7) + 1), float(2 * ((g >> 6) & 7) + 1),
                             float(2 * ((g >> 9) & 7) + 1));
    }
  }
  const int g = threadIdx.x / G::tps, s = threadIdx.x % G::tps;
  const long long ntiles = (a.nsb_total + G::sbpb - 1) / G::sbpb;
  for (long long tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
    const long long sb0 = tile * G::sbpb;
    __syncthreads();  // previous tile's readers are done (and the iq3 tables are in place)
    load_tile<In, SUB>(a, sm.xs, sb0);
    __syncthreads();
    const long long sb = sb0 + g;
    const bool active = sb < a.nsb_total;
    const long long sbc = active ? sb : a.nsb_total - 1;
    const long long row = sbc / a.nsb_row;
    const long long col0 = (sbc % a.nsb_row) * 256;
    const float* xsb = sm.xs + g * G::stride;
    float x[SUB], qb[SUB];
#pragma unroll
    for (int i = 0; i < SUB; ++i) x[i] = xsb[s * (SUB + 1) + i];
    if (HW) {
      const long long vec = a.rows_per_weight > 0 ? (a.row_offset + row) / a.rows_per_weight : 0;
      const float4* wp = reinterpret_cast<const float4*>(a.w + vec * a.n_per_row + col0 + s * SUB);
#pragma unroll
      for (int i = 0; i < SUB / 4; ++i) {
        const float4 q = __ldg(wp + i);
        qb[4 * i] = q.x;
        qb[4 * i + 1] = q.y;
        qb[4 * i + 2] = q.z;
        qb[4 * i + 3] = q.w;
      }
    } else {
#pragma unroll
      for (int i = 0; i < SUB; ++i) qb[i] = 0.0f;
    }
    uint8_t* out = a.dst + sbc * block_bytes<T>;
    sb_scratch& S = sm.s[g];
    if constexpr (T == type::q6_k) body_q6_k<HW>(S, xsb, s, x, qb, out, active);
    else if constexpr (T == type::q3_k) body_q3_k<HW>(S, xsb, s, x, qb, out, active);
    else if constexpr (T == type::q2_k) body_q2_k<HW>(S, xsb, s, x, qb, out, active);
    else if constexpr (T == type::q4_k) body_k4<HW, 15>(S, xsb, s, x, qb, out, active);
    else if constexpr (T == type::q5_k) body_k4<HW, 31>(S, xsb, s, x, qb, out, active);
    else if constexpr (T == type::iq3_xxs)
      body_iq3<HW>(S, tab, a, xsb, s, x, qb, out, active);
  }
}

// q8_0: quants_32.cpp quantize_row_q8_0, one thread per block of 32 (weights ignored, as in ggml)
template <class In>
__global__ void __launch_bounds__(kThreads) k_q8_0(const kargs a) {
  const long long b = (long long)blockIdx.x * kThreads + threadIdx.x;
  if (b >= a.nsb_total) return;
  float x[32];
  const long long e0 = b * 32;
  if (a.vec_ok) {
    if constexpr (sizeof(In) == 2) {
      const uint4* p = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(a.src) + e0);
#pragma unroll
      for (int v = 0; v < 4; ++v) {
        const uint4 q = __ldg(p + v);
        const uint32_t w4[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          x[8 * v + 2 * j] = bf16f(w4[j] & 0xffffu);
          x[8 * v + 2 * j + 1] = __uint_as_float(w4[j] & 0xffff0000u);
        }
      }
    } else {
      const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(a.src) + e0);
#pragma unroll
      for (int v = 0; v < 8; ++v) {
        const float4 q = __ldg(p + v);
        x[4 * v] = q.x;
        x[4 * v + 1] = q.y;
        x[4 * v + 2] = q.z;
        x[4 * v + 3] = q.w;
      }
    }
  } else {
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      if constexpr (sizeof(In) == 2)
        x[j] = bf16f(static_cast<const uint16_t*>(a.src)[e0 + j]);
      else
        x[j] = static_cast<const float*>(a.src)[e0 + j];
    }
  }
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < 32; ++j) amax = max_of(amax, fabsf(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint8_t* out = a.dst + b * block_bytes<type::q8_0>;
  put_half(out, f32_to_fp16(d));
#pragma unroll
  for (int j = 0; j < 32; ++j) out[2 + j] = uint8_t(int8_t(int(roundf(x[j] * id))));
}

int grid_limit() {
  static int limit = [] {
    int dev = 0, sms = 132;
    if (cudaGetDevice(&dev) == cudaSuccess) cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    cudaGetLastError();
    return sms * 16;
  }();
  return limit;
}

template <type T, class In>
cudaError_t launch_t(const kargs& a, cudaStream_t st) {
  constexpr int SUB = sub_of<T>::v;
  const long long ntiles = (a.nsb_total + geom<SUB>::sbpb - 1) / geom<SUB>::sbpb;
  const unsigned grid = unsigned(std::min<long long>(ntiles, grid_limit()));
  auto* kern = a.w ? k_superblocks<T, In, true> : k_superblocks<T, In, false>;
  kern<<<grid, kThreads, 0, st>>>(a);
  return cudaGetLastError();
}

template <class In>
cudaError_t launch_in(type t, const kargs& a, cudaStream_t st) {
  switch (t) {
    case type::q8_0: {
      const unsigned grid = unsigned((a.nsb_total + kThreads - 1) / kThreads);
      k_q8_0<In><<<grid, kThreads, 0, st>>>(a);
      return cudaGetLastError();
    }
    case type::q2_k: return launch_t<type::q2_k, In>(a, st);
    case type::q3_k: return launch_t<type::q3_k, In>(a, st);
    case type::q4_k: return launch_t<type::q4_k, In>(a, st);
    case type::q5_k: return launch_t<type::q5_k, In>(a, st);
    case type::q6_k: return launch_t<type::q6_k, In>(a, st);
    case type::iq3_xxs: return launch_t<type::iq3_xxs, In>(a, st);
    default: return cudaErrorInvalidValue;  // check_args admits only the table's gpu types
  }
}

status check_args(type t, int64_t nrows, int64_t n_per_row) {
  const ggml::type_info& ti = ggml::info(t);
  if (!ti.gpu)
    return make_error(errc::invalid_argument, "the GPU packer does not implement " + std::string(ti.name));
  if (n_per_row <= 0 || n_per_row % ti.block_size != 0)
    return make_error(errc::invalid_argument, "row length " + std::to_string(n_per_row) +
                                                  " is not a positive multiple of the block size " +
                                                  std::to_string(ti.block_size));
  if (nrows < 0) return make_error(errc::invalid_argument, "negative row count");
  return status::success();
}

status launch(type t, gq_src src_type, const void* d_src, void* d_dst, int64_t nrows, int64_t n_per_row,
              const float* d_w, int64_t rows_per_weight, int64_t row_offset, cudaStream_t st) {
  if (nrows == 0) return status::success();
  kargs a{};
  a.src = d_src;
  a.dst = static_cast<uint8_t*>(d_dst);
  a.w = d_w;
  a.nrows = nrows;
  a.n_per_row = n_per_row;
  a.rows_per_weight = rows_per_weight;
  a.row_offset = row_offset;
  a.nsb_row = n_per_row / ggml::info(t).block_size;
  a.nsb_total = a.nsb_row * nrows;
  a.vec_ok = (reinterpret_cast<uintptr_t>(d_src) % 16) == 0;
  if (d_w && reinterpret_cast<uintptr_t>(d_w) % 16 != 0)
    return make_error(errc::invalid_argument, "device weights must be 16-byte aligned");
  if (t == type::iq3_xxs) {
    int dev = 0;
    RZ_CU(cudaGetDevice(&dev), "cudaGetDevice");
    auto tab = device_tables(dev);
    if (!tab) return tab.error();
    a.tab = *tab;
  }
  const cudaError_t e = src_type == gq_src::bf16 ? launch_in<uint16_t>(t, a, st) : launch_in<float>(t, a, st);
  if (e != cudaSuccess) return cuda_error(e, "ggml quantize launch");
  return status::success();
}

bool is_device_ptr(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}
bool is_pinned_ptr(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeHost;
}

// multithreaded memcpy between pageable and pinned host memory
void par_copy(void* dst, const void* src, size_t bytes) {
  const size_t block = size_t(4) << 20;
  const size_t nb = (bytes + block - 1) / block;
  razor::parallel_for(nb, [&](size_t b0, size_t b1) {
    for (size_t b = b0; b < b1; ++b) {
      const size_t o = b * block;
      std::memcpy(static_cast<char*>(dst) + o, static_cast<const char*>(src) + o, std::min(block, bytes - o));
    }
  });
}

}  // namespace

bool ggml_quant_supported(ggml::type t) { return ggml::info(t).gpu; }

status ggml_quantize_device(ggml::type t, gq_src src_type, const void* d_src, void* d_dst, int64_t nrows,
                            int64_t n_per_row, const float* d_weights, int64_t rows_per_weight,
                            int64_t row_offset, void* stream) {
  RAZOR_TRY(check_args(t, nrows, n_per_row));
  return launch(t, src_type, d_src, d_dst, nrows, n_per_row, d_weights, rows_per_weight, row_offset,
                static_cast<cudaStream_t>(stream));
}

result<size_t> ggml_quantize_host(ggml::type t, gq_src src_type, const void* src, void* dst, size_t dst_size,
                                  int64_t nrows, int64_t n_per_row, const float* weights,
                                  int64_t rows_per_weight, const progress_fn& progress, int device,
                                  size_t chunk_bytes) {
  RAZOR_TRY(check_args(t, nrows, n_per_row));
  const size_t out_row = ggml::row_size(t, n_per_row);
  const size_t total_out = size_t(nrows) * out_row;
  if (dst_size < total_out)
    return make_error(errc::invalid_argument, "destination holds " + std::to_string(dst_size) + " bytes, " +
                                                  std::to_string(total_out) + " needed");
  if (nrows == 0) return size_t(0);
  RZ_CU(cudaSetDevice(device), "cudaSetDevice");
  const size_t esz = src_type == gq_src::bf16 ? 2 : 4;
  const size_t in_row = size_t(n_per_row) * esz;
  const size_t n_vec = weights ? (rows_per_weight > 0 ? size_t((nrows + rows_per_weight - 1) / rows_per_weight) : 1) : 0;

  struct res_t {
    float* dw = nullptr;
    void* pin_in[2] = {nullptr, nullptr};
    void* pin_out[2] = {nullptr, nullptr};
    void* d_in[2] = {nullptr, nullptr};
    void* d_out[2] = {nullptr, nullptr};
    cudaStream_t st[2] = {nullptr, nullptr};
    ~res_t() {
      for (int i = 0; i < 2; ++i) {
        if (st[i]) cudaStreamSynchronize(st[i]);
        if (st[i]) cudaStreamDestroy(st[i]);
        if (pin_in[i]) cudaFreeHost(pin_in[i]);
        if (pin_out[i]) cudaFreeHost(pin_out[i]);
        if (d_in[i]) cudaFree(d_in[i]);
        if (d_out[i]) cudaFree(d_out[i]);
      }
      if (dw) cudaFree(dw);
    }
  } r;
  if (n_vec) {
    const size_t wb = n_vec * size_t(n_per_row) * sizeof(float);
    RZ_CU(cudaMalloc(&r.dw, wb), "cudaMalloc (weights)");
    RZ_CU(cudaMemcpy(r.dw, weights, wb, cudaMemcpyHostToDevice), "upload weights");
  }
  if (is_device_ptr(src) && is_device_ptr(dst)) {
    RAZOR_TRY(launch(t, src_type, src, dst, nrows, n_per_row, r.dw, rows_per_weight, 0, nullptr));
    RZ_CU(cudaDeviceSynchronize(), "ggml quantize");
    if (progress && !progress(double(nrows), double(nrows), "ggml quantize (GPU)"))
      return make_error(errc::cancelled, "quantization cancelled");
    return total_out;
  }
  const bool src_pinned = is_pinned_ptr(src), dst_pinned = is_pinned_ptr(dst);
  const size_t chunk_rows = std::max<size_t>(1, std::min(size_t(nrows), chunk_bytes / in_row));
  const size_t nchunks = (size_t(nrows) + chunk_rows - 1) / chunk_rows;
  const int nslots = nchunks > 1 ? 2 : 1;
  for (int i = 0; i < nslots; ++i) {
    if (!src_pinned) RZ_CU(cudaHostAlloc(&r.pin_in[i], chunk_rows * in_row, cudaHostAllocDefault), "cudaHostAlloc");
    if (!dst_pinned) RZ_CU(cudaHostAlloc(&r.pin_out[i], chunk_rows * out_row, cudaHostAllocDefault), "cudaHostAlloc");
    RZ_CU(cudaMalloc(&r.d_in[i], chunk_rows * in_row), "cudaMalloc (chunk in)");
    RZ_CU(cudaMalloc(&r.d_out[i], chunk_rows * out_row), "cudaMalloc (chunk out)");
    RZ_CU(cudaStreamCreateWithFlags(&r.st[i], cudaStreamNonBlocking), "cudaStreamCreate");
  }
  const auto* in = static_cast<const uint8_t*>(src);
  auto* out = static_cast<uint8_t*>(dst);
  auto rows_of = [&](size_t k) { return std::min(chunk_rows, size_t(nrows) - k * chunk_rows); };
  auto finish = [&](size_t k) -> status {  // wait for chunk k and move its bytes out
    const int slot = int(k % 2);
    RZ_CU(cudaStreamSynchronize(r.st[slot]), "ggml quantize chunk");
    if (!dst_pinned) par_copy(out + k * chunk_rows * out_row, r.pin_out[slot], rows_of(k) * out_row);
    return status::success();
  };
  size_t done_rows = 0;
  for (size_t k = 0; k < nchunks; ++k) {
    const int slot = int(k % 2);
    if (k >= 2) {
      RAZOR_TRY(finish(k - 2));
      done_rows += rows_of(k - 2);
      if (progress && !progress(double(done_rows), double(nrows), "ggml quantize (GPU)"))
        return make_error(errc::cancelled, "quantization cancelled after " + std::to_string(done_rows) + " of " +
                                               std::to_string(nrows) + " rows");
    }
    const size_t nr = rows_of(k);
    const uint8_t* h_in = in + k * chunk_rows * in_row;
    if (!src_pinned) {
      par_copy(r.pin_in[slot], h_in, nr * in_row);
      h_in = static_cast<const uint8_t*>(r.pin_in[slot]);
    }
    RZ_CU(cudaMemcpyAsync(r.d_in[slot], h_in, nr * in_row, cudaMemcpyHostToDevice, r.st[slot]), "H2D");
    RAZOR_TRY(launch(t, src_type, r.d_in[slot], r.d_out[slot], int64_t(nr), n_per_row, r.dw, rows_per_weight,
                     int64_t(k * chunk_rows), r.st[slot]));
    void* h_out = dst_pinned ? static_cast<void*>(out + k * chunk_rows * out_row) : r.pin_out[slot];
    RZ_CU(cudaMemcpyAsync(h_out, r.d_out[slot], nr * out_row, cudaMemcpyDeviceToHost, r.st[slot]), "D2H");
  }
  for (size_t k = nchunks >= 2 ? nchunks - 2 : 0; k < nchunks; ++k) {
    RAZOR_TRY(finish(k));
    done_rows += rows_of(k);
    if (progress && !progress(double(done_rows), double(nrows), "ggml quantize (GPU)"))
      return make_error(errc::cancelled, "quantization cancelled after " + std::to_string(done_rows) + " of " +
                                             std::to_string(nrows) + " rows");
  }
  return total_out;
}

void* pinned_alloc(size_t bytes) {
  void* p = nullptr;
  if (cudaHostAlloc(&p, bytes, cudaHostAllocDefault) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return p;
}

void pinned_free(void* p) {
  if (p) cudaFreeHost(p);
}

result<gq_bench_result> ggml_quant_bench(const gq_bench_request& q) {
  RAZOR_TRY(check_args(q.type, q.nrows, q.n_per_row));
  gq_bench_result res;
  int dev = 0;
  cudaDeviceProp prop{};
  RZ_CU(cudaGetDevice(&dev), "cudaGetDevice");
  RZ_CU(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
  res.device_name = prop.name;
  const size_t in_bytes = size_t(q.nrows) * size_t(q.n_per_row) * (q.src_type == gq_src::bf16 ? 2 : 4);
  const size_t out_bytes = size_t(q.nrows) * ggml::row_size(q.type, q.n_per_row);
  const size_t n_vec =
      q.host_weights ? (q.rows_per_weight > 0 ? size_t((q.nrows + q.rows_per_weight - 1) / q.rows_per_weight) : 1) : 0;
  struct bufs {
    void *in = nullptr, *out = nullptr;
    float* w = nullptr;
    void* pin_out = nullptr;
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    ~bufs() {
      cudaFree(in);
      cudaFree(out);
      cudaFree(w);
      if (pin_out) cudaFreeHost(pin_out);
      if (e0) cudaEventDestroy(e0);
      if (e1) cudaEventDestroy(e1);
    }
  } B;
  RZ_CU(cudaMalloc(&B.in, in_bytes), "cudaMalloc (bench in)");
  RZ_CU(cudaMalloc(&B.out, out_bytes), "cudaMalloc (bench out)");
  if (n_vec) {
    RZ_CU(cudaMalloc(&B.w, n_vec * size_t(q.n_per_row) * 4), "cudaMalloc (bench weights)");
    RZ_CU(cudaMemcpy(B.w, q.host_weights, n_vec * size_t(q.n_per_row) * 4, cudaMemcpyHostToDevice), "upload w");
  }
  RZ_CU(cudaEventCreate(&B.e0), "cudaEventCreate");
  RZ_CU(cudaEventCreate(&B.e1), "cudaEventCreate");
  RZ_CU(cudaMemcpy(B.in, q.host_src, in_bytes, cudaMemcpyHostToDevice), "upload");
  RZ_CU(cudaMemset(B.out, 0xa5, out_bytes), "poison");
  if (q.type == ggml::type::iq3_xxs) {  // table upload outside the timing
    auto t = device_tables(dev);
    if (!t) return t.error();
  }
  auto run = [&]() {
    return launch(q.type, q.src_type, B.in, B.out, q.nrows, q.n_per_row, B.w, q.rows_per_weight, 0, nullptr);
  };
  for (int i = 0; i < q.warmup; ++i) RAZOR_TRY(run());
  RZ_CU(cudaDeviceSynchronize(), "warm-up");
  std::vector<double> ms;
  for (int i = 0; i < std::max(1, q.iters); ++i) {
    RZ_CU(cudaEventRecord(B.e0), "event");
    RAZOR_TRY(run());
    RZ_CU(cudaEventRecord(B.e1), "event");
    RZ_CU(cudaEventSynchronize(B.e1), "event sync");
    float t = 0;
    RZ_CU(cudaEventElapsedTime(&t, B.e0, B.e1), "event time");
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  res.kernel_ms_median = ms[ms.size() / 2];
  res.kernel_ms_min = ms.front();
  res.kernel_ms_max = ms.back();
  if (q.host_dst) RZ_CU(cudaMemcpy(q.host_dst, B.out, out_bytes, cudaMemcpyDeviceToHost), "download");
  if (q.e2e_iters > 0) {
    RZ_CU(cudaHostAlloc(&B.pin_out, out_bytes, cudaHostAllocDefault), "cudaHostAlloc (bench out)");
    std::vector<double> e2e;
    for (int i = 0; i < q.e2e_iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      auto r = ggml_quantize_host(q.type, q.src_type, q.host_src, B.pin_out, out_bytes, q.nrows, q.n_per_row,
                                  q.host_weights, q.rows_per_weight, {}, dev);
      if (!r) return r.error();
      e2e.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(e2e.begin(), e2e.end());
    res.e2e_ms_median = e2e[e2e.size() / 2];
    if (q.host_dst && std::memcmp(q.host_dst, B.pin_out, out_bytes) != 0)
      return make_error(errc::internal, "streamed result differs from the device-resident result");
  }
  return res;
}

}  // namespace razor::cu
