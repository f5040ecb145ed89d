// GGUF v3: the llama.cpp / ggml model container. A memory-mapped, fully validating reader and a streaming,
// atomic writer (optionally split into shards).
//
// Byte layout (everything little endian; ggml-org/ggml docs/gguf.md, checked against llama.cpp's loader):
//   u32  magic          "GGUF" (bytes 47 47 55 46)
//   u32  version        3 (2 is read too: same layout)
//   u64  n_tensors
//   u64  n_kv
//   kv[n_kv]            gguf_string key, u32 value_type, value
//   tensor_info[n_tensors]
//                       gguf_string name (< 64 bytes, llama.cpp's GGML_MAX_NAME), u32 n_dims (<= 4),
//                       u64 ne[n_dims] (ne[0] is the contiguous, innermost dimension: a matrix of
//                       n_out rows of n_in is {n_in, n_out}; experts stack outermost: {n_in, n_out, n_expert}),
//                       u32 ggml_type, u64 offset (relative to the data section)
//   u8   pad[]          zeros up to the next multiple of ALIGNMENT
//   u8   data[]         tensor data; tensor i starts at offset_i, which must equal the running sum of the
//                       previous tensors' sizes, each padded to ALIGNMENT (no gaps: llama.cpp rejects them)
// gguf_string = u64 length + bytes (UTF-8, no NUL).
// value_type: U8=0 I8=1 U16=2 I16=3 U32=4 I32=5 F32=6 BOOL=7 (1 byte, 0 or 1) STRING=8 ARRAY=9 U64=10 I64=11
//             F64=12. ARRAY = u32 element type + u64 count + elements; arrays may nest.
// ALIGNMENT = general.alignment (must be a UINT32 power of two) or 32.
// A tensor's bytes = (ne[0] / block_size) * type_size * ne[1] * ne[2] * ne[3]; ne[0] % block_size == 0.
//
// Split files (llama.cpp's gguf-split convention): "<base>-00001-of-00003.gguf" ...; every shard carries
// split.no (u16, 0-based), split.count (u16) and split.tensors.count (i32, tensors in all shards); the first
// shard holds all other metadata, the others only the split keys. llama.cpp is pointed at the first shard.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ggml/types.h"
#include "util/atomic_file.h"
#include "util/mapped_file.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor::gguf {

inline constexpr uint32_t magic = 0x46554747u;  // "GGUF" read as little-endian u32
inline constexpr uint32_t version = 3;
inline constexpr uint32_t default_alignment = 32;
inline constexpr size_t max_name_bytes = 63;     // GGML_MAX_NAME - 1
inline constexpr int max_dims = 4;
inline constexpr int max_array_depth = 8;       // nesting limit for arrays of arrays (reader)
// The reader's limits (docs/limits.md). Every count is first bounded by the bytes left in the file (each entry
// needs a minimum number of bytes); these bound what a file that is large but mostly zeros (a sparse file)
// could still ask for. The largest real files hold ~100 keys, ~2,000 tensors, a 262,144-token vocabulary and
// tens of MB of metadata.
inline constexpr uint64_t max_kv = 65536;                       // metadata entries
inline constexpr uint64_t max_tensors = uint64_t(1) << 20;      // tensor infos
inline constexpr uint64_t max_array_items = uint64_t(1) << 24;  // items of one array
inline constexpr uint64_t max_metadata_memory = uint64_t(1) << 30;  // bytes the parsed metadata may take

// ---- value types ------------------------------------------------------------------------------------
enum class value_type : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9,
  u64 = 10, i64 = 11, f64 = 12
};
std::string_view value_type_name(value_type t);   // "UINT32", ...; "?" when unknown
bool value_type_known(uint32_t t);
size_t value_type_size(value_type t);             // bytes of a scalar; 0 for string/array

// One metadata value: a scalar, a string or an array (of scalars, strings or arrays).
// Arrays of fixed-size scalars are stored packed (little-endian bytes), as in the file.
class value {
 public:
  value() = default;
  value_type type() const { return type_; }
  bool is_array() const { return type_ == value_type::array; }
  value_type elem_type() const { return elem_; }  // for arrays
  size_t size() const;                            // array length (0 for scalars)

  // Scalar constructors
  static value u8(uint8_t v);
  static value i8(int8_t v);
  static value u16(uint16_t v);
  static value i16(int16_t v);
  static value u32(uint32_t v);
  static value i32(int32_t v);
  static value f32(float v);
  static value boolean(bool v);
  static value str(std::string v);
  static value u64(uint64_t v);
  static value i64(int64_t v);
  static value f64(double v);
  // Arrays
  static value array_raw(value_type elem, std::vector<uint8_t> packed, size_t count);
  static value strings(std::vector<std::string> v);
  static value arrays(std::vector<value> v);  // nested; elements may differ in element type
  static value i32s(std::span<const int32_t> v);
  static value u32s(std::span<const uint32_t> v);
  static value f32s(std::span<const float> v);
  static value i64s(std::span<const int64_t> v);

  // Scalar access, converting between integer widths; nullopt when the type does not fit.
  std::optional<int64_t> as_int() const;       // any integer type or bool (u64 above INT64_MAX: nullopt)
  std::optional<uint64_t> as_uint() const;     // any non-negative integer
  std::optional<double> as_float() const;      // f32/f64 and integers
  const std::string* as_string() const;        // nullptr unless a string

  // Array element access (i < size()).
  int64_t int_at(size_t i) const;              // integer/bool arrays
  double float_at(size_t i) const;             // any numeric array
  const std::string& str_at(size_t i) const;   // string arrays
  const value& array_at(size_t i) const;       // arrays of arrays
  const std::vector<std::string>& string_items() const { return strs_; }
  const std::vector<uint8_t>& packed() const { return raw_; }

  // Human-readable rendering, arrays abbreviated after `max_items` elements.
  std::string to_string(size_t max_items = 8) const;
  bool operator==(const value& o) const;

 private:
  friend struct value_codec;
  value_type type_ = value_type::u8;
  value_type elem_ = value_type::u8;
  uint64_t bits_ = 0;           // scalar payload (integers, float bits)
  std::string str_;
  std::vector<uint8_t> raw_;    // packed fixed-size array elements
  std::vector<std::string> strs_;
  std::vector<value> arrs_;
  size_t count_ = 0;
};

struct kv_pair {
  std::string key;
  value val;
};

// ---- ggml tensor types, as far as the container needs them --------------------------------------------
// The container table: every ggml type id this llama.cpp generation knows, with its block geometry, so that
// files with any type can be read, sized and validated: every row of the one type table (ggml::known_types,
// ggml/types.h: the types we write and those we only read). Sorted by id.
struct type_traits {
  uint32_t id;
  const char* name;   // ggml_type_name: "f32", "q8_0", "iq3_xxs"
  int64_t block_size; // elements per block
  int64_t type_size;  // bytes per block
};
const type_traits* find_type(uint32_t id);            // nullptr when unknown
const type_traits* find_type(std::string_view name);  // case-insensitive
std::vector<type_traits> all_types();
// Bytes of a tensor of this type and shape; nullopt on overflow or ne[0] not a multiple of the block size.
std::optional<uint64_t> tensor_bytes(uint32_t type, std::span<const int64_t> ne);

struct tensor_info {
  std::string name;
  std::vector<int64_t> ne;  // ne[0] innermost
  uint32_t type = 0;
  uint64_t offset = 0;      // relative to the data section
  uint64_t nbytes = 0;
  int64_t nelements() const;
};

// ---- reader -----------------------------------------------------------------------------------------
class file {
 public:
  // Maps `path` and validates the whole header (see parse). Tensor bytes are paged in when read.
  static result<file> open(const std::string& path);
  // Validates a GGUF image in memory without copying it: `data` must outlive the returned file. `name` is
  // used in error messages. Every error is errc::bad_format (or unsupported for another version), names
  // the file and what is wrong; malformed input never crashes and never allocates more than a small
  // multiple of `size`.
  static result<file> parse(const uint8_t* data, size_t size, const std::string& name);

  const std::string& path() const { return name_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }
  const std::vector<kv_pair>& metadata() const { return kv_; }
  const value* find(std::string_view key) const;
  // Typed lookups; nullopt when absent or of another kind.
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  const std::vector<tensor_info>& tensors() const { return tensors_; }
  const tensor_info* find_tensor(std::string_view name) const;
  const uint8_t* tensor_data(const tensor_info& t) const { return data_ + data_offset_ + t.offset; }

 private:
  mapped_file map_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  std::string name_;
  uint32_t version_ = 0, alignment_ = default_alignment;
  uint64_t data_offset_ = 0;
  std::vector<kv_pair> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<tensor_info> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

// Serialises one value (type tag not included) in GGUF encoding; used by the writer, exposed for tests.
void encode_value(const value& v, std::string& out);

// ---- writer -----------------------------------------------------------------------------------------
struct writer_options {
  uint32_t alignment = default_alignment;  // written as general.alignment when not 32
  uint64_t max_shard_bytes = 0;            // 0: one file; else split into shards of at most this much data
                                           // (a tensor larger than the limit gets a shard of its own)
};

// Streaming writer. Usage:
//   writer w;  w.set("general.architecture", value::str("qwen3moe")); ...
//   w.add_tensor("token_embd.weight", {256, 4096}, type_f32); ...      // declare all, in file order
//   RAZOR_TRY(w.begin("out/model.gguf"));                             // writes the header(s)
//   RAZOR_TRY(w.write(bytes, n)); ...                                 // tensor bytes in declared order,
//                                                                     // any piece size; padding is added
//   RAZOR_TRY(w.finish());                                            // checks completeness, renames
// Files appear under their final names only after finish() succeeds; abort() (or destruction without
// finish) removes the temporary files.
class writer {
 public:
  explicit writer(writer_options o = {});
  ~writer();
  writer(const writer&) = delete;
  writer& operator=(const writer&) = delete;

  // Sets a metadata key; setting an existing key replaces its value in place (order kept).
  void set(const std::string& key, value v);
  const value* get(std::string_view key) const;
  void remove(std::string_view key);
  status add_tensor(const std::string& name, std::vector<int64_t> ne, uint32_t type);
  const std::vector<tensor_info>& tensors() const { return tensors_; }

  status begin(const std::string& path);
  status write(const void* data, size_t n);
  // Index of the tensor the next write() goes to (== tensors().size() when all data arrived).
  size_t current_tensor() const { return cur_; }
  status finish();
  void abort();

  // Output files (after begin): one path, or the shard paths in order.
  const std::vector<std::string>& paths() const { return paths_; }
  uint64_t total_bytes() const;  // sum of the output file sizes (valid after begin)
  // The exact size of the single (unsplit) file begin() + write() + finish() would produce with the metadata and
  // tensors declared so far: header, tensor infos, alignment padding and every tensor padded. Before begin().
  uint64_t planned_bytes() const;

  // "dir/model.gguf", 2, 5 -> "dir/model-00002-of-00005.gguf"
  static std::string shard_path(const std::string& path, int no1, int count);

 private:
  status start_shard(size_t s);
  // Header of shard si of n_shards holding tensors [first, last), padded to the alignment.
  std::string encode_header(size_t si, size_t n_shards, size_t first, size_t last) const;
  status finish_tensor();
  writer_options opt_;
  std::vector<kv_pair> kv_;
  std::vector<tensor_info> tensors_;
  std::unordered_map<std::string, size_t> names_;
  struct shard {
    size_t first = 0, last = 0;  // tensors [first, last)
    uint64_t header_bytes = 0, data_bytes = 0;
    std::unique_ptr<atomic_writer> out;
  };
  std::vector<shard> shards_;
  std::vector<std::string> paths_;
  size_t cur_ = 0, cur_shard_ = 0;
  uint64_t cur_written_ = 0;  // bytes of tensor cur_ already written
  bool begun_ = false, done_ = false;
  status error_;
};

// Convenience: write a whole file whose tensors are all in memory (tests, imatrix files).
struct memory_tensor {
  std::string name;
  std::vector<int64_t> ne;
  uint32_t type;
  std::vector<uint8_t> bytes;
};
status write_file(const std::string& path, const std::vector<kv_pair>& kv, const std::vector<memory_tensor>& tensors,
                  writer_options o = {});

// ggml type ids used by the converter and the imatrix files (the full table is find_type / all_types).
inline constexpr uint32_t type_f32 = uint32_t(ggml::type::f32), type_f16 = uint32_t(ggml::type::f16),
                          type_q8_0 = uint32_t(ggml::type::q8_0), type_bf16 = uint32_t(ggml::type::bf16);

}  // namespace razor::gguf
