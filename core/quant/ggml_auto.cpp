#include "quant/ggml_auto.h"

#include <type_traits>

#include "kernels/cuda_info.h"
#include "kernels/ggml_quant_cuda.h"

namespace razor::quant {

namespace {

template <class Src>
result<quantize_auto_result> auto_quantize(ggml::type t, const Src* src, void* dst, size_t dst_size, int64_t nrows,
                                           int64_t n_per_row, const float* imatrix, const quantize_auto_options& o) {
  RAZOR_TRY(ggml::check_tensor_args(t, nrows, n_per_row, imatrix, o.rows_per_imatrix, dst_size,
                                    o.cpu.allow_missing_imatrix));
  quantize_auto_result res;
  if (!o.allow_gpu) {
    res.cpu_reason = "GPU not allowed by the caller";
  } else {
    std::string why;
    if (cu::devices(&why).empty()) {
      res.cpu_reason = why.empty() ? "no CUDA device" : why;
    } else if (!ggml::info(t).gpu) {
      res.cpu_reason = std::string(ggml::type_name(t)) + " has no GPU packer";
    } else {
      const cu::gq_src st = std::is_same_v<Src, float> ? cu::gq_src::f32 : cu::gq_src::bf16;
      auto r = cu::ggml_quantize_host(t, st, src, dst, dst_size, nrows, n_per_row, imatrix,
                                      imatrix ? o.rows_per_imatrix : 0, o.cpu.progress, o.device);
      if (r) {
        res.bytes = *r;
        res.gpu = true;
        return res;
      }
      if (r.error().code() == errc::cancelled) return r.error();
      res.cpu_reason = r.error().message();
    }
  }
  RAZOR_ASSIGN_OR_RETURN(res.bytes, ggml::quantize_tensor_grouped(t, src, dst, dst_size, nrows, n_per_row, imatrix,
                                                                  o.rows_per_imatrix, o.cpu));
  return res;
}

}  // namespace

result<quantize_auto_result> quantize_tensor_auto(ggml::type t, const float* src, void* dst, size_t dst_size,
                                                  int64_t nrows, int64_t n_per_row, const float* imatrix,
                                                  const quantize_auto_options& options) {
  return auto_quantize(t, src, dst, dst_size, nrows, n_per_row, imatrix, options);
}

result<quantize_auto_result> quantize_tensor_auto(ggml::type t, const uint16_t* src_bf16, void* dst,
                                                  size_t dst_size, int64_t nrows, int64_t n_per_row,
                                                  const float* imatrix, const quantize_auto_options& options) {
  return auto_quantize(t, src_bf16, dst, dst_size, nrows, n_per_row, imatrix, options);
}

}  // namespace razor::quant
