// libFuzzer target: config.json parsing and adapter checks on arbitrary bytes, plus tensor-name
// classification on arbitrary names.
#include <cstddef>
#include <cstdint>
#include <string>

#include "model/adapter.h"
#include "model/hf_config.h"
#include "model/recipe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  auto j = nlohmann::json::parse(s, nullptr, false);
  if (!j.is_discarded()) {
    auto c = razor::parse_model_config(j, "fuzz/config.json");
    if (c.ok()) {
      (void)razor::check_adapter_config(razor::adapter_for(*c), *c, "fuzz/config.json");
      for (int64_t l = 0; l < 4; ++l) (void)c->layer_is_moe(l), (void)c->layer_is_linear_attention(l);
    }
    (void)razor::parse_recipe(j, "fuzz/recipe.json");
  }
  (void)razor::classify_tensor(s, {int64_t(size), 2});
  return 0;
}
