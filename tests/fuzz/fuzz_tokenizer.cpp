// libFuzzer target: tokenizer.json (bpe_tokenizer::from_json) and text given to the tokenizer. The first byte
// picks the mode: even, the rest is a tokenizer.json, loaded and, when it loads, used to encode and decode a few
// strings and the input itself; odd, the rest is text (any bytes: invalid UTF-8 too) encoded with the bundled
// fixture's tokenizer and decoded back. Any input must give a value or an error, never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer.h"

namespace {

const razor::bpe_tokenizer& fixture_tokenizer() {
  static const razor::bpe_tokenizer tk = [] {
    auto t = razor::bpe_tokenizer::load(RAZOR_MODELS_DIR "/tiny-qwen3-moe/tokenizer.json");
    if (!t.ok()) __builtin_trap();
    return std::move(t).value();
  }();
  return tk;
}

void exercise(const razor::bpe_tokenizer& tk, std::string_view text) {
  auto r = tk.encode(text);  // an error only at the regex match limits (a hostile tokenizer.json)
  if (!r.ok()) return;
  const std::vector<int32_t>& ids = *r;
  (void)tk.decode(ids);
  (void)tk.encode(text, /*split_added=*/false);
  for (int32_t id : ids)
    if (id < 0 || id >= tk.vocab_size()) __builtin_trap();  // every id names a token
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 1) {
    exercise(fixture_tokenizer(), rest);
    return 0;
  }
  auto j = nlohmann::json::parse(rest, nullptr, false);
  if (j.is_discarded()) return 0;
  auto tk = razor::bpe_tokenizer::from_json(j, "fuzz/tokenizer.json");
  if (!tk.ok()) return 0;
  for (std::string_view s : {std::string_view("Hello world, it's 42.\n\n  x"), std::string_view("<|endoftext|>a"),
                             std::string_view("\xff\xfe bad \xc3")})
    exercise(*tk, s);
  exercise(*tk, rest.substr(0, 256));
  return 0;
}
