// libFuzzer target: both recipe syntaxes, applied to the bundled tiny-qwen3-5-moe fixture (opened once; only its
// header and shapes are read). The first byte picks the syntax: even, the rest is a razor.recipe/1 JSON recipe
// (parse_recipe, then the footprint over every tensor, which matches every override / protect regex against
// every tensor name); odd, the rest is a llama-quantize tensor-type recipe (parse_type_recipe, then the GGUF plan
// of the fixture with it, which matches its patterns against every GGUF tensor name). Never a crash, a hang (a
// regex that backtracks forever), a stack overflow or an unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "gguf/convert.h"
#include "model/checkpoint.h"
#include "model/footprint.h"
#include "model/recipe.h"

namespace {

const razor::checkpoint& fixture() {
  static const razor::checkpoint ck = [] {
    auto c = razor::checkpoint::open(RAZOR_MODELS_DIR "/tiny-qwen3-5-moe");
    if (!c.ok()) __builtin_trap();
    return std::move(c).value();
  }();
  return ck;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const razor::checkpoint& ck = fixture();
  if (data[0] % 2 == 0) {
    auto j = nlohmann::json::parse(rest, nullptr, false);
    if (j.is_discarded()) return 0;
    auto r = razor::parse_recipe(j, "fuzz/recipe.json");
    if (!r.ok()) return 0;
    r->resolve(ck.config());
    (void)razor::compute_footprint(ck, *r);
    (void)r->to_json().dump();
    return 0;
  }
  auto tr = razor::gguf::parse_type_recipe(rest, "fuzz/recipe.txt");
  if (!tr.ok()) return 0;
  razor::gguf::convert_options o;
  o.recipe = std::move(tr).value();
  if (o.recipe.default_type) o.default_type = *o.recipe.default_type;
  (void)razor::gguf::plan_gguf(ck, o);
  return 0;
}
