// Host-only view of the CUDA ggml packer (no cuda_runtime.h here): quantizes F32 or BF16 rows into ggml
// blocks on the GPU, byte for byte what razor::ggml::quantize_rows_reference writes for the widened
// float rows (core/ggml/quants.h; the CPU implementation is the ground truth, house style 1).
//
// Types: the rows of the type table with `gpu` set (ggml/types.h; ggml_quant_supported): q8_0, q2_K..q6_K,
// iq3_xxs. Importance weights: one vector of n_per_row floats shared by `rows_per_weight` consecutive rows
// (a fused expert tensor [E, rows, cols] has rows_per_weight = rows and E vectors); rows_per_weight = 0
// means one vector for all rows; null weights select ggml's `_ref` paths exactly as on the CPU.
//
// Byte identity rests on the same float32 operations in the same order as the CPU code: the .cu is
// built with --fmad=false (no FMA contraction; CMakeLists.txt), IEEE division and square root
// (nvcc's defaults -prec-div=true -prec-sqrt=true), denormals kept (no -ftz), ggml's nearest_int and
// our integer fp16 rounding ported verbatim. Work split: one thread per sub-block (16 or 32 elements),
// the 8 or 16 threads of a super-block in one warp; super-block sums are computed in the CPU's order.
//
// In a build without CUDA every entry returns errc::device "built without CUDA" (kernels/no_cuda.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "ggml/types.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor::cu {

enum class gq_src : int { f32 = 0, bf16 = 1 };

// True for the block types the GPU packer implements.
bool ggml_quant_supported(ggml::type t);

// Device buffers. d_src: nrows x n_per_row elements of src_type; d_dst: nrows * row_size(t, n_per_row)
// bytes; d_weights: device floats (see above) or null. Row r of this call uses weight vector
// (row_offset + r) / rows_per_weight, so a caller streaming a fused tensor in chunks passes the chunk's
// first row. Asynchronous on `stream` (a cudaStream_t, or null for the legacy default stream).
// Errors: invalid_argument (type, row length not a multiple of the block), device (CUDA failure).
status ggml_quantize_device(ggml::type t, gq_src src_type, const void* d_src, void* d_dst, int64_t nrows,
                            int64_t n_per_row, const float* d_weights, int64_t rows_per_weight,
                            int64_t row_offset = 0, void* stream = nullptr);

// Host buffers of any size (pageable or pinned; pinned ones skip the staging copy): rows are streamed in
// chunks of about chunk_bytes of input through two pinned staging buffers and two streams (the upload of
// chunk k+1 and the download of chunk k-1 overlap the kernel on chunk k). weights: host floats,
// ceil(nrows / rows_per_weight) vectors (one when rows_per_weight is 0), uploaded once. progress:
// done/total rows, called once per chunk from this thread; false cancels (errc::cancelled). Returns the
// bytes written (nrows * row_size). dst_size must be at least that.
result<size_t> ggml_quantize_host(ggml::type t, gq_src src_type, const void* src, void* dst, size_t dst_size,
                                  int64_t nrows, int64_t n_per_row, const float* weights,
                                  int64_t rows_per_weight, const progress_fn& progress = {}, int device = 0,
                                  size_t chunk_bytes = size_t(64) << 20);

// Page-locked host memory for callers that keep a tensor resident for the end-to-end path (the bench).
// Null on failure.
void* pinned_alloc(size_t bytes);
void pinned_free(void* p);

// Timing helper for bench/bench_ggml_cuda.cpp (keeps CUDA out of the benchmark's own TU).
struct gq_bench_request {
  ggml::type type = ggml::type::q4_k;
  gq_src src_type = gq_src::bf16;
  const void* host_src = nullptr;   // nrows x n_per_row, uploaded once for the device timing
  int64_t nrows = 0, n_per_row = 0;
  const float* host_weights = nullptr;
  int64_t rows_per_weight = 0;
  int warmup = 1, iters = 5;        // device timing: events around one launch over the whole tensor
  int e2e_iters = 0;                // >0: also time ggml_quantize_host from host_src (median)
  void* host_dst = nullptr;         // optional: the device result (nrows * row_size bytes) is copied here
};
struct gq_bench_result {
  double kernel_ms_median = 0, kernel_ms_min = 0, kernel_ms_max = 0;
  double e2e_ms_median = 0;         // host -> packed host bytes, wall clock
  std::string device_name;
};
result<gq_bench_result> ggml_quant_bench(const gq_bench_request& req);

}  // namespace razor::cu
