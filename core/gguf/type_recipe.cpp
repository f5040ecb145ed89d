#include "gguf/type_recipe.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "util/atomic_file.h"
#include "util/printable.h"
#include "util/regex.h"

namespace razor::gguf {

result<type_recipe> parse_type_recipe(const std::string& text, const std::string& where) {
  type_recipe r;
  r.source = where;
  std::istringstream in(text);
  std::string line;
  int ln = 0;
  while (std::getline(in, line)) {
    ++ln;
    // "#@ default=q3_K", "#@ output=q8_0", "#@ token_embd=q8_0": razor directives (plain comments to
    // llama-quantize) standing for its ftype argument, --output-tensor-type and --token-embedding-type.
    if (auto b = line.find_first_not_of(" \t"); b != std::string::npos && line.compare(b, 2, "#@") == 0) {
      std::istringstream d(line.substr(b + 2));
      std::string w;
      while (d >> w) {
        auto eq = w.find('=');
        auto t = eq == std::string::npos ? result<ggml::type>(make_error(errc::bad_recipe, "")) : ggml::type_from_name(w.substr(eq + 1));
        std::string key = eq == std::string::npos ? w : w.substr(0, eq);
        if (!t.ok() || (key != "default" && key != "output" && key != "token_embd"))
          return make_error(errc::bad_recipe, where + ":" + std::to_string(ln) + ": bad directive '" + printable(w, 200) +
                                                  "' (expected default=TYPE, output=TYPE or token_embd=TYPE)");
        (key == "default" ? r.default_type : key == "output" ? r.output_type : r.token_embedding_type) = *t;
      }
      continue;
    }
    if (auto h = line.find('#'); h != std::string::npos) line.resize(h);
    std::istringstream words(line);
    std::string w;
    while (words >> w) {
      auto eq = w.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == w.size())
        return make_error(errc::bad_recipe, where + ":" + std::to_string(ln) + ": expected pattern=type, found '" +
                                                printable(w, 200) + "'");
      std::string pat = w.substr(0, eq);
      std::transform(pat.begin(), pat.end(), pat.begin(), [](unsigned char c) { return char(std::tolower(c)); });
      auto t = ggml::type_from_name(w.substr(eq + 1));
      if (!t.ok()) {
        std::string known;
        for (auto& ti : ggml::all_types()) known += (known.empty() ? "" : ", ") + std::string(ti.name);
        return make_error(errc::bad_recipe, where + ":" + std::to_string(ln) + ": unknown or unsupported type '" +
                                                printable(w.substr(eq + 1), 200) + "' (known: " + known + ")");
      }
      if (auto re = regex::compile(pat); !re.ok())
        return make_error(errc::bad_recipe, where + ":" + std::to_string(ln) + ": " + re.error().message());
      r.rules.push_back({pat, *t, ln});
    }
  }
  return r;
}

result<type_recipe> load_type_recipe(const std::string& path) {
  RAZOR_ASSIGN_OR_RETURN(std::string text, read_text_file(path, size_t(16) << 20));
  return parse_type_recipe(text, path);
}

std::string exact_name_pattern(const std::string& name) {
  std::string r = "^";
  for (char c : name) {
    if (c == '.') r += "\\.";
    else r += char(std::tolower(static_cast<unsigned char>(c)));
  }
  return r + "$";
}

}  // namespace razor::gguf
