// libFuzzer target: a checkpoint folder's FP8 block scales and MXFP4 blocks (model/checkpoint.h): config.json and
// model.safetensors are the input's two parts (split at "\n--8<--\n" lines, in that order; a missing part is a
// missing file). checkpoint::open binds each F8_E4M3 weight to its <name>_scale_inv from
// quantization_config.weight_block_size, and each U8 <name>_blocks to its <name>_scales (quant_method mxfp4);
// when it succeeds every floating-point or MXFP4 tensor is read with read_f32 (dequantized through its scale). Never a crash, a hang or an unbounded allocation: an error naming the file and
// the tensor, or values.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "model/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = razor::fuzz::scratch_dir() + "/fp8";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto parts = razor::fuzz::split_parts(in, 2);
  const char* names[2] = {"config.json", "model.safetensors"};
  for (size_t i = 0; i < 2; ++i) {
    const std::string p = dir + "/" + names[i];
    if (parts[i].present) razor::fuzz::write_file(p, parts[i].bytes);
    else std::filesystem::remove(p, ec);
  }
  auto ck = razor::checkpoint::open(dir);
  if (!ck.ok()) return 0;
  std::vector<float> v;
  for (auto& t : ck->tensors()) {
    if (!razor::dtype_is_float(t.dt) && !t.mxfp4) continue;
    if (t.scale >= 0 && !t.mxfp4 && (t.block_rows < 1 || t.block_cols < 1)) __builtin_trap();
    v.resize(size_t(t.numel()));  // bounded: the tensor's bytes lie in the file
    (void)ck->read_f32(t, 0, t.numel(), v.data());
  }
  return 0;
}
