// Tensor-type recipes: llama-quantize's --tensor-type-file syntax (`pattern=type` per tensor, regex on GGUF names)
// with razor's directive comments. Plain text parsing over the ggml type table: part of razor_formats, which the
// GUI links without the quantizers.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "ggml/types.h"
#include "util/status.h"

namespace razor::gguf {

// ---- tensor-type recipes ----------------------------------------------------------------------------
struct type_rule {
  std::string pattern;  // lower-cased regex
  ggml::type type;
  int line = 0;
};

struct type_recipe {
  std::vector<type_rule> rules;
  std::optional<ggml::type> default_type;        // "--type"
  std::optional<ggml::type> output_type;         // --output-tensor-type
  std::optional<ggml::type> token_embedding_type;  // --token-embedding-type
  std::string source;                            // file name for messages
};

// Parses `pattern=type` entries and "#@ default=T output=T token_embd=T" directive comments ('#' comments, blank
// lines). Unknown types, missing '=' and invalid regexes (or ones over util/regex.h's length and nesting limits)
// are errors (errc::bad_recipe) naming `where` and the line; so is a pattern that reaches the match limits when
// the plan is made.
result<type_recipe> parse_type_recipe(const std::string& text, const std::string& where);
result<type_recipe> load_type_recipe(const std::string& path);
// The pattern of a rule matching exactly one tensor name ("blk.0.attn_v.weight" -> "^blk\\.0\\.attn_v\\.weight$").
std::string exact_name_pattern(const std::string& name);

}  // namespace razor::gguf
