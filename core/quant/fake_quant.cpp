// The seed's fake-quant: the fast CPU path and the entry points (see fake_quant.h for the contract; the scalar
// reference is fake_quant_ref.cpp).
//
// Build note: this TU is compiled with -ffp-contract=off (CMakeLists.txt, set_source_files_properties), so
// no a*b+c is ever fused into an FMA, in the reference or in the AVX2/AVX-512 clones; every float32
// operation below is one IEEE operation, as in torch and in the CUDA kernel.
//
// The fast path is one source written with GCC vector extensions (16 float lanes = the lane16 sum order)
// and compiled as target_clones (x86-64-v4 = AVX-512, v3 = AVX2, v2, baseline) chosen by the CPU at load
// time. It must agree with the reference bit for bit; the only non-literal transformation is how w/scale
// is rounded to an integer (rint_div_* below), which is proven to give rint(fl(w/scale)) exactly.
#include "quant/fake_quant.h"

#include <atomic>
#include <bit>
#include <cfenv>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>

#include "kernels/cuda_info.h"
#include "util/numeric.h"
#include "quant/fake_quant_internal.h"

#pragma GCC diagnostic ignored "-Wpsabi"

namespace razor::quant {

using namespace fq_detail;

// ------------------------------------------------------------------------------------------------
// the fast path
// ------------------------------------------------------------------------------------------------
namespace {

// One "lane16" value = 16 float lanes held as K native vectors of N floats (N*K = 16): one zmm for
// AVX-512, two ymm for AVX2, four xmm otherwise. Lane l lives in vector l / N, element l % N, so the
// lane16 order is the same whatever the width.
typedef float f32x16 __attribute__((vector_size(64)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef float f32x4 __attribute__((vector_size(16)));

#define RZ_AI static inline __attribute__((always_inline))

template <class VF>
struct pk {
  static constexpr int N = int(sizeof(VF) / 4);
  static constexpr int K = 16 / N;
  using VI = decltype(VF{} < VF{});
  VF p[K];
};
template <class VF>
struct mk {  // lane masks (all ones = true) or small lane integers
  typename pk<VF>::VI p[pk<VF>::K];
};

#define RZ_FOR_K for (int k = 0; k < pk<VF>::K; ++k)
// a op b lane by lane: arguments A<VF>, result R<VF> (pk: floats; mk: masks from a comparison, or lane integers)
#define RZ_LANEWISE(R, A, op)                                               \
  template <class VF>                                                       \
  RZ_AI R<VF> operator op(const A<VF>& a, const A<VF>& b) {                 \
    R<VF> r;                                                                \
    RZ_FOR_K r.p[k] = a.p[k] op b.p[k];                                     \
    return r;                                                               \
  }
RZ_LANEWISE(pk, pk, +)
RZ_LANEWISE(pk, pk, -)
RZ_LANEWISE(pk, pk, *)
RZ_LANEWISE(pk, pk, /)
RZ_LANEWISE(mk, pk, <)
RZ_LANEWISE(mk, pk, >)
RZ_LANEWISE(mk, pk, !=)
RZ_LANEWISE(mk, mk, |)
RZ_LANEWISE(mk, mk, -)
#undef RZ_LANEWISE
template <class VF>
RZ_AI mk<VF> operator~(const mk<VF>& a) {
  mk<VF> r;
  RZ_FOR_K r.p[k] = ~a.p[k];
  return r;
}

template <class VF>
RZ_AI pk<VF> vsplat(float x) {
  pk<VF> r;
  RZ_FOR_K for (int i = 0; i < pk<VF>::N; ++i) r.p[k][i] = x;
  return r;
}
template <class VF>
RZ_AI pk<VF> vzero() {
  pk<VF> r;
  RZ_FOR_K r.p[k] = VF{};
  return r;
}
template <class VF>
RZ_AI mk<VF> mzero() {
  mk<VF> r;
  RZ_FOR_K r.p[k] = typename pk<VF>::VI{};
  return r;
}
template <class VF>
RZ_AI pk<VF> vload(const float* p) {  // one native load per vector (no struct-wide copy)
  pk<VF> r;
  RZ_FOR_K std::memcpy(&r.p[k], p + k * pk<VF>::N, sizeof(VF));
  return r;
}
template <class VF>
RZ_AI void vstore(float* p, const pk<VF>& v) {
  RZ_FOR_K std::memcpy(p + k * pk<VF>::N, &v.p[k], sizeof(VF));
}
template <class VF>
RZ_AI pk<VF> vabs(const pk<VF>& x) {
  using VI = typename pk<VF>::VI;
  pk<VF> r;
  RZ_FOR_K r.p[k] = (VF)((VI)x.p[k] & 0x7fffffff);
  return r;
}
template <class VF>
RZ_AI pk<VF> vrint(const pk<VF>& x) {  // round half to even (FE_TONEAREST): vrndscaleps / vroundps
  pk<VF> r;
  RZ_FOR_K for (int i = 0; i < pk<VF>::N; ++i) r.p[k][i] = __builtin_rintf(x.p[k][i]);
  return r;
}
template <class VF>
RZ_AI pk<VF> vsel(const mk<VF>& m, const pk<VF>& a, const pk<VF>& b) {
  pk<VF> r;
  RZ_FOR_K r.p[k] = m.p[k] ? a.p[k] : b.p[k];
  return r;
}
template <class VF>
RZ_AI pk<VF> vclamp(const pk<VF>& x, const pk<VF>& lo, const pk<VF>& hi) {  // == clamp_ref per lane
  const pk<VF> r = vsel(x < lo, lo, x);
  return vsel(r > hi, hi, r);
}
template <class VF>
RZ_AI bool vany(const mk<VF>& m) {
  auto o = m.p[0];
  for (int k = 1; k < pk<VF>::K; ++k) o |= m.p[k];
  int32_t s = 0;
  for (int i = 0; i < pk<VF>::N; ++i) s |= o[i];
  return s != 0;
}
template <class VF>
RZ_AI int64_t vsum_int(const mk<VF>& m) {
  int64_t s = 0;
  RZ_FOR_K for (int i = 0; i < pk<VF>::N; ++i) s += m.p[k][i];
  return s;
}
// the lane16 tree: l += l+8, l += l+4, l += l+2, l0 += l1
template <class VF>
RZ_AI float vfold(const pk<VF>& a) {
  f32x4 u;
  if constexpr (pk<VF>::K == 1) {
    const f32x8 t = __builtin_shufflevector(a.p[0], a.p[0], 0, 1, 2, 3, 4, 5, 6, 7) +
                    __builtin_shufflevector(a.p[0], a.p[0], 8, 9, 10, 11, 12, 13, 14, 15);
    u = __builtin_shufflevector(t, t, 0, 1, 2, 3) + __builtin_shufflevector(t, t, 4, 5, 6, 7);
  } else if constexpr (pk<VF>::K == 2) {
    const f32x8 t = a.p[0] + a.p[1];
    u = __builtin_shufflevector(t, t, 0, 1, 2, 3) + __builtin_shufflevector(t, t, 4, 5, 6, 7);
  } else {
    u = (a.p[0] + a.p[2]) + (a.p[1] + a.p[3]);  // t[0..3] = l0..3 + l8..11, t[4..7] = l4..7 + l12..15
  }
  return (u[0] + u[2]) + (u[1] + u[3]);
}
template <class VF>
RZ_AI float vhmax(const pk<VF>& a) {  // plain max of non-NaN lanes (order-free)
  float m = a.p[0][0];
  RZ_FOR_K for (int i = 0; i < pk<VF>::N; ++i) m = a.p[k][i] > m ? a.p[k][i] : m;
  return m;
}

// NaN-propagating max|w| over nv lane16 vectors
template <class VF>
RZ_AI float amax_vec(const float* w, size_t nv) {
  pk<VF> m = vzero<VF>();
  mk<VF> nan = mzero<VF>();
  for (size_t v = 0; v < nv; ++v) {
    const pk<VF> a = vabs(vload<VF>(w + 16 * v));
    nan = nan | (a != a);
    m = vsel(a > m, a, m);
  }
  return vany(nan) ? std::numeric_limits<float>::quiet_NaN() : vhmax(m);
}

// rint(fl(w/s)), exactly, without a division per element. With rho = fl(1/s) (s in [2^-125, 2^125], so
// rho is normal) and y = fl(w*rho): |y - fl(w/s)| <= |y|*(3u+u^2)/(1-u)^2 < |y|*2^-22 (u = 2^-24), so
// rint(y) == rint(fl(w/s)) unless a half-integer lies within |y|*2^-22 of y. Every |y| is at most
// Ymax = fl(fl(amax*rho)*(1+2^-20)) (rounding is monotone), and t = |y - rint(y)| is exact for |y| < 2^23,
// so t < lim = fl(0.5 - fl(fl(Ymax*2^-21) + 2^-20)) (the two roundings cost at most 2^-25) proves it.
// A candidate is evaluated speculatively with rint(y); if any element fails the test (or anything is
// NaN: the comparison is then false) the whole candidate is recomputed with w/s. Same test as the kernel.
struct div_ctx {
  float s, rcp, lim;
  bool use_rcp;
};
RZ_AI div_ctx make_div(float s, float amax) {
  div_ctx d;
  d.s = s;
  d.use_rcp = s >= 0x1p-125f && s <= 0x1p125f;
  d.rcp = d.use_rcp ? 1.0f / s : 0.0f;
  const float ymax = (amax * d.rcp) * (1.0f + 0x1p-20f);
  d.lim = 0.5f - (ymax * 0x1p-21f + 0x1p-20f);
  return d;
}

// q-w error accumulation (or the q values when Q) of one candidate over nv vectors; returns false if the
// reciprocal shortcut cannot be proven for some element (then nothing useful was produced).
template <class VF, bool RCP, bool Q>
RZ_AI bool int_pass(const float* w, size_t nv, const div_ctx& dc, const pk<VF>& lo, const pk<VF>& hi,
                    pk<VF>& acc, float* q) {
  const pk<VF> S = vsplat<VF>(dc.s), R = vsplat<VF>(dc.rcp), L = vsplat<VF>(dc.lim);
  mk<VF> bad = mzero<VF>();
  pk<VF> a = vzero<VF>();
  for (size_t v = 0; v < nv; ++v) {
    const pk<VF> x = vload<VF>(w + 16 * v);
    pk<VF> r;
    if constexpr (RCP) {
      const pk<VF> y = x * R;
      r = vrint(y);
      bad = bad | ~(vabs(y - r) < L);
    } else {
      r = vrint(x / S);
    }
    const pk<VF> qq = vclamp(r, lo, hi) * S;
    if constexpr (Q) {
      vstore(q + 16 * v, qq);
    } else {
      const pk<VF> d = qq - x;
      a = a + d * d;
    }
  }
  acc = a;
  return !RCP || !vany(bad);
}

template <class VF>
RZ_AI float cand_err(const float* w, size_t nv, const div_ctx& dc, const pk<VF>& lo, const pk<VF>& hi) {
  pk<VF> acc;
  if (!(dc.use_rcp && int_pass<VF, true, false>(w, nv, dc, lo, hi, acc, nullptr)))
    int_pass<VF, false, false>(w, nv, dc, lo, hi, acc, nullptr);
  return vfold(acc);
}

// one integer group of n = 16*nv elements: q[] = the reference's output, returns the chosen candidate
template <class VF>
RZ_AI int group_int_vec(const float* w, float* q, size_t nv, const fq_plan& pl, float& err) {
  const float amax = amax_vec<VF>(w, nv);
  const pk<VF> hi = vsplat<VF>(pl.qmax), lo = vsplat<VF>(-pl.qmax);
  int best = 0;
  float best_err = 0.0f;
  if (pl.n_ratios > 1) {
    for (int c = 0; c < pl.n_ratios; ++c) {
      const float s = scale_of(pl.ratios[size_t(c)], amax, pl.qmax);
      const float e = cand_err<VF>(w, nv, make_div(s, amax), lo, hi);
      if (c == 0 || e < best_err) {
        best = c;
        best_err = e;
      }
    }
  }
  const div_ctx dc = make_div(scale_of(pl.ratios[size_t(best)], amax, pl.qmax), amax);
  pk<VF> acc;
  if (!(dc.use_rcp && int_pass<VF, true, true>(w, nv, dc, lo, hi, acc, q)))
    int_pass<VF, false, true>(w, nv, dc, lo, hi, acc, q);
  err = best_err;
  return best;
}

template <class VF>
RZ_AI float group_ternary_vec(const float* w, float* q, size_t nv, size_t n) {
  pk<VF> acc = vzero<VF>();
  for (size_t v = 0; v < nv; ++v) acc = acc + vabs(vload<VF>(w + 16 * v));
  const float mean = vfold(acc) / float(n);
  const float thr_s = 0.75f * mean;
  const pk<VF> thr = vsplat<VF>(thr_s);
  const pk<VF> one = vsplat<VF>(1.0f), zero = vzero<VF>();
  pk<VF> kacc = vzero<VF>();
  mk<VF> cnt = mzero<VF>();
  for (size_t v = 0; v < nv; ++v) {
    const pk<VF> a = vabs(vload<VF>(w + 16 * v));
    const mk<VF> k = a > thr;
    kacc = kacc + a * vsel(k, one, zero);
    cnt = cnt - k;  // true lanes are -1
  }
  const int64_t count = vsum_int(cnt);
  const float alpha = count > 0 ? vfold(kacc) / float(count) : amax_vec<VF>(w, nv);
  const pk<VF> va = vsplat<VF>(alpha);
  for (size_t v = 0; v < nv; ++v) {
    const pk<VF> x = vload<VF>(w + 16 * v);
    const pk<VF> m = vsel(vabs(x) > thr, one, zero);
    const pk<VF> sg = vsel(x > zero, one, zero) - vsel(x < zero, one, zero);
    vstore(q + 16 * v, (sg * m) * va);
  }
  return thr_s;
}

struct job {
  const void* in;
  elem_type in_t;
  void* out;
  elem_type out_t;
  size_t cols;
  fq_plan pl;
  bool want_stats;
};

RZ_AI void load_group(const job& j, size_t off, float* w, size_t n) {
  switch (j.in_t) {
    case elem_type::bf16: {
      const uint16_t* s = static_cast<const uint16_t*>(j.in) + off;
      for (size_t i = 0; i < n; ++i) w[i] = std::bit_cast<float>(uint32_t(s[i]) << 16);
      break;
    }
    case elem_type::f16: {
      const uint16_t* s = static_cast<const uint16_t*>(j.in) + off;
      for (size_t i = 0; i < n; ++i) w[i] = f16_to_f32(s[i]);
      break;
    }
    case elem_type::f32: std::memcpy(w, static_cast<const float*>(j.in) + off, n * sizeof(float)); break;
  }
}

// stores q (NaN -> canonical quiet NaN) and returns the stored values as float in q (for the stats)
RZ_AI void store_group(const job& j, size_t off, float* q, size_t n) {
  switch (j.out_t) {
    case elem_type::bf16: {
      uint16_t* d = static_cast<uint16_t*>(j.out) + off;
      for (size_t i = 0; i < n; ++i) {
        uint32_t u = std::bit_cast<uint32_t>(q[i]);
        const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
        u = nan ? 0x7fc00000u : u + 0x7fffu + ((u >> 16) & 1u);
        d[i] = uint16_t(u >> 16);
        q[i] = std::bit_cast<float>(u & 0xffff0000u);
      }
      break;
    }
    case elem_type::f16: {
      uint16_t* d = static_cast<uint16_t*>(j.out) + off;
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = q[i] != q[i] ? uint16_t(0x7e00) : f32_to_f16(q[i]);
        d[i] = h;
        q[i] = f16_to_f32(h);
      }
      break;
    }
    case elem_type::f32: {
      float* d = static_cast<float*>(j.out) + off;
      for (size_t i = 0; i < n; ++i) {
        if (q[i] != q[i]) q[i] = std::bit_cast<float>(0x7fc00000u);
        d[i] = q[i];
      }
      break;
    }
  }
}

// double sums of (o-w)^2 and w^2 in 16 lanes (vectorisable; order fixed per group)
RZ_AI void group_stats(const float* w, const float* o, size_t n, double& se, double& sr) {
  double e[16] = {}, r[16] = {};
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) {
      const double x = w[i + size_t(l)], d = double(o[i + size_t(l)]) - x;
      e[l] += d * d;
      r[l] += x * x;
    }
  for (; i < n; ++i) {
    const double x = w[i], d = double(o[i]) - x;
    e[0] += d * d;
    r[0] += x * x;
  }
  double a = 0, b = 0;
  for (int l = 0; l < 16; ++l) {
    a += e[l];
    b += r[l];
  }
  se += a;
  sr += b;
}

// rows [r0, r1) of one job; w/q: per-thread scratch of group_len floats (64-byte aligned)
template <class VF>
RZ_AI void run_rows_body(const job& j, size_t r0, size_t r1, float* w, float* q, fq_stats& st) {
  const size_t n = j.pl.group_len, ng = j.cols / n;
  const bool vec = n % 16 == 0;
  const size_t nv = n / 16;
  for (size_t r = r0; r < r1; ++r) {
    for (size_t g = 0; g < ng; ++g) {
      const size_t off = r * j.cols + g * n;
      load_group(j, off, w, n);
      int c = 0;
      float sum = 0.0f;
      switch (j.pl.mode) {
        case fq_mode::identity: std::memcpy(q, w, n * sizeof(float)); break;
        case fq_mode::ternary: sum = vec ? group_ternary_vec<VF>(w, q, nv, n) : group_ternary_ref(w, q, n); break;
        case fq_mode::integer:
          c = vec ? group_int_vec<VF>(w, q, nv, j.pl, sum)
                  : group_int_ref(w, q, n, j.pl, j.pl.n_ratios > 1 ? &sum : nullptr);
          break;
      }
      st.sum_checksum += checksum_bits(sum);
      store_group(j, off, q, n);
      if (j.pl.mode != fq_mode::identity) ++st.groups;
      if (j.pl.mode == fq_mode::integer) ++st.clip_hist[size_t(c)];
      if (j.want_stats) group_stats(w, q, n, st.sq_err, st.sq_ref);
    }
  }
  st.n += (r1 - r0) * j.cols;
}

// The same body compiled for each x86-64 level; everything it calls is always_inline, so each copy is
// vectorised for its own instruction set.
__attribute__((target("arch=x86-64-v4"))) void run_rows_v4(const job& j, size_t r0, size_t r1, float* w,
                                                           float* q, fq_stats& st) {
  run_rows_body<f32x16>(j, r0, r1, w, q, st);
}
__attribute__((target("arch=x86-64-v3"))) void run_rows_v3(const job& j, size_t r0, size_t r1, float* w,
                                                           float* q, fq_stats& st) {
  run_rows_body<f32x8>(j, r0, r1, w, q, st);
}
__attribute__((target("arch=x86-64-v2"))) void run_rows_v2(const job& j, size_t r0, size_t r1, float* w,
                                                           float* q, fq_stats& st) {
  run_rows_body<f32x4>(j, r0, r1, w, q, st);
}
void run_rows_base(const job& j, size_t r0, size_t r1, float* w, float* q, fq_stats& st) {
  run_rows_body<f32x4>(j, r0, r1, w, q, st);
}
using run_rows_fn = void (*)(const job&, size_t, size_t, float*, float*, fq_stats&);

fq_isa cpu_isa() {
  static const fq_isa isa = [] {
    __builtin_cpu_init();
#if defined(__clang__)  // clang's __builtin_cpu_supports knows the features, not GCC's level names
    const bool v2 = __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("ssse3");
    const bool v3 = v2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
    const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                    __builtin_cpu_supports("avx512vl");
#else
    const bool v4 = __builtin_cpu_supports("x86-64-v4"), v3 = __builtin_cpu_supports("x86-64-v3"),
               v2 = __builtin_cpu_supports("x86-64-v2");
#endif
    if (v4) return fq_isa::avx512;
    if (v3) return fq_isa::avx2;
    if (v2) return fq_isa::sse42;
    return fq_isa::baseline;
  }();
  return isa;
}

// the best level the CPU has, capped at `cap`
fq_isa pick_isa(fq_isa cap) {
  const fq_isa have = cpu_isa();
  return cap == fq_isa::best ? have : std::max(cap, have);  // larger enum value = lower level
}

run_rows_fn rows_fn(fq_isa isa) {
  switch (isa) {
    case fq_isa::avx512: return run_rows_v4;
    case fq_isa::avx2: return run_rows_v3;
    case fq_isa::sse42: return run_rows_v2;
    default: return run_rows_base;
  }
}

struct aligned_free {
  void operator()(float* p) const { std::free(p); }
};

}  // namespace

const char* isa_name(fq_isa isa) {
  switch (isa) {
    case fq_isa::best: return "best";
    case fq_isa::avx512: return "avx512 (x86-64-v4)";
    case fq_isa::avx2: return "avx2 (x86-64-v3)";
    case fq_isa::sse42: return "sse4.2 (x86-64-v2)";
    case fq_isa::baseline: return "baseline x86-64";
  }
  return "?";
}

fq_isa fast_path_isa(fq_isa cap) { return pick_isa(cap); }

status fake_quant(const void* in, elem_type in_type, void* out, elem_type out_type, size_t rows, size_t cols,
                  const fq_params& p, fq_stats* stats, const progress_fn& progress, int threads, fq_isa isa) {
  RAZOR_ASSIGN_OR_RETURN(fq_plan pl, make_plan(p, cols));
  if (stats) *stats = fq_stats{};
  const run_rows_fn run_rows = rows_fn(pick_isa(isa));
  if (rows == 0 || cols == 0) return status::success();
  if (!in || !out) return make_error(errc::invalid_argument, "fake_quant: null buffer");
  if (in == out && in_type != out_type)
    return make_error(errc::invalid_argument, "fake_quant: in-place needs equal input and output types");
  const job j{in, in_type, out, out_type, cols, pl, stats != nullptr};
  // Fixed blocks of rows (independent of the thread count) each with its own stats, merged in order:
  // the stats are then the same for any number of threads.
  const size_t block_rows = std::max<size_t>(1, (size_t(1) << 16) / cols);
  const size_t nblocks = (rows + block_rows - 1) / block_rows;
  std::vector<fq_stats> bst(stats ? nblocks : 0);
  std::atomic<bool> cancelled{false};
  std::atomic<size_t> done_rows{0};
  std::mutex progress_mu;
  parallel_for(
      nblocks,
      [&](size_t b0, size_t b1) {
        round_guard rg;
        std::unique_ptr<float, aligned_free> w(
            static_cast<float*>(std::aligned_alloc(64, ((cols * sizeof(float) + 63) / 64) * 64)));
        std::unique_ptr<float, aligned_free> q(
            static_cast<float*>(std::aligned_alloc(64, ((cols * sizeof(float) + 63) / 64) * 64)));
        for (size_t b = b0; b < b1; ++b) {
          if (cancelled.load(std::memory_order_relaxed)) return;
          const size_t r0 = b * block_rows, r1 = std::min(rows, r0 + block_rows);
          fq_stats local;
          run_rows(j, r0, r1, w.get(), q.get(), local);
          if (stats) bst[b] = local;
          const size_t d = done_rows.fetch_add(r1 - r0) + (r1 - r0);
          if (progress) {
            std::lock_guard<std::mutex> lk(progress_mu);
            if (!cancelled && !progress(double(d), double(rows), "fake-quant"))
              cancelled = true;
          }
        }
      },
      1, threads);
  if (cancelled) return make_error(errc::cancelled, "fake-quant cancelled");
  if (stats) {
    for (const auto& s : bst) stats->merge(s);
  }
  return status::success();
}

status fake_quant_bf16(const uint16_t* in, uint16_t* out, size_t rows, size_t cols, const fq_params& p,
                       fq_stats* stats, const progress_fn& progress, int threads) {
  return fake_quant(in, elem_type::bf16, out, elem_type::bf16, rows, cols, p, stats, progress, threads);
}

cu::fq_kernel_params kernel_params(const fq_plan& pl, cu::fq_div_mode div) {
  cu::fq_kernel_params kp;
  kp.kind = pl.mode == fq_mode::ternary    ? cu::fq_kind::ternary
            : pl.mode == fq_mode::integer ? cu::fq_kind::integer
                                          : cu::fq_kind::identity;
  kp.qmax = pl.qmax;
  kp.group_len = pl.group_len;
  kp.n_ratios = pl.mode == fq_mode::integer ? pl.n_ratios : 1;
  for (int i = 0; i < cu::kFqMaxRatios; ++i) kp.ratios[i] = i < kp.n_ratios ? pl.ratios[size_t(i)] : 1.0f;
  kp.div_mode = div;
  return kp;
}

result<fq_backend> fake_quant_bf16_auto(const uint16_t* in, uint16_t* out, size_t rows, size_t cols,
                                        const fq_params& p, fq_stats* stats, const progress_fn& progress) {
  RAZOR_ASSIGN_OR_RETURN(fq_plan pl, make_plan(p, cols));
  if (!cu::devices().empty() && pl.mode != fq_mode::identity) {
    const cu::fq_kernel_params kp = kernel_params(pl);
    cu::fq_device_stats ds;
    status s = cu::fake_quant_bf16_host(in, out, rows, cols, kp, stats ? &ds : nullptr, progress);
    if (s.ok()) {
      if (stats) {
        *stats = fq_stats{};
        stats->n = rows * cols;
        stats->groups = ds.groups;
        stats->sq_err = ds.sq_err;
        stats->sq_ref = ds.sq_ref;
        stats->sum_checksum = ds.sum_checksum;
        if (pl.mode == fq_mode::integer)
          for (int i = 0; i < kMaxClipSteps; ++i) stats->clip_hist[size_t(i)] = ds.hist[i];
      }
      return fq_backend::cuda;
    }
    if (s.code() == errc::cancelled) return s;
    // a GPU failure (e.g. out of memory held by another process) falls back to the CPU, same result
  }
  RAZOR_TRY(fake_quant_bf16(in, out, rows, cols, p, stats, progress));
  return fq_backend::cpu;
}

}  // namespace razor::quant
