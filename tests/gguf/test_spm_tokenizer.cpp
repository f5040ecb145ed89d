// A SentencePiece-style BPE tokenizer.json (Mixtral / Llama-2; byte_fallback, no tokenizer.model) converted as
// llama.cpp's converter does for a llama-arch checkpoint (_set_vocab_llama_hf: LlamaHfVocab + SpecialVocab). The
// expected values are read by hand from convert_hf_to_gguf.py / gguf-py's vocab.py for the fixture
// tests/engine/data/spm-tokenizer (its tokenizer_config.json: bos <s>, eos </s>, unk <unk>, pad null,
// add_bos_token true, add_eos_token false, a chat template; its post_processor: TemplateProcessing "<s> $A" and
// "<s> $A <s> $B").
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "gguf/convert.h"
#include "gguf/gguf_file.h"
#include "model/synth.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

const std::string kSpm = std::string(RAZOR_SOURCE_DIR_T) + "/tests/engine/data/spm-tokenizer/";

std::string synth_mixtral(const test::scratch_dir& s) {
  const auto cfg = nlohmann::json::parse(test::slurp(std::string(RAZOR_SOURCE_DIR_T) +
                                                     "/tests/engine/data/families/mixtral.json"));
  synth_options so;
  so.dt = dtype::f32;
  const std::string out = s / "mixtral";
  auto st = synth_checkpoint(cfg, out, so);
  EXPECT_TRUE(st.ok()) << st.to_string();
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) fs::copy_file(kSpm + f, out + "/" + f);
  return out;
}

}  // namespace

TEST(SpmTokenizerGguf, KeysAndValuesAsTheConverterWrites) {
  test::scratch_dir s("spm-gguf");
  const std::string m = synth_mixtral(s);
  gguf::convert_options co;
  co.default_type = ggml::type::f32;
  auto rep = gguf::convert_to_gguf(m, s / "m.gguf", co);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  auto f = gguf::file::open(s / "m.gguf");
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f->get_string("tokenizer.ggml.pre"), "default");
  const gguf::value* tokens = f->find("tokenizer.ggml.tokens");
  const gguf::value* scores = f->find("tokenizer.ggml.scores");
  const gguf::value* types = f->find("tokenizer.ggml.token_type");
  ASSERT_TRUE(tokens && scores && types);
  ASSERT_EQ(tokens->size(), 4096u);
  ASSERT_EQ(scores->size(), 4096u);
  ASSERT_EQ(types->size(), 4096u);
  EXPECT_EQ(scores->type(), gguf::value_type::array);
  EXPECT_EQ(scores->elem_type(), gguf::value_type::f32);
  EXPECT_EQ(types->elem_type(), gguf::value_type::i32);
  // tokens as in tokenizer.json's vocab, by id
  const std::pair<size_t, const char*> want_tokens[] = {
      {0, "<unk>"}, {1, "<s>"}, {2, "</s>"}, {3, "<0x00>"}, {13, "<0x0A>"}, {258, "<0xFF>"},
      {259, "\xe2\x96\x81\xe2\x96\x81"}, {271, "\xe2\x96\x81the"}, {619, "\xe2\x96\x81kernel"}, {3943, "e"}};
  for (auto& [id, text] : want_tokens) EXPECT_EQ(tokens->str_at(id), text) << id;
  // every score -1000 (LlamaHfVocab.get_token_score)
  for (size_t i = 0; i < scores->size(); ++i) ASSERT_EQ(scores->float_at(i), -1000.0) << i;
  // <unk> <s> </s>: CONTROL (3; <unk> too: it is one of all_special_ids); <0xNN>: BYTE (6); the rest NORMAL (1)
  for (size_t id : {0, 1, 2}) EXPECT_EQ(types->int_at(id), 3) << id;
  for (size_t id : {3, 13, 258}) EXPECT_EQ(types->int_at(id), 6) << id;
  for (size_t id : {259, 271, 619, 3943, 4095}) EXPECT_EQ(types->int_at(id), 1) << id;
  // SpecialVocab: ids from tokenizer_config's strings (looked up in added_tokens), then config.json's for the
  // types still unset (mixtral.json's bos/eos 0 lose to <s> </s>; no pad anywhere)
  EXPECT_EQ(f->get_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(f->get_int("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_EQ(f->get_int("tokenizer.ggml.unknown_token_id"), 0);
  EXPECT_EQ(f->find("tokenizer.ggml.padding_token_id"), nullptr);
  EXPECT_EQ(f->find("tokenizer.ggml.seperator_token_id"), nullptr);
  // add_bos from TemplateProcessing's "<s> $A" and add_bos_token; add_sep false from "<s> $A <s> $B" (its middle
  // <s> is neither sep nor eos); add_eos_token false. In that order, as SpecialVocab's dict holds them.
  EXPECT_EQ(f->get_int("tokenizer.ggml.add_bos_token"), 1);
  EXPECT_EQ(f->get_int("tokenizer.ggml.add_sep_token"), 0);
  EXPECT_EQ(f->get_int("tokenizer.ggml.add_eos_token"), 0);
  std::vector<std::string> order;
  for (auto& kv : f->metadata())
    if (kv.key.rfind("tokenizer.", 0) == 0) order.push_back(kv.key);
  const std::vector<std::string> want_order = {
      "tokenizer.ggml.model",          "tokenizer.ggml.pre",           "tokenizer.ggml.tokens",
      "tokenizer.ggml.scores",         "tokenizer.ggml.token_type",    "tokenizer.ggml.bos_token_id",
      "tokenizer.ggml.eos_token_id",   "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_bos_token",
      "tokenizer.ggml.add_sep_token",  "tokenizer.ggml.add_eos_token", "tokenizer.chat_template"};
  EXPECT_EQ(order, want_order);
  auto tc = nlohmann::json::parse(test::slurp(kSpm + "tokenizer_config.json"));
  EXPECT_EQ(f->get_string("tokenizer.chat_template"), tc["chat_template"].get<std::string>());
  // no merges (SentencePiece-style: llama.cpp merges by score), no add_space_prefix (tokenizer_config has no
  // add_prefix_space); llama's vocab_size
  EXPECT_EQ(f->find("tokenizer.ggml.merges"), nullptr);
  EXPECT_EQ(f->find("tokenizer.ggml.add_space_prefix"), nullptr);
  EXPECT_EQ(f->get_int("llama.vocab_size"), 4096);
}

// tokenizer_config.json's add_prefix_space is written (LlamaModel.set_vocab, before the vocabulary); a token
// count other than config.json's vocab_size is refused, naming both.
TEST(SpmTokenizerGguf, AddPrefixSpaceAndVocabSize) {
  test::scratch_dir s("spm-gguf2");
  const std::string m = synth_mixtral(s);
  auto tc = nlohmann::json::parse(test::slurp(m + "/tokenizer_config.json"));
  tc["add_prefix_space"] = false;
  std::ofstream(m + "/tokenizer_config.json") << tc.dump();
  gguf::convert_options co;
  co.default_type = ggml::type::f32;
  auto rep = gguf::convert_to_gguf(m, s / "m.gguf", co);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  auto f = gguf::file::open(s / "m.gguf");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->get_int("tokenizer.ggml.add_space_prefix"), 0);
  EXPECT_EQ(f->metadata()[size_t(std::find_if(f->metadata().begin(), f->metadata().end(),
                                              [](auto& kv) { return kv.key == "tokenizer.ggml.add_space_prefix"; }) -
                                 f->metadata().begin()) + 1].key,
            "tokenizer.ggml.model");

  auto tj = nlohmann::json::parse(test::slurp(m + "/tokenizer.json"));
  tj["model"]["vocab"].erase("\xe9\xa1\xba");  // the last id, 4095
  std::ofstream(m + "/tokenizer.json") << tj.dump();
  auto bad = gguf::convert_to_gguf(m, s / "bad.gguf", co);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("4095 tokens, but config.json's vocab_size is 4096"), std::string::npos)
      << bad.error().message();
  EXPECT_FALSE(fs::exists(s / "bad.gguf"));
}
