// The ggml tensor types Razor reads and writes. One table (RAZOR_GGML_TYPES) drives the enum, the
// names, the sizes, the imatrix policy and the row-length fallback; the CLI, the recipes and the tests
// all read it (house style 10).
//
// Columns:
//   ident     enumerator of razor::ggml::type
//   name      llama.cpp's spelling (ggml_type_name): "q4_K", "iq3_xxs"; lookup is case-insensitive
//   id        ggml / GGUF type id
//   block     elements per block;  bytes: bytes per block
//   imatrix   true where llama.cpp refuses to quantize (non token_embd / output) tensors to this type
//             without an importance matrix (tensor_requires_imatrix in src/llama-quant.cpp). ggml itself
//             accepts null weights for all of these types.
//   fallback  our type used when a row length is not a multiple of `block` (llama.cpp's
//             tensor_type_fallback); `ident` itself means llama.cpp defines no fallback (it throws)
//   llama_fb  llama.cpp's own fallback, by name. Where it names a type we do not implement (q5_0, q5_1)
//             we fall back to q8_0 instead: never fewer bits per weight than llama.cpp would spend.
//   As in llama.cpp, when the fallback's block still does not divide the row, the type becomes f16.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "util/status.h"

namespace razor::ggml {

// clang-format off
#define RAZOR_GGML_TYPES(X)                                                        \
  /* ident    name       id  block bytes imatrix fallback  llama_fb */            \
  X(f32,     "f32",      0,   1,    4,  false,  f32,     "none")                 \
  X(f16,     "f16",      1,   1,    2,  false,  f16,     "none")                 \
  X(q4_0,    "q4_0",     2,  32,   18,  false,  q4_0,    "none")                 \
  X(q8_0,    "q8_0",     8,  32,   34,  false,  q8_0,    "none")                 \
  X(q2_k,    "q2_K",    10, 256,   84,  false,  q4_0,    "q4_0")                 \
  X(q3_k,    "q3_K",    11, 256,  110,  false,  q4_0,    "q4_0")                 \
  X(q4_k,    "q4_K",    12, 256,  144,  false,  q8_0,    "q5_0")                 \
  X(q5_k,    "q5_K",    13, 256,  176,  false,  q8_0,    "q5_1")                 \
  X(q6_k,    "q6_K",    14, 256,  210,  false,  q8_0,    "q8_0")                 \
  X(iq3_xxs, "iq3_xxs", 18, 256,   98,  true,   iq4_nl,  "iq4_nl")               \
  X(iq4_nl,  "iq4_nl",  20,  32,   18,  false,  iq4_nl,  "none")                 \
  X(iq4_xs,  "iq4_xs",  23, 256,  136,  false,  iq4_nl,  "iq4_nl")               \
  X(bf16,    "bf16",    30,   1,    2,  false,  bf16,    "none")
// clang-format on
// Note on q2_K: llama.cpp also demands an imatrix for q2_K tensors of a Q2_K_S file; that is a file
// type (recipe) rule, not a property of the block type, and is left to the caller.

enum class type : uint32_t {
#define X(ident, name, id, block, bytes, imatrix, fallback, llama_fb) ident = id,
  RAZOR_GGML_TYPES(X)
#undef X
};

struct type_info {
  type t;
  std::string_view name;     // llama.cpp spelling
  uint32_t id;               // ggml / GGUF type id
  int block_size;            // elements per block
  int type_size;             // bytes per block
  bool needs_imatrix;        // llama.cpp refuses this type without an imatrix
  type fallback;             // == t: no fallback defined
  std::string_view llama_fallback;  // llama.cpp's fallback name ("none" where it defines none)
  bool is_quantized() const { return block_size > 1; }
};

// Every type, in table order.
std::span<const type_info> all_types();
// The table row of t (t must be one of the enumerators).
const type_info& info(type t);
// By llama.cpp name, case-insensitive ("Q4_K", "q4_k", "IQ3_XXS").
result<type> type_from_name(std::string_view name);
// By ggml / GGUF type id.
result<type> type_from_id(uint32_t id);
inline std::string_view type_name(type t) { return info(t).name; }

// Bytes of one row of n elements (n must be a multiple of the block size).
size_t row_size(type t, int64_t n);

// The type a row of n_per_row elements is actually stored in when `wanted` is requested: `wanted` when
// its block divides the row, else the fallback, else f16 (llama.cpp's tensor_type_fallback). Error
// (unsupported) where llama.cpp defines no fallback for `wanted` (q8_0, q4_0, iq4_nl: rows not a
// multiple of 32).
result<type> resolve_row_type(type wanted, int64_t n_per_row);

}  // namespace razor::ggml
