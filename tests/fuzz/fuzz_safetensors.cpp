// libFuzzer target: the safetensors header parser must reject any byte string with an error, never crash,
// hang or read out of bounds (run under ASan/UBSan).
#include <cstddef>
#include <cstdint>

#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto h = razor::parse_safetensors_header(data, size, "fuzz.safetensors");
  if (h.ok()) {
    // Every accepted tensor must lie inside the buffer.
    for (auto& t : h->tensors) {
      if (h->data_offset + t.end > size) __builtin_trap();
      if (t.nbytes() != uint64_t(t.numel()) * razor::dtype_size(t.dt)) __builtin_trap();
    }
  }
  return 0;
}
