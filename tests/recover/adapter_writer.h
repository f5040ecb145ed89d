// Writing an adapter.safetensors in the contract's format (docs/recovery.md) for the recover tests: deterministic
// values, optionally B = 0, a tensor reshaped or extra tensors (refusal tests).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "model/hf_config.h"
#include "model/safetensors.h"
#include "recover/merge.h"

namespace razor::recover::test_support {

// A deterministic value for element i of tensor `which` (small, both signs).
inline float val(int which, size_t i) { return float(std::sin(double(i) * 0.618 + which * 1.3) * 0.05); }

struct adapter_spec {
  int64_t E = 0, H = 0, I = 0, r = 0;
  std::vector<int> layers;
  bool zero_b = false;
  // Changes the shape of one tensor before it is written (refusal tests).
  std::function<void(const std::string& name, std::vector<int64_t>& shape)> reshape;
  std::vector<std::string> extra;  // further tensors [1] named so
};

inline void write_adapter(const std::string& path, const adapter_spec& s) {
  safetensors_writer w;
  std::vector<std::pair<std::string, std::vector<int64_t>>> decl;
  for (int L : s.layers)
    for (bool gu : {true, false})
      for (bool a : {true, false}) {
        std::vector<int64_t> shape = gu ? (a ? std::vector<int64_t>{s.E, s.r, s.H} : std::vector<int64_t>{s.E, 2 * s.I, s.r})
                                        : (a ? std::vector<int64_t>{s.E, s.r, s.I} : std::vector<int64_t>{s.E, s.H, s.r});
        const std::string name = adapter_tensor_name(L, gu, a);
        if (s.reshape) s.reshape(name, shape);
        decl.push_back({name, shape});
      }
  for (auto& e : s.extra) decl.push_back({e, {1}});
  for (auto& [n, sh] : decl) ASSERT_TRUE(w.add(n, dtype::f32, sh).ok());
  w.set_metadata({{"format", "razor-opd-lora-1"}, {"rank", std::to_string(s.r)}, {"scale", "2.0"}, {"model", "student"}});
  ASSERT_TRUE(w.begin(path).ok());
  int which = 0;
  for (auto& [n, sh] : decl) {
    int64_t numel = 1;
    for (auto v : sh) numel *= v;
    std::vector<float> data(static_cast<size_t>(numel));
    const bool is_b = n.size() > 7 && n.compare(n.size() - 7, 7, ".lora_B") == 0;
    for (size_t i = 0; i < data.size(); ++i) data[i] = (is_b && s.zero_b) ? 0.0f : val(which, i);
    ++which;
    ASSERT_TRUE(w.write(data.data(), data.size() * 4).ok());
  }
  ASSERT_TRUE(w.finish().ok());
}

inline adapter_spec spec_for(const model_config& c, int64_t r) {
  adapter_spec s;
  s.E = c.num_experts, s.H = c.hidden_size, s.I = c.moe_intermediate_size, s.r = r;
  for (int64_t L = 0; L < c.num_layers; ++L)
    if (c.layer_is_moe(L)) s.layers.push_back(int(L));
  return s;
}

}  // namespace razor::recover::test_support
