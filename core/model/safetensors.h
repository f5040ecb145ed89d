// safetensors: the Hugging Face tensor container.
//
// Byte layout (little endian):
//   u64 N                      length of the JSON header in bytes
//   u8  header[N]              UTF-8 JSON object: {"__metadata__": {str: str}, "<name>": {"dtype": "BF16",
//                              "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}
//   u8  data[...]              the byte buffer; offsets are relative to its start (8 + N)
// Row-major, C order. A tensor's bytes = prod(shape) * dtype size and must equal end - begin.
// The writer pads the header with spaces to a multiple of 8 bytes (as the reference implementation does).
//
// parse_safetensors_header validates everything before anyone touches the data: header length within the
// file, well-formed JSON, known dtypes, shapes of non-negative integers, offsets inside the data section,
// byte size equal to the shape's, no two tensors overlapping. Every error names the file and the tensor.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "util/atomic_file.h"
#include "util/mapped_file.h"
#include "util/status.h"

namespace razor {

// A named tensor's element type and shape: what a header entry states (st_tensor adds where its bytes lie in
// the file) and what a checkpoint's index keeps of it (tensor_entry adds its shard, role and FP8 scale).
struct tensor_desc {
  std::string name;
  dtype dt = dtype::unknown;
  std::vector<int64_t> shape;
  int64_t numel() const;
};

struct st_tensor : tensor_desc {
  uint64_t begin = 0, end = 0;  // relative to the data section
  uint64_t nbytes() const { return end - begin; }
};

struct st_header {
  std::vector<st_tensor> tensors;            // in data-offset order
  std::map<std::string, std::string> metadata;
  uint64_t header_len = 0;
  uint64_t data_offset = 0;                  // 8 + header_len
  uint64_t data_size = 0;                    // file size - data_offset
};

// `file_size` is the size of the whole file; `data` must hold at least min(file_size, 8 + header length).
result<st_header> parse_safetensors_header(const uint8_t* data, uint64_t file_size, const std::string& path);

class safetensors_file {
 public:
  static result<safetensors_file> open(const std::string& path);
  const st_header& header() const { return header_; }
  const std::string& path() const { return map_.path(); }
  const uint8_t* tensor_data(const st_tensor& t) const { return map_.data() + header_.data_offset + t.begin; }
  const mapped_file& map() const { return map_; }

 private:
  mapped_file map_;
  st_header header_;
};

// Streaming writer: declare every tensor first (the header holds all offsets), then write their bytes in
// the declared order, in as many pieces as convenient. Written atomically; nothing appears under the
// final name until finish() succeeds.
class safetensors_writer {
 public:
  status add(const std::string& name, dtype dt, std::vector<int64_t> shape);
  void set_metadata(std::map<std::string, std::string> m) { metadata_ = std::move(m); }
  status begin(const std::string& path);       // writes the header
  status write(const void* bytes, size_t n);   // next bytes of the current tensor(s), in order
  status skip(uint64_t n);                     // next n bytes are zeros, left as a hole (sparse files)
  status finish();                             // checks every declared byte arrived, then renames
  void abort() { out_.abort(); }
  uint64_t data_bytes() const { return total_; }

 private:
  struct decl {
    std::string name;
    dtype dt;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  std::vector<decl> decls_;
  std::map<std::string, std::string> metadata_;
  uint64_t total_ = 0, written_ = 0;
  atomic_writer out_;
};

}  // namespace razor
