// `razor quantize`: apply a fake-quant recipe to a checkpoint and write the dequantized checkpoint.
//
// The output has the source's tensor names, dtypes, shapes, shard files and index, and every non-weight file
// of the source directory (config.json, tokenizer files, generation config, processor configs) copied as is,
// so transformers / vLLM load it exactly like the source. Kept tensors are copied byte for byte. The whole
// directory is built under "<out>.partial-<pid>" and renamed when complete: a cancel, a crash or a full disk
// leaves nothing under the final name. Beside the weights, razor_quant_summary.json holds per tensor: bits,
// group, clip-ratio histogram, relative Frobenius error; per routed expert (layer, expert, projection): bits and
// relative error; totals and the footprint (effective bits).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "model/checkpoint.h"
#include "model/recipe.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor::quant {

struct quantize_options {
  bool allow_gpu = true;
  std::string summary_name = "razor_quant_summary.json";
};

struct quantize_report {
  nlohmann::json summary;  // what razor_quant_summary.json holds
  std::string backend;     // "cpu", "cuda" or "cpu+cuda"
  double seconds = 0;
  uint64_t bytes_in = 0;
};

// progress: done/total in bytes of tensor data; returning false cancels (errc::cancelled).
result<quantize_report> quantize_checkpoint(const checkpoint& ck, const recipe& r, const std::string& out_dir,
                                            const quantize_options& opt = {}, const progress_fn& progress = {});

}  // namespace razor::quant
