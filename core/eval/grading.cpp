#include "eval/grading.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <regex>
#include <vector>

namespace razor::eval {
namespace {

// The last `n` code points of a UTF-8 string (Python's s[-n:]).
std::string_view tail_chars(std::string_view s, size_t n) {
  size_t count = 0, i = s.size();
  while (i > 0) {
    --i;
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (++count == n) return s.substr(i);
    }
  }
  return s;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string last_nonempty_line(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = s.rfind('\n', end - 1);
    size_t b = (start == std::string_view::npos) ? 0 : start + 1;
    std::string line = trim(s.substr(b, end - b));
    if (!line.empty()) return line;
    if (start == std::string_view::npos) break;
    end = start;
  }
  return {};
}

// Last match of `re` in `s`, or an empty match_results.
std::smatch last_match(const std::string& s, const std::regex& re) {
  std::smatch last;
  for (auto it = std::sregex_iterator(s.begin(), s.end(), re); it != std::sregex_iterator(); ++it) last = *it;
  return last;
}

void erase_all(std::string& s, std::string_view what) {
  for (size_t p; (p = s.find(what)) != std::string::npos;) s.erase(p, what.size());
}

std::optional<double> parse_float(const std::string& s) {
  if (s.empty() || s.find_first_of("xX") != std::string::npos) return std::nullopt;
  const char* b = s.c_str();
  char* e = nullptr;
  double v = std::strtod(b, &e);
  if (e != b + s.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> split_fences(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  for (;;) {
    size_t f = s.find("```", pos);
    if (f == std::string_view::npos) {
      parts.push_back(s.substr(pos));
      break;
    }
    parts.push_back(s.substr(pos, f - pos));
    pos = f + 3;
  }
  return parts;
}

std::string drop_lang_tag(std::string_view block) {
  if (block.substr(0, 6) == "python") {
    size_t nl = block.find('\n');
    return nl == std::string_view::npos ? std::string() : std::string(block.substr(nl + 1));
  }
  if (!block.empty() && block[0] == '\n') block.remove_prefix(1);
  return std::string(block);
}

}  // namespace

std::string post_think(std::string_view s) {
  size_t p = s.rfind("</think>");
  return p == std::string_view::npos ? std::string(s) : std::string(s.substr(p + 8));
}

int parse_letter(std::string_view s, int k) {
  if (k < 1) return -1;
  if (k > 26) k = 26;
  std::string t(tail_chars(s, 600));
  std::string letters = std::string("A-") + char('A' + k - 1);
  std::regex re1("(final answer|answer|option|correct)\\s*(is|:)?\\s*\\*{0,2}\\(?([" + letters + "])\\)?\\*{0,2}",
                 std::regex::ECMAScript | std::regex::icase);
  if (auto m = last_match(t, re1); !m.empty()) return std::toupper(static_cast<unsigned char>(m.str(3)[0])) - 'A';
  std::regex re2("\\\\boxed\\{([" + letters + "])\\}");
  if (auto m = last_match(t, re2); !m.empty()) return m.str(1)[0] - 'A';
  std::string line = last_nonempty_line(t);
  std::regex re3("\\b([" + letters + "])\\b");
  if (auto m = last_match(line, re3); !m.empty()) return m.str(1)[0] - 'A';
  return -1;
}

std::optional<std::string> extract_boxed(std::string_view s) {
  size_t p = s.rfind("\\boxed{");
  if (p != std::string_view::npos) {
    size_t i = p + 7;
    int depth = 1;
    for (size_t j = i; j < s.size(); ++j) {
      if (s[j] == '{') ++depth;
      else if (s[j] == '}' && --depth == 0) return std::string(s.substr(i, j - i));
    }
  }
  static const std::regex re("(final answer|answer)\\s*(is|:)?\\s*\\$?\\\\?\\(?([-\\d.,/]+)\\)?\\$?",
                             std::regex::ECMAScript | std::regex::icase);
  std::string str(s);
  if (auto m = last_match(str, re); !m.empty()) return m.str(3);
  return std::nullopt;
}

std::string norm_math(std::string_view in) {
  std::string s(in);
  for (std::string_view w : {"\\!", "\\,", "\\ ", " ", "\\left", "\\right", "$", "\\text{", "\\mathrm{", "dollars",
                             "\\%", "%", ","})
    erase_all(s, w);
  while (!s.empty() && s.back() == '}') s.pop_back();
  size_t b = 0, e = s.size();
  while (b < e && s[b] == '.') ++b;
  while (e > b && s[e - 1] == '.') --e;
  return s.substr(b, e - b);
}

bool math_eq(const std::optional<std::string>& pred, std::string_view gold) {
  if (!pred) return false;
  std::string p = norm_math(*pred), g = norm_math(gold);
  if (p == g) return true;
  auto a = parse_float(p), b = parse_float(g);
  return a && b && std::fabs(*a - *b) < 1e-3;
}

std::string free_answer(std::string_view output) {
  std::string pt = post_think(output);
  std::string t(tail_chars(pt, 600));
  static const std::regex re("(?:final answer|answer)\\s*(?:is|:)?\\s*(.+)", std::regex::ECMAScript | std::regex::icase);
  if (auto m = last_match(t, re); !m.empty()) return trim(m.str(1));
  return last_nonempty_line(t);
}

std::string norm_free(std::string_view s) {
  std::string out;
  for (char c : trim(s)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x80 || std::isalnum(u) || c == '_') out.push_back(static_cast<char>(std::tolower(u)));
  }
  return out;
}

std::optional<double> last_number(std::string_view s) {
  static const std::regex re("-?\\d[\\d,]*(?:\\.\\d+)?");
  std::string str(s);
  auto m = last_match(str, re);
  if (m.empty()) return std::nullopt;
  std::string n = m.str(0);
  erase_all(n, ",");
  return parse_float(n);
}

std::string he_extract(std::string_view output, std::string_view prompt) {
  std::string code;
  if (output.find("```") != std::string_view::npos) {
    auto parts = split_fences(output);
    std::string_view best;
    for (size_t i = 1; i < parts.size(); i += 2)
      if (parts[i].size() > best.size()) best = parts[i];
    code = drop_lang_tag(best);
  } else {
    code = std::string(output);
  }
  std::string lead = trim(code);
  if (lead.rfind("def", 0) == 0 || lead.rfind("from", 0) == 0 || lead.rfind("import", 0) == 0) return code;
  size_t cut = code.size();
  for (std::string_view m : {"\ndef", "\nclass", "\nif __name__", "\nprint(", "\n#", "\n@", "\n```"}) {
    size_t p = code.find(m);
    if (p != std::string::npos && p < cut) cut = p;
  }
  return std::string(prompt) + code.substr(0, cut);
}

namespace {
// The last closed fenced block (the odd parts followed by another part).
std::optional<std::string> last_closed_block(std::string_view s) {
  auto parts = split_fences(s);
  for (size_t i = parts.size(); i-- > 1;)
    if (i % 2 == 1 && i + 1 < parts.size()) return drop_lang_tag(parts[i]);
  return std::nullopt;
}
}  // namespace

std::string last_code_block(std::string_view s) { return last_closed_block(s).value_or(std::string(s)); }

std::string lcb_code(std::string_view output) {
  if (auto c = last_closed_block(post_think(output))) return *c;
  if (auto c = last_closed_block(output)) return *c;
  auto parts = split_fences(output);
  if (parts.size() % 2 == 0) return drop_lang_tag(parts.back());  // an odd number of fences: the last is open
  return {};
}

}  // namespace razor::eval
