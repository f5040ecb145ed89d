// libFuzzer target for the GGUF reader and the imatrix reader: any byte string must give either a valid
// file or a bad_format/unsupported error, never a crash, a hang or an unbounded allocation.
#include <cstddef>
#include <cstdint>

#include "gguf/gguf_file.h"
#include "gguf/imatrix.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = razor::gguf::file::parse(data, size, "fuzz.gguf");
  if (f.ok()) {
    // Touch what a consumer touches: every value's rendering and every tensor's bytes.
    for (auto& kv : f->metadata()) (void)kv.val.to_string(4);
    uint64_t sum = 0;
    for (auto& t : f->tensors()) {
      const uint8_t* p = f->tensor_data(t);
      if (t.nbytes) sum += p[0] + p[t.nbytes - 1];
    }
    (void)sum;
  }
  auto im = razor::gguf::parse_imatrix(data, size, "fuzz.imatrix");
  (void)im;
  return 0;
}
