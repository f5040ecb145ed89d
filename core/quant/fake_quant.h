// The seed's weight fake-quantization (InstinctRazor moe_quant.fakequant), exact, on the CPU.
//
// What it computes (one "group" = `group` consecutive elements of a row, along the last / input axis; if
// the row length is not a multiple of `group`, or group is 0, the whole row is one group):
//   tag >= 16          identity (the input, converted to the output type)
//   |tag - 1.58| < 0.3 ternary (TWN): thr = 0.75*mean|w|; mask = |w| > thr; alpha = sum(|w|*mask)/count
//                      (count >= 1), or max|w| if nothing is kept; q = (sign(w)*mask)*alpha
//   otherwise          symmetric integer, bits = round-half-even(tag) in [2, 16], qmax = 2^(bits-1)-1:
//                      amax = max|w| (NaN if any w is NaN); for each candidate ratio a (absmax: a = 1 only;
//                      clip search: the float32 torch.linspace(1.0, 0.65, n) in that order)
//                        scale = (a*amax)/qmax, replaced by 1 unless scale > 0
//                        q     = clamp(rint(w/scale), -qmax, qmax)*scale   (rint: round half to even)
//                        err   = sum of (q-w)^2
//                      candidate 0 is taken first; a later one replaces it only if err < best (strictly).
// Every operation is one correctly rounded float32 operation (no FMA contraction anywhere: this file's
// .cpp is built with -ffp-contract=off, the CUDA kernel uses __fmul_rn/__fdiv_rn/...). The output is cast
// to BF16 (or F16) with round-to-nearest-even; a NaN output is written as the canonical quiet NaN.
//
// THE SUM ORDER (the one place torch's result is not pinned down: its float32 .sum()/.mean() order depends
// on device and vector width). Our definition, used by the reference, the CPU fast path and the CUDA kernel:
//   lane16_sum(e_0..e_{n-1}): 16 float32 lanes start at +0; element i is added to lane i % 16, in increasing
//   i; then lanes fold as a tree: l += l+8 (l<8), l += l+4 (l<4), l += l+2 (l<2), l0 += l1.
// It is used for the clip-search error, mean|w| and the kept sum of the ternary mode. The tree is what a
// 16-wide SIMD register (or two 8-wide ones) and a 16-lane warp shuffle (xor 8,4,2,1) compute naturally.
// Against torch it can differ in the last bits of an error sum, so a near-tie between two clip candidates
// can, rarely, be decided differently from the seed; everything else is the seed's arithmetic exactly.
// Means divide by the count (torch's CPU mean is sum then div; identical for 128-element groups).
//
// Per-expert: pass the rows of one expert; a fused [E, out, in] tensor is simply E*out rows of length in.
#pragma once
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/fake_quant_cuda.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor::quant {

inline constexpr int kDefaultGroup = 128;
inline constexpr int kMaxClipSteps = 32;   // the clip-ratio histogram has this many bins
inline constexpr float kClipLo = 0.65f;    // the seed's set_clip_search(n, lo=0.65, hi=1.0)
inline constexpr float kClipHi = 1.0f;

struct fq_params {
  float tag = 3.0f;          // bit tag: 1.58 ternary, 2..15 integer, >= 16 identity
  int group = kDefaultGroup; // elements per group along the row; 0 = whole row
  int clip_steps = 0;        // 0 = absmax; n in [1, 32] = clip search over linspace(1.0, 0.65, n)
};

// Per-tensor statistics. sq_err/sq_ref are double sums of (out-w)^2 and w^2 over the values actually
// written (after the cast to the output type); they are diagnostics, not part of the bit-exact contract
// (their double summation order differs between paths). clip_hist counts the chosen candidate index per
// group (integer modes only; absmax counts everything in bin 0) and is exact.
struct fq_stats {
  uint64_t n = 0;       // elements
  uint64_t groups = 0;  // groups (integer and ternary modes)
  double sq_err = 0;
  double sq_ref = 0;
  std::array<uint64_t, kMaxClipSteps> clip_hist{};
  // Sum (mod 2^64) of the float32 bit patterns of every group's internal sum: the chosen candidate's error
  // (clip search; 0 for absmax, which computes no error) or the threshold 0.75*mean|w| (ternary), each as
  // checksum_bits() gives it (a NaN counts as the canonical 0x7fc00000). Integer addition is associative, so
  // this is exact and order-free; equal checksums mean (almost surely) every group's float32 sum was
  // bit-identical, which is how the tests check the lane16 order itself, not only its effect on the outputs.
  uint64_t sum_checksum = 0;
  // relative Frobenius error ||out - w|| / ||w|| (0 when w is all zeros)
  double rel_error() const;
  void merge(const fq_stats& o);
};

// One group's contribution to fq_stats::sum_checksum: the float32 bit pattern of its sum, except that every
// NaN counts as the canonical quiet NaN 0x7fc00000. IEEE 754 does not fix a NaN's sign or payload, and the
// paths really differ there: on x86 inf-inf gives 0xffc00000 and an input NaN's payload propagates, a CUDA
// GPU always produces 0x7fffffff. A NaN sum is "the same sum" for the contract (it selects candidate 0 and
// yields NaN outputs, written as canonical NaNs anyway), so the checksum must not see the payload. The CUDA
// kernel applies the same rule (kernels/fake_quant/kernels.cu, checksum_bits).
inline uint32_t checksum_bits(float sum) {
  return sum != sum ? 0x7fc00000u : std::bit_cast<uint32_t>(sum);
}

enum class fq_mode { identity, integer, ternary };

// A resolved parameter set for one tensor shape.
struct fq_plan {
  fq_mode mode = fq_mode::identity;
  int bits = 0;
  float qmax = 0;
  size_t group_len = 0;  // elements per group (divides cols)
  int n_ratios = 0;      // integer mode: candidates (1 for absmax)
  std::array<float, kMaxClipSteps> ratios{};
};

// Validates params against a row length and resolves mode, qmax, group length and the ratio table.
// errc::invalid_argument for a tag that rounds below 2 bits, a negative group, clip_steps outside [0,32].
result<fq_plan> make_plan(const fq_params& p, size_t cols);

// torch.linspace(start, end, steps) in float32, torch's algorithm: step = (end-start)/(steps-1); element i
// is start + step*i for i < steps/2 and end - step*(steps-1-i) otherwise (no FMA). Reproduces the seed's
// 16 ratios (docs: seed-clip-ratios.md) bit for bit.
std::vector<float> linspace_f32(float start, float end, int steps);
// The seed's clip grid: linspace_f32(1.0, 0.65, steps), descending.
std::vector<float> clip_ratios(int steps);

// Sum of e[0..n) in the lane16 order defined above (the ground-truth order for every path).
float lane16_sum(const float* e, size_t n);

// One group through the reference arithmetic: writes q[0..n), returns the chosen candidate index (0 for
// absmax / ternary / identity) and, if err is not null, the chosen candidate's float32 error (integer mode).
int fake_quant_group_ref(const float* w, float* q, size_t n, const fq_plan& plan, float* err = nullptr);

// THE REFERENCE: scalar, single-threaded, plain float32. in/out are rows*cols floats (out may equal in).
// stats (optional) are computed on the float32 out values.
status fake_quant_rows_ref(const float* in, float* out, size_t rows, size_t cols, const fq_params& p,
                           fq_stats* stats = nullptr);

enum class elem_type { bf16, f16, f32 };
size_t elem_size(elem_type t);

// x86-64 levels of the fast path, best first. The fast path runs the best level the CPU supports, capped
// by the caller's choice (tests run every level the machine has; all give identical bits).
enum class fq_isa { best, avx512, avx2, sse42, baseline };
const char* isa_name(fq_isa isa);
// The level fake_quant runs with on this CPU under the given cap.
fq_isa fast_path_isa(fq_isa cap = fq_isa::best);

// THE FAST CPU PATH: multithreaded (razor::parallel_for) and vectorised (one source, compiled for
// x86-64-v4 = AVX-512, v3 = AVX2, v2 and baseline, chosen at run time with cpuid). Bit-identical to
// fake_quant_rows_ref followed by the output cast, for any input (tests/quant/test_fake_quant.cpp); a group
// whose length is not a multiple of 16 goes through the reference code itself. in and out may alias
// exactly (in place) when the element types are equal. progress (optional) is called with done/total in
// rows; returning false cancels (errc::cancelled; out is then partially written). threads <= 0:
// razor::default_threads(). Stats are identical for any thread count.
status fake_quant(const void* in, elem_type in_type, void* out, elem_type out_type, size_t rows, size_t cols,
                  const fq_params& p, fq_stats* stats = nullptr, const progress_fn& progress = {},
                  int threads = 0, fq_isa isa = fq_isa::best);
status fake_quant_bf16(const uint16_t* in, uint16_t* out, size_t rows, size_t cols, const fq_params& p,
                       fq_stats* stats = nullptr, const progress_fn& progress = {}, int threads = 0);

// The CUDA kernel's parameter block for a plan (integer / ternary; identity is a copy).
cu::fq_kernel_params kernel_params(const fq_plan& plan,
                                   cu::fq_div_mode div = cu::fq_div_mode::rcp_check);

enum class fq_backend { cpu, cuda };
// BF16 host buffers, CUDA when razor::cu::devices() is non-empty (streamed through pinned buffers, so the
// tensor need not fit the GPU), else the fast CPU path. Returns the backend that ran. The GPU result is
// bit-identical to the CPU one (tested where a GPU is present).
result<fq_backend> fake_quant_bf16_auto(const uint16_t* in, uint16_t* out, size_t rows, size_t cols,
                                        const fq_params& p, fq_stats* stats = nullptr,
                                        const progress_fn& progress = {});

}  // namespace razor::quant
