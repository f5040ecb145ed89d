// The real ggml (libggml-base.so from the node-llama-cpp npm package), loaded with dlopen so the tests
// compare our bytes with ggml's own. Install:
//   cd $RAZOR_ORACLE_DIR && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm i -E --omit=optional
//       node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1   (docs: shared/docs/llamacpp-oracle.md)
// Prototypes are declared here by hand from ggml.h / ggml-quants.h (ggml 0.23.0, llama.cpp v0.4.0
// build 5b4ebc5).
#pragma once
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace razor_test {

struct ggml_oracle {
  using quantize_chunk_fn = size_t (*)(int type, const float* src, void* dst, int64_t start, int64_t nrows,
                                       int64_t n_per_row, const float* imatrix);
  using dequantize_fn = void (*)(const void* src, float* dst, int64_t k);
  using half_row_fn = void (*)(const uint16_t* src, float* dst, int64_t n);

  void* handle = nullptr;
  std::string path;
  std::string error;
  quantize_chunk_fn quantize_chunk = nullptr;
  void (*quantize_init)(int type) = nullptr;
  bool (*requires_imatrix)(int type) = nullptr;
  const char* (*type_name)(int type) = nullptr;
  size_t (*type_size)(int type) = nullptr;
  int64_t (*blck_size)(int type) = nullptr;
  bool (*validate_row_data)(int type, const void* data, size_t nbytes) = nullptr;
  uint16_t (*fp32_to_fp16)(float) = nullptr;
  float (*fp16_to_fp32)(uint16_t) = nullptr;
  uint16_t (*fp32_to_bf16)(float) = nullptr;  // returns ggml_bf16_t {uint16_t bits}: same ABI
  half_row_fn fp16_to_fp32_row = nullptr;
  half_row_fn bf16_to_fp32_row = nullptr;

  bool ok() const { return handle != nullptr; }

  template <class F>
  bool sym(F& f, const char* name) {
    f = reinterpret_cast<F>(dlsym(handle, name));
    if (!f) error += std::string("missing symbol ") + name + "; ";
    return f != nullptr;
  }

  // dequantize_row_<name> by ggml's lower-case type spelling ("q4_K", "iq3_xxs").
  dequantize_fn dequantizer(const std::string& type_name_) const {
    return reinterpret_cast<dequantize_fn>(dlsym(handle, ("dequantize_row_" + type_name_).c_str()));
  }

  static ggml_oracle& instance() {
    static ggml_oracle o = load();
    return o;
  }

  static std::string default_path() {
    return std::string(RAZOR_ORACLE_DIR) + "/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so";
  }

 private:
  static ggml_oracle load() {
    ggml_oracle o;
    o.path = default_path();
    o.handle = dlopen(o.path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!o.handle) {
      const char* e = dlerror();
      o.error = "cannot dlopen " + o.path + ": " + (e ? e : "?") +
                " (npm i -E node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1 in RAZOR_ORACLE_DIR)";
      return o;
    }
    bool all = true;
    all &= o.sym(o.quantize_chunk, "ggml_quantize_chunk");
    all &= o.sym(o.quantize_init, "ggml_quantize_init");
    all &= o.sym(o.requires_imatrix, "ggml_quantize_requires_imatrix");
    all &= o.sym(o.type_name, "ggml_type_name");
    all &= o.sym(o.type_size, "ggml_type_size");
    all &= o.sym(o.blck_size, "ggml_blck_size");
    all &= o.sym(o.validate_row_data, "ggml_validate_row_data");
    all &= o.sym(o.fp32_to_fp16, "ggml_fp32_to_fp16");
    all &= o.sym(o.fp16_to_fp32, "ggml_fp16_to_fp32");
    all &= o.sym(o.fp32_to_bf16, "ggml_fp32_to_bf16");
    all &= o.sym(o.fp16_to_fp32_row, "ggml_fp16_to_fp32_row");
    all &= o.sym(o.bf16_to_fp32_row, "ggml_bf16_to_fp32_row");
    if (!all) {
      dlclose(o.handle);
      o.handle = nullptr;
    }
    return o;
  }
};

}  // namespace razor_test

#define RAZOR_REQUIRE_ORACLE(o)                                                    \
  auto& o = ::razor_test::ggml_oracle::instance();                                \
  if (!o.ok()) GTEST_SKIP() << "ggml oracle unavailable: " << o.error
