// Internal to kernels/ggml/ (the CUDA ggml packer; host API: kernels/include/kernels/ggml_quant_cuda.h): the
// kernel arguments, the tile geometry and loading, and the super-block kernel template that each type
// family's .cu instantiates with its body (k_quants.cu, iq3_xxs.cu; q8_0.cu has its own kernel). The scalar
// helpers and the scale searches are the CPU's own (ggml/common.h, ggml/quant_search.h), compiled for the
// device; every body names the CPU function it repeats. The .cu files are built with --fmad=false
// (CMakeLists.txt), so `a * b + c` is a rounded product then a rounded sum, as on the CPU (built with
// fp-contract off); `/` and sqrtf are IEEE-exact (nvcc's -prec-div/-prec-sqrt defaults) and denormals are
// kept (no -ftz).
//
// Work split (k-quants, iq3_xxs): a CTA of 128 threads takes tiles of consecutive super-blocks. The tile
// is loaded coalesced into shared memory as float (one pad float per sub-block, so that the thread
// reading sub-block s element i hits bank (s + i) % 32), then thread s of a super-block's group
// (8 threads for 32-element sub-blocks, 16 for 16-element ones; a group never straddles a warp) copies its
// sub-block into registers and runs the sub-block search (fit_*). The per-super-block steps (sums over 256
// elements, the scale-of-scales fit) are computed redundantly by every thread of the group, in the CPU's
// order, from shared memory. The levels go to shared memory and the group writes the block's bytes.
// q8_0 uses one thread per block of 32.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/cuda_check.cuh"
#include "ggml/common.h"
#include "ggml/quant_search.h"
#include "ggml/types.h"
#include "kernels/ggml_quant_cuda.h"

namespace razor::cu::gq {

using ggml::clamp_int;
using ggml::f32_to_fp16;
using ggml::fit_affine;
using ggml::fit_positive;
using ggml::fit_symmetric;
using ggml::fit_symmetric_descent;
using ggml::fp16_to_f32;
using ggml::k_group_eps;
using ggml::k_group_eps_iq3;
using ggml::max_of;
using ggml::min_of;
using ggml::nearest_int;
using ggml::type;

constexpr int kThreads = 128;

// Bytes per block, from the type table (which takes them from the block structs).
template <type T>
inline constexpr int block_bytes = ggml::info(T).type_size;

template <class T, int N>
__device__ __forceinline__ T pick(const T (&a)[N], int idx) {
  T v = a[0];
#pragma unroll
  for (int j = 1; j < N; ++j)
    if (j == idx) v = a[j];
  return v;
}

// The iq3_xxs search tables on the device (iq3_xxs.cu uploads them once per device).
struct iq3_dev_tables {
  const int16_t* code_to_point = nullptr;
  const int32_t* cand_begin = nullptr;
  const uint16_t* candidates = nullptr;
  const uint16_t* grid = nullptr;
};

result<iq3_dev_tables> iq3_device_tables(int device);

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

// N floats from 16-byte aligned global memory, in 16-byte loads through the read-only cache.
template <int N>
__device__ __forceinline__ void ldg_floats(const float* src, float (&f)[N]) {
  const float4* p = reinterpret_cast<const float4*>(src);
#pragma unroll
  for (int v = 0; v < N / 4; ++v) {
    const float4 q = __ldg(p + v);
    f[4 * v] = q.x;
    f[4 * v + 1] = q.y;
    f[4 * v + 2] = q.z;
    f[4 * v + 3] = q.w;
  }
}

// V consecutive source elements from element ge, widened to float: 16-byte vector loads when the source is
// 16-byte aligned (V a multiple of 8 for BF16, of 4 for F32), else element by element.
template <class In, int V>
__device__ __forceinline__ void load_floats(const kargs& a, long long ge, float (&f)[V]) {
  if (a.vec_ok) {
    if constexpr (sizeof(In) == 2) {
      const uint4* p = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(a.src) + ge);
#pragma unroll
      for (int v = 0; v < V / 8; ++v) {
        const uint4 q = __ldg(p + v);
        const uint32_t w4[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          f[8 * v + 2 * j] = bf16f(w4[j] & 0xffffu);
          f[8 * v + 2 * j + 1] = __uint_as_float(w4[j] & 0xffff0000u);
        }
      }
    } else {
      ldg_floats(static_cast<const float*>(a.src) + ge, f);
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
}

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
      load_floats<In>(a, ge, f);
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

// The body of a type's super-block kernel (specialised in the family's .cu):
//   static constexpr int sub;        elements per sub-block (one thread each): 16 or 32
//   struct smem;                     per-CTA shared tables (`char` when none)
//   static __device__ void init(smem&, const kargs&);       fills them (every thread, before the first tile)
//   template <bool HW> static __device__ void run(sb_scratch& S, const smem&, const kargs&, const float* xsb,
//       int s, const float (&x)[sub], const float (&qb)[sub], uint8_t* out, bool active);
// run is called by every thread of a 128-thread CTA (no early exits: __syncwarp needs the warp). g: super-block
// in the tile, s: sub-block, x: the sub-block, qb: its weights (HW), xsb: the super-block in shared memory,
// out: the block's bytes in global memory (written only when `active`).
template <type T>
struct body;

template <type T, class In, bool HW>
__global__ void __launch_bounds__(kThreads) k_superblocks(const kargs a) {
  using B = body<T>;
  constexpr int SUB = B::sub;
  using G = geom<SUB>;
  __shared__ tile_smem<SUB> sm;
  __shared__ typename B::smem tab;
  B::init(tab, a);
  const int g = threadIdx.x / G::tps, s = threadIdx.x % G::tps;
  const long long ntiles = (a.nsb_total + G::sbpb - 1) / G::sbpb;
  for (long long tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
    const long long sb0 = tile * G::sbpb;
    __syncthreads();  // previous tile's readers are done (and the body's tables are in place)
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
      ldg_floats(a.w + vec * a.n_per_row + col0 + s * SUB, qb);
    } else {
#pragma unroll
      for (int i = 0; i < SUB; ++i) qb[i] = 0.0f;
    }
    uint8_t* out = a.dst + sbc * block_bytes<T>;
    sb_scratch& S = sm.s[g];
    B::template run<HW>(S, tab, a, xsb, s, x, qb, out, active);
  }
}


// Blocks of the grid-stride kernels: 16 per streaming multiprocessor.
int grid_limit();

template <type T, class In>
cudaError_t launch_superblocks(const kargs& a, cudaStream_t st) {
  constexpr int SUB = body<T>::sub;
  const long long ntiles = (a.nsb_total + geom<SUB>::sbpb - 1) / geom<SUB>::sbpb;
  const unsigned grid = unsigned(ntiles < grid_limit() ? ntiles : grid_limit());
  auto* kern = a.w ? k_superblocks<T, In, true> : k_superblocks<T, In, false>;
  kern<<<grid, kThreads, 0, st>>>(a);
  return cudaGetLastError();
}

// The type families' launchers (one .cu each); src selects the input element type.
cudaError_t launch_q8_0(type t, gq_src src, const kargs& a, cudaStream_t st);
cudaError_t launch_k_quants(type t, gq_src src, const kargs& a, cudaStream_t st);
cudaError_t launch_iq3_xxs(type t, gq_src src, const kargs& a, cudaStream_t st);

}  // namespace razor::cu::gq
