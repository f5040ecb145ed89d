// `razor allocate --mode gguf` as one call: plan the items, measure (or reuse) the sensitivities on calibration
// windows of a text, solve for the target, write the tensor-type recipe and its report (razor.gguf_allocation/2),
// optionally measure the whole allocation's KL in memory. The CLI and the worker only parse parameters.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/parallel.h"
#include "util/status.h"

namespace razor::alloc {

struct gguf_alloc_params {
  std::string model;                     // checkpoint directory
  std::string target;                    // "7879360B", "7.5MB", "3.5bits"
  std::string out;                       // recipe (tensor-type file)
  std::string report;                    // default: <out without extension>.report.json
  std::string imatrix;                   // importance matrix (GGUF or legacy .dat): quantization weights, iq types
  std::string types;                     // ladder, comma-separated (default: every type, f16 included)
  std::vector<std::string> role_types;   // "ROLE=t1,t2": the only types for a role (one type fixes it)
  bool allow_missing_imatrix = false;
  // calibration (the sensitivities): windows of `ctx` tokens starting at token `offset` of `text`
  std::string text;
  int windows = 8, ctx = 256;
  int64_t offset = 0;
  // full: KL at every type; fit: KL at `fit_types` types, fitted curve; weights: no forward pass, the imatrix-weighted
  // output error on `sample_rows` rows per tensor (weight_damage.h)
  std::string sensitivity = "full";
  int fit_types = 3;
  int64_t sample_rows = 256;
  std::string cache;                     // measurements file (default <out without extension>.sensitivity.json)
  bool no_cache = false;
  // the whole allocation's KL in memory on `measure_windows` windows from token `measure_offset` of `measure_text`
  // (default: the calibration text after the calibration windows)
  bool measure = false;
  std::string measure_text;
  int measure_windows = 8;
  int64_t measure_offset = -1;
};

// Returns the report (also written beside the recipe). Progress units: measurements, then "measure" windows.
result<nlohmann::json> run_gguf_allocation(const gguf_alloc_params& p, const progress_fn& progress = {});

}  // namespace razor::alloc
