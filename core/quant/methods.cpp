// LOCAL STUB (see methods.h). Deleted when qalgo is merged.
#include "quant/methods.h"

#include <algorithm>
#include <cmath>

#include "quant/fake_quant.h"

namespace razor::quant {

namespace {
struct row { quant_method m; const char* name; bool tokens; };
constexpr row kMethods[] = {{quant_method::clip, "clip", false},   {quant_method::absmax, "absmax", false},
                            {quant_method::rtn_asym, "rtn-asym", false}, {quant_method::awq, "awq", true},
                            {quant_method::gptq, "gptq", true},    {quant_method::hqq, "hqq", false}};
}  // namespace

result<quant_method> parse_quant_method(std::string_view name) {
  for (auto& r : kMethods)
    if (name == r.name) return r.m;
  return make_error(errc::invalid_argument, "unknown quantization method '" + std::string(name) + "'");
}
std::string_view quant_method_name(quant_method m) {
  for (auto& r : kMethods)
    if (r.m == m) return r.name;
  return "?";
}
bool quant_method_needs_tokens(quant_method m) {
  for (auto& r : kMethods)
    if (r.m == m) return r.tokens;
  return false;
}

result<std::vector<float>> fake_quant_method(quant_method m, const float* w, int64_t rows, int64_t cols,
                                             const calib_view& tokens, const method_options& o, method_report* rep) {
  std::vector<float> out(size_t(rows * cols));
  if (m == quant_method::clip || m == quant_method::absmax) {
    fq_params p{float(o.bits), int(o.group), m == quant_method::clip ? 16 : 0};
    RAZOR_TRY(fake_quant(w, elem_type::f32, out.data(), elem_type::f32, size_t(rows), size_t(cols), p));
    return out;
  }
  const int64_t g = (o.group > 0 && cols % o.group == 0) ? o.group : cols;
  const float levels = float((1 << o.bits) - 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < cols; c0 += g) {
      const float* x = w + r * cols + c0;
      float lo = x[0], hi = x[0];
      for (int64_t i = 0; i < g; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
      const float s = std::max(hi - lo, 1e-8f) / levels;
      const float z = std::nearbyint(-lo / s);
      for (int64_t i = 0; i < g; ++i) {
        const float q = std::clamp(std::nearbyint(x[i] / s) + z, 0.0f, levels);
        out[size_t(r * cols + c0 + i)] = (q - z) * s;
      }
    }
  if (rep && m != quant_method::rtn_asym) rep->fallback = "stub";
  return out;
}

double output_nmse(const float* w, const float* wq, int64_t rows, int64_t cols, const calib_view& t) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < t.n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      double a = 0, b = 0;
      for (int64_t c = 0; c < cols; ++c) {
        a += double(t.x[i * cols + c]) * w[r * cols + c];
        b += double(t.x[i * cols + c]) * wq[r * cols + c];
      }
      num += (b - a) * (b - a);
      den += a * a;
    }
  return den > 0 ? num / den : 0.0;
}

}  // namespace razor::quant
