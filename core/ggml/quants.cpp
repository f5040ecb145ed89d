// Dispatch from the type table to the row functions, and the multi-threaded tensor quantizer.
#include "ggml/quants.h"

#include <algorithm>
#include <atomic>
#include <iterator>
#include <string>
#include <type_traits>
#include <vector>

#include "ggml/quants_internal.h"
#include "util/numeric.h"

namespace razor::ggml {

// ---- the float "block" types: one element per block -----------------------------------------------

namespace detail {

void quantize_row_f32(const float* x, void* y, int64_t n, const float*) {
  std::memcpy(y, x, size_t(n) * sizeof(float));
}
void dequantize_row_f32(const void* x, float* y, int64_t n) { std::memcpy(y, x, size_t(n) * sizeof(float)); }

namespace {
// The 16-bit float types: one uint16 per element through the narrowing / widening conversion.
template <uint16_t (*Narrow)(float)>
void narrow_row(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<uint8_t*>(vy);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = Narrow(x[i]);
    std::memcpy(y + 2 * i, &h, 2);
  }
}
template <float (*Widen)(uint16_t)>
void widen_row(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(vx);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, x + 2 * i, 2);
    y[i] = Widen(h);
  }
}
}  // namespace

void quantize_row_f16(const float* x, void* y, int64_t n, const float*) { narrow_row<f32_to_f16>(x, y, n); }
void dequantize_row_f16(const void* x, float* y, int64_t n) { widen_row<f16_to_f32>(x, y, n); }
void quantize_row_bf16(const float* x, void* y, int64_t n, const float*) { narrow_row<f32_to_bf16>(x, y, n); }
void dequantize_row_bf16(const void* x, float* y, int64_t n) { widen_row<bf16_to_f32>(x, y, n); }

}  // namespace detail

namespace {

using quantize_fn = void (*)(const float*, void*, int64_t, const float*);
using dequantize_fn = void (*)(const void*, float*, int64_t);

struct kernels {
  quantize_fn quantize;      // one row
  dequantize_fn dequantize;
  quantize_fn reference;     // the scalar ground truth where `quantize` is a lane-parallel form
};

// The row functions of every type, in type_table order (types.h names them).
constexpr kernels k_kernels[] = {
#define RAZOR_X(ident, name, id, block, elems, weights, imatrix, fallback, ftype, gpu, q, dq, ref) \
  kernels{detail::q, detail::dq, detail::ref},
    RAZOR_GGML_TYPES(RAZOR_X)
#undef RAZOR_X
};
static_assert(std::size(k_kernels) == std::size(type_table));

const kernels& kernels_of(type t) { return k_kernels[type_index(t)]; }

status check_row(type t, int64_t n_per_row) {
  const auto& ti = info(t);
  if (n_per_row <= 0 || n_per_row % ti.block_size != 0)
    return make_error(errc::invalid_argument, std::string(ti.name) + ": row length " +
                                                  std::to_string(n_per_row) +
                                                  " is not a positive multiple of the block size " +
                                                  std::to_string(ti.block_size));
  return {};
}

// ggml asserts that the weights of a `required` type are given (ggml_quantize_requires_imatrix).
status check_weights(type t, const float* quant_weights) {
  const auto& ti = info(t);
  if (ti.weights == weights_use::required && !quant_weights)
    return make_error(errc::needs_imatrix, std::string(ti.name) +
                                               " cannot be quantized without importance weights (ggml's "
                                               "quantizer requires them); give an importance matrix");
  return {};
}

// Rows [r0, r1) of the matrix; no checks.
void quantize_range(type t, quantize_fn fn, const float* src, uint8_t* dst, int64_t r0, int64_t r1,
                    int64_t n_per_row, const float* qw) {
  const size_t rs = row_size(t, n_per_row);
  const float* x = src + r0 * n_per_row;
  uint8_t* y = dst + size_t(r0) * rs;
  if (info(t).block_size == 1) {  // the float types: rows are contiguous, one call
    fn(x, y, (r1 - r0) * n_per_row, qw);
    return;
  }
  for (int64_t r = r0; r < r1; ++r, x += n_per_row, y += rs) fn(x, y, n_per_row, qw);
}

}  // namespace

namespace {
// quantize_rows with the table's fast (reference false) or scalar reference row function.
status quantize_rows_with(bool reference, type t, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                          const float* quant_weights) {
  RAZOR_TRY(check_row(t, n_per_row));
  RAZOR_TRY(check_weights(t, quant_weights));
  if (nrows < 0) return make_error(errc::invalid_argument, "negative row count");
  const auto& k = kernels_of(t);
  quantize_range(t, reference ? k.reference : k.quantize, src, static_cast<uint8_t*>(dst), 0, nrows, n_per_row,
                 quant_weights);
  return {};
}
}  // namespace

status quantize_rows(type t, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                     const float* quant_weights) {
  return quantize_rows_with(false, t, src, dst, nrows, n_per_row, quant_weights);
}

status quantize_rows_reference(type t, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                               const float* quant_weights) {
  return quantize_rows_with(true, t, src, dst, nrows, n_per_row, quant_weights);
}

status dequantize_row(type t, const void* src, float* dst, int64_t n) {
  if (n == 0) return {};
  RAZOR_TRY(check_row(t, n));
  kernels_of(t).dequantize(src, dst, n);
  return {};
}

result<size_t> quantize_tensor(type t, const float* src, void* dst, size_t dst_size, int64_t nrows,
                               int64_t n_per_row, const float* imatrix, const quantize_options& options) {
  const auto& ti = info(t);
  RAZOR_TRY(check_row(t, n_per_row));
  if (nrows < 0) return make_error(errc::invalid_argument, "negative row count");
  if (ti.needs_imatrix && !imatrix && !options.allow_missing_imatrix)
    return make_error(errc::needs_imatrix, std::string(ti.name) +
                                               " needs an importance matrix (llama.cpp refuses to "
                                               "quantize to it without one); run the probe first");
  RAZOR_TRY(check_weights(t, imatrix));
  const size_t rs = row_size(t, n_per_row);
  const size_t total = size_t(nrows) * rs;
  if (dst_size < total)
    return make_error(errc::invalid_argument, "destination holds " + std::to_string(dst_size) +
                                                  " bytes, " + std::to_string(total) + " needed");
  if (nrows == 0) return size_t(0);

  const quantize_fn fn = kernels_of(t).quantize;
  auto* out = static_cast<uint8_t*>(dst);
  const int threads = options.threads > 0 ? options.threads : default_threads();
  auto run = [&](int64_t r0, int64_t r1) {
    parallel_for(
        size_t(r1 - r0),
        [&](size_t b, size_t e) { quantize_range(t, fn, src, out, r0 + int64_t(b), r0 + int64_t(e), n_per_row, imatrix); },
        1, threads);
  };
  if (!options.progress) {
    run(0, nrows);
    return total;
  }
  // With a progress callback: batches of about 2^20 elements per thread, reported between batches
  // from this thread (the callback never runs concurrently with itself).
  const int64_t batch = std::max<int64_t>(1, (int64_t(1) << 20) * threads / n_per_row);
  for (int64_t r0 = 0; r0 < nrows; r0 += batch) {
    const int64_t r1 = std::min(nrows, r0 + batch);
    run(r0, r1);
    if (!options.progress(double(r1), double(nrows), "quantize"))
      return make_error(errc::cancelled, "quantization cancelled after " + std::to_string(r1) + " of " +
                                             std::to_string(nrows) + " rows");
  }
  return total;
}

// ---- quantize_tensor_grouped ------------------------------------------------------------------------

status check_tensor_args(type t, int64_t nrows, int64_t n_per_row, const float* imatrix, int64_t rows_per_imatrix,
                         size_t dst_size, bool allow_missing_imatrix) {
  const auto& ti = info(t);
  RAZOR_TRY(check_row(t, n_per_row));
  if (nrows < 0) return make_error(errc::invalid_argument, "negative row count");
  if (rows_per_imatrix < 0) return make_error(errc::invalid_argument, "negative rows_per_imatrix");
  if (ti.needs_imatrix && !imatrix && !allow_missing_imatrix)
    return make_error(errc::needs_imatrix, std::string(ti.name) +
                                               " needs an importance matrix (llama.cpp refuses to "
                                               "quantize to it without one); run the probe first");
  RAZOR_TRY(check_weights(t, imatrix));
  const size_t total = size_t(nrows) * row_size(t, n_per_row);
  if (dst_size < total)
    return make_error(errc::invalid_argument, "destination holds " + std::to_string(dst_size) + " bytes, " +
                                                  std::to_string(total) + " needed");
  return status::success();
}

namespace {

// quantize_tensor per imatrix group of rows, the source widened per batch when BF16.
template <class Src>
result<size_t> grouped(type t, const Src* src, uint8_t* dst, size_t dst_size, int64_t nrows, int64_t n_per_row,
                       const float* imatrix, int64_t rows_per_imatrix, const quantize_options& o) {
  RAZOR_TRY(check_tensor_args(t, nrows, n_per_row, imatrix, rows_per_imatrix, dst_size, o.allow_missing_imatrix));
  const size_t rs = row_size(t, n_per_row);
  const int64_t group = imatrix && rows_per_imatrix > 0 ? rows_per_imatrix : std::max<int64_t>(nrows, 1);
  // BF16: batches of at most ~4M elements, never straddling an imatrix group
  const int64_t batch = std::is_same_v<Src, float>
                            ? group
                            : std::max<int64_t>(1, std::min<int64_t>(group, (int64_t(1) << 22) / n_per_row));
  std::vector<float> wide;
  for (int64_t r0 = 0; r0 < nrows;) {
    const int64_t g_end = std::min(nrows, (r0 / group + 1) * group);
    const int64_t r1 = std::min(g_end, r0 + batch);
    const float* w = imatrix ? imatrix + (rows_per_imatrix > 0 ? (r0 / group) * n_per_row : 0) : nullptr;
    const float* x;
    if constexpr (std::is_same_v<Src, float>) {
      x = src + r0 * n_per_row;
    } else {
      wide.resize(size_t((r1 - r0) * n_per_row));
      const uint16_t* s = src + r0 * n_per_row;
      for (size_t i = 0; i < wide.size(); ++i) wide[i] = bf16_to_f32(s[i]);
      x = wide.data();
    }
    quantize_options co = o;
    if (o.progress)
      co.progress = [&, r0](double done, double, const char* what) {
        return o.progress(double(r0) + done, double(nrows), what);
      };
    auto r = quantize_tensor(t, x, dst + size_t(r0) * rs, dst_size - size_t(r0) * rs, r1 - r0, n_per_row, w, co);
    if (!r) return r.error();
    r0 = r1;
  }
  return size_t(nrows) * rs;
}

}  // namespace

result<size_t> quantize_tensor_grouped(type t, const float* src, void* dst, size_t dst_size, int64_t nrows,
                                       int64_t n_per_row, const float* imatrix, int64_t rows_per_imatrix,
                                       const quantize_options& options) {
  return grouped(t, src, static_cast<uint8_t*>(dst), dst_size, nrows, n_per_row, imatrix, rows_per_imatrix, options);
}

result<size_t> quantize_tensor_grouped(type t, const uint16_t* src_bf16, void* dst, size_t dst_size, int64_t nrows,
                                       int64_t n_per_row, const float* imatrix, int64_t rows_per_imatrix,
                                       const quantize_options& options) {
  return grouped(t, src_bf16, static_cast<uint8_t*>(dst), dst_size, nrows, n_per_row, imatrix, rows_per_imatrix,
                 options);
}

}  // namespace razor::ggml
