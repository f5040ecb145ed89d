#include "common/staging.cuh"

#include <algorithm>
#include <cstring>

#include "common/cuda_check.cuh"
#include "util/parallel.h"

namespace razor::cu {

namespace {
bool pointer_type_is(const void* p, bool device) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return device ? (a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged) : a.type == cudaMemoryTypeHost;
}
}  // namespace

bool is_device_ptr(const void* p) { return pointer_type_is(p, true); }
bool is_pinned_ptr(const void* p) { return pointer_type_is(p, false); }

void par_copy(void* dst, const void* src, size_t bytes) {
  const size_t block = size_t(4) << 20;
  const size_t nb = (bytes + block - 1) / block;
  razor::parallel_for(nb, [&](size_t b0, size_t b1) {
    for (size_t b = b0; b < b1; ++b) {
      const size_t o = b * block;
      std::memcpy(static_cast<char*>(dst) + o, static_cast<const char*>(src) + o, std::min(block, bytes - o));
    }
  });
}

int sm_count() {
  static const int sms = [] {
    int dev = 0, v = 0;
    if (cudaGetDevice(&dev) == cudaSuccess) cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev);
    cudaGetLastError();
    return v > 0 ? v : 132;
  }();
  return sms;
}

status stream_rows(const stream_job& j) {
  if (j.rows == 0) return status::success();
  const bool src_pinned = is_pinned_ptr(j.src), dst_pinned = is_pinned_ptr(j.dst);
  const size_t chunk_rows = std::max<size_t>(1, std::min(j.rows, j.chunk_bytes / std::max<size_t>(1, j.in_row)));
  const size_t nchunks = (j.rows + chunk_rows - 1) / chunk_rows;
  const int nslots = nchunks > 1 ? 2 : 1;
  struct slots_t {
    void* pin_in[2] = {nullptr, nullptr};
    void* pin_out[2] = {nullptr, nullptr};
    void* d_in[2] = {nullptr, nullptr};
    void* d_out[2] = {nullptr, nullptr};
    cudaStream_t st[2] = {nullptr, nullptr};
    ~slots_t() {
      for (int i = 0; i < 2; ++i) {
        if (st[i]) cudaStreamSynchronize(st[i]);
        if (st[i]) cudaStreamDestroy(st[i]);
        if (pin_in[i]) cudaFreeHost(pin_in[i]);
        if (pin_out[i]) cudaFreeHost(pin_out[i]);
        if (d_in[i]) cudaFree(d_in[i]);
        if (d_out[i]) cudaFree(d_out[i]);
      }
    }
  } r;
  for (int i = 0; i < nslots; ++i) {
    if (!src_pinned) RZ_CU(cudaHostAlloc(&r.pin_in[i], chunk_rows * j.in_row, cudaHostAllocDefault), "cudaHostAlloc");
    if (!dst_pinned) RZ_CU(cudaHostAlloc(&r.pin_out[i], chunk_rows * j.out_row, cudaHostAllocDefault), "cudaHostAlloc");
    RZ_CU(cudaMalloc(&r.d_in[i], chunk_rows * j.in_row), "cudaMalloc (chunk in)");
    RZ_CU(cudaMalloc(&r.d_out[i], chunk_rows * j.out_row), "cudaMalloc (chunk out)");
    RZ_CU(cudaStreamCreateWithFlags(&r.st[i], cudaStreamNonBlocking), "cudaStreamCreate");
  }
  const auto* in = static_cast<const uint8_t*>(j.src);
  auto* out = static_cast<uint8_t*>(j.dst);
  auto rows_of = [&](size_t k) { return std::min(chunk_rows, j.rows - k * chunk_rows); };
  size_t done_rows = 0;
  auto finish = [&](size_t k) -> status {  // wait for chunk k, move its bytes out, report
    const int slot = int(k % 2);
    RZ_CU(cudaStreamSynchronize(r.st[slot]), j.what);
    if (!dst_pinned) par_copy(out + k * chunk_rows * j.out_row, r.pin_out[slot], rows_of(k) * j.out_row);
    done_rows += rows_of(k);
    if (j.progress && !j.progress(double(done_rows), double(j.rows), j.what))
      return make_error(errc::cancelled, std::string(j.what) + " cancelled after " + std::to_string(done_rows) +
                                             " of " + std::to_string(j.rows) + " rows");
    return status::success();
  };
  for (size_t k = 0; k < nchunks; ++k) {
    const int slot = int(k % 2);
    if (k >= 2) RAZOR_TRY(finish(k - 2));
    const size_t nr = rows_of(k);
    const uint8_t* h_in = in + k * chunk_rows * j.in_row;
    if (!src_pinned) {
      par_copy(r.pin_in[slot], h_in, nr * j.in_row);
      h_in = static_cast<const uint8_t*>(r.pin_in[slot]);
    }
    RZ_CU(cudaMemcpyAsync(r.d_in[slot], h_in, nr * j.in_row, cudaMemcpyHostToDevice, r.st[slot]), "H2D");
    RAZOR_TRY(j.kernel(k * chunk_rows, nr, r.d_in[slot], r.d_out[slot], r.st[slot]));
    void* h_out = dst_pinned ? static_cast<void*>(out + k * chunk_rows * j.out_row) : r.pin_out[slot];
    RZ_CU(cudaMemcpyAsync(h_out, r.d_out[slot], nr * j.out_row, cudaMemcpyDeviceToHost, r.st[slot]), "D2H");
  }
  for (size_t k = nchunks >= 2 ? nchunks - 2 : 0; k < nchunks; ++k) RAZOR_TRY(finish(k));
  return status::success();
}

}  // namespace razor::cu
