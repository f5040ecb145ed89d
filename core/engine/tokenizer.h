// The tokenizer of a Hugging Face tokenizer.json, in one of two forms:
//   - byte-level BPE (the GPT-2 / Qwen2 family), as the Hugging Face tokenizers library encodes (below);
//   - SentencePiece-style BPE (model.byte_fallback true: Mixtral, Llama-2), as llama.cpp encodes the GGUF that
//     core/gguf writes of it (tokenizer.ggml.model "llama", model/spm_vocab.h): see "SentencePiece-style" below.
//
// What is read from tokenizer.json:
//   model.type "BPE", model.vocab {token string: id}, model.merges (["a", "b"] pairs or "a b" strings; the
//   position in the list is the merge rank), added_tokens [{id, content, special}], and the pre-tokenizer: the
//   first Split pattern found (a "Sequence" of Split + ByteLevel, or a bare ByteLevel with use_regex, which
//   means the GPT-2 pattern).
//
// Encoding, as the Hugging Face tokenizers library does it:
//   1. added tokens are cut out of the text first (longest match at each position) and map to their id;
//   2. the rest is split by the pre-tokenizer regex (util/regex.h: PCRE2, UTF + Unicode properties); Split
//      behaviour "Isolated": every match is one piece, and so is every gap between matches;
//   3. each piece is taken as raw bytes; BPE starts from one symbol per byte (the vocab entry of that byte
//      under the GPT-2 byte-to-unicode mapping) and repeatedly merges the adjacent pair with the lowest merge
//      rank, leftmost first, until no adjacent pair has a merge.
// Vocab strings are stored decoded to raw bytes, so decode() returns the original UTF-8 text.
//
// Cost: O(n log n) in the text's length whatever the text (a megabyte of spaces, or one megabyte-long "word"):
// the added tokens are looked up by their first byte, and BPE keeps the candidate pairs in a priority queue
// over a doubly linked list of symbols (each merge costs O(log n), stale pairs are skipped when popped).
//
// SentencePiece-style (llama.cpp's llm_tokenizer_spm on the vocabulary and scores of model/spm_vocab.h, i.e. what
// llama_tokenize(text, add_special = false, parse_special = false) returns on the converted file):
//   1. user-defined added tokens (added past the base vocabulary, not special) are cut out of the text, longest
//      token first, every occurrence (llama.cpp's tokenizer_st_partition); control tokens are not;
//   2. each remaining piece gets a leading " " when it starts the text or follows a cut-out token
//      (add_space_prefix: tokenizer_config.json's add_prefix_space, default true), then " " becomes "▁";
//   3. symbols start as UTF-8 characters; the adjacent pair whose concatenation is a token with the highest score
//      is merged, leftmost first among equal scores (the converter's scores are all -1000: leftmost first), until
//      no adjacent pair forms a token;
//   4. a final symbol that is no token goes out as its bytes' <0xNN> tokens (byte_fallback).
// Nothing is prepended (no <s>): the protocol's separator is the end-of-sequence token instead of 0
// (protocol_separator()).
//
// Text must be UTF-8: callers check it first (util/utf8.h check_utf8, which names the file and the byte; the
// engine's protocol_tokens does). encode() itself never reads past a malformed sequence: its bytes match no
// regex item and are encoded byte by byte.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "util/regex.h"
#include "util/status.h"

namespace razor {

// The GPT-2 byte-to-unicode table: byte b is written as the code point byte_to_unicode(b) in vocab strings.
uint32_t byte_to_unicode(uint8_t b);

class bpe_tokenizer {
 public:
  // Reads and validates tokenizer.json. Fails with bad_format when the model is not BPE, a merge names a
  // token not in the vocab, the vocab lacks one of the 256 byte tokens, or the regex does not compile.
  // A SentencePiece-style tokenizer also reads tokenizer_config.json and config.json beside the file when present
  // (add_prefix_space, the special tokens, the end-of-sequence id).
  static result<bpe_tokenizer> load(const std::string& tokenizer_json_path);
  static result<bpe_tokenizer> from_json(const nlohmann::json& j, const std::string& where,
                                         const nlohmann::json* tokenizer_config = nullptr,
                                         const nlohmann::json* config = nullptr);

  // Token ids of `text` (UTF-8). Added tokens in the text are recognised when `split_added` (Hugging Face
  // does so even with add_special_tokens=False); nothing is prepended or appended. Thread-safe. An error only
  // when the pre-tokenizer regex reaches its match limits (a hostile tokenizer.json pattern).
  result<std::vector<int32_t>> encode(std::string_view text, bool split_added = true) const;
  std::string decode(const std::vector<int32_t>& ids) const;

  int vocab_size() const { return int(id_to_bytes_.size()); }
  bool sentencepiece() const { return spm_; }
  // The token the protocol puts after each "\n\n\n" piece: 0 for byte-level BPE (resources/models/README.md),
  // the end-of-sequence token for a SentencePiece-style one (what tools/llamacpp/validate.mjs appends).
  int32_t protocol_separator() const { return separator_; }
  // Raw bytes of a token (added tokens: their content).
  const std::string& token_bytes(int32_t id) const { return id_to_bytes_.at(size_t(id)); }
  // Id of a vocab string as written in tokenizer.json (byte-to-unicode form) or of an added token.
  std::optional<int32_t> token_id(std::string_view vocab_string) const;
  const std::string& pattern() const { return pattern_; }
  size_t n_merges() const { return merge_count_; }

 private:
  void encode_piece(std::string_view bytes, std::vector<int32_t>& out) const;
  static result<bpe_tokenizer> from_spm(const nlohmann::json& j, const std::string& where,
                                        const nlohmann::json* tokenizer_config, const nlohmann::json* config);
  void spm_session(std::string text, std::vector<int32_t>& out) const;
  std::vector<int32_t> encode_spm(std::string_view text, bool split_added) const;
  status encode_plain(std::string_view text, std::vector<int32_t>& out) const;

  std::vector<std::string> id_to_bytes_;
  std::unordered_map<std::string, int32_t> bytes_to_id_;
  std::unordered_map<std::string, int32_t> vocab_strings_;  // as in tokenizer.json
  int32_t byte_id_[256] = {};
  // (left id << 32 | right id) -> (rank << 32 | merged id)
  std::unordered_map<uint64_t, uint64_t> merges_;
  size_t merge_count_ = 0;
  std::vector<std::pair<std::string, int32_t>> added_;  // content, id; longest first
  std::vector<uint32_t> added_by_byte_[256];            // indices into added_ by first byte, longest first
  std::string pattern_, where_;
  // SentencePiece-style
  bool spm_ = false, add_space_prefix_ = true;
  int32_t separator_ = 0;
  std::vector<float> scores_;
  regex re_;
  // Cache of piece -> ids (pieces repeat a lot in text); guarded because encode() is const and thread-safe.
  mutable std::shared_ptr<std::mutex> cache_mu_ = std::make_shared<std::mutex>();
  mutable std::shared_ptr<std::unordered_map<std::string, std::vector<int32_t>>> cache_ =
      std::make_shared<std::unordered_map<std::string, std::vector<int32_t>>>();
};

}  // namespace razor
