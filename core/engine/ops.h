// Float32 CPU kernels of the reference engine. Plain loops the compiler vectorises (AVX2/AVX-512 clones
// chosen at run time); parallel over rows with razor::parallel_for. Accumulation is in float32, as PyTorch's
// fp32 CPU matmul; sums run in a different order, so results agree to rounding (~1e-6 relative), not bits.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/weights.h"

namespace razor::engine {

// A linear map y = W x stored transposed, [in, out] row-major, so the inner loop runs over outputs; or, for
// the GPU engine only (weight_layout::rows), W as stored, [out, in] with `rows` set (no host transposition).
// The GPU layout may instead borrow the checkpoint's stored BF16 rows (`bf16`, wt empty).
struct linear {
  int64_t in = 0, out = 0;
  std::vector<float> wt;  // [in][out], or [out][in] when rows
  bool rows = false;
  const uint16_t* bf16 = nullptr;  // [out][in] as stored (rows), borrowed (weight_provider::stored_bf16)
  bool empty() const { return wt.empty() && !bf16; }
  size_t bytes() const { return bf16 ? size_t(in * out) * 2 : wt.size() * sizeof(float); }
  // W[r][i] in any of the forms.
  float at(int64_t r, int64_t i) const;
  // ||row r of W||_2 and ||W||_F^2, in any of the forms.
  double row_norm(int64_t r) const;
  double sum_sq() const;
};
enum class weight_layout : uint8_t { transposed, rows };
// From a PyTorch [out, in] matrix (rows [row0, row0 + n_rows) only when n_rows > 0).
linear make_linear(const tensor_f32& w, int64_t row0 = 0, int64_t n_rows = -1);
// Stacks several [out_i, in] matrices along the output axis into one linear (gate and up of an expert).
linear make_linear_cat(const std::vector<const tensor_f32*>& ws);
// The same in `layout`: rows takes the matrices' data as they are (moved when there is one).
linear make_linear(tensor_f32&& w, weight_layout layout);
linear make_linear_cat(std::vector<tensor_f32>&& ws, weight_layout layout);

// y[n, out] = x[n, in] W^T (w in the transposed layout). x rows are `ldx` floats apart (>= in), y rows `ldy` apart (>= out).
void matmul(const float* x, size_t n, const linear& w, float* y, size_t ldx = 0, size_t ldy = 0, int threads = 0);

// out = x / sqrt(mean(x^2) + eps) * w, per row of `dim`. `out` may equal `x`.
void rms_norm(const float* x, size_t n, size_t dim, const float* w, float eps, float* out);

// NeoX rotary on the first `rot` dims of a head vector: pairs (i, i + rot/2), angle pos * theta^(-2i/rot).
// inv_freq has rot/2 entries.
void rope_neox(float* head, int64_t rot, const float* inv_freq, double pos);
std::vector<float> rope_inv_freq(int64_t rot, double theta);
// YaRN's frequencies (rope_scaling type yarn; DeepSeek's MLA and gpt-oss): each pair's blend of the extrapolated
// frequency and the interpolated one (/ factor), as ggml computes them.
std::vector<float> rope_inv_freq_yarn(int64_t rot, double theta, double factor, int64_t orig_ctx, double beta_fast,
                                      double beta_slow);

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
// log(1 + e^x) with PyTorch's threshold (x > 20 returns x).
inline float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

}  // namespace razor::engine
