#include "common/staging.cuh"

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>

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

namespace {

// Two staging slots (pinned host chunks where needed, device chunks, a stream each), kept between calls: a
// caller that streams many tensors (the GGUF pack: thousands a model) pays the page-locked allocations once.
struct staging_set {
  int device = -1;
  size_t in_cap = 0, out_cap = 0;  // bytes per slot
  bool pinned_in = false, pinned_out = false;
  void* pin_in[2] = {nullptr, nullptr};
  void* pin_out[2] = {nullptr, nullptr};
  void* d_in[2] = {nullptr, nullptr};
  void* d_out[2] = {nullptr, nullptr};
  cudaStream_t st[2] = {nullptr, nullptr};

  ~staging_set() { release(); }
  void release() {
    for (int i = 0; i < 2; ++i) {
      if (st[i]) cudaStreamSynchronize(st[i]);
      if (st[i]) cudaStreamDestroy(st[i]);
      if (pin_in[i]) cudaFreeHost(pin_in[i]);
      if (pin_out[i]) cudaFreeHost(pin_out[i]);
      if (d_in[i]) cudaFree(d_in[i]);
      if (d_out[i]) cudaFree(d_out[i]);
      st[i] = nullptr;
      pin_in[i] = pin_out[i] = d_in[i] = d_out[i] = nullptr;
    }
    in_cap = out_cap = 0;
    device = -1;
  }
  // Slots of at least in_bytes / out_bytes on the current device, with the host chunks the job needs.
  status reserve(size_t in_bytes, size_t out_bytes, bool need_pin_in, bool need_pin_out) {
    int dev = 0;
    RZ_CU(cudaGetDevice(&dev), "cudaGetDevice");
    if (dev != device || in_bytes > in_cap || out_bytes > out_cap || (need_pin_in && !pinned_in) ||
        (need_pin_out && !pinned_out)) {
      in_bytes = std::max(in_bytes, in_cap);  // never smaller than before: callers alternate sizes
      out_bytes = std::max(out_bytes, out_cap);
      release();
      for (int i = 0; i < 2; ++i) {
        if (need_pin_in) RZ_CU(cudaHostAlloc(&pin_in[i], in_bytes, cudaHostAllocDefault), "cudaHostAlloc");
        if (need_pin_out) RZ_CU(cudaHostAlloc(&pin_out[i], out_bytes, cudaHostAllocDefault), "cudaHostAlloc");
        RZ_CU(cudaMalloc(&d_in[i], in_bytes), "cudaMalloc (chunk in)");
        RZ_CU(cudaMalloc(&d_out[i], out_bytes), "cudaMalloc (chunk out)");
        RZ_CU(cudaStreamCreateWithFlags(&st[i], cudaStreamNonBlocking), "cudaStreamCreate");
      }
      device = dev;
      in_cap = in_bytes;
      out_cap = out_bytes;
      pinned_in = need_pin_in;
      pinned_out = need_pin_out;
    }
    return status::success();
  }
};

// One idle set for the process; a second concurrent caller gets a set of its own, freed when it is done.
// Never destroyed: at exit the CUDA runtime may already be gone, and the driver frees the memory anyway.
std::mutex idle_mu;
staging_set* idle_set = nullptr;

struct staging_lease {
  std::unique_ptr<staging_set> s;
  bool healthy = false;  // returned to the cache only after a stream that ended without error
  staging_lease() {
    std::lock_guard lk(idle_mu);
    s.reset(idle_set ? idle_set : new staging_set());
    idle_set = nullptr;
  }
  ~staging_lease() {
    if (!healthy) return;  // destroyed: synchronizes and frees
    std::lock_guard lk(idle_mu);
    if (!idle_set) idle_set = s.release();
  }
};

}  // namespace

status stream_rows(const stream_job& j) {
  if (j.rows == 0) return status::success();
  const bool src_pinned = is_pinned_ptr(j.src), dst_pinned = is_pinned_ptr(j.dst);
  const size_t chunk_rows = std::max<size_t>(1, std::min(j.rows, j.chunk_bytes / std::max<size_t>(1, j.in_row)));
  const size_t nchunks = (j.rows + chunk_rows - 1) / chunk_rows;
  staging_lease lease;
  staging_set& r = *lease.s;
  RAZOR_TRY(r.reserve(chunk_rows * j.in_row, chunk_rows * j.out_row, !src_pinned, !dst_pinned));
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
  lease.healthy = true;
  return status::success();
}

}  // namespace razor::cu
