// The CPU-only build: the same host API as kernels/*.cu, answering "no GPU".
#include "kernels/cuda_info.h"
#include "kernels/engine_cuda.h"
#include "kernels/fake_quant_cuda.h"
#include "kernels/ggml_quant_cuda.h"
#include "kernels/gptq_cuda.h"

namespace razor::cu {

bool built_with_cuda() { return false; }

std::vector<device_info> devices(std::string* why_none) {
  if (why_none) *why_none = "built without CUDA";
  return {};
}
result<double> pinned_h2d_gbps(size_t) { return make_error(errc::device, "built without CUDA"); }

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

// ---- engine_cuda.h: the GPU forward pass ----
struct gpu_engine::impl {};
gpu_engine::gpu_engine() = default;
gpu_engine::~gpu_engine() = default;
result<std::unique_ptr<gpu_engine>> gpu_engine::create(const eng_dims&, const eng_options&) {
  return make_error(errc::device, "built without CUDA");
}
status gpu_engine::set_hidden(const float*, const std::vector<size_t>&) { return make_error(errc::device, "built without CUDA"); }
status gpu_engine::get_hidden(float*) { return make_error(errc::device, "built without CUDA"); }
status gpu_engine::upload_layer(const eng_layer&, int) { return make_error(errc::device, "built without CUDA"); }
status gpu_engine::random_layer(bool, bool, bool, uint64_t, int) { return make_error(errc::device, "built without CUDA"); }
status gpu_engine::run_layer(int, eng_observations*) { return make_error(errc::device, "built without CUDA"); }
status gpu_engine::head(const float*, const eng_linear&, size_t, const std::function<bool(size_t, size_t, const float*)>&, int,
                        eng_observations*) {
  return make_error(errc::device, "built without CUDA");
}
status gpu_engine::synchronize() { return make_error(errc::device, "built without CUDA"); }
eng_stats gpu_engine::stats() const { return {}; }
std::vector<int32_t> gpu_engine::last_routing() const { return {}; }

status gptq_batch_host(const gptq_batch_shape&, int64_t, const float* const*, const float* const*, const int64_t*,
                       float* const*, gptq_expert_result*) {
  return make_error(errc::device, "built without CUDA");
}

}  // namespace razor::cu
