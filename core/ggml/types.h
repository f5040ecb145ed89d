// The ggml tensor types: ONE table (RAZOR_GGML_TYPE_TABLE) has a row for every type id this ggml generation
// knows. It drives the enum, the names, the block geometry (from the block struct of blocks.h), the
// importance-weight use, llama.cpp's imatrix policy, the row-length fallback, the GGUF file type, which types
// have a GPU packer, and the row functions (quants.cpp dispatches through it). The CLI, the recipes, the GGUF
// reader and writer, the CUDA packer and the tests all read it (house style 10). The header compiles as C++
// and in CUDA host code.
//
// Two kinds of row:
//   X(...)  a type Razor writes: the columns below; the type has a block struct and row functions.
//   N(...)  no quantizer: a type Razor only reads (a GGUF file may hold it), geometry only:
//           N(ident, name, id, bytes per block, elements per block). They follow the X rows.
// Adding a type Razor only reads is one N row; a type Razor writes is one X row plus its block struct and
// its row functions (an N row that gains a quantizer becomes an X row). RAZOR_GGML_TYPES(X) is the X rows
// (the writable types: `type`, type_table); known_types is every row (the GGUF container's view).
// tests/ggml/test_ggml_oracle.cpp checks every row against libggml-base.so, and that ggml knows no type
// the table lacks.
//
// Columns of an X row:
//   ident     enumerator of razor::ggml::type
//   name      llama.cpp's spelling (ggml_type_name): "q4_K", "iq3_xxs"; lookup is case-insensitive
//   id        ggml / GGUF type id
//   block     the block struct (blocks.h); bytes per block = sizeof
//   elems     elements per block
//   weights   how ggml's quantizer uses importance weights: ignored (q8_0, floats), optional (null selects
//             ggml's `_ref` path, or x*x weights), required (ggml asserts they are given:
//             ggml_quantize_requires_imatrix: iq2_xxs, iq2_xs, iq1_s, whose quantizers assert it too)
//   imatrix   true where llama.cpp refuses to quantize (non token_embd / output) tensors to this type
//             without an importance matrix (tensor_requires_imatrix in src/llama-quant.cpp)
//   fallback  the type used when a row length is not a multiple of `elems` (llama.cpp's
//             tensor_type_fallback): 256-element types fall back to a 32-element one; a 32-element type
//             has no smaller block, so llama.cpp stores such rows as f16. When the fallback's block still
//             does not divide the row, the type becomes f16 (resolve_row_type).
//   ftype     llama.cpp's file type (LLAMA_FTYPE_MOSTLY_*, GGUF general.file_type) of a file mostly of this
//             type; for the k-quants the _M mix
//   gpu       the CUDA packer implements it (kernels/include/kernels/ggml_quant_cuda.h)
//   quantize, dequantize, reference
//             the row functions (quants_internal.h): the fast quantizer, the dequantizer and the scalar
//             ground truth the fast one is tested against (the same function where there is no fast form)
// Note on q2_K: llama.cpp also demands an imatrix for q2_K tensors of a Q2_K_S file; that is a file
// type (recipe) rule, not a property of the block type, and is left to the caller.
#pragma once
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <string_view>

#include "ggml/blocks.h"
#include "util/status.h"

namespace razor::ggml {

// clang-format off
#define RAZOR_GGML_TYPE_TABLE(X, N)                                                                           \
  /* ident    name       id  block           elems weights   imatrix fallback ftype gpu                        \
     quantize                   dequantize                 reference */                                     \
  X(f32,     "f32",      0,  block_f32,         1, ignored,  false,  f32,      0,  false,                       \
    quantize_row_f32,           dequantize_row_f32,        quantize_row_f32)                                \
  X(f16,     "f16",      1,  block_f16,         1, ignored,  false,  f16,      1,  false,                       \
    quantize_row_f16,           dequantize_row_f16,        quantize_row_f16)                                \
  X(q4_0,    "q4_0",     2,  block_q4_0,       32, optional, false,  f16,      2,  false,                       \
    quantize_row_q4_0,          dequantize_row_q4_0,       quantize_row_q4_0)                               \
  X(q4_1,    "q4_1",     3,  block_q4_1,       32, optional, false,  f16,      3,  false,                       \
    quantize_row_q4_1,          dequantize_row_q4_1,       quantize_row_q4_1)                               \
  X(q5_0,    "q5_0",     6,  block_q5_0,       32, optional, false,  f16,      8,  false,                       \
    quantize_row_q5_0,          dequantize_row_q5_0,       quantize_row_q5_0)                               \
  X(q5_1,    "q5_1",     7,  block_q5_1,       32, optional, false,  f16,      9,  false,                       \
    quantize_row_q5_1,          dequantize_row_q5_1,       quantize_row_q5_1)                               \
  X(q8_0,    "q8_0",     8,  block_q8_0,       32, ignored,  false,  f16,      7,  true,                        \
    quantize_row_q8_0,          dequantize_row_q8_0,       quantize_row_q8_0)                               \
  X(q2_k,    "q2_K",    10,  block_q2_k,      256, optional, false,  q4_0,    10,  true,                        \
    quantize_row_q2_k,          dequantize_row_q2_k,       quantize_row_q2_k_scalar)                        \
  X(q3_k,    "q3_K",    11,  block_q3_k,      256, optional, false,  q4_0,    12,  true,                        \
    quantize_row_q3_k,          dequantize_row_q3_k,       quantize_row_q3_k_scalar)                        \
  X(q4_k,    "q4_K",    12,  block_q4_k,      256, optional, false,  q5_0,    15,  true,                        \
    quantize_row_q4_k,          dequantize_row_q4_k,       quantize_row_q4_k_scalar)                        \
  X(q5_k,    "q5_K",    13,  block_q5_k,      256, optional, false,  q5_1,    17,  true,                        \
    quantize_row_q5_k,          dequantize_row_q5_k,       quantize_row_q5_k_scalar)                        \
  X(q6_k,    "q6_K",    14,  block_q6_k,      256, optional, false,  q8_0,    18,  true,                        \
    quantize_row_q6_k,          dequantize_row_q6_k,       quantize_row_q6_k_scalar)                        \
  X(iq2_xxs, "iq2_xxs", 16,  block_iq2_xxs,   256, required, true,   iq4_nl,  19,  false,                       \
    quantize_row_iq2_xxs,       dequantize_row_iq2_xxs,    quantize_row_iq2_xxs)                            \
  X(iq2_xs,  "iq2_xs",  17,  block_iq2_xs,    256, required, true,   iq4_nl,  20,  false,                       \
    quantize_row_iq2_xs,        dequantize_row_iq2_xs,     quantize_row_iq2_xs)                             \
  X(iq3_xxs, "iq3_xxs", 18,  block_iq3_xxs,   256, optional, true,   iq4_nl,  23,  true,                        \
    quantize_row_iq3_xxs,       dequantize_row_iq3_xxs,    quantize_row_iq3_xxs_scalar)                     \
  X(iq1_s,   "iq1_s",   19,  block_iq1_s,     256, required, true,   iq4_nl,  24,  false,                       \
    quantize_row_iq1_s,         dequantize_row_iq1_s,      quantize_row_iq1_s)                              \
  X(iq4_nl,  "iq4_nl",  20,  block_iq4_nl,     32, optional, false,  f16,     25,  false,                       \
    quantize_row_iq4_nl,        dequantize_row_iq4_nl,     quantize_row_iq4_nl)                             \
  X(iq3_s,   "iq3_s",   21,  block_iq3_s,     256, optional, false,  iq4_nl,  26,  false,                       \
    quantize_row_iq3_s,         dequantize_row_iq3_s,      quantize_row_iq3_s_scalar)                       \
  X(iq2_s,   "iq2_s",   22,  block_iq2_s,     256, optional, true,   iq4_nl,  28,  false,                       \
    quantize_row_iq2_s,         dequantize_row_iq2_s,      quantize_row_iq2_s)                              \
  X(iq4_xs,  "iq4_xs",  23,  block_iq4_xs,    256, optional, false,  iq4_nl,  30,  false,                       \
    quantize_row_iq4_xs,        dequantize_row_iq4_xs,     quantize_row_iq4_xs)                             \
  X(iq1_m,   "iq1_m",   29,  block_iq1_m,     256, optional, true,   iq4_nl,  31,  false,                       \
    quantize_row_iq1_m,         dequantize_row_iq1_m,      quantize_row_iq1_m)                              \
  X(bf16,    "bf16",    30,  block_bf16,        1, ignored,  false,  bf16,    32,  false,                       \
    quantize_row_bf16,          dequantize_row_bf16,       quantize_row_bf16)                               \
  X(mxfp4,   "mxfp4",   39,  block_mxfp4,      32, ignored,  false,  f16,     38,  false,                       \
    quantize_row_mxfp4,         dequantize_row_mxfp4,      quantize_row_mxfp4)                              \
  /* no quantizer (N): ident, name, id, bytes per block, elements per block */                              \
  N(q8_1, "q8_1", 9, 36, 32)         N(q8_k, "q8_K", 15, 292, 256)      N(i8, "i8", 24, 1, 1)               \
  N(i16, "i16", 25, 2, 1)            N(i32, "i32", 26, 4, 1)            N(i64, "i64", 27, 8, 1)             \
  N(f64, "f64", 28, 8, 1)            N(tq1_0, "tq1_0", 34, 54, 256)     N(tq2_0, "tq2_0", 35, 66, 256)      \
  N(nvfp4, "nvfp4", 40, 36, 64)      N(q1_0, "q1_0", 41, 18, 128)       N(q2_0, "q2_0", 42, 18, 64)
// clang-format on

#define RAZOR_GGML_SKIP_ROW(...)
// The types Razor writes (the X rows).
#define RAZOR_GGML_TYPES(X) RAZOR_GGML_TYPE_TABLE(X, RAZOR_GGML_SKIP_ROW)

// How ggml's quantizer of a type uses importance weights (the `weights` column).
enum class weights_use : uint8_t { ignored, optional, required };

enum class type : uint32_t {
#define RAZOR_X(ident, name, id, block, elems, weights, imatrix, fallback, ftype, gpu, q, dq, ref) ident = id,
  RAZOR_GGML_TYPES(RAZOR_X)
#undef RAZOR_X
};

struct type_info {
  type t;
  std::string_view name;     // llama.cpp spelling
  uint32_t id;               // ggml / GGUF type id
  int block_size;            // elements per block
  int type_size;             // bytes per block (sizeof the block struct)
  weights_use weights;       // how ggml uses importance weights
  bool needs_imatrix;        // llama.cpp refuses this type without an imatrix
  type fallback;             // llama.cpp's row-length fallback (== t for the float types)
  uint32_t ftype;            // LLAMA_FTYPE_MOSTLY_* of a file mostly of this type
  bool gpu;                  // the CUDA packer implements it
  constexpr bool is_quantized() const { return block_size > 1; }
};

// Every type Razor writes (the X rows), in table order.
inline constexpr type_info type_table[] = {
#define RAZOR_X(ident, name, id, block, elems, weights, imatrix, fallback, ftype, gpu, q, dq, ref)            \
  type_info{type::ident, name, id, elems, int(sizeof(block)), weights_use::weights, imatrix, type::fallback, \
            ftype, gpu},
    RAZOR_GGML_TYPES(RAZOR_X)
#undef RAZOR_X
};

inline std::span<const type_info> all_types() { return type_table; }

// Every type id ggml knows, with its block geometry: the X rows, then the N (no quantizer) rows. This is
// what a reader of GGUF files needs to size and validate tensors of any type.
struct type_geometry {
  std::string_view name;  // ggml_type_name
  uint32_t id;            // ggml / GGUF type id
  int block_size;         // elements per block
  int type_size;          // bytes per block
  bool quantizer;         // Razor writes it (an X row: a `type` enumerator, a row of type_table)
};
inline constexpr type_geometry known_types[] = {
#define RAZOR_X(ident, name, id, block, elems, ...) type_geometry{name, id, elems, int(sizeof(block)), true},
#define RAZOR_N(ident, name, id, bytes, elems) type_geometry{name, id, elems, bytes, false},
    RAZOR_GGML_TYPE_TABLE(RAZOR_X, RAZOR_N)
#undef RAZOR_N
#undef RAZOR_X
};
constexpr bool known_type_ids_unique() {
  for (size_t i = 0; i < std::size(known_types); ++i)
    for (size_t j = 0; j < i; ++j)
      if (known_types[i].id == known_types[j].id) return false;
  return true;
}
static_assert(known_type_ids_unique(), "two rows of RAZOR_GGML_TYPE_TABLE have the same id");

// Position of t in type_table (t must be one of the enumerators).
constexpr size_t type_index(type t) {
  for (size_t i = 0; i < std::size(type_table); ++i)
    if (type_table[i].t == t) return i;
  return 0;  // unreachable for valid enumerators
}
// The table row of t (t must be one of the enumerators).
constexpr const type_info& info(type t) { return type_table[type_index(t)]; }

// By llama.cpp name, case-insensitive ("Q4_K", "q4_k", "IQ3_XXS").
result<type> type_from_name(std::string_view name);
// By ggml / GGUF type id.
result<type> type_from_id(uint32_t id);
inline std::string_view type_name(type t) { return info(t).name; }

// Bytes of one row of n elements (n must be a multiple of the block size).
constexpr size_t row_size(type t, int64_t n) {
  return size_t(n / info(t).block_size) * size_t(info(t).type_size);
}

// The type a row of n_per_row elements is actually stored in when `wanted` is requested: `wanted` when
// its block divides the row, else the fallback, else f16 (llama.cpp's tensor_type_fallback). Errors
// (unsupported) only for a type without a fallback whose block does not divide the row (none today).
result<type> resolve_row_type(type wanted, int64_t n_per_row);

}  // namespace razor::ggml
