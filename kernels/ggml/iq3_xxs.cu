// iq3_xxs on the GPU: the grid search tables (built on the host by the CPU's own code, ggml/grid_search.h, and
// uploaded once per device) and the super-block body, which repeats core/ggml/quants_iq3.cpp
// quantize_row_iq3_xxs operation for operation. Kernel, tiles and arguments: pack.cuh.
#include <cfloat>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "ggml/grid_search.h"
#include "ggml/grids.h"
#include "pack.cuh"

namespace razor::cu::gq {
namespace {

// ---- the tables: the grid (ggml/grids.h) and its search tables (ggml's 2 nearest distances) ---------------

constexpr int kCodes = 4096;  // 8^4 level combinations

const ggml::grid_search& host_tables() {
  static const ggml::grid_search t = ggml::build_grid_search(ggml::kgrid_iq3xxs, 256, 4, 3, 7, 2);
  return t;
}

}  // namespace

// Uploaded once per device and kept for the process (read-only), like the CPU's tables.
result<iq3_dev_tables> iq3_device_tables(int device) {
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
  std::memcpy(staging.data() + o4, ggml::kgrid_iq3xxs, b4);
  RZ_CU(cudaMemcpy(p, staging.data(), staging.size(), cudaMemcpyHostToDevice), "upload iq3 tables");
  iq3_dev_tables t{reinterpret_cast<const int16_t*>(p), reinterpret_cast<const int32_t*>(p + o2),
                   reinterpret_cast<const uint16_t*>(p + o3), reinterpret_cast<const uint16_t*>(p + o4)};
  cache.emplace_back(device, t);
  return t;
}

namespace {

// iq3_xxs: quants_iq3.cpp quantize_row_iq3_xxs. Groups of 4 are kept as 12-bit level codes.
// (A variant that walked each thread's off-grid groups in one flattened loop, to cut warp divergence in the
// candidate search, measured 17% slower on the same kind of card; see bench/RESULTS.md.)
struct iq3_smem {
  int16_t code_to_point[kCodes];
  uint16_t grid[256];
  float4 q[256];  // float(2l+1) of each grid point's four levels (exact)
};

__device__ __forceinline__ float lvl_q(int code, int i) { return float(2 * ((code >> (3 * i)) & 7) + 1); }

// The 12-bit level code of a group of 4 at inverse scale id (levels (2l+1), l in 0..7): quants_iq3.cpp's rounding.
__device__ __forceinline__ int level_code(float id, const float* xv) {
  int code = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int l = nearest_int(0.5f * (id * xv[i] - 1.0f));
    code |= max_of(0, min_of(7, l)) << (3 * i);
  }
  return code;
}

// sum w*x*q and sum w*q*q over the 32 elements of the 8 groups' codes, in order (fit_sums).
__device__ __forceinline__ void fit_sums(const int (&codes)[8], const float (&w)[32], const float (&xv)[32],
                                         float* sumqx, float* sumq2) {
  float sx = 0.0f, s2 = 0.0f;
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const float q = lvl_q(codes[i / 4], i % 4);
    sx += w[i] * xv[i] * q;
    s2 += w[i] * q * q;
  }
  *sumqx = sx;
  *sumq2 = s2;
}

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
  if (!(max < k_group_eps_iq3)) {
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
        int code = level_code(id, xval + 4 * k);
        if (T.code_to_point[code] >= 0) {
          og |= 1u << k;
        } else {
          const int p = best_candidate(T, a, code, xval[4 * k], xval[4 * k + 1], xval[4 * k + 2], xval[4 * k + 3],
                                       waux[4 * k], waux[4 * k + 1], waux[4 * k + 2], waux[4 * k + 3], this_scale);
          code = T.grid[p];
        }
        La[k] = code;
      }
      float sumqx, sumq2;
      fit_sums(La, weight, xval, &sumqx, &sumq2);
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
        int code = level_code(id, xval + 4 * k);
        int point = T.code_to_point[code];
        if (point < 0)
          point = best_candidate(T, a, code, xval[4 * k], xval[4 * k + 1], xval[4 * k + 2], xval[4 * k + 3],
                                 waux[4 * k], waux[4 * k + 1], waux[4 * k + 2], waux[4 * k + 3], scale);
        Lc[k] = T.grid[point];
      }
      float sumqx, sumq2;
      fit_sums(Lc, weight, xval, &sumqx, &sumq2);
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

}  // namespace

template <>
struct body<type::iq3_xxs> {
  static constexpr int sub = 32;
  using smem = iq3_smem;
  __device__ static void init(iq3_smem& tab, const kargs& a) {
    for (int i = threadIdx.x; i < kCodes; i += kThreads) tab.code_to_point[i] = a.tab.code_to_point[i];
    for (int i = threadIdx.x; i < 256; i += kThreads) {
      const int g = a.tab.grid[i];
      tab.grid[i] = uint16_t(g);
      tab.q[i] = make_float4(float(2 * (g & 7) + 1), float(2 * ((g >> 3) & 7) + 1), float(2 * ((g >> 6) & 7) + 1),
                             float(2 * ((g >> 9) & 7) + 1));
    }
  }
  template <bool HW>
  __device__ static void run(sb_scratch& S, const iq3_smem& T, const kargs& a, const float* xsb, int s,
                             const float (&x)[32], const float (&qb)[32], uint8_t* out, bool active) {
    body_iq3<HW>(S, T, a, xsb, s, x, qb, out, active);
  }
};

cudaError_t launch_iq3_xxs(type t, gq_src src, const kargs& a, cudaStream_t st) {
  if (t != type::iq3_xxs) return cudaErrorInvalidValue;
  return src == gq_src::bf16 ? launch_superblocks<type::iq3_xxs, uint16_t>(a, st)
                             : launch_superblocks<type::iq3_xxs, float>(a, st);
}

}  // namespace razor::cu::gq
