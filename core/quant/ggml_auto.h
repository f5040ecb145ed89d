// The pipelines' choice between the GPU ggml packer and the CPU quantizers (GGUF pack, core/gguf/convert.cpp).
// core/ggml is the format library (blocks, the type table, the CPU quantizers, no CUDA); kernels/ holds the
// GPU packer; this layer, which may use both, picks one per tensor. The bytes are identical either way
// (tests/kernels/test_ggml_cuda.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "ggml/quants.h"

namespace razor::quant {

struct quantize_auto_options {
  ggml::quantize_options cpu;    // threads (CPU path), allow_missing_imatrix and progress (both paths)
  int64_t rows_per_imatrix = 0;  // fused expert tensor [E, R, n_per_row]: R, with E imatrix vectors of
                                 // n_per_row (rows [e*R, (e+1)*R) use imatrix + e*n_per_row); 0: one vector
  bool allow_gpu = true;         // false: always the CPU
  int device = 0;                // CUDA device index
};
struct quantize_auto_result {
  size_t bytes = 0;              // written, nrows * row_size(t, n_per_row)
  bool gpu = false;              // true when the GPU packer wrote them
  std::string cpu_reason;        // why the CPU ran ("no CUDA device", "q4_0 has no GPU packer", a GPU error)
};

// ggml::quantize_tensor_grouped with the GPU packer (razor::cu::ggml_quantize_host) when razor::cu::devices()
// is non-empty and the type is one it implements (the type table's `gpu` column), else on the CPU. A GPU
// failure other than cancellation falls back to the CPU. Same checks and errors as quantize_tensor_grouped;
// src is F32 (this overload) or BF16 (the next).
result<quantize_auto_result> quantize_tensor_auto(ggml::type t, const float* src, void* dst, size_t dst_size,
                                                  int64_t nrows, int64_t n_per_row, const float* imatrix,
                                                  const quantize_auto_options& options = {});
result<quantize_auto_result> quantize_tensor_auto(ggml::type t, const uint16_t* src_bf16, void* dst,
                                                  size_t dst_size, int64_t nrows, int64_t n_per_row,
                                                  const float* imatrix, const quantize_auto_options& options = {});

}  // namespace razor::quant
