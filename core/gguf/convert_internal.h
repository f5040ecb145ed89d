// Private to the HF -> GGUF conversion (convert.h): what its files share. convert_plan.cpp lists the GGUF
// tensors a checkpoint becomes (planned, with the producer of their floats), convert_types.cpp gives each its
// ggml type (recipe rules, llama.cpp's rules), convert_metadata.cpp writes the header's metadata and tensor
// declarations, convert.cpp quantizes and writes the files (single, parts, merge).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gguf/convert.h"
#include "gguf/gguf_file.h"
#include "model/checkpoint.h"
#include "util/status.h"

namespace razor::gguf::convert_detail {

// Produces matrix `mat` (0 <= mat < n_mat) of a tensor: ne[0]*ne[1] floats (or all of a 1-D tensor).
using producer = std::function<status(int64_t mat, float* out)>;
// Writes matrix `mat` as GGML blocks of planned::raw_type straight from the source's own blocks (no floats, no
// requantisation): an MXFP4 source's experts written as mxfp4, the Hub's blocks repacked as llama.cpp's converter
// does (GptOssModel.repack_mxfp4).
using raw_producer = std::function<status(int64_t mat, uint8_t* out)>;

struct planned {
  std::string name;
  std::vector<int64_t> ne;
  int64_t n_mat = 1;  // ne[2] for stacked experts
  producer produce;
  raw_producer produce_raw;                    // used when the tensor is stored as raw_type
  ggml::type raw_type = ggml::type::f32;
  int64_t slice() const { return ne.size() >= 2 ? ne[0] * ne[1] : (ne.empty() ? 1 : ne[0]); }
};

struct full_plan {
  std::vector<planned> tensors;
  convert_report report;
};

// Every GGUF tensor of the checkpoint with its type and size (convert_plan.cpp).
result<full_plan> make_plan(const checkpoint& ck, const convert_options& o);

// The report's rows of fp.tensors: each tensor's type by the recipe and llama.cpp's rules, refusals for a type
// that needs an importance matrix the options do not give (convert_types.cpp).
status choose_types(const convert_options& o, full_plan& fp);

// The header of the output: metadata, then every tensor declared in plan order. The same for a single
// conversion and for a merge of parts, so both files are identical (convert_metadata.cpp).
status declare_output(writer& w, const checkpoint& ck, const convert_report& rep, const std::string& model_dir,
                      const convert_options& o);

}  // namespace razor::gguf::convert_detail
