// libFuzzer target: importance matrices in both of llama.cpp's formats (GGUF by its magic, legacy .dat
// otherwise; core/gguf/imatrix.h), then what `razor pack --imatrix` does with one: matched against the bundled
// tiny-qwen3-moe fixture's GGUF tensors (names, widths, expert counts) and, when it matches, the importance
// weights of every entry and expert. Never a crash, a hang or an unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/convert.h"
#include "gguf/imatrix.h"
#include "model/checkpoint.h"

namespace {

const std::vector<razor::gguf::imatrix_target>& targets() {
  static const std::vector<razor::gguf::imatrix_target> t = [] {
    auto ck = razor::checkpoint::open(RAZOR_MODELS_DIR "/tiny-qwen3-moe");
    if (!ck.ok()) __builtin_trap();
    auto plan = razor::gguf::plan_gguf(*ck, {});
    if (!plan.ok()) __builtin_trap();
    std::vector<razor::gguf::imatrix_target> v;
    for (auto& r : plan->tensors)
      if (r.ne.size() >= 2) v.push_back({r.name, r.ne[0], r.ne.size() >= 3 ? r.ne[2] : 1});
    return v;
  }();
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto im = razor::gguf::parse_imatrix(data, size, "fuzz.imatrix");
  if (!im.ok()) return 0;
  for (auto& e : im->entries) (void)im->weights_for(e.name, 0);
  if (!im->match_model(targets(), "fuzz-model").ok()) return 0;
  for (auto& e : im->entries)
    for (int64_t m = 0; m < e.n_mat; ++m) {
      auto w = im->weights_for(e.name, m);
      if (w.ok() && int64_t(w->size()) != e.n_per_row) __builtin_trap();  // one weight per column
    }
  return 0;
}
