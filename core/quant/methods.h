// The seed's comparison quantizers (seed-reference.md section 1.6, moe_ptq / moe_compare), CPU reference: fake-quant
// (quantize + dequantize) of one linear's weight W [rows x cols] (row-major, rows = outputs, groups along cols), and
// the output-space NMSE the seed's moe_compare reports. Our own implementations of the published algorithms.
//
// Groups: `group` consecutive columns of a row; if cols is not a multiple of group, or group is 0, the whole row is
// one group (the convention of fake_quant.h). Asymmetric params: kernels/gptq.h (s, z, clamp, dequant).
//
//   clip, absmax  the existing seed fake-quant (fake_quant.h, symmetric int, clip search over clip_steps ratios /
//                 absmax), float32 in and out (no BF16 cast).
//   rtn-asym      per (row, group): s = max(max-min, 1e-8)/(2^b-1), z = rint(-min/s), q = clamp(rint(w/s)+z, 0,
//                 2^b-1), (q-z)*s.
//   awq           x_scale = mean_t |X[t, c]| clamped >= 1e-6; for alpha = i/(awq_grid-1), i = 0..awq_grid-1:
//                 s = x_scale^alpha, s /= mean(s), s clamped >= 1e-4, Wq = rtn_asym(W*s)/s (per column c);
//                 error = sum((X (Wq - W)^T)^2) (the seed's mean, same argmin); the first best alpha is kept.
//                 No tokens -> rtn-asym.
//   gptq          H = X^T X (double); dead columns (H_ii == 0): H_ii = 1, W column = 0; H += gptq_damp*mean(diag H)*I;
//                 U = upper Cholesky factor of H^-1 (computed as J L^-1 J with L the Cholesky factor of J H J, J the
//                 reversal, which is the same unique factor with one factorisation less); lazy blocks of gptq_block
//                 columns; per-(row, group) params from the row's current values when its group starts; the column
//                 step and block update of kernels/gptq.h. Rows are independent once U is known (the loop runs over row
//                 tiles). Fewer than gptq_min_tokens (8) tokens, no tokens, or a failed Cholesky (a pivot <= 0 or not
//                 finite, e.g. H singular with gptq_damp = 0, or NaN tokens) -> rtn-asym, reported.
//                 Group params: the seed takes them "from the current W when the group starts"; a lazy block is
//                 cut at the start of a group that begins inside it and would end after it, so every group's params
//                 see all earlier errors and the result is the plain column-by-column algorithm's for any block
//                 size. With group == gptq_block (128, the default) no block is cut, and this is also what GPTQ's
//                 reference code computes (it reads the group from a W not yet updated inside the block).
//   hqq           HQQ's Quantizer.quantize(nbits, group, axis=1, optimize=True, round_zero=(bits==4)) then dequantize,
//                 in float32 (HQQ's CPU dtype; on CUDA its solver runs in float16, which is not reproduced): per group inverse scale a = min((2^b-1)/(max-min), 2e4), zero =
//                 -min*a (rint when round_zero); then hqq_iters rounds of its proximal solver (the default, "legacy"
//                 one): Wq = clamp(rint(W*a+zero)), Wr = (Wq-zero)/a, We = shrink_p(W-Wr, beta) with shrink_p(x) =
//                 sign(x)*max(|x| - |x|^(p-1)/beta, 0), zero = mean over the group of (Wq - (W-We)*a), beta *= kappa;
//                 err = mean |W-Wr| over the whole call (one slice); stop at the first round whose err is not below the
//                 best so far (that round's zero update is kept, as HQQ does). Output (clamp(rint(W*a+zero))-zero)*(1/a).
//                 p = 0.7, beta = 10, kappa = 1.01, 20 iterations. The error sum is double (torch: float32), which can
//                 only move a near-tie of the early stop.
//
// output_nmse: sum((X Wq^T - X W^T)^2) / sum((X W^T)^2), computed as sum((X (Wq-W)^T)^2) / sum((X W^T)^2) in double
// (0 when the denominator is 0 and the numerator too, +inf when only the denominator is 0, NaN without tokens).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace razor::quant {

// One table (methods.cpp): name, needs calibration tokens.
enum class quant_method { clip, absmax, rtn_asym, awq, gptq, hqq };
// "clip", "absmax", "rtn-asym", "awq", "gptq", "hqq"; '_' is read as '-' ("rtn_asym" parses). errc::invalid_argument
// naming the unknown method and listing the known ones.
result<quant_method> parse_quant_method(std::string_view name);
std::string_view quant_method_name(quant_method m);
bool quant_method_needs_tokens(quant_method m);  // awq, gptq
// Every method, in table order.
std::vector<quant_method> all_quant_methods();

// Calibration inputs of one linear (one expert's projection): n tokens x cols (the layer's input), row-major float.
struct calib_view {
  const float* x = nullptr;
  int64_t n = 0;
  int64_t cols = 0;
};

// Where gptq_quantize_batch runs GPTQ: the CPU, the GPU (errc::device without one), or the GPU when one is present.
// fake_quant_method always runs on the CPU.
enum class compute_device { cpu, cuda, auto_ };

struct method_options {
  int bits = 3;              // 2..8 (asymmetric methods also take 1; clip / absmax need >= 2)
  int64_t group = 128;       // columns per group; 0 or a non-divisor of cols = the whole row
  int clip_steps = 16;       // clip: the seed's clip-search candidates (fake_quant.h); absmax ignores it
  double gptq_damp = 0.01;   // damping, times mean(diag H)
  int64_t gptq_block = 128;  // lazy block columns
  int64_t gptq_min_tokens = 8;
  int awq_grid = 20;         // alphas i/(grid-1), i = 0..grid-1 (grid >= 2; 1 means alpha 0 only)
  int hqq_iters = 20;
  double hqq_lp_norm = 0.7;
  double hqq_beta = 10.0;
  double hqq_kappa = 1.01;
  int threads = 0;           // <= 0: razor::default_threads()
  compute_device device = compute_device::cpu;  // gptq_quantize_batch only
};

struct method_report {
  std::string fallback;  // "" or why rtn-asym was used: "no tokens", "fewer than 8 tokens", "cholesky failed"
  double awq_alpha = -1;     // awq: the chosen alpha
  int hqq_rounds = 0;        // hqq: solver rounds run (the last one may be the one that stopped it)
  int64_t gptq_dead_columns = 0;
};

// Fake-quant of W [rows x cols] with per-(row, group) params. Returns the dequantized weight (rows*cols floats);
// tokens may be empty (methods that need them fall back as the seed does). Errors (errc::invalid_argument): sizes
// <= 0, bits out of range, tokens whose cols differ from W's, a null pointer with a non-zero size.
result<std::vector<float>> fake_quant_method(quant_method m, const float* w, int64_t rows, int64_t cols,
                                             const calib_view& tokens, const method_options& o,
                                             method_report* rep = nullptr);

// GPTQ of many weights of one shape [rows x cols], each with its own tokens (the experts' slices of a projection):
// o.device picks the CPU (fake_quant_method per item) or the batched GPU version (kernels/gptq_cuda.h), which
// equals the CPU's result except where a rounding tie flips. Fallbacks as fake_quant_method, per item and reported
// in its rep: no tokens / fewer than gptq_min_tokens -> rtn-asym (CPU), a failed Cholesky -> rtn-asym. out: rows*cols
// floats per item. used_gpu: whether the GPU ran. Errors: fake_quant_method's argument errors naming the item,
// errc::device from the GPU (device cuda without one, or a CUDA failure; nothing is written then).
struct gptq_batch_item {
  const float* w = nullptr;
  calib_view tokens;
  float* out = nullptr;
  method_report* rep = nullptr;  // optional
};
status gptq_quantize_batch(const std::vector<gptq_batch_item>& items, int64_t rows, int64_t cols,
                           const method_options& o, bool* used_gpu = nullptr);

// Output-space NMSE of a quantized weight on tokens (the seed's moe_compare).
double output_nmse(const float* w, const float* wq, int64_t rows, int64_t cols, const calib_view& tokens);

// ---- building blocks (exposed for the CLI, the batched GPU version and the tests) ----

// rtn-asym into out (rows*cols; out may equal w).
void rtn_asym(const float* w, float* out, int64_t rows, int64_t cols, int bits, int64_t group, int threads = 0);

// GPTQ's per-input preparation, shared by every weight that reads the same tokens (an expert's gate and up):
// U (cols x cols, row-major, upper triangle; the rest 0) and the dead columns. errc::unsupported ("cholesky failed ...") when the
// Cholesky fails (the caller falls back to rtn-asym).
struct gptq_hinv {
  int64_t cols = 0;
  std::vector<float> u;
  std::vector<uint8_t> dead;
  int64_t n_dead = 0;
};
result<gptq_hinv> gptq_prepare(const calib_view& tokens, double damp, int threads = 0);
// GPTQ's quantization of W with a prepared U: out = the quantized weight (rows*cols).
void gptq_quantize(const float* w, float* out, int64_t rows, int64_t cols, const gptq_hinv& h, int bits,
                   int64_t group, int64_t block, int threads = 0);

// sum over tokens t and rows r of (x_t . a_r)^2, double (the NMSE's numerator / denominator, AWQ's error).
double sum_sq_xat(const calib_view& x, const float* a, int64_t rows, int threads = 0);

// The effective group length for a row of cols (group, or cols when group is 0 or does not divide cols).
int64_t effective_group(int64_t group, int64_t cols);

}  // namespace razor::quant
