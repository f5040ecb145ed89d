// The CPU-only build: the same host API as kernels/*.cu, answering "no GPU".
#include "kernels/cuda_info.h"
#include "kernels/fake_quant_cuda.h"
#include "kernels/ggml_quant_cuda.h"

namespace razor::cu {

bool built_with_cuda() { return false; }

std::vector<device_info> devices(std::string* why_none) {
  if (why_none) *why_none = "built without CUDA";
  return {};
}

status fake_quant_bf16_device(const uint16_t*, uint16_t*, size_t, size_t, const fq_kernel_params&,
                              fq_device_stats*, void*) {
  return make_error(errc::device, "built without CUDA");
}

status fake_quant_bf16_host(const uint16_t*, uint16_t*, size_t, size_t, const fq_kernel_params&,
                            fq_device_stats*, const progress_fn&, int, size_t) {
  return make_error(errc::device, "built without CUDA");
}

result<fq_bench_result> fake_quant_bench(const fq_bench_request&, bool) {
  return make_error(errc::device, "built without CUDA");
}

bool ggml_quant_supported(ggml::type) { return false; }

status ggml_quantize_device(ggml::type, gq_src, const void*, void*, int64_t, int64_t, const float*, int64_t, int64_t,
                            void*) {
  return make_error(errc::device, "built without CUDA");
}

result<size_t> ggml_quantize_host(ggml::type, gq_src, const void*, void*, size_t, int64_t, int64_t, const float*,
                                  int64_t, const progress_fn&, int, size_t) {
  return make_error(errc::device, "built without CUDA");
}

void* pinned_alloc(size_t) { return nullptr; }
void pinned_free(void*) {}

result<gq_bench_result> ggml_quant_bench(const gq_bench_request&) {
  return make_error(errc::device, "built without CUDA");
}

}  // namespace razor::cu
