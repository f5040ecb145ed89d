// Importance matrices in llama.cpp's two file formats (tools/imatrix/imatrix.cpp, tools/quantize/quantize.cpp).
//
// GGUF imatrix (llama-imatrix's default output; a GGUF v3 file, see gguf_file.h):
//   general.type        = "imatrix"
//   imatrix.datasets    = [string]   calibration files
//   imatrix.chunk_count = u32        chunks processed
//   imatrix.chunk_size  = u32        tokens per chunk (n_ctx / n_parallel)
//   per weight tensor <name> (sorted by name):
//     <name>.in_sum2  F32 ne {n_per_row, n_mat}   sum of x^2 over the inputs seen, per column, per expert
//     <name>.counts   F32 ne {1, n_mat}           inputs seen per expert (1 matrix for dense tensors)
//     <name>.in_sum   F32 ne {n_per_row, n_mat}   optional (newer files): sum of x
//   Entries whose experts were partly never hit are stored as is (count 0).
//
// Legacy .dat (--output-format dat), all little endian:
//   i32 n_entries
//   per entry (sorted by name): i32 len, char name[len], i32 ncall, i32 nval,
//                               f32 values[nval] = (sum_x2 / count) * ncall per column (experts concatenated;
//                               an expert with count 0 is stored as 1 * ncall); entries with no data skipped
//   i32 last_chunk, i32 len, char dataset[len]    (trailer; older files may lack it)
//   ncall = ceil(max(count) / chunk_size). The format has no shapes: n_mat is only known against a model.
//
// Importance weights (what llama-quantize hands the quantizer, per row of expert e):
//   GGUF:   w[i] = in_sum2[e][i] / counts[e], or 1.0 for every column when counts[e] == 0
//   legacy: w[i] = values[e*n + i] / ncall (values as stored when ncall == 0)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace razor::gguf {

struct imatrix_entry {
  std::string name;        // GGUF weight tensor name, "blk.0.ffn_up_exps.weight"
  int64_t n_per_row = 0;   // columns (the weight's ne[0])
  int64_t n_mat = 1;       // experts (1 for dense)
  std::vector<float> in_sum2;  // n_per_row * n_mat, expert-major
  std::vector<float> counts;   // n_mat (legacy: one value, ncall, until matched to a model)
  std::vector<float> in_sum;   // empty, or n_per_row * n_mat
};

// One tensor of the model an imatrix is checked against: width and expert count.
struct imatrix_target {
  std::string name;
  int64_t n_per_row = 0;
  int64_t n_mat = 1;
};

struct imatrix {
  std::vector<imatrix_entry> entries;  // sorted by name
  std::vector<std::string> datasets;
  int64_t chunk_count = 0;
  int64_t chunk_size = 0;  // 0 when unknown (legacy)
  bool legacy = false;     // read from .dat: values are pre-divided (see the header comment)
  std::string source;      // file it was read from

  const imatrix_entry* find(const std::string& name) const;
  // Per-column importance for one row of `expert` (0 for dense tensors), exactly as llama-quantize derives it.
  // Errors: no such entry (not_found), expert out of range (invalid_argument).
  result<std::vector<float>> weights_for(const std::string& name, int64_t expert = 0) const;
  // Checks the entries against the model's tensors: every entry must name a tensor of the model and have its
  // width and expert count (legacy entries are reshaped here: nval = n_per_row * n_mat). Errors (bad_format)
  // name the imatrix file, the tensor and both shapes. `model` names the model in messages.
  status match_model(const std::vector<imatrix_target>& targets, const std::string& model);
};

// Reads either format (GGUF by its magic, otherwise legacy .dat). Validates sizes against the file size;
// errors name the file.
result<imatrix> read_imatrix(const std::string& path);
result<imatrix> parse_imatrix(const uint8_t* data, size_t size, const std::string& name);
// Writers (atomic). write_dat follows save_imatrix_legacy; chunk_size 0 is taken as 512 (llama-imatrix's
// default n_ctx) to compute ncall. A legacy imatrix written as GGUF stores values with counts = ncall.
status write_imatrix_gguf(const imatrix& im, const std::string& path);
status write_imatrix_dat(const imatrix& im, const std::string& path);

}  // namespace razor::gguf
