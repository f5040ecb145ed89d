// CUDA fake-quant, host side (API: kernels/include/kernels/fake_quant_cuda.h): device and host buffers (host
// tensors stream through common/staging.cuh) and the benchmark's timing helper. Kernels: kernels.cu.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "common/cuda_check.cuh"
#include "common/staging.cuh"
#include "common/timing.cuh"
#include "fake_quant.cuh"

namespace razor::cu {
namespace {

void to_stats(const dacc& a, fq_device_stats* s) {
  s->groups = a.groups;
  s->sq_err = a.sq_err;
  s->sq_ref = a.sq_ref;
  s->sum_checksum = a.checksum;
  for (int i = 0; i < kFqMaxRatios; ++i) s->hist[i] = a.hist[i];
}

}  // namespace

status fake_quant_bf16_device(const uint16_t* d_in, uint16_t* d_out, size_t rows, size_t cols,
                              const fq_kernel_params& p, fq_device_stats* stats, void* stream) {
  RAZOR_TRY(fq_check_params(p, cols));
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  dacc* acc = nullptr;
  if (stats) {
    RZ_CU(cudaMalloc(&acc, sizeof(dacc)), "cudaMalloc");
    cudaMemsetAsync(acc, 0, sizeof(dacc), st);
  }
  status s = fq_launch(d_in, d_out, rows, cols, p, acc, st);
  if (stats) {
    dacc h{};
    cudaError_t e = s.ok() ? cudaMemcpyAsync(&h, acc, sizeof h, cudaMemcpyDeviceToHost, st) : cudaSuccess;
    if (e == cudaSuccess && s.ok()) e = cudaStreamSynchronize(st);
    cudaFree(acc);
    if (s.ok() && e != cudaSuccess) return cuda_error(e, "fake-quant stats");
    if (s.ok()) {
      *stats = fq_device_stats{};
      to_stats(h, stats);
    }
  }
  return s;
}

status fake_quant_bf16_host(const uint16_t* in, uint16_t* out, size_t rows, size_t cols,
                            const fq_kernel_params& p, fq_device_stats* stats, const progress_fn& progress,
                            int device, size_t chunk_bytes) {
  RAZOR_TRY(fq_check_params(p, cols));
  if (rows == 0 || cols == 0) return status::success();
  RZ_CU(cudaSetDevice(device), "cudaSetDevice");
  if (is_device_ptr(in) && is_device_ptr(out)) {
    RAZOR_TRY(fake_quant_bf16_device(in, out, rows, cols, p, stats, nullptr));
    return status::success();
  }
  device_ptr<dacc> acc;
  if (stats) {
    RZ_CU(cudaMalloc(&acc.p, sizeof(dacc)), "cudaMalloc");
    RZ_CU(cudaMemset(acc.p, 0, sizeof(dacc)), "cudaMemset");
    RZ_CU(cudaDeviceSynchronize(), "cudaMemset");  // the chunk streams are non-blocking: order it first
  }
  stream_job job;
  job.src = in;
  job.dst = out;
  job.rows = rows;
  job.in_row = job.out_row = cols * 2;
  job.chunk_bytes = chunk_bytes;
  job.what = "fake-quant (GPU)";
  job.progress = progress;
  job.kernel = [&](size_t, size_t nr, const void* d_in, void* d_out, cudaStream_t st) {
    return fq_launch(static_cast<const uint16_t*>(d_in), static_cast<uint16_t*>(d_out), nr, cols, p, acc.p, st);
  };
  RAZOR_TRY(stream_rows(job));
  if (stats) {
    dacc h{};
    RZ_CU(cudaMemcpy(&h, acc.p, sizeof h, cudaMemcpyDeviceToHost), "stats");
    *stats = fq_device_stats{};
    to_stats(h, stats);
  }
  return status::success();
}

result<fq_bench_result> fake_quant_bench(const fq_bench_request& q, bool time_host_stream) {
  RAZOR_TRY(fq_check_params(q.params, q.cols));
  fq_bench_result res;
  int dev = 0;
  RAZOR_ASSIGN_OR_RETURN(res.device_name, current_device(&dev));
  const size_t bytes = q.rows * q.cols * 2;
  struct bufs {
    uint16_t *a = nullptr, *b = nullptr;
    ~bufs() {
      cudaFree(a);
      cudaFree(b);
    }
  } B;
  RZ_CU(cudaMalloc(&B.a, bytes), "cudaMalloc (bench in)");
  RZ_CU(cudaMalloc(&B.b, bytes), "cudaMalloc (bench out)");
  RZ_CU(cudaMemcpy(B.a, q.host_in, bytes, cudaMemcpyHostToDevice), "upload");
  RZ_CU(cudaMemset(B.b, 0xff, bytes), "poison");  // every element must be written

  RAZOR_ASSIGN_OR_RETURN(
      auto kms, time_runs([&] { return fq_launch(B.a, B.b, q.rows, q.cols, q.params, nullptr, nullptr, q.legacy_kernel); },
                          q.warmup, q.iters));
  if (q.host_out) RZ_CU(cudaMemcpy(q.host_out, B.b, bytes, cudaMemcpyDeviceToHost), "download");
  RAZOR_ASSIGN_OR_RETURN(auto cms, time_runs(
                                       [&]() -> status {
                                         RZ_CU(cudaMemcpyAsync(B.b, B.a, bytes, cudaMemcpyDeviceToDevice, nullptr), "D2D");
                                         return status::success();
                                       },
                                       q.warmup, std::max(3, q.iters)));
  res.kernel_ms_median = kms[kms.size() / 2];
  res.kernel_ms_min = kms.front();
  res.kernel_ms_max = kms.back();
  res.d2d_ms_median = cms[cms.size() / 2];
  res.d2d_gbps = 2.0 * double(bytes) / (res.d2d_ms_median * 1e-3) / 1e9;
  res.floor_ms = 2.0 * double(bytes) / (res.d2d_gbps * 1e9) * 1e3;
  if (time_host_stream) {
    std::vector<uint16_t> tmp(q.rows * q.cols);
    const auto t0 = std::chrono::steady_clock::now();
    RAZOR_TRY(fake_quant_bf16_host(q.host_in, tmp.data(), q.rows, q.cols, q.params, nullptr, {}, dev));
    res.stream_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  return res;
}

}  // namespace razor::cu
