// A SentencePiece-style BPE tokenizer.json (Mixtral / Llama-2 as the Hub converts them: model.type "BPE" with
// byte_fallback, "▁" for spaces, <0xNN> byte tokens, <unk> <s> </s>; no tokenizer.model beside it) read as
// llama.cpp's converter reads it (convert_hf_to_gguf.py _set_vocab_llama_hf: gguf-py's LlamaHfVocab for the
// vocabulary, SpecialVocab for the special ids, the add_* flags and the chat template). One reading for both
// users: core/gguf writes it as tokenizer.ggml.model "llama", and the engine's tokenizer (engine/tokenizer.h)
// tokenizes with exactly the vocabulary and scores that llama.cpp will load from that file.
//
// LlamaHfVocab's rules, as written by the converter:
//   - the base vocabulary is model.vocab (ids 0 .. n-1, every id present); added tokens with an id at or past n
//     follow, in id order (they must continue the ids without a gap: the GGUF's index is the id);
//   - every score is -1000.0 (LlamaHfVocab.get_token_score; there are no SentencePiece scores in tokenizer.json);
//   - types: a token spelled <0xNN> is BYTE (6); a special token (bos / eos / unk / sep / pad / cls / mask named in
//     tokenizer_config.json, else LlamaTokenizerFast's defaults <s> </s> <unk>, and additional_special_tokens) is
//     CONTROL (3), <unk> included; an added token past the base that is not special is USER_DEFINED (4); the
//     rest NORMAL (1).
//   - llama.cpp then tokenizes with its SPM tokenizer (llm_tokenizer_spm): with equal scores its bigram queue
//     merges the leftmost pair whose concatenation is a token, not HF's merge ranks.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "util/status.h"

namespace razor {

// model.type "BPE" with model.byte_fallback true.
bool is_sentencepiece_bpe(const nlohmann::json& tokenizer_json);

// GGUF / llama.cpp token types (llama_token_type).
enum class spm_token_type : int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

struct spm_vocab {
  std::vector<std::string> tokens;  // index = id, as written in tokenizer.json ("▁the", "<0x0A>")
  std::vector<float> scores;        // -1000.0 each
  std::vector<int32_t> types;       // spm_token_type
  // tokenizer_config.json's add_prefix_space when it is a boolean (LlamaModel.set_vocab writes it as
  // tokenizer.ggml.add_space_prefix); llama.cpp's SPM default (true) otherwise.
  std::optional<bool> add_space_prefix;
};

// `tokenizer_config` may be null (no tokenizer_config.json). Errors name `where` (the tokenizer.json path).
result<spm_vocab> read_spm_vocab(const nlohmann::json& tokenizer_json, const nlohmann::json& tokenizer_config,
                                 const std::string& where);

// gguf-py's SpecialVocab (load_merges false) on tokenizer.json, tokenizer_config.json and config.json (each may be
// null): the special token ids in the order the converter writes them (type: "bos", "eos", "unk", "sep", "pad",
// "mask"; cls has no GGUF key), the add_<type>_token flags in their order, the chat template (when
// tokenizer_config.json exists) and the normalizer's lowercase / strip_accents flags.
struct hf_special_vocab {
  std::vector<std::pair<std::string, int64_t>> ids;
  std::vector<std::pair<std::string, bool>> add;
  std::optional<std::string> chat_template;  // the default template
  std::optional<bool> lowercase, strip_accents;
};
// `chat_template_file`: the text of chat_template.jinja when the folder has one (empty otherwise). A key of an
// unexpected JSON type: an error naming `where` (the model folder).
result<hf_special_vocab> read_hf_special_vocab(const nlohmann::json& tokenizer_json,
                                               const nlohmann::json& tokenizer_config, const nlohmann::json& config,
                                               int64_t n_vocab, const std::string& where,
                                               const std::string& chat_template_file = {});

}  // namespace razor
