// Byte-exactness against the real ggml: every type, several distributions, with and without importance
// weights, rows from the bundled model, and the dequantizers on ggml's bytes and on random bytes.
// Tolerance: none. Every byte of every block must equal ggml's, every dequantized float bit-equal.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "ggml/quants.h"
#include "ggml/types.h"
#include "ggml_oracle.h"
#include "test_data.h"

using namespace razor;
using razor_test::matrix;

namespace {

// Describes the first difference of two quantized buffers (row, block, byte) and how many blocks differ.
std::string describe_diff(ggml::type t, int64_t n_per_row, const std::vector<uint8_t>& ours,
                          const std::vector<uint8_t>& theirs) {
  const auto& ti = ggml::info(t);
  const size_t bs = size_t(ti.type_size);
  const size_t blocks_per_row = size_t(n_per_row / ti.block_size);
  size_t ndiff = 0, first = SIZE_MAX;
  for (size_t b = 0; b * bs < ours.size(); ++b) {
    if (std::memcmp(ours.data() + b * bs, theirs.data() + b * bs, bs) != 0) {
      ++ndiff;
      if (first == SIZE_MAX) first = b;
    }
  }
  if (ndiff == 0) return "identical";
  std::ostringstream os;
  os << ndiff << " of " << ours.size() / bs << " blocks differ; first: row " << first / blocks_per_row
     << " block " << first % blocks_per_row << " bytes:";
  for (size_t i = 0; i < bs; ++i) {
    const size_t k = first * bs + i;
    if (ours[k] != theirs[k]) os << " [" << i << "] ours " << int(ours[k]) << " ggml " << int(theirs[k]) << ";";
  }
  return os.str();
}

std::vector<uint8_t> ours_quantize(ggml::type t, const matrix& m, const float* qw) {
  std::vector<uint8_t> out(size_t(m.nrows) * ggml::row_size(t, m.n_per_row), 0xAA);
  const auto st = ggml::quantize_rows(t, m.data.data(), out.data(), m.nrows, m.n_per_row, qw);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return out;
}

std::vector<uint8_t> ggml_quantize(razor_test::ggml_oracle& o, ggml::type t, const matrix& m, const float* qw) {
  std::vector<uint8_t> out(size_t(m.nrows) * ggml::row_size(t, m.n_per_row), 0x55);
  const size_t n = o.quantize_chunk(int(ggml::info(t).id), m.data.data(), out.data(), 0, m.nrows, m.n_per_row, qw);
  EXPECT_EQ(n, out.size());
  return out;
}

// Our dequantizer and ggml's, bit for bit, on the given bytes.
void expect_same_dequant(razor_test::ggml_oracle& o, ggml::type t, const std::vector<uint8_t>& bytes,
                         int64_t n, const std::string& what) {
  const auto& ti = ggml::info(t);
  std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  ASSERT_TRUE(ggml::dequantize_row(t, bytes.data(), a.data(), n).ok());
  if (t == ggml::type::f32) {
    std::memcpy(b.data(), bytes.data(), size_t(n) * 4);
  } else if (t == ggml::type::f16) {
    o.fp16_to_fp32_row(reinterpret_cast<const uint16_t*>(bytes.data()), b.data(), n);
  } else if (t == ggml::type::bf16) {
    o.bf16_to_fp32_row(reinterpret_cast<const uint16_t*>(bytes.data()), b.data(), n);
  } else {
    auto fn = o.dequantizer(std::string(ti.name));
    ASSERT_NE(fn, nullptr) << "ggml exports no dequantize_row_" << ti.name;
    fn(bytes.data(), b.data(), n);
  }
  size_t ndiff = 0, first = SIZE_MAX;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], 4) != 0 && ++ndiff && first == SIZE_MAX) first = i;
  EXPECT_EQ(ndiff, 0u) << ti.name << " dequant " << what << ": first at " << first << " ours "
                       << (first < a.size() ? a[first] : 0.f) << " ggml " << (first < b.size() ? b[first] : 0.f);
}

class oracle_types : public ::testing::TestWithParam<ggml::type> {};

std::string type_param_name(const ::testing::TestParamInfo<ggml::type>& p) {
  return std::string(ggml::info(p.param).name);
}

}  // namespace

TEST(ggml_oracle_table, names_ids_and_sizes_match_ggml) {
  RAZOR_REQUIRE_ORACLE(o);
  for (const auto& ti : ggml::all_types()) {
    const int id = int(ti.id);
    EXPECT_EQ(std::string(o.type_name(id)), std::string(ti.name)) << "id " << id;
    EXPECT_EQ(o.type_size(id), size_t(ti.type_size)) << ti.name;
    EXPECT_EQ(o.blck_size(id), int64_t(ti.block_size)) << ti.name;
    // the `required` column is ggml's own ggml_quantize_requires_imatrix
    EXPECT_EQ(o.requires_imatrix(id), ti.weights == ggml::weights_use::required) << ti.name;
  }
}

// GGML_TYPE_COUNT of the oracle's ggml (ggml.h): ids 0 .. count-1 are the slots of its type_traits.
constexpr uint32_t k_ggml_type_count = 43;

// Every row of the one table, the "no quantizer" (N) rows too, against ggml: name, block size and bytes per
// block of each id; the X rows are exactly the writable types; and no type of ggml's that the table lacks.
TEST(ggml_oracle_table, every_known_type_matches_ggml) {
  RAZOR_REQUIRE_ORACLE(o);
  size_t writable = 0;
  for (const auto& g : ggml::known_types) {
    const int id = int(g.id);
    ASSERT_LT(g.id, k_ggml_type_count) << g.name;
    EXPECT_EQ(std::string(o.type_name(id)), std::string(g.name)) << "id " << id;
    EXPECT_EQ(o.type_size(id), size_t(g.type_size)) << g.name;
    EXPECT_EQ(o.blck_size(id), int64_t(g.block_size)) << g.name;
    const auto t = ggml::type_from_id(g.id);
    EXPECT_EQ(t.ok(), g.quantizer) << g.name;
    if (t.ok()) {
      ++writable;
      EXPECT_EQ(ggml::info(*t).name, g.name);
      EXPECT_EQ(ggml::info(*t).type_size, g.type_size) << g.name;
    }
  }
  EXPECT_EQ(writable, ggml::all_types().size());
  for (uint32_t id = 0; id < k_ggml_type_count; ++id) {
    if (o.blck_size(int(id)) == 0) continue;  // a removed type (ggml keeps its slot with block size 0)
    bool listed = false;
    for (const auto& g : ggml::known_types) listed |= g.id == id;
    EXPECT_TRUE(listed) << "ggml type " << id << " (" << o.type_name(int(id)) << ") has no row in RAZOR_GGML_TYPE_TABLE";
  }
}

TEST_P(oracle_types, synthetic_rows_match_ggml_bytes) {
  RAZOR_REQUIRE_ORACLE(o);
  const ggml::type t = GetParam();
  const auto& ti = ggml::info(t);
  // 512 per row: two super-blocks, so row-level statistics (q4_0's sigma2) span several blocks
  std::vector<std::pair<int64_t, int64_t>> shapes = {{24, 512}};
  if (ti.block_size <= 32) shapes.push_back({16, 96});  // not a multiple of 256
  for (auto [nrows, n_per_row] : shapes) {
    const auto mats = razor_test::synthetic_matrices(nrows, n_per_row, 1234u + uint32_t(n_per_row));
    const auto w_pos = razor_test::synthetic_imatrix(n_per_row, 77u, false);
    const auto w_zero = razor_test::synthetic_imatrix(n_per_row, 78u, true);
    const std::vector<std::pair<const char*, const float*>> weights = {
        {"no_imatrix", nullptr}, {"imatrix", w_pos.data()}, {"imatrix_with_zeros", w_zero.data()}};
    for (const auto& m : mats) {
      for (const auto& [wname, qw] : weights) {
        if (!qw && ti.weights == ggml::weights_use::required) {
          // ggml asserts the weights are given (it would abort): we refuse instead
          EXPECT_TRUE(o.requires_imatrix(int(ti.id))) << ti.name;
          std::vector<uint8_t> out(size_t(m.nrows) * ggml::row_size(t, m.n_per_row));
          EXPECT_EQ(ggml::quantize_rows(t, m.data.data(), out.data(), m.nrows, m.n_per_row, nullptr).code(),
                    errc::needs_imatrix);
          continue;
        }
        const auto ours = ours_quantize(t, m, qw);
        const auto theirs = ggml_quantize(o, t, m, qw);
        EXPECT_TRUE(ours == theirs) << ti.name << " " << m.name << " " << n_per_row << " " << wname << ": "
                                    << describe_diff(t, n_per_row, ours, theirs);
        std::vector<uint8_t> ref(ours.size());
        ASSERT_TRUE(ggml::quantize_rows_reference(t, m.data.data(), ref.data(), m.nrows, m.n_per_row, qw).ok());
        EXPECT_TRUE(ref == theirs) << "scalar reference, " << ti.name << " " << m.name << " " << wname << ": "
                                   << describe_diff(t, n_per_row, ref, theirs);
        expect_same_dequant(o, t, theirs, m.nrows * m.n_per_row, m.name + " " + wname);
      }
    }
  }
}

TEST_P(oracle_types, fixture_model_rows_match_ggml_bytes) {
  RAZOR_REQUIRE_ORACLE(o);
  const ggml::type t = GetParam();
  const auto& ti = ggml::info(t);
  const std::string path = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe/model.safetensors";
  const auto mats = razor_test::read_bf16_safetensors(
      path, {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight",
             "model.layers.0.mlp.experts.3.down_proj.weight", "model.layers.2.mlp.experts.7.gate_proj.weight",
             "model.layers.3.mlp.gate.weight", "lm_head.weight"});
  if (mats.empty()) GTEST_SKIP() << "fixture not readable: " << path;
  for (const auto& m : mats) {
    const auto w = razor_test::synthetic_imatrix(m.n_per_row, 99u, false);
    for (const float* qw : {static_cast<const float*>(nullptr), w.data()}) {
      if (!qw && ti.weights == ggml::weights_use::required) continue;  // ggml would abort
      const auto ours = ours_quantize(t, m, qw);
      const auto theirs = ggml_quantize(o, t, m, qw);
      EXPECT_TRUE(ours == theirs) << ti.name << " " << m.name << (qw ? " imatrix" : " no_imatrix") << ": "
                                  << describe_diff(t, m.n_per_row, ours, theirs);
    }
  }
}

TEST_P(oracle_types, dequantize_random_bytes_matches_ggml) {
  RAZOR_REQUIRE_ORACLE(o);
  const ggml::type t = GetParam();
  const auto& ti = ggml::info(t);
  const int64_t nblocks = 512;
  const int64_t n = nblocks * ti.block_size;
  std::vector<uint8_t> bytes(size_t(nblocks) * size_t(ti.type_size));
  std::mt19937 rng(4242);
  for (auto& b : bytes) b = uint8_t(rng());
  // keep the fp16 scale fields finite: offsets of d / dmin inside each block
  std::vector<size_t> half_fields;
  switch (t) {
    case ggml::type::q2_k: half_fields = {80, 82}; break;
    case ggml::type::q3_k: half_fields = {108}; break;
    case ggml::type::q6_k: half_fields = {208}; break;
    case ggml::type::q4_k:
    case ggml::type::q5_k:
    case ggml::type::q4_1:
    case ggml::type::q5_1: half_fields = {0, 2}; break;
    case ggml::type::f32:
    case ggml::type::f16:
    case ggml::type::bf16: break;
    default: half_fields = {0}; break;
  }
  if (t == ggml::type::f32) {  // finite floats only
    std::normal_distribution<float> g(0.f, 1.f);
    for (int64_t i = 0; i < n; ++i) {
      const float v = g(rng);
      std::memcpy(bytes.data() + 4 * i, &v, 4);
    }
  }
  for (int64_t b = 0; b < nblocks; ++b) {
    for (size_t off : half_fields) {
      const uint16_t h = uint16_t(rng() & 0x7bff) | uint16_t((rng() & 1) << 15);  // exponent < 31
      std::memcpy(bytes.data() + size_t(b) * size_t(ti.type_size) + off, &h, 2);
    }
  }
  expect_same_dequant(o, t, bytes, n, "random bytes");
}

// Every row of the type table.
static std::vector<ggml::type> table_types() {
  std::vector<ggml::type> v;
  for (const auto& ti : ggml::all_types()) v.push_back(ti.t);
  return v;
}

INSTANTIATE_TEST_SUITE_P(all, oracle_types, ::testing::ValuesIn(table_types()), type_param_name);
