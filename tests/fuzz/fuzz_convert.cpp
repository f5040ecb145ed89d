// libFuzzer target: what a GGUF conversion reads from a checkpoint folder besides the tensors: tokenizer.json,
// tokenizer_config.json and chat_template.jinja (the input, split at "\n--8<--\n" lines in that order; a missing
// part is a missing file). They go beside a tiny synthetic qwen3_moe checkpoint made once, which is converted
// with convert_to_gguf (F32); when it succeeds the file is read back. Never a crash, a hang or an unbounded
// allocation: an error naming the file, or a GGUF that parses.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "fuzz_util.h"
#include "gguf/convert.h"
#include "gguf/gguf_file.h"
#include "model/synth.h"

namespace {

const std::string& model_dir() {
  static const std::string dir = [] {
    const std::string d = razor::fuzz::scratch_dir() + "/model";
    // Smallest shapes the qwen3_moe conversion accepts: 1 layer, 2 experts of 8, hidden 16, vocab 300.
    const nlohmann::json cfg = {{"architectures", {"Qwen3MoeForCausalLM"}}, {"model_type", "qwen3_moe"},
                                {"hidden_size", 16}, {"intermediate_size", 32}, {"moe_intermediate_size", 8},
                                {"num_hidden_layers", 1}, {"num_attention_heads", 2}, {"num_key_value_heads", 1},
                                {"head_dim", 8}, {"num_experts", 2}, {"num_experts_per_tok", 1},
                                {"norm_topk_prob", true}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0},
                                {"max_position_embeddings", 64}, {"vocab_size", 300}, {"tie_word_embeddings", false},
                                {"bos_token_id", 0}, {"eos_token_id", 0}};
    razor::synth_options o;
    o.fused_experts = false;
    if (!razor::synth_checkpoint(cfg, d, o).ok()) __builtin_trap();
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = model_dir();
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto parts = razor::fuzz::split_parts(in, 3);
  const char* names[3] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"};
  std::error_code ec;
  for (size_t i = 0; i < 3; ++i) {
    const std::string p = dir + "/" + names[i];
    if (parts[i].present) razor::fuzz::write_file(p, parts[i].bytes);
    else std::filesystem::remove(p, ec);
  }
  const std::string out = razor::fuzz::scratch_dir() + "/out.gguf";
  razor::gguf::convert_options o;
  o.default_type = razor::ggml::type::f32;
  o.threads = 1;
  auto r = razor::gguf::convert_to_gguf(dir, out, o);
  if (r.ok()) {
    auto f = razor::gguf::file::open(out);
    if (!f.ok()) __builtin_trap();  // what we wrote must read back
    std::filesystem::remove(out, ec);
  }
  return 0;
}
