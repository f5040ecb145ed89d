#include "engine/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>

#include "model/spm_vocab.h"
#include "util/json_limits.h"

namespace razor {

namespace {

// GPT-2's printable bytes map to themselves; the others (0-32, 127-160, 173) to 256, 257, ... in byte order.
struct byte_tables {
  uint32_t to_cp[256];
  std::unordered_map<uint32_t, uint8_t> from_cp;
  byte_tables() {
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      to_cp[b] = printable ? uint32_t(b) : 256 + n++;
      from_cp[to_cp[b]] = uint8_t(b);
    }
  }
};
const byte_tables& tables() {
  static const byte_tables t;
  return t;
}

// Decodes one UTF-8 code point at s[i]; advances i. Invalid bytes decode as themselves.
uint32_t next_cp(std::string_view s, size_t& i) {
  auto c = uint8_t(s[i]);
  int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (i + size_t(len) > s.size()) len = 1;
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
  for (int k = 1; k < len; ++k) cp = (cp << 6) | (uint8_t(s[i + size_t(k)]) & 0x3f);
  i += size_t(len);
  return cp;
}

// A vocab string (byte-to-unicode form) back to raw bytes; false when a code point is not in the table.
bool vocab_string_to_bytes(std::string_view s, std::string* out) {
  out->clear();
  const auto& t = tables();
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = next_cp(s, i);
    auto it = t.from_cp.find(cp);
    if (it == t.from_cp.end()) return false;
    out->push_back(char(it->second));
  }
  return true;
}

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace

uint32_t byte_to_unicode(uint8_t b) { return tables().to_cp[b]; }

result<bpe_tokenizer> bpe_tokenizer::load(const std::string& path) {
  json_limits lim;
  lim.max_bytes = size_t(256) << 20;  // a 262,144-token vocabulary with its merges: ~30 MB
  RAZOR_ASSIGN_OR_RETURN(nlohmann::json j, read_json_file(path, lim));
  if (!is_sentencepiece_bpe(j)) return from_json(j, path);
  // tokenizer_config.json and config.json beside it, when present
  const std::string dir = std::filesystem::path(path).parent_path().string();
  nlohmann::json side[2];
  const char* names[2] = {"tokenizer_config.json", "config.json"};
  for (int k = 0; k < 2; ++k) {
    const std::string f = (dir.empty() ? std::string(".") : dir) + "/" + names[k];
    if (std::error_code ec; !std::filesystem::exists(f, ec)) continue;
    json_limits sl;
    sl.max_bytes = size_t(16) << 20;
    RAZOR_ASSIGN_OR_RETURN(side[k], read_json_file(f, sl));
  }
  return from_json(j, path, &side[0], &side[1]);
}

result<bpe_tokenizer> bpe_tokenizer::from_spm(const nlohmann::json& j, const std::string& where,
                                              const nlohmann::json* tokenizer_config, const nlohmann::json* config) {
  static const nlohmann::json null;
  const nlohmann::json& tc = tokenizer_config ? *tokenizer_config : null;
  RAZOR_ASSIGN_OR_RETURN(spm_vocab v, read_spm_vocab(j, tc, where));
  bpe_tokenizer tk;
  tk.spm_ = true;
  tk.where_ = where;
  tk.add_space_prefix_ = v.add_space_prefix.value_or(true);  // llama.cpp's SPM default
  const size_t n = v.tokens.size();
  tk.id_to_bytes_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& t = v.tokens[i];
    // llama.cpp keeps the last id of a repeated text
    tk.vocab_strings_[t] = int32_t(i);
    if (v.types[i] == int32_t(spm_token_type::byte)) {
      tk.id_to_bytes_[i] = std::string(1, char(std::stoi(t.substr(3, 2), nullptr, 16)));
    } else {
      std::string d;
      for (size_t k = 0; k < t.size();) {
        if (t.compare(k, 3, "\xe2\x96\x81") == 0) d += ' ', k += 3;
        else d += t[k++];
      }
      tk.id_to_bytes_[i] = d;
    }
    if (v.types[i] == int32_t(spm_token_type::user_defined) && !t.empty()) tk.added_.emplace_back(t, int32_t(i));
  }
  std::stable_sort(tk.added_.begin(), tk.added_.end(),
                   [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });
  // byte fallback: <0xNN>, else the byte itself as a token (llama_vocab::byte_to_token)
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
    auto it = tk.vocab_strings_.find(name);
    if (it == tk.vocab_strings_.end()) it = tk.vocab_strings_.find(std::string(1, char(b)));
    if (it == tk.vocab_strings_.end())
      return make_error(errc::bad_format, where + ": the vocabulary lacks the byte token " + name);
    tk.byte_id_[b] = it->second;
  }
  tk.scores_ = std::move(v.scores);
  // The separator: the end-of-sequence id the converter writes (tokenizer.ggml.eos_token_id), else llama.cpp's
  // SPM default 2.
  RAZOR_ASSIGN_OR_RETURN(const hf_special_vocab sv,
                         read_hf_special_vocab(j, tc, config ? *config : null, int64_t(n), where));
  tk.separator_ = 2;
  for (auto& [typ, id] : sv.ids)
    if (typ == "eos") tk.separator_ = int32_t(id);
  return tk;
}

result<bpe_tokenizer> bpe_tokenizer::from_json(const nlohmann::json& j, const std::string& where,
                                               const nlohmann::json* tokenizer_config, const nlohmann::json* config) {
  if (is_sentencepiece_bpe(j)) return from_spm(j, where, tokenizer_config, config);
  // A hostile tokenizer.json with keys of the wrong JSON type makes nlohmann::json throw: an error value here.
  try {
    return [&]() -> result<bpe_tokenizer> {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    return make_error(errc::bad_format, where + ": no \"model\" object");
  const auto& m = j["model"];
  if (m.value("type", std::string("BPE")) != "BPE")
    return make_error(errc::unsupported, where + ": tokenizer model type " + m.value("type", std::string()) +
                                             " (only byte-level BPE is supported)");
  if (!m.contains("vocab") || !m["vocab"].is_object())
    return make_error(errc::bad_format, where + ": model.vocab is missing");
  bpe_tokenizer tk;
  int64_t max_id = -1;
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer()) return make_error(errc::bad_format, where + ": vocab id not an integer");
    max_id = std::max<int64_t>(max_id, it.value().get<int64_t>());
  }
  std::vector<std::pair<std::string, int64_t>> added;
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (const auto& a : j["added_tokens"]) {
      if (!a.contains("id") || !a.contains("content")) continue;
      added.emplace_back(a["content"].get<std::string>(), a["id"].get<int64_t>());
      max_id = std::max<int64_t>(max_id, a["id"].get<int64_t>());
    }
  if (max_id < 0 || max_id > std::numeric_limits<int32_t>::max())
    return make_error(errc::bad_format, where + ": empty or oversized vocab");
  tk.id_to_bytes_.resize(size_t(max_id + 1));
  std::string raw;
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    auto id = it.value().get<int32_t>();
    if (id < 0) return make_error(errc::bad_format, where + ": negative vocab id");
    tk.vocab_strings_[it.key()] = id;
    if (!vocab_string_to_bytes(it.key(), &raw))
      return make_error(errc::bad_format, where + ": vocab entry \"" + it.key() +
                                              "\" is not in byte-level (byte-to-unicode) form");
    tk.id_to_bytes_[size_t(id)] = raw;
    tk.bytes_to_id_.emplace(raw, id);
  }
  for (int b = 0; b < 256; ++b) {
    auto it = tk.bytes_to_id_.find(std::string(1, char(b)));
    if (it == tk.bytes_to_id_.end())
      return make_error(errc::bad_format, where + ": vocab lacks the token of byte " + std::to_string(b));
    tk.byte_id_[b] = it->second;
  }
  if (m.contains("merges") && m["merges"].is_array()) {
    uint64_t rank = 0;
    for (const auto& mg : m["merges"]) {
      std::string a, b;
      if (mg.is_array() && mg.size() == 2) {
        a = mg[0].get<std::string>();
        b = mg[1].get<std::string>();
      } else if (mg.is_string()) {
        auto s = mg.get<std::string>();
        auto sp = s.find(' ', 1);
        if (sp == std::string::npos) return make_error(errc::bad_format, where + ": merge \"" + s + "\" has no space");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {
        return make_error(errc::bad_format, where + ": merge " + std::to_string(rank) + " is malformed");
      }
      auto ia = tk.vocab_strings_.find(a), ib = tk.vocab_strings_.find(b), im = tk.vocab_strings_.find(a + b);
      if (ia == tk.vocab_strings_.end() || ib == tk.vocab_strings_.end() || im == tk.vocab_strings_.end())
        return make_error(errc::bad_format, where + ": merge " + std::to_string(rank) + " (\"" + a + "\" \"" + b +
                                                "\") names a token not in the vocab");
      uint64_t key = (uint64_t(uint32_t(ia->second)) << 32) | uint32_t(ib->second);
      tk.merges_.emplace(key, (rank << 32) | uint32_t(im->second));  // first (lowest) rank wins
      ++rank;
    }
    tk.merge_count_ = size_t(rank);
  }
  for (auto& [content, id] : added) {
    tk.id_to_bytes_[size_t(id)] = content;
    tk.added_.emplace_back(content, int32_t(id));
  }
  std::stable_sort(tk.added_.begin(), tk.added_.end(),
                   [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });

  // Pre-tokenizer: the first Split regex, else GPT-2's when ByteLevel asks for its own regex.
  std::string pattern;
  bool byte_level_regex = false;
  std::function<void(const nlohmann::json&)> scan = [&](const nlohmann::json& p) {
    if (!p.is_object()) return;
    auto type = p.value("type", std::string());
    if (type == "Sequence" && p.contains("pretokenizers"))
      for (const auto& q : p["pretokenizers"]) scan(q);
    else if (type == "Split" && pattern.empty() && p.contains("pattern")) {
      const auto& pt = p["pattern"];
      if (pt.contains("Regex")) pattern = pt["Regex"].get<std::string>();
    } else if (type == "ByteLevel" && p.value("use_regex", true))
      byte_level_regex = true;
  };
  if (j.contains("pre_tokenizer")) scan(j["pre_tokenizer"]);
  if (pattern.empty() && byte_level_regex) pattern = kGpt2Pattern;
  if (pattern.empty()) return make_error(errc::unsupported, where + ": no pre-tokenizer regex found");
  tk.pattern_ = pattern;
  tk.where_ = where;
  regex_options ro;
  ro.utf = true;
  ro.ecmascript = false;  // the Hugging Face patterns are written for Oniguruma / fancy-regex, close to PCRE2
  ro.max_pattern_bytes = 64 * 1024;
  // Pieces can be long (a megabyte of spaces is one \s+ match): the limits only stop patterns that backtrack
  // without bound, a few seconds of work at most.
  ro.match_limit = 100'000'000;
  ro.depth_limit = 10'000'000;
  ro.heap_limit_kib = 1024 * 1024;
  auto re = regex::compile(pattern, ro);
  if (!re.ok()) return make_error(errc::bad_format, where + ": pre-tokenizer " + re.error().message());
  tk.re_ = std::move(re).value();
  for (size_t i = 0; i < tk.added_.size(); ++i)
    if (!tk.added_[i].first.empty())
      tk.added_by_byte_[uint8_t(tk.added_[i].first[0])].push_back(uint32_t(i));
  return tk;
}();
  } catch (const nlohmann::json::exception& e) {
    return make_error(errc::bad_format, where + ": unexpected JSON type (" + std::string(e.what()) + ")");
  }
}

std::optional<int32_t> bpe_tokenizer::token_id(std::string_view s) const {
  auto it = vocab_strings_.find(std::string(s));
  if (it != vocab_strings_.end()) return it->second;
  for (auto& [c, id] : added_)
    if (c == s) return id;
  return std::nullopt;
}

void bpe_tokenizer::encode_piece(std::string_view bytes, std::vector<int32_t>& out) const {
  // Pieces repeat a lot in text; only short ones are worth a cache entry (and a copy as its key).
  constexpr size_t kMaxCachedPiece = 256;
  const bool cacheable = bytes.size() <= kMaxCachedPiece;
  if (cacheable) {
    std::lock_guard lk(*cache_mu_);
    auto it = cache_->find(std::string(bytes));
    if (it != cache_->end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  // Symbols in a doubly linked list over byte positions; a symbol starting at i covers [i, i + len[i]).
  const int32_t n = int32_t(bytes.size());
  const size_t un = bytes.size();
  std::vector<int32_t> id(un), prev(un), next(un), len(un, 1);
  for (int32_t i = 0; i < n; ++i) {
    id[size_t(i)] = byte_id_[uint8_t(bytes[size_t(i)])];
    prev[size_t(i)] = i - 1;
    next[size_t(i)] = i + 1 < n ? i + 1 : -1;
  }
  // Candidate merges of adjacent symbols (left, right), lowest rank first, then leftmost: the pair the
  // reference algorithm (rescan every pair, merge the best) would take. An entry is stale once either symbol
  // took part in another merge: the left one is gone (len 0) or no longer followed by `right`, or `right` grew.
  struct cand {
    uint32_t rank;
    int32_t left, right, len;
    int32_t merged;
    bool operator>(const cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<cand, std::vector<cand>, std::greater<cand>> pq;
  auto consider = [&](int32_t l) {
    if (l < 0) return;
    const int32_t r = next[size_t(l)];
    if (r < 0) return;
    auto it = merges_.find((uint64_t(uint32_t(id[size_t(l)])) << 32) | uint32_t(id[size_t(r)]));
    if (it == merges_.end()) return;
    pq.push({uint32_t(it->second >> 32), l, r, len[size_t(l)] + len[size_t(r)], int32_t(it->second & 0xffffffffu)});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!pq.empty()) {
    const cand c = pq.top();
    pq.pop();
    const auto l = size_t(c.left), r = size_t(c.right);
    if (len[l] == 0 || next[l] != c.right || len[l] + len[r] != c.len) continue;  // stale
    id[l] = c.merged;
    len[l] = c.len;
    len[r] = 0;
    next[l] = next[r];
    if (next[r] >= 0) prev[size_t(next[r])] = c.left;
    consider(prev[l]);
    consider(c.left);
  }
  std::vector<int32_t> sym;
  for (int32_t i = n ? 0 : -1; i >= 0; i = next[size_t(i)]) sym.push_back(id[size_t(i)]);
  out.insert(out.end(), sym.begin(), sym.end());
  if (!cacheable) return;
  std::lock_guard lk(*cache_mu_);
  if (cache_->size() < 200000) cache_->emplace(std::string(bytes), std::move(sym));
}

status bpe_tokenizer::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  size_t pos = 0;
  while (pos < text.size()) {
    auto m = re_.find(text, pos);
    if (!m.ok())
      return make_error(m.error().code(), where_ + ": the pre-tokenizer regex at byte " + std::to_string(pos) +
                                              " of a piece of text: " + m.error().message());
    if (!*m) {  // no further match: the rest is one gap piece ("Isolated" keeps it)
      encode_piece(text.substr(pos), out);
      break;
    }
    const size_t b = (*m)->begin, e = (*m)->end;
    if (b > pos) encode_piece(text.substr(pos, b - pos), out);
    if (e == b) {  // empty match: step one code point so the loop advances
      size_t i = b;
      if (i < text.size()) next_cp(text, i);
      encode_piece(text.substr(b, i - b), out);
      pos = i;
      continue;
    }
    encode_piece(text.substr(b, e - b), out);
    pos = e;
  }
  return {};
}

void bpe_tokenizer::spm_session(std::string text, std::vector<int32_t>& out) const {
  // " " -> "▁" (llama_escape_whitespace)
  std::string esc;
  esc.reserve(text.size() + text.size() / 4);
  for (char c : text) {
    if (c == ' ') esc += "\xe2\x96\x81";
    else esc += c;
  }
  // Symbols: UTF-8 characters (length from the lead byte's high nibble, as unicode_len_utf8), in a linked list.
  struct sym {
    int32_t prev, next;
    size_t off, n;
  };
  std::vector<sym> syms;
  for (size_t off = 0; off < esc.size();) {
    static const size_t len_of[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    const size_t n = std::min(len_of[uint8_t(esc[off]) >> 4], esc.size() - off);
    const auto i = int32_t(syms.size());
    syms.push_back({i - 1, off + n == esc.size() ? -1 : i + 1, off, n});
    off += n;
  }
  // llm_tokenizer_spm_session: the bigram with the highest score first, then the leftmost. A popped bigram is
  // stale when one of its symbols was merged away or grew since (the size no longer adds up).
  struct bigram {
    int32_t left, right;
    float score;
    size_t size;
  };
  auto worse = [](const bigram& l, const bigram& r) { return l.score < r.score || (l.score == r.score && l.left > r.left); };
  std::priority_queue<bigram, std::vector<bigram>, decltype(worse)> q(worse);
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const size_t size = syms[size_t(l)].n + syms[size_t(r)].n;
    auto it = vocab_strings_.find(esc.substr(syms[size_t(l)].off, size));
    if (it == vocab_strings_.end()) return;
    q.push({l, r, scores_[size_t(it->second)], size});
  };
  for (int32_t i = 1; i < int32_t(syms.size()); ++i) try_add(i - 1, i);
  while (!q.empty()) {
    const bigram b = q.top();
    q.pop();
    sym &l = syms[size_t(b.left)], &r = syms[size_t(b.right)];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[size_t(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  // A merged symbol is a token by construction; a single character may not be: its bytes then (resegment).
  for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[size_t(i)].next) {
    const sym& s = syms[size_t(i)];
    auto it = vocab_strings_.find(esc.substr(s.off, s.n));
    if (it != vocab_strings_.end()) {
      out.push_back(it->second);
      continue;
    }
    for (size_t k = 0; k < s.n; ++k) out.push_back(byte_id_[uint8_t(esc[s.off + k])]);
  }
}

std::vector<int32_t> bpe_tokenizer::encode_spm(std::string_view text, bool split_added) const {
  std::vector<int32_t> out;
  if (text.empty()) return out;
  // Fragments: raw text (token < 0) or a user-defined token; every occurrence of each token, longest token first.
  struct frag {
    std::string_view text;
    int32_t token;
  };
  std::vector<frag> frags = {{text, -1}};
  for (const auto& [content, id] : added_) {
    if (!split_added) break;
    std::vector<frag> next;
    for (const frag& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = 0;
      for (size_t at; (at = f.text.find(content, pos)) != std::string_view::npos; pos = at + content.size()) {
        if (at > pos) next.push_back({f.text.substr(pos, at - pos), -1});
        next.push_back({{}, id});
      }
      if (pos < f.text.size()) next.push_back({f.text.substr(pos), -1});
    }
    frags = std::move(next);
  }
  bool prev_special = true;  // the first piece gets the space prefix
  for (const frag& f : frags) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    std::string t = add_space_prefix_ && prev_special ? " " : "";
    t += f.text;
    spm_session(std::move(t), out);
    prev_special = false;
  }
  return out;
}

result<std::vector<int32_t>> bpe_tokenizer::encode(std::string_view text, bool split_added) const {
  if (spm_) return encode_spm(text, split_added);
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 1);
  if (!split_added || added_.empty()) {
    RAZOR_TRY(encode_plain(text, out));
    return out;
  }
  // Added tokens: at each byte only those starting with that byte are tried, longest first.
  size_t start = 0, i = 0;
  while (i < text.size()) {
    bool hit = false;
    for (uint32_t k : added_by_byte_[uint8_t(text[i])]) {
      const auto& [c, id] = added_[k];
      if (text.compare(i, c.size(), c) == 0) {
        RAZOR_TRY(encode_plain(text.substr(start, i - start), out));
        out.push_back(id);
        i += c.size();
        start = i;
        hit = true;
        break;
      }
    }
    if (!hit) ++i;
  }
  RAZOR_TRY(encode_plain(text.substr(start), out));
  return out;
}

std::string bpe_tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  for (auto id : ids)
    if (id >= 0 && size_t(id) < id_to_bytes_.size()) s += id_to_bytes_[size_t(id)];
  return s;
}

}  // namespace razor
