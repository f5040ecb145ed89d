// The CUDA ggml packer (kernels/ggml/) against the CPU ground truth: for every type it implements,
// on weight-like and adversarial inputs, with and without importance weights, from BF16 and from F32, the
// GPU bytes must equal razor::ggml::quantize_rows_reference on the widened rows, byte for byte (no
// tolerance: the kernel repeats the CPU's float32 operations in the CPU's order). Also: fused expert
// tensors with one imatrix vector per expert streamed in chunks that straddle experts, pinned buffers,
// cancellation, and razor::quant::quantize_tensor_auto (GPU when present, else CPU; same bytes). Without a GPU (or in a
// build without CUDA) the GPU tests are skipped with the reason; quantize_tensor_auto is still checked.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ggml/quants.h"
#include "ggml/test_data.h"
#include "ggml/types.h"
#include "kernels/cuda_info.h"
#include "kernels/ggml_quant_cuda.h"
#include "quant/ggml_auto.h"
#include "util/numeric.h"

namespace {

using razor::ggml::type;

// The types the type table marks as having a GPU packer (its `gpu` column).
std::vector<type> gpu_types() {
  std::vector<type> v;
  for (const auto& ti : razor::ggml::all_types())
    if (ti.gpu) v.push_back(ti.t);
  return v;
}
const std::vector<type> kGpuTypes = gpu_types();

bool have_gpu(std::string* why) {
  if (!razor::cu::built_with_cuda()) {
    *why = "built without CUDA";
    return false;
  }
  if (razor::cu::devices(why).empty()) {
    if (why->empty()) *why = "no CUDA device";
    return false;
  }
  return true;
}

#define REQUIRE_GPU()                               \
  do {                                              \
    std::string why_;                               \
    if (!have_gpu(&why_)) GTEST_SKIP() << why_;     \
  } while (0)

struct input {
  std::string name;
  std::vector<float> f;  // the values (BF16-representable when bf16 is true)
};

// Weight-like and adversarial rows. bf16: every value rounded to BF16 (then the BF16 and F32 sources are
// the same numbers).
std::vector<input> make_inputs(int64_t nrows, int64_t n, uint32_t seed, bool bf16) {
  razor_test::draws dr(seed);
  auto& rng = dr.rng;
  auto& gauss = dr.gauss;
  auto& unif = dr.unif;
  std::vector<input> out;
  auto make = [&](const char* name, auto&& gen) {
    input in{name, std::vector<float>(size_t(nrows * n))};
    for (int64_t r = 0; r < nrows; ++r)
      for (int64_t c = 0; c < n; ++c) {
        float v = gen(r, c);
        if (bf16) v = razor::bf16_to_f32(razor::f32_to_bf16(v));
        in.f[size_t(r * n + c)] = v;
      }
    out.push_back(std::move(in));
  };
  make("gaussian", [&](int64_t, int64_t) { return 0.02f * gauss(rng); });
  make("gaussian_outliers", [&](int64_t, int64_t) {  // 0.2% of weights 10-30 sigma, as real expert weights
    float v = 0.02f * gauss(rng);
    if (unif(rng) < 0.002f) v *= 10.0f + 20.0f * unif(rng);
    return v;
  });
  make("heavy_tailed", [&](int64_t, int64_t) { return dr.heavy_tailed(); });
  make("zero_rows", [&](int64_t r, int64_t c) {  // every third row zero, zero sub-blocks elsewhere
    if (r % 3 == 1) return 0.0f;
    if ((c / 16 + r) % 7 == 0) return 0.0f;
    return 0.02f * gauss(rng);
  });
  make("sparse_blocks", [&](int64_t r, int64_t c) { return dr.sparse_blocks(r, c); });
  make("tiny", [&](int64_t r, int64_t) { return dr.tiny_mixed(r); });  // fp16 subnormals
  make("quarter_grid", [&](int64_t, int64_t) { return 0.25f * float(int(std::lround(4.0f * gauss(rng)))); });
  make("uniform_positive", [&](int64_t, int64_t) { return unif(rng); });
  make("large", [&](int64_t, int64_t) { return 300.0f * gauss(rng); });
  return out;
}

// Importance weights: the shared log-normal imatrix of the CPU tests (dead columns optional).
using razor_test::synthetic_imatrix;

std::vector<uint16_t> to_bf16(const std::vector<float>& f) {
  std::vector<uint16_t> b(f.size());
  for (size_t i = 0; i < f.size(); ++i) b[i] = razor::f32_to_bf16(f[i]);
  return b;
}

// CPU ground truth: quantize_rows_reference, one call per group of rows sharing a weight vector.
std::vector<uint8_t> cpu_ref(type t, const std::vector<float>& x, int64_t nrows, int64_t n, const float* w,
                             int64_t rows_per_weight) {
  const size_t rs = razor::ggml::row_size(t, n);
  std::vector<uint8_t> out(size_t(nrows) * rs);
  const int64_t group = w && rows_per_weight > 0 ? rows_per_weight : nrows;
  for (int64_t r0 = 0; r0 < nrows; r0 += group) {
    const int64_t r1 = std::min(nrows, r0 + group);
    const float* wv = w ? w + (rows_per_weight > 0 ? (r0 / group) * n : 0) : nullptr;
    EXPECT_TRUE(razor::ggml::quantize_rows_reference(t, x.data() + r0 * n, out.data() + size_t(r0) * rs, r1 - r0,
                                                     n, wv)
                    .ok());
  }
  return out;
}

// "" when equal, else where the first difference is.
std::string first_diff(type t, int64_t n, const std::vector<uint8_t>& got, const std::vector<uint8_t>& want) {
  if (got.size() != want.size()) return "size " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
  const size_t rs = razor::ggml::row_size(t, n);
  const size_t bb = size_t(razor::ggml::info(t).type_size);
  size_t ndiff = 0, first = got.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i]) {
      if (first == got.size()) first = i;
      ++ndiff;
    }
  if (!ndiff) return "";
  return std::to_string(ndiff) + " bytes differ; first at row " + std::to_string(first / rs) + " block " +
         std::to_string((first % rs) / bb) + " byte " + std::to_string((first % rs) % bb) + ": gpu " +
         std::to_string(got[first]) + " cpu " + std::to_string(want[first]);
}

std::vector<uint8_t> gpu_host(type t, razor::cu::gq_src st, const void* src, int64_t nrows, int64_t n, const float* w,
                              int64_t rows_per_weight, size_t chunk_bytes = size_t(64) << 20) {
  std::vector<uint8_t> out(size_t(nrows) * razor::ggml::row_size(t, n), 0xa5);  // poisoned
  auto r = razor::cu::ggml_quantize_host(t, st, src, out.data(), out.size(), nrows, n, w, rows_per_weight, {}, 0,
                                         chunk_bytes);
  EXPECT_TRUE(r.ok()) << r.error().to_string();
  if (r) {
    EXPECT_EQ(*r, out.size());
  }
  return out;
}

class ggml_cuda_types : public ::testing::TestWithParam<type> {};

// Every input x {no weights, log-normal, log-normal with dead columns} x {BF16, F32}: bytes identical.
TEST_P(ggml_cuda_types, gpu_bytes_equal_cpu_reference) {
  REQUIRE_GPU();
  const type t = GetParam();
  constexpr int64_t kRows = 12, kN = 1024;
  const std::vector<float> w_plain = synthetic_imatrix(kN, 7, false), w_dead = synthetic_imatrix(kN, 8, true);
  const float* weights[] = {nullptr, w_plain.data(), w_dead.data()};
  const char* wname[] = {"no weights", "imatrix", "imatrix with dead columns"};
  for (bool bf16 : {true, false}) {
    for (const auto& in : make_inputs(kRows, kN, bf16 ? 11u : 12u, bf16)) {
      const std::vector<uint16_t> b = to_bf16(in.f);
      for (int wi = 0; wi < 3; ++wi) {
        const auto want = cpu_ref(t, in.f, kRows, kN, weights[wi], 0);
        const auto got = bf16 ? gpu_host(t, razor::cu::gq_src::bf16, b.data(), kRows, kN, weights[wi], 0)
                              : gpu_host(t, razor::cu::gq_src::f32, in.f.data(), kRows, kN, weights[wi], 0);
        const std::string d = first_diff(t, kN, got, want);
        EXPECT_TRUE(d.empty()) << razor::ggml::type_name(t) << " " << in.name << " (" << (bf16 ? "bf16" : "f32")
                               << ", " << wname[wi] << "): " << d;
      }
    }
  }
}

// A fused expert tensor [E, R, n] with one weight vector per expert, streamed in chunks whose boundaries
// fall inside experts (row_offset bookkeeping), from pageable and from pinned memory.
TEST_P(ggml_cuda_types, fused_experts_in_chunks) {
  REQUIRE_GPU();
  const type t = GetParam();
  constexpr int64_t kE = 3, kR = 5, kN = 768, kRows = kE * kR;
  const auto ins = make_inputs(kRows, kN, 21, true);
  const input& in = ins[1];  // gaussian_outliers
  std::vector<float> w;
  for (int64_t e = 0; e < kE; ++e) {
    const auto we = synthetic_imatrix(kN, uint32_t(100 + e), e == 1);
    w.insert(w.end(), we.begin(), we.end());
  }
  const auto want = cpu_ref(t, in.f, kRows, kN, w.data(), kR);
  const auto b = to_bf16(in.f);
  const size_t chunk = size_t(kN) * 2 * 4;  // 4 rows per chunk: chunks 0-3, 4-7, ... straddle experts
  EXPECT_EQ(first_diff(t, kN, gpu_host(t, razor::cu::gq_src::bf16, b.data(), kRows, kN, w.data(), kR, chunk), want),
            "");
  // pinned source and destination: no staging copies
  const size_t in_bytes = b.size() * 2, out_bytes = want.size();
  void* ps = razor::cu::pinned_alloc(in_bytes);
  void* pd = razor::cu::pinned_alloc(out_bytes);
  ASSERT_NE(ps, nullptr);
  ASSERT_NE(pd, nullptr);
  std::memcpy(ps, b.data(), in_bytes);
  std::memset(pd, 0xa5, out_bytes);
  auto r = razor::cu::ggml_quantize_host(t, razor::cu::gq_src::bf16, ps, pd, out_bytes, kRows, kN, w.data(), kR, {},
                                         0, chunk);
  EXPECT_TRUE(r.ok()) << r.error().to_string();
  std::vector<uint8_t> got(static_cast<uint8_t*>(pd), static_cast<uint8_t*>(pd) + out_bytes);
  EXPECT_EQ(first_diff(t, kN, got, want), "");
  razor::cu::pinned_free(ps);
  razor::cu::pinned_free(pd);
}

INSTANTIATE_TEST_SUITE_P(all, ggml_cuda_types, ::testing::ValuesIn(kGpuTypes),
                         [](const ::testing::TestParamInfo<type>& i) {
                           return std::string(razor::ggml::type_name(i.param));
                         });

TEST(ggml_cuda, supported_types_and_errors) {
  for (type t : kGpuTypes) EXPECT_EQ(razor::cu::ggml_quant_supported(t), razor::cu::built_with_cuda());
  EXPECT_FALSE(razor::cu::ggml_quant_supported(type::q4_0));
  REQUIRE_GPU();
  std::vector<float> x(300, 1.0f);
  std::vector<uint8_t> out(4096);
  auto r = razor::cu::ggml_quantize_host(type::q4_k, razor::cu::gq_src::f32, x.data(), out.data(), out.size(), 1, 300,
                                         nullptr, 0);
  EXPECT_EQ(r.error().code(), razor::errc::invalid_argument);  // 300 is not a multiple of 256
}

TEST(ggml_cuda, progress_false_cancels) {
  REQUIRE_GPU();
  constexpr int64_t kRows = 64, kN = 512;
  const auto ins = make_inputs(kRows, kN, 5, true);
  const auto b = to_bf16(ins[0].f);
  std::vector<uint8_t> out(size_t(kRows) * razor::ggml::row_size(type::q4_k, kN));
  int calls = 0;
  auto r = razor::cu::ggml_quantize_host(
      type::q4_k, razor::cu::gq_src::bf16, b.data(), out.data(), out.size(), kRows, kN, nullptr, 0,
      [&](double, double, const char*) { return ++calls < 2; }, 0, size_t(kN) * 2 * 8);
  EXPECT_EQ(r.error().code(), razor::errc::cancelled);
  EXPECT_EQ(calls, 2);
}

// quantize_tensor_auto: the GPU when there is one (else the CPU), bytes equal to the CPU quantize_tensor
// per expert, for BF16 and F32 sources; a type without a GPU packer runs on the CPU.
TEST(ggml_cuda, quantize_tensor_auto_matches_cpu) {
  std::string why;
  const bool gpu = have_gpu(&why);
  constexpr int64_t kE = 2, kR = 6, kN = 512, kRows = kE * kR;
  const auto ins = make_inputs(kRows, kN, 33, true);
  const auto& x = ins[2].f;  // heavy_tailed
  const auto b = to_bf16(x);
  std::vector<float> w = synthetic_imatrix(kN, 1, false), w2 = synthetic_imatrix(kN, 2, true);
  w.insert(w.end(), w2.begin(), w2.end());
  for (type t : {type::iq3_xxs, type::q4_k, type::q3_k, type::q4_0}) {
    const size_t rs = razor::ggml::row_size(t, kN);
    std::vector<uint8_t> want(size_t(kRows) * rs);
    for (int64_t e = 0; e < kE; ++e) {
      auto r = razor::ggml::quantize_tensor(t, x.data() + e * kR * kN, want.data() + size_t(e * kR) * rs,
                                            size_t(kR) * rs, kR, kN, w.data() + e * kN);
      ASSERT_TRUE(r.ok()) << r.error().to_string();
    }
    razor::quant::quantize_auto_options o;
    o.rows_per_imatrix = kR;
    o.cpu.threads = 2;
    for (bool from_bf16 : {true, false}) {
      std::vector<uint8_t> got(want.size(), 0xa5);
      auto r = from_bf16 ? razor::quant::quantize_tensor_auto(t, b.data(), got.data(), got.size(), kRows, kN, w.data(), o)
                         : razor::quant::quantize_tensor_auto(t, x.data(), got.data(), got.size(), kRows, kN, w.data(), o);
      ASSERT_TRUE(r.ok()) << r.error().to_string();
      EXPECT_EQ(r->bytes, want.size());
      EXPECT_EQ(r->gpu, gpu && t != type::q4_0) << r->cpu_reason;
      EXPECT_EQ(first_diff(t, kN, got, want), "") << razor::ggml::type_name(t) << (from_bf16 ? " bf16" : " f32")
                                                  << (r->gpu ? " (GPU)" : " (CPU: " + r->cpu_reason + ")");
    }
  }
  // the imatrix policy holds on both paths
  std::vector<uint8_t> out(size_t(kRows) * razor::ggml::row_size(type::iq3_xxs, kN));
  auto r = razor::quant::quantize_tensor_auto(type::iq3_xxs, b.data(), out.data(), out.size(), kRows, kN, nullptr);
  EXPECT_EQ(r.error().code(), razor::errc::needs_imatrix);
}

}  // namespace
