// config.json against the tensors (model/config_check.h) and the bounds parsing puts on every size
// (model/hf_config.h): copies of the bundled fixtures with one value edited each. Every error must name
// config.json, the key and its value (and the contradicting tensor where there is one).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/config_fixture.h"
#include "model/checkpoint.h"
#include "model/config_check.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

using test::expect_mentions;

constexpr const char* kQwen3 = "tiny-qwen3-moe";
constexpr const char* kQwen35 = "tiny-qwen3-5-moe";

// The error of opening + checking the edited fixture ("" when both pass).
std::string check_error(const std::string& model, const std::string& tag,
                        const std::function<void(nlohmann::json&)>& edit,
                        const std::function<void(std::string&)>& weights_edit = nullptr) {
  const fs::path dir = test::edited_fixture(model, tag, edit, weights_edit);
  std::string msg;
  auto ck = checkpoint::open(dir.string());
  if (!ck.ok()) {
    msg = ck.error().to_string();
  } else if (auto st = check_checkpoint_config(*ck); !st.ok()) {
    msg = st.to_string();
  }
  fs::remove_all(dir);
  return msg;
}


TEST(ConfigCheck, BundledFixturesPass) {
  for (const char* m : {kQwen3, kQwen35}) {
    auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/" + m);
    ASSERT_TRUE(ck.ok()) << ck.error().to_string();
    auto st = check_checkpoint_config(*ck);
    EXPECT_TRUE(st.ok()) << m << ": " << st.to_string();
  }
}

// partial_rotary_factor > 1 overran the engine's RoPE buffer (heap corruption in eval-ppl).
TEST(ConfigCheck, PartialRotaryFactorAboveOne) {
  expect_mentions(check_error(kQwen35, "prf-rope", [](auto& j) { j["rope_parameters"]["partial_rotary_factor"] = 4.0; }),
                  {"config.json", "rope_parameters.partial_rotary_factor", "= 4", "(0, 1]"});
  expect_mentions(check_error(kQwen3, "prf-top", [](auto& j) { j["partial_rotary_factor"] = 1.5; }),
                  {"config.json", "partial_rotary_factor = 1.5"});
  // An odd number of rotary dimensions (64 x 0.3 = 19.2 -> 19) is refused too.
  expect_mentions(check_error(kQwen35, "prf-odd", [](auto& j) { j["rope_parameters"]["partial_rotary_factor"] = 0.3; }),
                  {"19 rotary dimensions"});
}

TEST(ConfigCheck, NormAndRopeValues) {
  expect_mentions(check_error(kQwen3, "eps", [](auto& j) { j["rms_norm_eps"] = -1; }), {"rms_norm_eps = -1"});
  expect_mentions(check_error(kQwen3, "theta", [](auto& j) { j["rope_parameters"]["rope_theta"] = 0; }),
                  {"rope_parameters.rope_theta = 0"});
}

// Sizes are bounded when parsed, so nothing allocates by them (std::terminate / bad_alloc before).
TEST(ConfigCheck, HugeCountsAreRefusedWhenParsed) {
  expect_mentions(check_error(kQwen3, "layers-1e9", [](auto& j) { j["num_hidden_layers"] = 1e9; }),
                  {"config.json", "num_hidden_layers = 1000000000", "out of range"});
  expect_mentions(check_error(kQwen3, "vocab-1e12", [](auto& j) { j["vocab_size"] = 1e12; }),
                  {"config.json", "vocab_size = 1000000000000", "out of range"});
  expect_mentions(check_error(kQwen3, "hidden-frac", [](auto& j) { j["hidden_size"] = 256.5; }),
                  {"hidden_size = 256.5", "not an integer"});
  expect_mentions(check_error(kQwen3, "hidden-str", [](auto& j) { j["hidden_size"] = "256"; }),
                  {"hidden_size = \"256\"", "not an integer"});
  expect_mentions(check_error(kQwen3, "heads-neg", [](auto& j) { j["num_attention_heads"] = -4; }),
                  {"num_attention_heads = -4", "out of range"});
}

TEST(ConfigCheck, LayerCountAgainstTheTensors) {
  expect_mentions(check_error(kQwen3, "layers-more", [](auto& j) { j["num_hidden_layers"] = 6; }),
                  {"num_hidden_layers = 6", "layers.5.input_layernorm.weight", "fewer layers"});
  expect_mentions(check_error(kQwen3, "layers-fewer", [](auto& j) { j["num_hidden_layers"] = 3; }),
                  {"num_hidden_layers = 3", "model.layers.3.input_layernorm.weight", "more layers"});
}

TEST(ConfigCheck, VocabAndEmbedding) {
  expect_mentions(check_error(kQwen3, "vocab", [](auto& j) { j["vocab_size"] = 8192; }),
                  {"vocab_size = 8192", "model.embed_tokens.weight should be [8192, 256], but it is [4096, 256]"});
  // A transposed embedding: same bytes, shape [256, 4096] in the safetensors header.
  auto transpose = [](std::string& b) {
    const std::string from = "\"model.embed_tokens.weight\":{\"dtype\":\"BF16\",\"shape\":[4096,256]";
    const std::string to = "\"model.embed_tokens.weight\":{\"dtype\":\"BF16\",\"shape\":[256,4096]";
    auto at = b.find(from);
    ASSERT_NE(at, std::string::npos);
    b.replace(at, from.size(), to);
  };
  expect_mentions(check_error(kQwen3, "embd-t", [](auto&) {}, transpose),
                  {"config.json", "vocab_size = 4096", "hidden_size = 256", "should be [4096, 256], but it is [256, 4096]"});
}

TEST(ConfigCheck, ExpertsAndTopK) {
  expect_mentions(check_error(kQwen3, "topk", [](auto& j) { j["num_experts_per_tok"] = 64; }),
                  {"num_experts_per_tok = 64", "num_local_experts = 16"});
  expect_mentions(check_error(kQwen3, "topk0", [](auto& j) { j["num_experts_per_tok"] = 0; }),
                  {"num_experts_per_tok = 0"});
  expect_mentions(check_error(kQwen3, "experts", [](auto& j) { j["num_local_experts"] = 8; }),
                  {"num_local_experts = 8", "model.layers.0.mlp.gate.weight should be [8, 256], but it is [16, 256]"});
  expect_mentions(check_error(kQwen3, "experts-more", [](auto& j) { j["num_local_experts"] = 32; }),
                  {"num_local_experts = 32", "mlp.gate.weight"});
  expect_mentions(check_error(kQwen3, "moe-ff", [](auto& j) { j["moe_intermediate_size"] = 128; }),
                  {"moe_intermediate_size = 128", "model.layers.0.mlp.experts.0.gate_proj.weight should be [128, 256]"});
  expect_mentions(check_error(kQwen35, "shared-ff", [](auto& j) { j["shared_expert_intermediate_size"] = 512; }),
                  {"shared_expert_intermediate_size = 512", "shared_expert.gate_proj.weight should be [512, 256]"});
  expect_mentions(check_error(kQwen35, "shared-none", [](auto& j) { j.erase("shared_expert_intermediate_size"); }),
                  {"shared_expert_intermediate_size = 0", "would be ignored"});
  expect_mentions(check_error(kQwen3, "dense", [](auto& j) { j["mlp_only_layers"] = {1}; }),
                  {"layer 1 is dense"});
}

TEST(ConfigCheck, AttentionHeads) {
  expect_mentions(check_error(kQwen3, "heads", [](auto& j) { j["num_attention_heads"] = 8; }),
                  {"num_attention_heads = 8", "q_proj.weight should be [512, 256]"});
  expect_mentions(check_error(kQwen3, "kv", [](auto& j) { j["num_key_value_heads"] = 3; }),
                  {"num_attention_heads = 4 is not a multiple of num_key_value_heads = 3"});
  expect_mentions(check_error(kQwen3, "head-dim", [](auto& j) { j["head_dim"] = 32; }),
                  {"head_dim = 32", "q_proj.weight should be [128, 256]"});
  // Qwen3.5's gated attention: q_proj holds query and gate rows.
  expect_mentions(check_error(kQwen35, "heads35", [](auto& j) { j["num_attention_heads"] = 2; }),
                  {"num_attention_heads = 2", "query and gate rows", "layers.3.self_attn.q_proj.weight"});
}

TEST(ConfigCheck, LinearAttention) {
  expect_mentions(check_error(kQwen35, "lin-v", [](auto& j) { j["linear_num_value_heads"] = 8; }),
                  {"linear_num_value_heads = 8", "model.layers.0.linear_attn.in_proj_qkv.weight should be"});
  expect_mentions(check_error(kQwen35, "lin-div", [](auto& j) { j["linear_num_value_heads"] = 3; }),
                  {"linear_num_value_heads = 3 is not a multiple of linear_num_key_heads = 2"});
  expect_mentions(check_error(kQwen35, "conv", [](auto& j) { j["linear_conv_kernel_dim"] = 3; }),
                  {"linear_conv_kernel_dim = 3", "conv1d.weight should be"});
  expect_mentions(check_error(kQwen35, "types-swap",
                              [](auto& j) {
                                j["layer_types"] = {"full_attention", "linear_attention", "linear_attention",
                                                    "full_attention"};
                              }),
                  {"layer_types[0] = full_attention", "linear_attn.* (linear attention) tensors"});
  expect_mentions(check_error(kQwen35, "types-short", [](auto& j) { j["layer_types"] = {"linear_attention"}; }),
                  {"layer_types has 1 entries", "num_hidden_layers = 4"});
  expect_mentions(check_error(kQwen35, "types-bad", [](auto& j) { j["layer_types"][1] = "sliding"; }),
                  {"layer_types[1] = sliding"});
  expect_mentions(check_error(kQwen35, "mrope", [](auto& j) { j["rope_parameters"]["mrope_section"] = {1e12, 0, 0}; }),
                  {"rope_parameters.mrope_section"});
}

// The same function over shapes from anywhere (the engine's providers): a head stored with the wrong vocabulary.
TEST(ConfigCheck, ShapesFromAnySource) {
  auto ck = checkpoint::open(std::string(RAZOR_MODELS_DIR) + "/" + kQwen3);
  ASSERT_TRUE(ck.ok());
  model_shapes s = checkpoint_shapes(*ck);
  auto base = s.tensor;
  s.tensor = [base](const std::string& name) -> std::optional<stored_tensor> {
    if (name == "lm_head.weight") return stored_tensor{"lm_head.weight", {4000, 256}};
    return base(name);
  };
  auto st = check_config_shapes(ck->config(), s);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), errc::bad_config);
  EXPECT_NE(st.message().find("lm_head.weight should be [4096, 256], but it is [4000, 256]"), std::string::npos)
      << st.message();
}

}  // namespace
