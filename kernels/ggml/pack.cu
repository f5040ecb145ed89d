// The CUDA ggml packer's host side (API and contract: kernels/include/kernels/ggml_quant_cuda.h): the
// argument checks, the dispatch from the type table to the type families' launchers (q8_0.cu, k_quants.cu,
// iq3_xxs.cu), the streaming of host tensors (common/staging.cuh) and the timing helper of the benchmark.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "common/staging.cuh"
#include "common/timing.cuh"
#include "pack.cuh"

namespace razor::cu {

namespace gq {

int grid_limit() {
  static const int limit = sm_count() * 16;
  return limit;
}

namespace {

// One row per type with a GPU packer: the family launcher. Every type whose table row sets `gpu` has one
// (checked at compile time below), so the table is the one place that says which types the GPU packs.
using launch_fn = cudaError_t (*)(type, gq_src, const kargs&, cudaStream_t);
struct family_row {
  type t;
  launch_fn launch;
};
constexpr family_row kFamilies[] = {
    {type::q8_0, launch_q8_0},    {type::q2_k, launch_k_quants}, {type::q3_k, launch_k_quants},
    {type::q4_k, launch_k_quants}, {type::q5_k, launch_k_quants}, {type::q6_k, launch_k_quants},
    {type::iq3_xxs, launch_iq3_xxs},
};
constexpr launch_fn launcher(type t) {
  for (const auto& f : kFamilies)
    if (f.t == t) return f.launch;
  return nullptr;
}
constexpr bool families_match_table() {
  for (const auto& ti : ggml::type_table)
    if (ti.gpu != (launcher(ti.t) != nullptr)) return false;
  return true;
}
static_assert(families_match_table(), "kFamilies must list exactly the type table's gpu types");

status check_args(type t, int64_t nrows, int64_t n_per_row) {
  const ggml::type_info& ti = ggml::info(t);
  if (!ti.gpu)
    return make_error(errc::invalid_argument, "the GPU packer does not implement " + std::string(ti.name));
  if (n_per_row <= 0 || n_per_row % ti.block_size != 0)
    return make_error(errc::invalid_argument, "row length " + std::to_string(n_per_row) +
                                                  " is not a positive multiple of the block size " +
                                                  std::to_string(ti.block_size));
  if (nrows < 0) return make_error(errc::invalid_argument, "negative row count");
  return status::success();
}

status launch(type t, gq_src src_type, const void* d_src, void* d_dst, int64_t nrows, int64_t n_per_row,
              const float* d_w, int64_t rows_per_weight, int64_t row_offset, cudaStream_t st) {
  if (nrows == 0) return status::success();
  kargs a{};
  a.src = d_src;
  a.dst = static_cast<uint8_t*>(d_dst);
  a.w = d_w;
  a.nrows = nrows;
  a.n_per_row = n_per_row;
  a.rows_per_weight = rows_per_weight;
  a.row_offset = row_offset;
  a.nsb_row = n_per_row / ggml::info(t).block_size;
  a.nsb_total = a.nsb_row * nrows;
  a.vec_ok = (reinterpret_cast<uintptr_t>(d_src) % 16) == 0;
  if (d_w && reinterpret_cast<uintptr_t>(d_w) % 16 != 0)
    return make_error(errc::invalid_argument, "device weights must be 16-byte aligned");
  if (t == type::iq3_xxs) {
    int dev = 0;
    RZ_CU(cudaGetDevice(&dev), "cudaGetDevice");
    RAZOR_ASSIGN_OR_RETURN(a.tab, iq3_device_tables(dev));
  }
  RZ_CU(launcher(t)(t, src_type, a, st), "ggml quantize launch");
  return status::success();
}

}  // namespace
}  // namespace gq

using gq::check_args;
using gq::launch;

bool ggml_quant_supported(ggml::type t) { return ggml::info(t).gpu; }

status ggml_quantize_device(ggml::type t, gq_src src_type, const void* d_src, void* d_dst, int64_t nrows,
                            int64_t n_per_row, const float* d_weights, int64_t rows_per_weight,
                            int64_t row_offset, void* stream) {
  RAZOR_TRY(check_args(t, nrows, n_per_row));
  return launch(t, src_type, d_src, d_dst, nrows, n_per_row, d_weights, rows_per_weight, row_offset,
                static_cast<cudaStream_t>(stream));
}

result<size_t> ggml_quantize_host(ggml::type t, gq_src src_type, const void* src, void* dst, size_t dst_size,
                                  int64_t nrows, int64_t n_per_row, const float* weights,
                                  int64_t rows_per_weight, const progress_fn& progress, int device,
                                  size_t chunk_bytes) {
  RAZOR_TRY(check_args(t, nrows, n_per_row));
  const size_t out_row = ggml::row_size(t, n_per_row);
  const size_t total_out = size_t(nrows) * out_row;
  if (dst_size < total_out)
    return make_error(errc::invalid_argument, "destination holds " + std::to_string(dst_size) + " bytes, " +
                                                  std::to_string(total_out) + " needed");
  if (nrows == 0) return size_t(0);
  RZ_CU(cudaSetDevice(device), "cudaSetDevice");
  const size_t esz = src_type == gq_src::bf16 ? 2 : 4;
  const size_t n_vec =
      weights ? (rows_per_weight > 0 ? size_t((nrows + rows_per_weight - 1) / rows_per_weight) : 1) : 0;
  device_ptr<float> dw;
  if (n_vec) {
    const size_t wb = n_vec * size_t(n_per_row) * sizeof(float);
    RZ_CU(cudaMalloc(&dw.p, wb), "cudaMalloc (weights)");
    RZ_CU(cudaMemcpy(dw.p, weights, wb, cudaMemcpyHostToDevice), "upload weights");
  }
  if (is_device_ptr(src) && is_device_ptr(dst)) {
    RAZOR_TRY(launch(t, src_type, src, dst, nrows, n_per_row, dw.p, rows_per_weight, 0, nullptr));
    RZ_CU(cudaDeviceSynchronize(), "ggml quantize");
    if (progress && !progress(double(nrows), double(nrows), "ggml quantize (GPU)"))
      return make_error(errc::cancelled, "quantization cancelled");
    return total_out;
  }
  stream_job job;
  job.src = src;
  job.dst = dst;
  job.rows = size_t(nrows);
  job.in_row = size_t(n_per_row) * esz;
  job.out_row = out_row;
  job.chunk_bytes = chunk_bytes;
  job.what = "ggml quantize (GPU)";
  job.progress = progress;
  job.kernel = [&](size_t row0, size_t nr, const void* d_in, void* d_out, cudaStream_t st) {
    return launch(t, src_type, d_in, d_out, int64_t(nr), n_per_row, dw.p, rows_per_weight, int64_t(row0), st);
  };
  RAZOR_TRY(stream_rows(job));
  return total_out;
}

void* pinned_alloc(size_t bytes) {
  void* p = nullptr;
  if (cudaHostAlloc(&p, bytes, cudaHostAllocDefault) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return p;
}

void pinned_free(void* p) {
  if (p) cudaFreeHost(p);
}

result<gq_bench_result> ggml_quant_bench(const gq_bench_request& q) {
  RAZOR_TRY(check_args(q.type, q.nrows, q.n_per_row));
  gq_bench_result res;
  int dev = 0;
  RAZOR_ASSIGN_OR_RETURN(res.device_name, current_device(&dev));
  const size_t in_bytes = size_t(q.nrows) * size_t(q.n_per_row) * (q.src_type == gq_src::bf16 ? 2 : 4);
  const size_t out_bytes = size_t(q.nrows) * ggml::row_size(q.type, q.n_per_row);
  const size_t n_vec =
      q.host_weights ? (q.rows_per_weight > 0 ? size_t((q.nrows + q.rows_per_weight - 1) / q.rows_per_weight) : 1) : 0;
  struct bufs {
    void *in = nullptr, *out = nullptr;
    float* w = nullptr;
    void* pin_out = nullptr;
    ~bufs() {
      cudaFree(in);
      cudaFree(out);
      cudaFree(w);
      if (pin_out) cudaFreeHost(pin_out);
    }
  } B;
  RZ_CU(cudaMalloc(&B.in, in_bytes), "cudaMalloc (bench in)");
  RZ_CU(cudaMalloc(&B.out, out_bytes), "cudaMalloc (bench out)");
  if (n_vec) {
    RZ_CU(cudaMalloc(&B.w, n_vec * size_t(q.n_per_row) * 4), "cudaMalloc (bench weights)");
    RZ_CU(cudaMemcpy(B.w, q.host_weights, n_vec * size_t(q.n_per_row) * 4, cudaMemcpyHostToDevice), "upload w");
  }
  RZ_CU(cudaMemcpy(B.in, q.host_src, in_bytes, cudaMemcpyHostToDevice), "upload");
  RZ_CU(cudaMemset(B.out, 0xa5, out_bytes), "poison");
  if (q.type == ggml::type::iq3_xxs) {  // table upload outside the timing
    auto t = gq::iq3_device_tables(dev);
    if (!t) return t.error();
  }
  auto run = [&]() {
    return launch(q.type, q.src_type, B.in, B.out, q.nrows, q.n_per_row, B.w, q.rows_per_weight, 0, nullptr);
  };
  RAZOR_ASSIGN_OR_RETURN(auto ms, time_runs(run, q.warmup, q.iters));
  res.kernel_ms_median = ms[ms.size() / 2];
  res.kernel_ms_min = ms.front();
  res.kernel_ms_max = ms.back();
  if (q.host_dst) RZ_CU(cudaMemcpy(q.host_dst, B.out, out_bytes, cudaMemcpyDeviceToHost), "download");
  if (q.e2e_iters > 0) {
    RZ_CU(cudaHostAlloc(&B.pin_out, out_bytes, cudaHostAllocDefault), "cudaHostAlloc (bench out)");
    std::vector<double> e2e;
    for (int i = 0; i < q.e2e_iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      auto r = ggml_quantize_host(q.type, q.src_type, q.host_src, B.pin_out, out_bytes, q.nrows, q.n_per_row,
                                  q.host_weights, q.rows_per_weight, {}, dev);
      if (!r) return r.error();
      e2e.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(e2e.begin(), e2e.end());
    res.e2e_ms_median = e2e[e2e.size() / 2];
    if (q.host_dst && std::memcmp(q.host_dst, B.pin_out, out_bytes) != 0)
      return make_error(errc::internal, "streamed result differs from the device-resident result");
  }
  return res;
}

}  // namespace razor::cu
