// Host <-> device streaming shared by the kernels' host entry points (fake-quant, the ggml packer): rows of a
// host tensor of any size go through two pinned staging slots and two streams, so that the upload of chunk
// k+1 and the download of chunk k-1 overlap the kernel on chunk k; pinned sources or destinations skip
// their staging copy. Also the pointer-kind queries and the multithreaded pageable <-> pinned copy.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <functional>
#include <string>

#include "util/parallel.h"
#include "util/status.h"

namespace razor::cu {

bool is_device_ptr(const void* p);  // device or managed memory
bool is_pinned_ptr(const void* p);  // page-locked host memory
// memcpy spread over threads (razor::parallel_for), for pageable <-> pinned copies of many MB.
void par_copy(void* dst, const void* src, size_t bytes);
// Streaming multiprocessors of the current device (cached; 132 when the query fails).
int sm_count();

struct stream_job {
  const void* src = nullptr;  // rows * in_row bytes of host memory
  void* dst = nullptr;        // rows * out_row bytes of host memory
  size_t rows = 0, in_row = 0, out_row = 0;
  size_t chunk_bytes = size_t(64) << 20;  // input bytes per chunk (at least one row)
  const char* what = "GPU";               // names the work in errors and progress
  // Runs the kernel on rows [row0, row0 + nrows) staged at d_in, writing d_out, asynchronously on `stream`.
  std::function<status(size_t row0, size_t nrows, const void* d_in, void* d_out, cudaStream_t stream)> kernel;
  progress_fn progress;  // done / total rows after each chunk is back; false cancels (errc::cancelled)
};

// Streams job.rows rows through the kernel (see above). Errors: device (CUDA), the kernel's, cancelled.
status stream_rows(const stream_job& job);

}  // namespace razor::cu
