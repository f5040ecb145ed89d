// CUDA fake-quant (see core/quant/fake_quant.h for the arithmetic and the lane16 sum order, and
// kernels/include/kernels/fake_quant_cuda.h for the host API).
//
// Work split, integer mode: group lengths 32/64/128/256 (the hot path) go to k_int8, where a team of 8 threads
// owns one group and thread j holds the reference's lanes j and j+8 (see its comment). Every other length
// goes to k_int: a team of 16 lanes (half a warp) owns one group; lane l holds elements l, l+16, l+32, ... so
// its running sums are exactly the reference's lane l, and the xor-8/4/2/1 shuffle tree is exactly the
// reference's fold. Groups of up to 256 elements live in registers (PER = 2/4/8/16 per lane) and all clip
// candidates are evaluated from registers; longer groups (whole rows) re-read global memory (L1/L2) per
// candidate. All float math is __fmul_rn/__fadd_rn/__fdiv_rn/rintf (no FMA contraction; the file is also
// built with --fmad=false), denormals are kept (no -ftz), so every operation matches the CPU reference
// (k_int8's exact shortcuts are proven in its comment). A group's NaN sum enters the checksum as 0x7fc00000.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cfloat>
#include <cstring>
#include <string>
#include <vector>

#include "common/cuda_check.cuh"
#include "common/staging.cuh"
#include "fake_quant.cuh"

namespace razor::cu {
namespace {

constexpr int kThreads = 256;             // 8 warps = 16 teams per block
constexpr unsigned kFull = 0xffffffffu;

struct kparams {
  int kind;
  int n_ratios;
  int div_mode;
  float qmax;
  unsigned long long n;         // group length
  unsigned long long n_groups;  // rows*cols/n
  float ratios[kFqMaxRatios];
};


__device__ __forceinline__ float bf2f(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }
__device__ __forceinline__ uint16_t f2bf(float q) {
  uint32_t u = __float_as_uint(q);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t(0x7fc0);  // canonical quiet NaN, as the CPU path
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
// a group's contribution to the sum checksum: its float32 sum's bits, every NaN as the canonical 0x7fc00000
// (razor::quant::checksum_bits: the GPU's NaNs are 0x7fffffff, x86's 0xffc00000 or the input's payload)
__device__ __forceinline__ uint32_t checksum_bits(float v) { return v != v ? 0x7fc00000u : __float_as_uint(v); }
// max propagating NaN (torch.amax); inputs are |w| >= 0 or NaN
__device__ __forceinline__ float nanmax(float a, float b) { return (a != a || a > b) ? a : b; }
__device__ __forceinline__ float tree16(float v) {  // lane16 fold: xor 8, 4, 2, 1 (commutative adds)
  v = __fadd_rn(v, __shfl_xor_sync(kFull, v, 8));
  v = __fadd_rn(v, __shfl_xor_sync(kFull, v, 4));
  v = __fadd_rn(v, __shfl_xor_sync(kFull, v, 2));
  v = __fadd_rn(v, __shfl_xor_sync(kFull, v, 1));
  return v;
}
__device__ __forceinline__ double dsum16(double v) {
  for (int o = 8; o; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
__device__ __forceinline__ float scale_of(float ratio, float amax, float qmax) {
  const float s = __fdiv_rn(__fmul_rn(ratio, amax), qmax);
  return s > 0.0f ? s : 1.0f;
}
__device__ __forceinline__ float clamp_nan(float r, float lo, float hi) {  // torch.clamp: NaN stays
  r = r < lo ? lo : r;
  return r > hi ? hi : r;
}

// Per-candidate division context. rint(fl(w/s)) is obtained either by __fdiv_rn, or (rcp_check) as
// rint(y), y = w*fl(1/s), whenever |y - rint(y)| < lim with lim = 0.5 - (Ymax*2^-21 + 2^-20),
// Ymax = fl(amax*fl(1/s))*(1+2^-20) >= |y|: then no half-integer lies within |y|*2^-22 of y, which bounds
// |y - fl(w/s)|, so both round to the same integer (same proof as the CPU path). NaN fails the test.
struct divc {
  float s, rcp, lim;
  bool use_rcp;
};
__device__ __forceinline__ divc make_div(float s, float amax, int div_mode) {
  divc d;
  d.s = s;
  d.use_rcp = div_mode == int(fq_div_mode::rcp_check) && s >= 0x1p-125f && s <= 0x1p125f;
  d.rcp = d.use_rcp ? __frcp_rn(s) : 0.0f;
  const float ymax = __fmul_rn(__fmul_rn(amax, d.rcp), 1.0f + 0x1p-20f);
  d.lim = __fsub_rn(0.5f, __fadd_rn(__fmul_rn(ymax, 0x1p-21f), 0x1p-20f));
  return d;
}

// The grid's warps: this thread's warp and how many there are (the kernels' grid-stride loops go by warps).
__device__ __forceinline__ unsigned long long warp_index() {
  return (unsigned long long)blockIdx.x * (kThreads / 32) + (threadIdx.x >> 5);
}
__device__ __forceinline__ unsigned long long warp_count() { return (unsigned long long)gridDim.x * (kThreads / 32); }

// Group g of n elements: whether it exists, and its input and output (group 0's when it does not: the team's
// lanes still take part in the shuffles, and write nothing).
struct group_io {
  bool valid;
  const uint16_t* src;
  uint16_t* dst;
};
__device__ __forceinline__ group_io group_at(unsigned long long g, unsigned long long n, const kparams& p,
                                             const uint16_t* in, uint16_t* out) {
  const bool valid = g < p.n_groups;
  const unsigned long long base = valid ? g * n : 0;
  return {valid, in + base, out + base};
}

// A team of TEAM consecutive threads of a warp quantizes one group (32 / TEAM teams a warp). The kernels'
// grid-stride loops go by rounds: in round r a warp's teams take the groups r * per_warp + slot (one loop
// trip per round for the whole warp, so every lane takes part in the shuffles).
template <int TEAM>
struct team_layout {
  static constexpr int per_warp = 32 / TEAM;
  int lane;  // this thread's place in its team (0 .. TEAM-1)
  int slot;  // its team's place in the warp
  __device__ team_layout() : lane(int(threadIdx.x % TEAM)), slot(int(threadIdx.x / TEAM % per_warp)) {}
  __device__ static unsigned long long rounds(unsigned long long n_groups) {
    return (n_groups + per_warp - 1) / per_warp;
  }
  __device__ unsigned long long group(unsigned long long round) const { return round * per_warp + slot; }
};

// Stores one output element; with STATS adds its squared error against the input x, and x squared, to the
// thread's sums.
template <bool STATS>
__device__ __forceinline__ void put_out(uint16_t* dst, uint16_t o, double x, double& se, double& sr) {
  *dst = o;
  if (STATS) {
    const double dd = double(bf2f(o)) - x;
    se += dd * dd;
    sr += x * x;
  }
}

// A block's statistics (STATS kernels): gathered in shared memory, one add per group by the group's first
// lane, and added to the launch's totals once per block. The ternary kernel leaves the histogram at zero.
struct block_stats {
  double se, sr;
  unsigned int hist[kFqMaxRatios];
  unsigned int groups;
  unsigned long long ck;

  __device__ void clear() {  // every thread of the block
    if (threadIdx.x < kFqMaxRatios) hist[threadIdx.x] = 0;
    if (threadIdx.x == 0) se = sr = 0, groups = 0, ck = 0;
    __syncthreads();
  }
  // One group: its squared error and reference, its chosen candidate (-1: none) and its checksum value.
  __device__ void add_group(double g_se, double g_sr, int best, float checksum_of) {
    atomicAdd(&se, g_se);
    atomicAdd(&sr, g_sr);
    if (best >= 0) atomicAdd(&hist[best], 1u);
    atomicAdd(&groups, 1u);
    atomicAdd(&ck, (unsigned long long)checksum_bits(checksum_of));
  }
  // The same from a team of 16 lanes (every lane calls it): the lanes' sums folded, lane 0 adds the group.
  __device__ void add_group16(double g_se, double g_sr, int lane, bool valid, int best, float checksum_of) {
    g_se = dsum16(g_se);
    g_sr = dsum16(g_sr);
    if (valid && lane == 0) add_group(g_se, g_sr, best, checksum_of);
  }
  __device__ void flush(dacc* acc) {  // every thread of the block
    __syncthreads();
    if (threadIdx.x < kFqMaxRatios && hist[threadIdx.x])
      atomicAdd(&acc->hist[threadIdx.x], (unsigned long long)hist[threadIdx.x]);
    if (threadIdx.x == 0) {
      atomicAdd(&acc->sq_err, se);
      atomicAdd(&acc->sq_ref, sr);
      atomicAdd(&acc->groups, (unsigned long long)groups);
      atomicAdd(&acc->checksum, ck);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// integer mode. PER > 0: elements in registers (n <= 16*PER); PER == 0: n > 256, re-read per pass.
// FULL: n == 16*PER (no masking).
// ---------------------------------------------------------------------------------------------
template <int PER, bool FULL, bool STATS>
__global__ void __launch_bounds__(kThreads) k_int(const uint16_t* in, uint16_t* out, const kparams p, dacc* acc) {
  __shared__ block_stats s_stats;
  if (STATS) s_stats.clear();
  const team_layout<16> team;
  const int lane = team.lane;
  const unsigned long long n = p.n;
  const float qmax = p.qmax, nqmax = -p.qmax;
  const unsigned long long warp0 = warp_index(), nwarps = warp_count();
  const unsigned long long rounds = team.rounds(p.n_groups);
  for (unsigned long long r = warp0; r < rounds; r += nwarps) {  // warp-uniform loop
    const auto [gv, src, dst] = group_at(team.group(r), n, p, in, out);
    float w[PER > 0 ? PER : 1];
    float m = 0.0f;
    if constexpr (PER > 0) {
#pragma unroll
      for (int k = 0; k < PER; ++k) {
        const unsigned long long i = lane + 16ull * k;
        w[k] = (gv && (FULL || i < n)) ? bf2f(src[i]) : 0.0f;
        m = nanmax(fabsf(w[k]), m);
      }
    } else {
      if (gv)
        for (unsigned long long i = lane; i < n; i += 16) m = nanmax(fabsf(bf2f(__ldg(src + i))), m);
    }
    m = nanmax(__shfl_xor_sync(kFull, m, 8), m);
    m = nanmax(__shfl_xor_sync(kFull, m, 4), m);
    m = nanmax(__shfl_xor_sync(kFull, m, 2), m);
    m = nanmax(__shfl_xor_sync(kFull, m, 1), m);
    const float amax = m;
    const bool finite = amax <= FLT_MAX;  // no NaN/inf in the group: fminf/fmaxf == torch.clamp

    auto qcode = [&](float x, const divc& d, bool& bad) -> float {  // rint(w/s), may flag `bad`
      if (d.use_rcp) {
        const float y = __fmul_rn(x, d.rcp);
        const float r = rintf(y);
        bad |= !(fabsf(__fsub_rn(y, r)) < d.lim);
        return r;
      }
      return rintf(__fdiv_rn(x, d.s));
    };
    // rint(x/s) for one element; for the registers w (PER > 0), every code by division when one fails the
    // check (either way the codes equal rint(fl(w/s)))
    auto code_of = [&](float x, const divc& d) -> float {
      bool bad = false;
      const float r = qcode(x, d, bad);
      return bad ? rintf(__fdiv_rn(x, d.s)) : r;
    };
    auto codes = [&](const divc& d, float (&r)[PER > 0 ? PER : 1]) {
      bool bad = false;
#pragma unroll
      for (int k = 0; k < PER; ++k) r[k] = qcode(w[k], d, bad);
      if (bad) {
#pragma unroll
        for (int k = 0; k < PER; ++k) r[k] = rintf(__fdiv_rn(w[k], d.s));
      }
    };
    auto clampq = [&](float r) -> float {
      return finite ? fminf(fmaxf(r, nqmax), qmax) : clamp_nan(r, nqmax, qmax);
    };

    // lane l prepares candidates l and l+16 (scale, reciprocal, bound); the loop broadcasts them, so the
    // per-candidate division/reciprocal is done once per team instead of once per lane
    const divc pa = make_div(scale_of(p.ratios[lane < p.n_ratios ? lane : 0], amax, qmax), amax, p.div_mode);
    const divc pb =
        make_div(scale_of(p.ratios[lane + 16 < p.n_ratios ? lane + 16 : 0], amax, qmax), amax, p.div_mode);
    auto cand = [&](int c) -> divc {  // c is uniform across the team
      const bool hi = c >= 16;
      divc d;
      d.s = __shfl_sync(kFull, hi ? pb.s : pa.s, c & 15, 16);
      d.rcp = __shfl_sync(kFull, hi ? pb.rcp : pa.rcp, c & 15, 16);
      d.lim = __shfl_sync(kFull, hi ? pb.lim : pa.lim, c & 15, 16);
      d.use_rcp = d.rcp != 0.0f;
      return d;
    };

    int best = 0;
    float best_err = 0.0f;
    if (p.n_ratios > 1) {
      for (int c = 0; c < p.n_ratios; ++c) {
        const divc d = cand(c);
        const float s = d.s;
        float e = 0.0f;
        if constexpr (PER > 0) {
          float r[PER];
          codes(d, r);
#pragma unroll
          for (int k = 0; k < PER; ++k) {
            const float dd = __fsub_rn(__fmul_rn(clampq(r[k]), s), w[k]);
            if (FULL || lane + 16ull * k < n) e = __fadd_rn(e, __fmul_rn(dd, dd));
          }
        } else {
          if (gv) {
            for (unsigned long long i = lane; i < n; i += 16) {
              const float x = bf2f(__ldg(src + i));
              const float dd = __fsub_rn(__fmul_rn(clampq(code_of(x, d)), s), x);
              e = __fadd_rn(e, __fmul_rn(dd, dd));
            }
          }
        }
        e = tree16(e);
        if (c == 0 || e < best_err) {
          best = c;
          best_err = e;
        }
      }
    }
    const divc d = cand(best);
    const float s = d.s;
    double se = 0.0, sr = 0.0;
    if constexpr (PER > 0) {
      float r[PER];
      codes(d, r);
#pragma unroll
      for (int k = 0; k < PER; ++k) {
        const unsigned long long i = lane + 16ull * k;
        if (gv && (FULL || i < n)) put_out<STATS>(dst + i, f2bf(__fmul_rn(clampq(r[k]), s)), w[k], se, sr);
      }
    } else {
      if (gv) {
        for (unsigned long long i = lane; i < n; i += 16) {
          const float x = bf2f(src[i]);  // plain load: in may alias out
          put_out<STATS>(dst + i, f2bf(__fmul_rn(clampq(code_of(x, d)), s)), x, se, sr);
        }
      }
    }
    if (STATS) s_stats.add_group16(se, sr, lane, gv, best, best_err);
  }
  if (STATS) s_stats.flush(acc);
}

// ---------------------------------------------------------------------------------------------
// integer mode, the hot path: group length n = 16*PER (32, 64, 128, 256), teams of 8 threads.
//
// Thread j (0..7) of a team holds reference lanes j and j+8 (elements j+16k and j+8+16k), so the first fold
// level (l += l+8) is one add inside the thread and the rest is xor 4, 2, 1 among the 8 threads; a warp works
// on 4 groups. The per-candidate constants (scale, reciprocal, bound) are made once per group, spread over
// the team, and read back as one 16-byte shared load per candidate.
//
// Per element and candidate the error costs 10 float ops (FMUL, 2 FADD round, FADD + FSETP check,
// FMNMX clamp, FMUL, FADD, FMUL, FADD), in place of a FRND, a two-sided clamp and per-element branches on
// the division mode and on the group's finiteness, plus 3 shuffles per candidate. Why it is exact:
// - The error is computed on |w|: rint, the symmetric clamp, the products and the difference are odd
//   functions under round-to-nearest (fl(-a) = -fl(a)), so q(w)*s - w = -(q(|w|)*s - |w|) bit for bit and the
//   squares are equal. The clamp becomes one-sided, and |.| is a free operand modifier.
// - rint(y) = (y + 1.5*2^23) - 1.5*2^23 exactly for 0 <= y < 2^22: the sum lies in [1.5*2^23, 2^24), where
//   the ulp is 1, and round-to-nearest-even of 1.5*2^23 + y is 1.5*2^23 + rint(y) (1.5*2^23 is even).
//   An element passes the rcp check only if lim > 0, which needs Ymax < 2^20, and every y <= Ymax; a failing
//   element (or NaN) sends the whole thread back to __fdiv_rn + rintf for that candidate, as before.
// - The output pass applies the sign with copysign: q(w) = sign(w)*q(|w|), including the reference's -0
//   codes for w in (-s/2, -0].
// - The first term of a lane sum is taken as is: 0 + x == x for every x a square can be (never -0).
// Groups holding a NaN or an infinity, the exact_div mode and scales outside [2^-125, 2^125] take the
// literal path (division per element, torch.clamp that keeps NaN), as the generic kernel.
// ---------------------------------------------------------------------------------------------
constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23

template <int PER>
__device__ __forceinline__ void err8(const float (&w)[2 * PER], const float4 d, const bool finite, const float qmax,
                                     const float nqmax, float& ea, float& eb) {
  const float s = d.x, rcp = d.y, lim = d.z;
  if (finite && rcp != 0.0f) {  // team-uniform
    bool ok = true;
    float a = 0.0f, b = 0.0f;
#pragma unroll
    for (int k = 0; k < PER; ++k) {  // on |w| (see above); fabsf is an operand modifier, not an instruction
      const float y0 = __fmul_rn(fabsf(w[2 * k]), rcp), y1 = __fmul_rn(fabsf(w[2 * k + 1]), rcp);
      const float r0 = __fsub_rn(__fadd_rn(y0, kMagic), kMagic), r1 = __fsub_rn(__fadd_rn(y1, kMagic), kMagic);
      ok = ok & (fabsf(__fsub_rn(y0, r0)) < lim) & (fabsf(__fsub_rn(y1, r1)) < lim);
      const float d0 = __fsub_rn(__fmul_rn(fminf(r0, qmax), s), fabsf(w[2 * k]));
      const float d1 = __fsub_rn(__fmul_rn(fminf(r1, qmax), s), fabsf(w[2 * k + 1]));
      a = k == 0 ? __fmul_rn(d0, d0) : __fadd_rn(a, __fmul_rn(d0, d0));
      b = k == 0 ? __fmul_rn(d1, d1) : __fadd_rn(b, __fmul_rn(d1, d1));
    }
    if (ok) {
      ea = a;
      eb = b;
      return;
    }
  }
  float a = 0.0f, b = 0.0f;  // the literal arithmetic
#pragma unroll
  for (int k = 0; k < PER; ++k) {
    const float d0 = __fsub_rn(__fmul_rn(clamp_nan(rintf(__fdiv_rn(w[2 * k], s)), nqmax, qmax), s), w[2 * k]);
    const float d1 =
        __fsub_rn(__fmul_rn(clamp_nan(rintf(__fdiv_rn(w[2 * k + 1], s)), nqmax, qmax), s), w[2 * k + 1]);
    a = __fadd_rn(a, __fmul_rn(d0, d0));
    b = __fadd_rn(b, __fmul_rn(d1, d1));
  }
  ea = a;
  eb = b;
}

// the chosen candidate's codes*scale, as the reference computes them (NaN stays NaN)
template <int PER>
__device__ __forceinline__ void quant8(const float (&w)[2 * PER], float (&q)[2 * PER], const float4 d,
                                       const bool finite, const float qmax, const float nqmax) {
  const float s = d.x, rcp = d.y, lim = d.z;
  if (finite && rcp != 0.0f) {
    bool ok = true;
#pragma unroll
    for (int k = 0; k < 2 * PER; ++k) {
      const float y = __fmul_rn(fabsf(w[k]), rcp);
      const float r = __fsub_rn(__fadd_rn(y, kMagic), kMagic);
      ok = ok & (fabsf(__fsub_rn(y, r)) < lim);
      q[k] = copysignf(__fmul_rn(fminf(r, qmax), s), w[k]);  // q(w) = sign(w)*q(|w|), -0 for w in (-s/2, -0]
    }
    if (ok) return;
  }
#pragma unroll
  for (int k = 0; k < 2 * PER; ++k) q[k] = __fmul_rn(clamp_nan(rintf(__fdiv_rn(w[k], s)), nqmax, qmax), s);
}

// Register budget: the compiler's (64 for n = 128: 4 blocks of 256 per SM, 32 warps). A 48-register build
// (5 blocks, 40 warps) executed as many instructions at the same IPC and ran 2% slower (2026-11-27 run 5).
template <int PER, bool STATS>
__global__ void __launch_bounds__(kThreads) k_int8(const uint16_t* in, uint16_t* out, const kparams p, dacc* acc) {
  __shared__ float4 s_cand[kThreads / 8][kFqMaxRatios];  // per team: (scale, rcp or 0, bound, -)
  __shared__ block_stats s_stats;
  if (STATS) s_stats.clear();
  constexpr unsigned long long n = 16ull * PER;
  const team_layout<8> team;
  const int j = team.lane;
  float4* cand = s_cand[threadIdx.x / 8];  // the team's, in the block
  const float qmax = p.qmax, nqmax = -p.qmax;
  const int nr = p.n_ratios;
  const unsigned long long warp0 = warp_index(), nwarps = warp_count();
  const unsigned long long rounds = team.rounds(p.n_groups);
  for (unsigned long long r = warp0; r < rounds; r += nwarps) {  // warp-uniform loop
    const auto [gv, src, dst] = group_at(team.group(r), n, p, in, out);
    float w[2 * PER];
    float m = 0.0f;
#pragma unroll
    for (int k = 0; k < PER; ++k) {
      w[2 * k] = gv ? bf2f(src[j + 16 * k]) : 0.0f;
      w[2 * k + 1] = gv ? bf2f(src[j + 8 + 16 * k]) : 0.0f;
      m = nanmax(fabsf(w[2 * k]), m);
      m = nanmax(fabsf(w[2 * k + 1]), m);
    }
    m = nanmax(__shfl_xor_sync(kFull, m, 4), m);
    m = nanmax(__shfl_xor_sync(kFull, m, 2), m);
    m = nanmax(__shfl_xor_sync(kFull, m, 1), m);
    const float amax = m;
    const bool finite = amax <= FLT_MAX;  // no NaN/inf in the group

    __syncwarp();  // the team's reads of the previous group's table are done
    for (int c = j; c < nr; c += 8) {
      const divc dc = make_div(scale_of(p.ratios[c], amax, qmax), amax, p.div_mode);
      cand[c] = make_float4(dc.s, dc.use_rcp ? dc.rcp : 0.0f, dc.lim, 0.0f);
    }
    __syncwarp();

    int best = 0;
    float best_err = 0.0f;
    if (nr > 1) {
      for (int c = 0; c < nr; ++c) {  // uniform across the warp
        float ea, eb;
        err8<PER>(w, cand[c], finite, qmax, nqmax, ea, eb);
        float e = __fadd_rn(ea, eb);  // lane j += lane j+8
        e = __fadd_rn(e, __shfl_xor_sync(kFull, e, 4));
        e = __fadd_rn(e, __shfl_xor_sync(kFull, e, 2));
        e = __fadd_rn(e, __shfl_xor_sync(kFull, e, 1));
        if (c == 0 || e < best_err) {
          best = c;
          best_err = e;
        }
      }
    }
    float q[2 * PER];
    quant8<PER>(w, q, cand[best], finite, qmax, nqmax);
    double se = 0.0, sr = 0.0;
    if (gv) {
#pragma unroll
      for (int k = 0; k < 2 * PER; ++k) {
        put_out<STATS>(dst + j + 8 * (k & 1) + 16 * (k >> 1), f2bf(q[k]), w[k], se, sr);
      }
    }
    if (STATS) {
      for (int o = 4; o; o >>= 1) {
        se += __shfl_xor_sync(kFull, se, o);
        sr += __shfl_xor_sync(kFull, sr, o);
      }
      if (gv && j == 0) s_stats.add_group(se, sr, best, best_err);
    }
  }
  if (STATS) s_stats.flush(acc);
}

// ---------------------------------------------------------------------------------------------
// ternary (TWN). Not the hot path: reads the group from global memory in three passes.
// ---------------------------------------------------------------------------------------------
template <bool STATS>
__global__ void __launch_bounds__(kThreads) k_ternary(const uint16_t* in, uint16_t* out, const kparams p, dacc* acc) {
  __shared__ block_stats s_stats;
  if (STATS) s_stats.clear();
  const team_layout<16> team;
  const unsigned long long n = p.n;
  const unsigned long long warp0 = warp_index(), nwarps = warp_count();
  const unsigned long long rounds = team.rounds(p.n_groups);
  for (unsigned long long r = warp0; r < rounds; r += nwarps) {
    const auto [gv, src, dst] = group_at(team.group(r), n, p, in, out);
    float sa = 0.0f, m = 0.0f;
    if (gv)
      for (unsigned long long i = team.lane; i < n; i += 16) {
        const float a = fabsf(bf2f(src[i]));
        sa = __fadd_rn(sa, a);
        m = nanmax(a, m);
      }
    sa = tree16(sa);
    for (int o = 8; o; o >>= 1) m = nanmax(__shfl_xor_sync(kFull, m, o), m);
    const float mean = __fdiv_rn(sa, float(n));
    const float thr = __fmul_rn(0.75f, mean);
    float kept = 0.0f;
    unsigned long long cnt = 0;
    if (gv)
      for (unsigned long long i = team.lane; i < n; i += 16) {
        const float a = fabsf(bf2f(src[i]));
        const float mk = a > thr ? 1.0f : 0.0f;
        kept = __fadd_rn(kept, __fmul_rn(a, mk));
        cnt += a > thr;
      }
    kept = tree16(kept);
    for (int o = 8; o; o >>= 1) cnt += __shfl_xor_sync(kFull, cnt, o);
    const float alpha = cnt > 0 ? __fdiv_rn(kept, float(cnt)) : m;
    double se = 0.0, sr = 0.0;
    if (gv)
      for (unsigned long long i = team.lane; i < n; i += 16) {
        const float x = bf2f(src[i]);
        const float mk = fabsf(x) > thr ? 1.0f : 0.0f;
        const float sg = float(x > 0.0f) - float(x < 0.0f);
        put_out<STATS>(dst + i, f2bf(__fmul_rn(__fmul_rn(sg, mk), alpha)), x, se, sr);
      }
    if (STATS) s_stats.add_group16(se, sr, team.lane, gv, -1, thr);
  }
  if (STATS) s_stats.flush(acc);
}

__global__ void k_copy_stats(const uint16_t* in, unsigned long long count, dacc* acc) {  // identity stats
  double sr = 0;
  for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < count;
       i += (unsigned long long)gridDim.x * blockDim.x) {
    const double x = bf2f(in[i]);
    sr += x * x;
  }
  for (int o = 16; o; o >>= 1) sr += __shfl_xor_sync(kFull, sr, o);
  if ((threadIdx.x & 31) == 0) atomicAdd(&acc->sq_ref, sr);
}

}  // namespace

status fq_check_params(const fq_kernel_params& p, size_t cols) {
  if (p.group_len == 0 || cols % p.group_len != 0)
    return make_error(errc::invalid_argument, "fake-quant kernel: group_len must divide the row length");
  if (p.kind == fq_kind::integer && (p.n_ratios < 1 || p.n_ratios > kFqMaxRatios || !(p.qmax >= 1)))
    return make_error(errc::invalid_argument, "fake-quant kernel: need 1..32 ratios and qmax >= 1");
  return status::success();
}

namespace {

kparams to_kparams(const fq_kernel_params& p, size_t rows, size_t cols) {
  kparams k{};
  k.kind = int(p.kind);
  k.n_ratios = p.kind == fq_kind::integer ? p.n_ratios : 1;
  k.div_mode = int(p.div_mode);
  k.qmax = p.qmax;
  k.n = p.group_len;
  k.n_groups = (unsigned long long)rows * cols / p.group_len;
  for (int i = 0; i < kFqMaxRatios; ++i) k.ratios[i] = i < k.n_ratios ? p.ratios[i] : 1.0f;
  return k;
}

int grid_for(unsigned long long n_groups) {
  const int sms = sm_count();
  const unsigned long long pairs = (n_groups + 1) / 2;
  const unsigned long long blocks = (pairs + kThreads / 32 - 1) / (kThreads / 32);
  return int(std::min<unsigned long long>(blocks, (unsigned long long)sms * 8));
}

// k_int8: 32 groups per block; a persistent grid of as many blocks as fit the device at once
template <int PER, bool STATS>
cudaError_t launch_int8(const uint16_t* in, uint16_t* out, const kparams& k, dacc* acc, cudaStream_t st) {
  static int per_sm = [] {
    int b = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, k_int8<PER, STATS>, kThreads, 0) != cudaSuccess) {
      cudaGetLastError();
      b = 0;
    }
    return b > 0 ? b : 4;
  }();
  const unsigned long long blocks = (k.n_groups + kThreads / 8 - 1) / (kThreads / 8);
  const int grid = int(std::min<unsigned long long>(blocks, (unsigned long long)sm_count() * per_sm));
  k_int8<PER, STATS><<<grid, kThreads, 0, st>>>(in, out, k, acc);
  return cudaGetLastError();
}

// legacy: the half-warp kernel for every group length (bench: before/after timing on the same card)
template <bool STATS>
cudaError_t launch_int(const uint16_t* in, uint16_t* out, const kparams& k, dacc* acc, cudaStream_t st,
                       bool legacy) {
  const int grid = grid_for(k.n_groups);
  const unsigned long long n = k.n;
  if (!legacy) {
    if (n == 128) return launch_int8<8, STATS>(in, out, k, acc, st);
    if (n == 64) return launch_int8<4, STATS>(in, out, k, acc, st);
    if (n == 32) return launch_int8<2, STATS>(in, out, k, acc, st);
    if (n == 256) return launch_int8<16, STATS>(in, out, k, acc, st);
  }
#define RZ_L(P, F) k_int<P, F, STATS><<<grid, kThreads, 0, st>>>(in, out, k, acc)
  if (n == 128) RZ_L(8, true);
  else if (n == 64) RZ_L(4, true);
  else if (n == 32) RZ_L(2, true);
  else if (n == 256) RZ_L(16, true);
  else if (n <= 32) RZ_L(2, false);
  else if (n <= 64) RZ_L(4, false);
  else if (n <= 128) RZ_L(8, false);
  else if (n <= 256) RZ_L(16, false);
  else RZ_L(0, false);
#undef RZ_L
  return cudaGetLastError();
}

}  // namespace

status fq_launch(const uint16_t* in, uint16_t* out, size_t rows, size_t cols, const fq_kernel_params& p, dacc* acc,
                 cudaStream_t st, bool legacy) {
  const kparams k = to_kparams(p, rows, cols);
  if (k.n_groups == 0) return status::success();
  cudaError_t e = cudaSuccess;
  if (p.kind == fq_kind::identity) {
    if (in != out) e = cudaMemcpyAsync(out, in, rows * cols * 2, cudaMemcpyDeviceToDevice, st);
    if (e == cudaSuccess && acc) k_copy_stats<<<grid_for(k.n_groups), kThreads, 0, st>>>(in, rows * cols, acc);
    if (e == cudaSuccess) e = cudaGetLastError();
  } else if (p.kind == fq_kind::ternary) {
    if (acc) k_ternary<true><<<grid_for(k.n_groups), kThreads, 0, st>>>(in, out, k, acc);
    else k_ternary<false><<<grid_for(k.n_groups), kThreads, 0, st>>>(in, out, k, acc);
    e = cudaGetLastError();
  } else {
    e = acc ? launch_int<true>(in, out, k, acc, st, legacy) : launch_int<false>(in, out, k, acc, st, legacy);
  }
  if (e != cudaSuccess) return cuda_error(e, "fake-quant launch");
  return status::success();
}

}  // namespace razor::cu
