// The seed's fake-quant: its parameters and plan, and the scalar reference (ground truth for the fast CPU path
// in fake_quant.cpp and for the CUDA kernel; see fake_quant.h for the contract).
//
// Build note: this TU is compiled with -ffp-contract=off (CMakeLists.txt, set_source_files_properties), so
// no a*b+c is ever fused into an FMA; every float32 operation is one IEEE operation, as in torch.
#include "quant/fake_quant.h"

#include <atomic>
#include <bit>
#include <cfenv>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>

#include "util/numeric.h"
#include "quant/fake_quant_internal.h"

namespace razor::quant {

using namespace fq_detail;

// ------------------------------------------------------------------------------------------------
// parameters
// ------------------------------------------------------------------------------------------------

double fq_stats::rel_error() const { return sq_ref > 0 ? std::sqrt(sq_err / sq_ref) : 0.0; }

void fq_stats::merge(const fq_stats& o) {
  n += o.n;
  groups += o.groups;
  sq_err += o.sq_err;
  sq_ref += o.sq_ref;
  sum_checksum += o.sum_checksum;
  for (size_t i = 0; i < clip_hist.size(); ++i) clip_hist[i] += o.clip_hist[i];
}

size_t elem_size(elem_type t) { return t == elem_type::f32 ? 4 : 2; }

std::vector<float> linspace_f32(float start, float end, int steps) {
  std::vector<float> v;
  if (steps <= 0) return v;
  v.resize(size_t(steps));
  if (steps == 1) {
    v[0] = start;
    return v;
  }
  const float step = (end - start) / float(steps - 1);
  const int halfway = steps / 2;
  for (int i = 0; i < steps; ++i) {
    v[size_t(i)] = i < halfway ? start + step * float(i) : end - step * float(steps - i - 1);
  }
  return v;
}

std::vector<float> clip_ratios(int steps) { return linspace_f32(kClipHi, kClipLo, steps); }

result<fq_plan> make_plan(const fq_params& p, size_t cols) {
  fq_plan pl;
  if (p.group < 0) return make_error(errc::invalid_argument, "fake-quant group must be >= 0 (0 = whole row)");
  if (p.clip_steps < 0 || p.clip_steps > kMaxClipSteps)
    return make_error(errc::invalid_argument, "fake-quant clip_steps must be in [0, 32]");
  if (!(p.tag == p.tag)) return make_error(errc::invalid_argument, "fake-quant tag is NaN");
  pl.group_len = (p.group > 0 && cols % size_t(p.group) == 0) ? size_t(p.group) : cols;
  if (p.tag >= 16.0f) {
    pl.mode = fq_mode::identity;
    return pl;
  }
  if (std::fabs(double(p.tag) - 1.58) < 0.3) {
    pl.mode = fq_mode::ternary;
    return pl;
  }
  const double b = std::nearbyint(double(p.tag));  // Python round(): half to even
  if (b < 2 || b > 16)
    return make_error(errc::invalid_argument,
                      "fake-quant tag " + std::to_string(p.tag) + " rounds to " + std::to_string(int(b)) +
                          " bits; integer modes need 2..16 bits (1.58 is ternary, >= 16 is identity)");
  pl.mode = fq_mode::integer;
  pl.bits = int(b);
  pl.qmax = float((1 << (pl.bits - 1)) - 1);
  if (p.clip_steps == 0) {
    pl.n_ratios = 1;
    pl.ratios[0] = 1.0f;  // (1*amax)/qmax == amax/qmax: absmax is candidate 0 alone
  } else {
    auto r = clip_ratios(p.clip_steps);
    pl.n_ratios = int(r.size());
    for (size_t i = 0; i < r.size(); ++i) pl.ratios[i] = r[i];
  }
  return pl;
}

float lane16_sum(const float* e, size_t n) {
  float lanes[16] = {};
  for (size_t i = 0; i < n; ++i) lanes[i & 15] += e[i];
  return fold16(lanes);
}

int fake_quant_group_ref(const float* w, float* q, size_t n, const fq_plan& plan, float* err) {
  round_guard rg;
  if (err) *err = 0.0f;
  switch (plan.mode) {
    case fq_mode::identity:
      if (q != w) std::memmove(q, w, n * sizeof(float));
      return 0;
    case fq_mode::ternary:
      group_ternary_ref(w, q, n);
      return 0;
    case fq_mode::integer:
      return group_int_ref(w, q, n, plan, err);
  }
  return 0;
}

status fake_quant_rows_ref(const float* in, float* out, size_t rows, size_t cols, const fq_params& p,
                           fq_stats* stats) {
  RAZOR_ASSIGN_OR_RETURN(fq_plan pl, make_plan(p, cols));
  round_guard rg;
  fq_stats st;
  std::vector<float> w(pl.group_len ? pl.group_len : 1);
  const size_t ng = pl.group_len ? cols / pl.group_len : 0;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t g = 0; g < ng; ++g) {
      const size_t off = r * cols + g * pl.group_len;
      std::memcpy(w.data(), in + off, pl.group_len * sizeof(float));  // out may alias in
      int c = 0;
      float sum = 0.0f;
      switch (pl.mode) {
        case fq_mode::identity: std::memcpy(out + off, w.data(), pl.group_len * sizeof(float)); break;
        case fq_mode::ternary: sum = group_ternary_ref(w.data(), out + off, pl.group_len); break;
        case fq_mode::integer:  // the checksum holds 0 for absmax groups (no error is computed)
          c = group_int_ref(w.data(), out + off, pl.group_len, pl, pl.n_ratios > 1 ? &sum : nullptr);
          break;
      }
      st.sum_checksum += checksum_bits(sum);
      if (pl.mode != fq_mode::identity) ++st.groups;
      if (pl.mode == fq_mode::integer) ++st.clip_hist[size_t(c)];
      for (size_t i = 0; i < pl.group_len; ++i) {
        const double x = w[i], d = double(out[off + i]) - x;
        st.sq_err += d * d;
        st.sq_ref += x * x;
      }
    }
  }
  st.n = rows * cols;
  if (stats) *stats = st;
  return status::success();
}

}  // namespace razor::quant
