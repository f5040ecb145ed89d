// Tokenizer tests: hand-checked ids (tests/engine/make_tokenizer_expectations.py, an independent stdlib-Python
// BPE over tokenizer.json) and the fixtures' token count on the whole valid text (the bundled evaluation and
// calibration texts joined back, resources/data/README.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "common/test_util.h"
#include "engine/eval.h"
#include "engine/tokenizer.h"
#include "util/sha256.h"

namespace {

std::string models_dir() { return RAZOR_MODELS_DIR; }

// resources/data/README.md: kernel-docs-valid.txt = kernel-docs-eval.txt + "\n\n\n" + kernel-docs-calib.txt.
constexpr const char* k_valid_sha256 = "f2ab1c397452cf02fb216ae741609e436d73df34b64f266e4cc830b2258b607d";
constexpr size_t k_valid_tokens = 179774, k_eval_tokens = 69195;
std::string valid_text() {
  return razor::test::slurp(razor::test::eval_text_path()) + "\n\n\n" +
         razor::test::slurp(razor::test::calib_text_path());
}

razor::bpe_tokenizer load_fixture_tokenizer() {
  auto tk = razor::bpe_tokenizer::load(models_dir() + "/tiny-qwen3-moe/tokenizer.json");
  EXPECT_TRUE(tk.ok()) << tk.error().to_string();
  return std::move(tk).value();
}

TEST(tokenizer, byte_to_unicode_table) {
  EXPECT_EQ(razor::byte_to_unicode('A'), uint32_t('A'));
  EXPECT_EQ(razor::byte_to_unicode(' '), 0x120u);   // 'Ġ'
  EXPECT_EQ(razor::byte_to_unicode('\n'), 0x10Au);  // 'Ċ'
  EXPECT_EQ(razor::byte_to_unicode(0), 0x100u);
  EXPECT_EQ(razor::byte_to_unicode(0xAD), 0x143u);  // the last of the remapped bytes
}

TEST(tokenizer, loads_fixture_vocab) {
  auto tk = load_fixture_tokenizer();
  EXPECT_EQ(tk.vocab_size(), 4096);
  EXPECT_EQ(tk.n_merges(), 3839u);
  EXPECT_EQ(tk.token_id("<|endoftext|>").value_or(-1), 0);
  EXPECT_EQ(tk.token_id("Ġ").has_value(), true);
}

TEST(tokenizer, hand_checked_ids) {
  auto tk = load_fixture_tokenizer();
  // Output of make_tokenizer_expectations.py on the fixture tokenizer.json.
  const std::vector<std::pair<std::string, std::vector<int32_t>>> cases = {
      {"Hello world", {40, 314, 306, 3788, 461}},
      {"The kernel's memory management subsystem.\n\n", {471, 507, 655, 722, 2738, 1985, 294, 199}},
      {"int x = 42;  // comment\n\tfoo(bar);",
       {553, 1204, 363, 221, 20, 18, 27, 221, 521, 15, 420, 559, 199, 198, 3643, 8, 66, 302, 4004}},
      {"CONFIG_DEBUG_FS=y\n  - item one\n  - item two\n",
       {2702, 1785, 4003, 780, 51, 29, 89, 199, 221, 318, 3778, 702, 199, 221, 318, 3778, 1155, 199}},
      {"I'LL see: you'd they've", {41, 7, 1424, 1395, 26, 515, 7, 68, 1229, 7, 378}},
  };
  for (const auto& [text, ids] : cases) {
    EXPECT_EQ(*tk.encode(text), ids) << text;
    EXPECT_EQ(tk.decode(*tk.encode(text)), text);
  }
}

TEST(tokenizer, added_tokens_are_split_out) {
  auto tk = load_fixture_tokenizer();
  auto ids = *tk.encode("a<|endoftext|>b");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], 0);
  auto raw = *tk.encode("a<|endoftext|>b", /*split_added=*/false);
  EXPECT_GT(raw.size(), 3u);
}

TEST(tokenizer, unicode_round_trip) {
  auto tk = load_fixture_tokenizer();
  std::string s = "Grüße — naïve café: 温度 ≥ 3µs\u00a0ok";
  EXPECT_EQ(tk.decode(*tk.encode(s)), s);
}

// Invalid UTF-8 crashed the tokenizer (PCRE2 JIT told not to check it): the protocol checks the text once and
// names the file, the byte offset and the line; encode() itself never reads past a malformed sequence.
TEST(tokenizer, invalid_utf8_is_reported_with_its_place) {
  auto tk = load_fixture_tokenizer();
  const std::string text = "first line\nsecond \xe2\x82 broken\n";
  auto r = razor::engine::protocol_tokens(tk, text, "r.txt");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), razor::errc::bad_format);
  const std::string m = r.error().message();
  EXPECT_NE(m.find("r.txt"), std::string::npos) << m;
  EXPECT_NE(m.find("byte offset 18"), std::string::npos) << m;
  EXPECT_NE(m.find("line 2"), std::string::npos) << m;
}

TEST(tokenizer, random_bytes_encode_without_crashing) {
  auto tk = load_fixture_tokenizer();
  std::mt19937 rng(20000);
  for (int round = 0; round < 4; ++round) {
    std::string junk(20000, '\0');
    for (auto& c : junk) c = char(rng());
    auto ids = tk.encode(junk);
    ASSERT_TRUE(ids.ok()) << ids.error().to_string();
    EXPECT_EQ(tk.decode(*ids), junk);  // every byte is kept, malformed ones byte by byte
  }
}

// An independent, deliberately naive BPE over tokenizer.json (rescan every pair, merge the lowest rank,
// leftmost first): the reference the priority-queue BPE must equal, id for id, on single-piece words.
struct naive_bpe {
  std::map<std::string, int32_t> vocab;
  std::map<std::pair<std::string, std::string>, size_t> rank;
  naive_bpe() {
    std::ifstream f(models_dir() + "/tiny-qwen3-moe/tokenizer.json");
    auto j = nlohmann::json::parse(f);
    for (auto it = j["model"]["vocab"].begin(); it != j["model"]["vocab"].end(); ++it)
      vocab[it.key()] = it.value().get<int32_t>();
    size_t r = 0;
    for (const auto& m : j["model"]["merges"]) {
      std::string a, b;
      if (m.is_array()) {
        a = m[0].get<std::string>();
        b = m[1].get<std::string>();
      } else {
        auto s = m.get<std::string>();
        a = s.substr(0, s.find(' ', 1));
        b = s.substr(s.find(' ', 1) + 1);
      }
      rank.emplace(std::make_pair(a, b), r++);
    }
  }
  static std::string cp_utf8(uint32_t cp) {
    std::string o;
    if (cp < 0x80) o += char(cp);
    else if (cp < 0x800) o += char(0xc0 | (cp >> 6)), o += char(0x80 | (cp & 0x3f));
    else o += char(0xe0 | (cp >> 12)), o += char(0x80 | ((cp >> 6) & 0x3f)), o += char(0x80 | (cp & 0x3f));
    return o;
  }
  std::vector<int32_t> encode(const std::string& piece) const {
    std::vector<std::string> sym;
    for (unsigned char c : piece) sym.push_back(cp_utf8(razor::byte_to_unicode(c)));
    for (;;) {
      size_t best = std::numeric_limits<size_t>::max(), at = 0;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        auto it = rank.find({sym[i], sym[i + 1]});
        if (it != rank.end() && it->second < best) best = it->second, at = i;
      }
      if (best == std::numeric_limits<size_t>::max()) break;
      sym[at] += sym[at + 1];
      sym.erase(sym.begin() + std::ptrdiff_t(at) + 1);
    }
    std::vector<int32_t> ids;
    for (auto& s : sym) ids.push_back(vocab.at(s));
    return ids;
  }
};

TEST(tokenizer, priority_queue_bpe_equals_the_naive_one) {
  auto tk = load_fixture_tokenizer();
  const naive_bpe ref;
  std::mt19937 rng(1);
  const std::string letters = "etaoinshrdlucmfwypvbgkjqxz";
  for (int n = 0; n < 400; ++n) {
    std::string w = n % 2 ? " " : "";  // " word" is one piece of the pre-tokenizer too
    const size_t len = 1 + rng() % 200;
    for (size_t i = 0; i < len; ++i) w += letters[std::min<size_t>(rng() % 26, rng() % 26)];  // skewed to common letters
    EXPECT_EQ(*tk.encode(w), ref.encode(w)) << w;
  }
  const std::string spaces(4096, ' ');
  EXPECT_EQ(*tk.encode(spaces), ref.encode(spaces));
}

// 100,000 spaces took 23.6 s and 2 MB more than 30 s (quadratic BPE). A megabyte of spaces and a
// megabyte-long word now tokenize; what they give is checked against the small-size behaviour (no timing).
TEST(tokenizer, megabyte_pieces_tokenize) {
  auto tk = load_fixture_tokenizer();
  constexpr size_t kBlock = 4096, kBlocks = 256;  // 1 MiB
  const std::string spaces(kBlock * kBlocks, ' ');
  auto big = tk.encode(spaces);
  ASSERT_TRUE(big.ok()) << big.error().to_string();
  EXPECT_EQ(tk.decode(*big), spaces);
  // A run of one repeated symbol merges pairwise, level by level, so the run's ids are those of a 4096-space
  // block repeated (checked against the naive BPE on that block in the test above).
  const auto block = *tk.encode(std::string(kBlock, ' '));
  std::vector<int32_t> repeated;
  for (size_t i = 0; i < kBlocks; ++i) repeated.insert(repeated.end(), block.begin(), block.end());
  EXPECT_EQ(*big, repeated);

  std::mt19937 rng(2);
  std::string word(kBlock * kBlocks, 'a');
  for (auto& c : word) c = char('a' + rng() % 26);
  auto w = tk.encode(word);
  ASSERT_TRUE(w.ok()) << w.error().to_string();
  EXPECT_EQ(tk.decode(*w), word);
  EXPECT_LT(w->size(), word.size());  // merges happened
  // The same through the protocol, with an added token in the middle (the first-byte index of added tokens).
  auto p = razor::engine::protocol_tokens(tk, word + "<|endoftext|>" + spaces, "big.txt");
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  EXPECT_EQ(p->size(), w->size() + 1 + big->size() + 1);  // + the added token + the protocol's separator
}

// The bundled halves join back into the valid split byte for byte, and their protocol token streams are the two
// halves of its stream (the cut is a separator), so figures measured on the first windows of the valid split
// hold on the evaluation text.
TEST(tokenizer, bundled_texts_are_the_valid_split_cut_in_two) {
  const std::string eval = razor::test::slurp(razor::test::eval_text_path());
  const std::string calib = razor::test::slurp(razor::test::calib_text_path());
  ASSERT_FALSE(eval.empty());
  ASSERT_FALSE(calib.empty());
  EXPECT_EQ(razor::sha256_hex(eval + "\n\n\n" + calib), k_valid_sha256);
  auto tk = load_fixture_tokenizer();
  const auto all = razor::engine::protocol_tokens(tk, eval + "\n\n\n" + calib, "valid").value();
  const auto e = razor::engine::protocol_tokens(tk, eval, "eval").value();
  const auto c = razor::engine::protocol_tokens(tk, calib, "calib").value();
  EXPECT_EQ(e.size(), k_eval_tokens);
  EXPECT_EQ(e.size() + c.size(), all.size());
  EXPECT_TRUE(std::equal(e.begin(), e.end(), all.begin()));
  EXPECT_TRUE(std::equal(c.begin(), c.end(), all.begin() + std::ptrdiff_t(e.size())));
}

// The whole valid text with the protocol of resources/models/README.md gives 179,774 tokens with the Hugging
// Face tokenizer (and llama.cpp's, which equals it on this text).
TEST(tokenizer, valid_text_protocol_count) {
  std::stringstream ss;
  ss << valid_text();
  auto tk = load_fixture_tokenizer();
  auto tr = razor::engine::protocol_tokens(tk, ss.str(), "valid");
  ASSERT_TRUE(tr.ok()) << tr.error().to_string();
  const auto& toks = *tr;
  EXPECT_EQ(toks.size(), k_valid_tokens);
  // Decoding gives back the text with "\n\n\n" where the separators were.
  std::string back;
  std::vector<int32_t> piece;
  for (auto id : toks) {
    if (id == 0) {
      back += tk.decode(piece) + "\n\n\n";
      piece.clear();
    } else {
      piece.push_back(id);
    }
  }
  back.resize(back.size() - 3);
  EXPECT_EQ(back, ss.str());
}

uint64_t fnv1a_ids(const std::vector<int32_t>& ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t id : ids)
    for (int b = 0; b < 4; ++b) {
      h ^= (uint32_t(id) >> (8 * b)) & 0xffu;
      h *= 0x100000001b3ull;
    }
  return h;
}

// Compares tk's ids, per "\n\n\n" piece of the valid text (+ the separator 0), with a reference file of llama.cpp's:
// a line "count fnv1a-hash" per piece, then "total N".
void expect_ids_equal_reference(const razor::bpe_tokenizer& tk, const std::string& ref_path) {
  std::ifstream ref(ref_path);
  ASSERT_TRUE(ref.good()) << ref_path;
  const std::string text = valid_text();
  size_t pos = 0, piece_no = 0, total = 0;
  for (;;) {
    size_t at = text.find("\n\n\n", pos);
    auto ids = *tk.encode(std::string_view(text).substr(pos, at == std::string::npos ? std::string::npos : at - pos));
    ids.push_back(0);
    total += ids.size();
    std::string n_str, h_str;
    ASSERT_TRUE(bool(ref >> n_str >> h_str)) << "reference file ends early at piece " << piece_no;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a_ids(ids)));
    EXPECT_EQ(std::to_string(ids.size()), n_str) << "piece " << piece_no;
    EXPECT_EQ(std::string(buf), h_str) << "piece " << piece_no << " (byte offset " << pos << ")";
    ++piece_no;
    if (at == std::string::npos) break;
    pos = at + 3;
  }
  std::string word, n_total;
  ref >> word >> n_total;
  EXPECT_EQ(word, "total");
  EXPECT_EQ(n_total, std::to_string(total));
}

// Id-by-id against llama.cpp's tokenizer: tests/engine/data/valid_tokens_llamacpp.txt holds, per "\n\n\n"
// piece of the valid text, the count and FNV-1a hash of llama.cpp's ids (+ the separator 0), written by
// tests/engine/llamacpp_token_ids.mjs through node-llama-cpp from a GGUF of the fixture.
TEST(tokenizer, valid_text_ids_equal_llamacpp) {
  expect_ids_equal_reference(load_fixture_tokenizer(),
                             std::string(RAZOR_SOURCE_DIR_T) + "/tests/engine/data/valid_tokens_llamacpp.txt");
}

}  // namespace

// ---- SentencePiece-style BPE (Mixtral / Llama-2's tokenizer.json form) -------------------------------------
// The fixture tests/engine/data/spm-tokenizer (make_tokenizer.py): <unk> <s> </s>, <0x00>..<0xFF> at 3..258,
// 3,683 merged pieces, 154 characters; 4096 tokens. llama.cpp tokenizes the converted file (every score -1000)
// by merging the leftmost adjacent pair that forms a token.
namespace {

std::string spm_dir() { return std::string(RAZOR_SOURCE_DIR_T) + "/tests/engine/data/spm-tokenizer"; }

razor::bpe_tokenizer load_spm() {
  auto tk = razor::bpe_tokenizer::load(spm_dir() + "/tokenizer.json");
  EXPECT_TRUE(tk.ok()) << tk.error().to_string();
  return std::move(tk).value();
}

}  // namespace

// Ids from an independent reading (Python: " " prefix, " " -> "▁", merge the leftmost pair in the vocabulary
// until none is, characters outside it as <0xNN> = 3 + byte).
TEST(tokenizer_spm, hand_checked_ids) {
  auto tk = load_spm();
  EXPECT_TRUE(tk.sentencepiece());
  EXPECT_EQ(tk.vocab_size(), 4096);
  EXPECT_EQ(tk.protocol_separator(), 2);  // </s>: tokenizer_config.json's eos_token
  const std::map<std::string, std::vector<int32_t>> want = {
      {"The kernel", {405, 619}},                                      // "▁The" "▁kernel"
      {"Hello world\n\tx", {438, 1001, 3948, 856, 3952, 3953, 13, 12, 3982}},  // \n, \t: <0x0A> <0x09>
      {"a\xe2\x82\xac" "b", {266, 229, 133, 175, 3963}},                // € is no token: E2 82 AC
      {"  two  spaces", {328, 3944, 1251, 259, 3949, 825, 3949}},
      {"<s>x", {385, 3210, 3982}},                                     // control tokens are not parsed
      {"", {}},
  };
  for (auto& [text, ids] : want) EXPECT_EQ(*tk.encode(text), ids) << text;
  EXPECT_EQ(tk.decode(*tk.encode("Hello world\n\tx")), " Hello world\n\tx");
  EXPECT_EQ(tk.decode(*tk.encode("a\xe2\x82\xac" "b")), " a\xe2\x82\xac" "b");
}

// A user-defined added token (past the base vocabulary, not special) is cut out of the text first, and the next
// piece gets the space prefix again, as llama.cpp's tokenizer_st_partition; add_prefix_space false drops it.
TEST(tokenizer_spm, user_defined_tokens_and_prefix_space) {
  auto j = nlohmann::json::parse(razor::test::slurp(spm_dir() + "/tokenizer.json"));
  auto tc = nlohmann::json::parse(razor::test::slurp(spm_dir() + "/tokenizer_config.json"));
  j["added_tokens"].push_back({{"id", 4096}, {"content", "<tool>"}, {"special", false}});
  auto tk = razor::bpe_tokenizer::from_json(j, "t.json", &tc);
  ASSERT_TRUE(tk.ok()) << tk.error().to_string();
  std::vector<int32_t> want = *tk->encode("The");
  want.push_back(4096);
  auto k = *tk->encode("kernel");
  want.insert(want.end(), k.begin(), k.end());
  EXPECT_EQ(*tk->encode("The<tool>kernel"), want);
  EXPECT_EQ(k, std::vector<int32_t>{619});
  tc["add_prefix_space"] = false;
  auto no_prefix = razor::bpe_tokenizer::from_json(j, "t.json", &tc);
  ASSERT_TRUE(no_prefix.ok());
  EXPECT_EQ(no_prefix->decode(*no_prefix->encode("kernel")), "kernel");
  // added ids must continue the base vocabulary
  j["added_tokens"].back()["id"] = 5000;
  auto gap = razor::bpe_tokenizer::from_json(j, "t.json", &tc);
  ASSERT_FALSE(gap.ok());
  EXPECT_NE(gap.error().message().find("has id 5000 where 4096 comes next"), std::string::npos) << gap.error().message();
}

// Id-by-id against llama.cpp's SPM tokenizer on the converted file: spm-tokenizer/valid_tokens_llamacpp.txt
// holds, per "\n\n\n" piece of the valid text, the count and FNV-1a hash of llama.cpp's ids (+ 0), written by
// tests/engine/llamacpp_token_ids.mjs from the F32 GGUF of `razor synth` mixtral with this tokenizer.
TEST(tokenizer_spm, valid_text_ids_equal_llamacpp) {
  expect_ids_equal_reference(load_spm(), spm_dir() + "/valid_tokens_llamacpp.txt");
}
