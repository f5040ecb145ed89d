// Quantize and dequantize rows of the ggml block types in types.h, byte-exact with ggml's reference
// quantizers (ggml/src/ggml-quants.c as shipped in llama.cpp; tested against the real libggml-base.so).
//
// Byte-exactness rests on doing the same float32 operations in the same order as ggml (no FMA
// contraction, no re-association), ggml's nearest_int (the 1.5*2^23 magic-number rounding) and
// round-to-nearest-even fp16 conversion (util/numeric.h). Block layouts: blocks.h.
// The k-quants search their sub-block scales several sub-blocks at a time in vector lanes (AVX2 where the
// CPU has it); every lane repeats ggml's scalar arithmetic, so the bytes are those of the scalar
// reference (quantize_rows_reference), which tests/ggml checks against ggml itself.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "ggml/types.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor::ggml {

// Quantizes nrows rows of n_per_row floats (row-major, contiguous) into dst, row after row, exactly as
// ggml's quantize_<type>(src, dst, nrows, n_per_row, quant_weights) does, i.e. as
// ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row, quant_weights):
//   - quant_weights (length n_per_row, shared by all rows) may be null. Where ggml switches between its
//     `_ref` path (null weights) and its `_impl` path (weights given) we do the same; q8_0, f32, f16 and
//     bf16 ignore the weights.
//   - Null weights are accepted wherever ggml accepts them (iq3_xxs and iq2_s included; the refusal that
//     llama.cpp applies is in quantize_tensor below). Types whose ggml quantizer requires weights (the
//     type table's `required`: iq2_xxs, iq2_xs, iq1_s; ggml asserts) are refused with errc::needs_imatrix.
// dst must hold nrows * row_size(t, n_per_row) bytes. Single-threaded. Errors: invalid_argument when
// n_per_row is not a multiple of the block size or is not positive; needs_imatrix as above.
status quantize_rows(type t, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                     const float* quant_weights);

// The same bytes as quantize_rows, computed by the scalar reference code (one sub-block at a time, the
// ground truth that the lane-parallel k-quant paths of quantize_rows are tested against). Slower.
status quantize_rows_reference(type t, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                               const float* quant_weights);

// Decodes n elements (a multiple of the block size) from src, as ggml's dequantize_row_<type>
// (ggml_get_type_traits(t)->to_float); f16/bf16 widen exactly, f32 copies.
status dequantize_row(type t, const void* src, float* dst, int64_t n);

struct quantize_options {
  int threads = 0;                     // 0: default_threads() (RAZOR_THREADS or hardware)
  bool allow_missing_imatrix = false;  // quantize needs_imatrix types without weights where ggml can
  progress_fn progress;                // called with done/total rows; false cancels
};

// Tensor-level: quantizes an nrows x n_per_row matrix into dst (dst_size bytes, at least
// nrows * row_size(t, n_per_row)), spreading rows over threads with razor::parallel_for. The bytes
// equal quantize_rows on one thread (rows are independent in every ggml quantizer).
// Returns the number of bytes written. Errors: needs_imatrix (type needs an importance matrix, none
// given, not allowed by options; or ggml requires weights for it, which no option lifts), invalid_argument
// (row length, dst too small), cancelled.
result<size_t> quantize_tensor(type t, const float* src, void* dst, size_t dst_size, int64_t nrows,
                               int64_t n_per_row, const float* imatrix,
                               const quantize_options& options = {});

// ---- fused tensors: BF16 sources, one importance vector per group of rows ------------------------

// The checks of quantize_tensor_grouped: the row length, the imatrix policy of the type table, the
// destination size. The GPU path of the pipelines (quant/ggml_auto.h) runs them too, so that it refuses
// exactly what the CPU refuses.
status check_tensor_args(type t, int64_t nrows, int64_t n_per_row, const float* imatrix, int64_t rows_per_imatrix,
                         size_t dst_size, bool allow_missing_imatrix);

// quantize_tensor over a fused expert tensor [E, R, n_per_row]: rows_per_imatrix = R, with E imatrix vectors
// of n_per_row (rows [e*R, (e+1)*R) use imatrix + e*n_per_row); 0: one vector for all rows. progress reports
// rows of the whole tensor. Same errors as quantize_tensor.
result<size_t> quantize_tensor_grouped(type t, const float* src, void* dst, size_t dst_size, int64_t nrows,
                                       int64_t n_per_row, const float* imatrix, int64_t rows_per_imatrix,
                                       const quantize_options& options = {});
// BF16 rows (uint16 bit patterns), widened to float (exact) a batch of rows at a time.
result<size_t> quantize_tensor_grouped(type t, const uint16_t* src_bf16, void* dst, size_t dst_size, int64_t nrows,
                                       int64_t n_per_row, const float* imatrix, int64_t rows_per_imatrix,
                                       const quantize_options& options = {});

}  // namespace razor::ggml
