// Host-only view of the CUDA fake-quant kernel (no cuda_runtime.h here). The arithmetic, including the
// lane16 sum order, is the one documented in core/quant/fake_quant.h; the kernel is tested bit for bit
// against razor::quant::fake_quant_rows_ref. In a build without CUDA every entry returns errc::device
// "built without CUDA". Callers normally go through razor::quant (make_plan, fake_quant_bf16_auto), which
// fills fq_kernel_params.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "util/parallel.h"
#include "util/status.h"

namespace razor::cu {

inline constexpr int kFqMaxRatios = 32;

enum class fq_kind : int { identity = 0, integer = 1, ternary = 2 };

// How w/scale is obtained; both give the correctly rounded float32 quotient's rint, i.e. identical results.
//   exact_div: __fdiv_rn per element.
//   rcp_check: y = w * rcp_rn(scale); rint(y) is used unless y lies within a proven error bound of a
//              half-integer, in which case the element falls back to __fdiv_rn (rare, and exact).
enum class fq_div_mode : int { exact_div = 0, rcp_check = 1 };

struct fq_kernel_params {
  fq_kind kind = fq_kind::integer;
  float qmax = 3;
  size_t group_len = 128;  // elements per group; must divide cols
  int n_ratios = 1;        // 1..32 (integer mode)
  float ratios[kFqMaxRatios] = {1.0f};
  fq_div_mode div_mode = fq_div_mode::rcp_check;
};

struct fq_device_stats {
  uint64_t groups = 0;
  double sq_err = 0;  // sum (out_bf16 - w)^2, double, order not fixed
  double sq_ref = 0;  // sum w^2
  uint64_t hist[kFqMaxRatios] = {};
  uint64_t sum_checksum = 0;  // as razor::quant::fq_stats::sum_checksum (exact; a NaN sum counts as 0x7fc00000)
};

// d_in/d_out: device BF16 buffers of rows*cols (may alias exactly). stream: a cudaStream_t or null
// (the legacy default stream). Synchronous when stats is non-null (they are read back), else asynchronous
// on the stream. errc::invalid_argument for bad params, errc::device for any CUDA failure.
status fake_quant_bf16_device(const uint16_t* d_in, uint16_t* d_out, size_t rows, size_t cols,
                              const fq_kernel_params& p, fq_device_stats* stats = nullptr,
                              void* stream = nullptr);

// Host BF16 buffers of any size: rows are streamed in chunks of at most chunk_bytes through two pinned
// staging buffers and two streams (copy-in of chunk k+1 and copy-out of chunk k-1 overlap the kernel on
// chunk k), so a 6.4 GB expert tensor never has to fit the GPU at once. Device pointers are accepted too
// (detected with cudaPointerGetAttributes) and go straight to fake_quant_bf16_device. progress: done/total
// in rows, checked once per chunk; false cancels (errc::cancelled).
status fake_quant_bf16_host(const uint16_t* in, uint16_t* out, size_t rows, size_t cols,
                            const fq_kernel_params& p, fq_device_stats* stats = nullptr,
                            const progress_fn& progress = {}, int device = 0, size_t chunk_bytes = 64u << 20);

// Timing helper for bench/bench_fake_quant.cpp (keeps CUDA out of the benchmark's own TU).
struct fq_bench_request {
  const uint16_t* host_in = nullptr;  // rows*cols BF16 uploaded once
  size_t rows = 0, cols = 0;
  fq_kernel_params params;
  int warmup = 2;
  int iters = 5;
  uint16_t* host_out = nullptr;       // optional: the output of the last timed run is downloaded here
  // time the previous kernel (half-warp teams, kept as the generic path for other group lengths) instead of
  // the 8-thread-team kernel that group lengths 32/64/128/256 use: before/after on the same card and run
  bool legacy_kernel = false;
};
struct fq_bench_result {
  double kernel_ms_median = 0, kernel_ms_min = 0, kernel_ms_max = 0;
  double d2d_ms_median = 0;         // cudaMemcpy device-to-device of rows*cols*2 bytes, same run
  double d2d_gbps = 0;              // (bytes read + bytes written) / time
  double floor_ms = 0;              // (in + out bytes) / d2d_gbps
  double stream_ms = 0;             // fake_quant_bf16_host on the same tensor from pageable memory, once
  std::string device_name;
};
result<fq_bench_result> fake_quant_bench(const fq_bench_request& req, bool time_host_stream = false);

}  // namespace razor::cu
