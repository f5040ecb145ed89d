// Lane-parallel forms of the k-quant scale searches (the independent sub-blocks of a super-block side by
// side) and of the iq3 grids' scale search (the trial scales of a sub-block side by side), in vector lanes
// (GCC/Clang vector extensions; lowered to SSE2 on plain x86-64). Every lane performs exactly the float32
// operations, in exactly the order, of the scalar function (quant_search.h, quants_internal.h), so the
// results are bit-identical; only independent work is interleaved. Tested against the scalar reference
// and against ggml.
#include <atomic>

#include "ggml/quants_internal.h"

#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"  // vector-typed helpers are internal and inlined
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace razor::ggml::detail {

// The lane code, compiled for the baseline ISA and for AVX2 (chosen at run time). AVX2 adds no FMA,
// so contraction stays impossible and both builds give the same bits.
#define RAZOR_LANES_AVX2 0
namespace base {
#include "ggml/quant_search_lanes.inc"
}  // namespace base

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RAZOR_GGML_HAVE_AVX2_LANES 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif
#undef RAZOR_LANES_AVX2
#define RAZOR_LANES_AVX2 1
namespace avx2 {
#include "ggml/quant_search_lanes.inc"
}  // namespace avx2
#undef RAZOR_LANES_AVX2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

namespace {

std::atomic<bool> g_force_baseline{false};

bool use_avx2() {
#ifdef RAZOR_GGML_HAVE_AVX2_LANES
  static const bool cpu_has_avx2 = __builtin_cpu_supports("avx2");
  return cpu_has_avx2 && !g_force_baseline.load(std::memory_order_relaxed);
#else
  return false;
#endif
}

}  // namespace

void force_baseline_lanes(bool on) { g_force_baseline.store(on, std::memory_order_relaxed); }

void fit_affine_x8(int n, int nmax, const float* x, const float* w, uint8_t* L, float* mins, float* scales,
                   float rmin, float rdelta, int nstep, bool mad, bool v3) {
#ifdef RAZOR_GGML_HAVE_AVX2_LANES
  if (use_avx2())
    return avx2::fit_affine_lanes<8, avx2::f8, avx2::i8>(n, nmax, x, w, L, mins, scales, rmin, rdelta, nstep, mad, v3);
#endif
  base::fit_affine_lanes<8, base::f8, base::i8>(n, nmax, x, w, L, mins, scales, rmin, rdelta, nstep, mad, v3);
}

void fit_symmetric_x16(int n, int nmax, const float* x, const float* w, int8_t* L, float* scales) {
  // two passes of 8 lanes: 8 floats are one AVX register (two SSE ones)
  for (int h = 0; h < 2; ++h) {
    const float* xh = x + 8 * n * h;
    const float* wh = w ? w + 8 * n * h : nullptr;
#ifdef RAZOR_GGML_HAVE_AVX2_LANES
    if (use_avx2()) {
      avx2::fit_symmetric_lanes<8, avx2::f8, avx2::i8>(n, nmax, xh, wh, L + 8 * n * h, scales + 8 * h);
      continue;
    }
#endif
    base::fit_symmetric_lanes<8, base::f8, base::i8>(n, nmax, xh, wh, L + 8 * n * h, scales + 8 * h);
  }
}

float fit_grid_scale_lanes(const grid_search& g, const grid_lists& lists, const float* xval, const float* weight,
                           const float* waux, const grid_trials& t, int8_t* L) {
  if (t.nsteps > 15) return fit_grid_scale<4, 8, 8>(g, xval, weight, waux, t, L);  // more trials than lanes
#ifdef RAZOR_GGML_HAVE_AVX2_LANES
  if (use_avx2()) return avx2::fit_grid_scale_x8(g, lists, xval, weight, waux, t, L);
#endif
  return base::fit_grid_scale_x8(g, lists, xval, weight, waux, t, L);
}

}  // namespace razor::ggml::detail
