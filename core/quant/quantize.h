// `razor quantize`: apply a fake-quant recipe to a checkpoint and write the dequantized checkpoint.
//
// The output has the source's tensor names, dtypes, shapes, shard files and index, and every non-weight file
// of the source directory (config.json, tokenizer files, generation config, processor configs) copied as is,
// so transformers / vLLM load it exactly like the source. Kept tensors are copied byte for byte. The whole
// directory is built under "<out>.partial-<pid>" and renamed when complete: a cancel, a crash or a full disk
// leaves nothing under the final name. Beside the weights, razor_quant_summary.json holds per tensor: bits,
// group, clip-ratio histogram, relative Frobenius error; per routed expert (layer, expert, projection): bits and
// relative error; totals and the footprint (effective bits); "ptq_meta" (the seed's _ptq_meta.json fields): the
// expert method, expert / backbone bits, group, the calibration tokens and how many expert slices fell back to RTN
// and why.
//
// Split runs (razor quantize --layers, the Slurm array jobs of core/jobs/slurm.h): with options.layers other
// than "all", only the selected tensors are quantized and the output directory is a *part*: one safetensors
// file per source shard that holds selected tensors (same file name, the selected tensors in source order),
// and razor_part.json (format razor.quant_part/1: source fingerprint, layer selection, resolved recipe, per
// tensor its file, summary entry and raw error accumulators, per-expert entries, parameters by bits). No
// config or tokenizer files. A part is written atomically like a full output.
//
// merge_quantize_parts assembles parts into exactly what one quantize_checkpoint writes: the same shards with
// the same headers and tensor bytes, the source's other files, and a summary whose totals, tensors and experts
// are equal (the raw accumulators are re-summed in the single run's order, so even the floating-point totals
// are bit-identical); only "seconds" and "backend" describe the parts, and "parts" lists them. It refuses, with
// the part named, a part that is missing its manifest, was made from another checkpoint or recipe, holds a
// tensor twice or a truncated file; and, with the layer named, any tensor that no part holds.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include <vector>

#include "model/checkpoint.h"
#include "model/layer_selection.h"
#include "model/recipe.h"
#include "quant/methods.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor::quant {

// A change to a tensor's values before it is quantized (razor recover's merge, core/recover/merge.h: W + s B A per
// expert). `applies` picks the tensors (the others take the usual path: copied byte for byte, or quantized from
// their stored bytes); `apply` gets each slice of a picked tensor as float32 [rows, cols] — one expert of a fused
// [E, rows, cols] tensor (slice = the expert), or the whole 2-D tensor (slice 0) — and rewrites it in place. The
// slice is then quantized from these float32 values with the recipe's bits for it (the CPU fast path: the same
// fake_quant the BF16 input takes, the input simply not rounded to BF16 first), or, where the recipe keeps it,
// written rounded to the output dtype. The summary's errors are measured against the transformed values.
struct tensor_transform {
  std::function<bool(const tensor_entry& t)> applies;
  std::function<status(const tensor_entry& t, size_t slice, size_t rows, size_t cols, float* data)> apply;
  explicit operator bool() const { return applies && apply; }
};

// The expert algorithm of a recipe (its "method" key, core/quant/methods.h; absent: clip). The method replaces the
// clip search for routed experts only, at their usual per-expert / per-role bits; every other tensor keeps the
// recipe's own clip_steps (the seed's AWQ / GPTQ / RTN checkpoints: clip_steps 0, an absmax backbone). clip uses the
// recipe's clip_steps for the experts too; absmax none. An unknown method is errc::bad_recipe naming the recipe.
result<quant_method> recipe_method(const recipe& r);
// A method's fake-quant of one [rows, cols] float32 slice at `bits` (an integer 2..8 for the methods other than clip /
// absmax, which also take 1.58): clip / absmax through fake_quant (one copy of that code), the others through
// fake_quant_method. `out` gets rows * cols floats.
status method_fake_quant(quant_method m, const float* w, size_t rows, size_t cols, double bits, int group,
                         int clip_steps, const calib_view& tokens, float* out, method_report* rep = nullptr);

// GPTQ of many [rows, cols] float32 slices of one shape at `bits` / `group` as method_fake_quant reads them, through
// gptq_quantize_batch (methods.h): on the GPU when allow_gpu and one is present (used_gpu then true), else on the CPU,
// where each item's bytes equal method_fake_quant's.
status gptq_fake_quant_batch(const std::vector<gptq_batch_item>& items, size_t rows, size_t cols, double bits,
                             int group, bool allow_gpu, bool* used_gpu = nullptr);

// Calibration rows for a routed expert's projection: the input of gate / up (down = false) or of down_proj (down =
// true), [n, cols] float32; an empty view when there are none (the method then falls back as the seed does).
using calib_source = std::function<calib_view(int layer, int expert, bool down)>;

struct quantize_options {
  bool allow_gpu = true;
  std::string summary_name = "razor_quant_summary.json";
  layer_selection layers;  // not "all": write a part (see above)
  tensor_transform transform;  // optional (see above)
  std::vector<std::string> extra_inputs;  // more paths the output must not replace (a transform's own inputs)
  // Tokens for a recipe method that needs them (awq, gptq; recipe_method); without: errc::invalid_argument.
  calib_source calib;
  // What the tokens are (text, calib_n, max_tok_per_expert, ...): copied into the summary's "ptq_meta".
  nlohmann::json calib_info = nlohmann::json::object();
};

inline constexpr const char* kQuantPartManifest = "razor_part.json";

struct quantize_report {
  nlohmann::json summary;  // what razor_quant_summary.json holds
  std::string backend;     // "cpu", "cuda" or "cpu+cuda"
  double seconds = 0;
  uint64_t bytes_in = 0;
};

// progress: done/total in bytes of tensor data; returning false cancels (errc::cancelled).
result<quantize_report> quantize_checkpoint(const checkpoint& ck, const recipe& r, const std::string& out_dir,
                                            const quantize_options& opt = {}, const progress_fn& progress = {});

// Assembles parts (directories written with options.layers) into the full output at out_dir (atomically).
// progress: done/total in bytes of tensor data copied.
result<quantize_report> merge_quantize_parts(const checkpoint& ck, const recipe& r,
                                             const std::vector<std::string>& part_dirs, const std::string& out_dir,
                                             const quantize_options& opt = {}, const progress_fn& progress = {});

// A hash of the checkpoint's tensor names, dtypes, shapes and shard files (16 hex digits): parts made from a
// different checkpoint are refused by the merge.
std::string checkpoint_fingerprint(const checkpoint& ck);

}  // namespace razor::quant
