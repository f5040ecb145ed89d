#include "eval/benchmarks.h"

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <fstream>

#include "eval/grading.h"
#include "eval/lcb.h"
#include "util/json_limits.h"
#include "util/mapped_file.h"

namespace razor::eval {
namespace {

using json = nlohmann::json;

// The table's rows `razor eval` runs (default n > 0), in table order.
const std::vector<bench_info>& runnable() {
  static const std::vector<bench_info> rows = [] {
    std::vector<bench_info> v;
    for (const auto& b : results::benchmark_table())
      if (b.runnable()) v.push_back(b);
    return v;
  }();
  return rows;
}

constexpr std::string_view kLetterSuffix = "\n\nReason, then end with 'Answer: <letter>'.";

std::string str_field(const json& row, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = row.find(k);
    if (it == row.end() || it->is_null()) continue;
    if (it->is_string()) return it->get<std::string>();
    return it->dump();
  }
  return {};
}

bool has(const json& row, const char* k) { return row.contains(k) && !row[k].is_null(); }

constexpr std::string_view kMmLetterSuffix = "\n\nReason step by step, then end with 'Answer: <letter>'.";
constexpr std::string_view kBoxedSuffix = "\n\nReason step by step, then put the final answer in \\boxed{}.";

std::string option_lines(const std::vector<std::string>& opts) {
  std::string p;
  for (size_t i = 0; i < opts.size(); ++i) p += "\n" + std::string(1, char('A' + i)) + ". " + opts[i];
  return p;
}

}  // namespace

result<std::vector<std::string>> parse_python_str_list(std::string_view s, const std::string& what) {
  std::vector<std::string> out;
  size_t i = 0;
  auto bad = [&](const std::string& why) {
    return make_error(errc::bad_format, what + ": not a list of strings at offset " + std::to_string(i) + " (" + why + ")");
  };
  auto skip = [&] {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  };
  skip();
  if (i >= s.size() || s[i] != '[') return bad("expected '['");
  ++i;
  skip();
  if (i < s.size() && s[i] == ']') return out;
  for (;;) {
    skip();
    if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) return bad("expected a quoted string");
    const char q = s[i++];
    std::string v;
    for (;;) {
      if (i >= s.size()) return bad("unterminated string");
      char c = s[i++];
      if (c == q) break;
      if (c != '\\') {
        v += c;
        continue;
      }
      if (i >= s.size()) return bad("unterminated escape");
      c = s[i++];
      switch (c) {
        case 'n': v += '\n'; break;
        case 't': v += '\t'; break;
        case 'r': v += '\r'; break;
        case '\\': case '\'': case '"': v += c; break;
        default: v += '\\', v += c;  // kept as written (\frac in LaTeX options)
      }
    }
    out.push_back(std::move(v));
    skip();
    if (i < s.size() && s[i] == ',') {
      ++i;
      skip();
      if (i < s.size() && s[i] == ']') return out;  // a trailing comma
      continue;
    }
    if (i < s.size() && s[i] == ']') return out;
    return bad("expected ',' or ']'");
  }
}

std::span<const bench_info> bench_table() { return runnable(); }

const bench_info* find_bench(std::string_view key) {
  for (const auto& b : runnable())
    if (b.key == key) return &b;
  return nullptr;
}

std::string bench_keys() {
  std::string s;
  for (const auto& b : runnable()) s += (s.empty() ? "" : ", ") + std::string(b.key);
  return s;
}

result<bench_item> make_item(const bench_info& b, const json& row, size_t line) {
  auto missing = [&](const char* what) {
    return make_error(errc::bad_format, std::string(b.key) + ".jsonl line " + std::to_string(line) + ": no " + what);
  };
  if (!row.is_object()) return make_error(errc::bad_format, std::string(b.key) + ".jsonl line " + std::to_string(line) + ": not a JSON object");
  bench_item it;
  it.id = std::to_string(line);
  switch (b.id) {
    case bench_id::mmlu_pro: {
      if (!has(row, "question")) return missing("question");
      if (!has(row, "options") || !row["options"].is_array() || row["options"].empty()) return missing("options list");
      const json& opts = row["options"];
      if (opts.size() > 26) return missing("options list of at most 26");
      std::string p = row["question"].get<std::string>() + "\n";
      for (size_t i = 0; i < opts.size(); ++i) {
        p += (i ? "\n" : "") + std::string(1, char('A' + i)) + ". " +
             (opts[i].is_string() ? opts[i].get<std::string>() : opts[i].dump());
      }
      it.prompt = p + std::string(kLetterSuffix);
      int idx = -1;
      if (has(row, "answer_index") && row["answer_index"].is_number_integer()) idx = row["answer_index"].get<int>();
      else if (has(row, "answer") && row["answer"].is_string() && !row["answer"].get<std::string>().empty())
        idx = std::toupper(static_cast<unsigned char>(row["answer"].get<std::string>()[0])) - 'A';
      if (idx < 0 || idx >= int(opts.size())) return missing("answer_index within the options");
      it.gold = std::string(1, char('A' + idx));
      it.extra["k"] = opts.size();
      if (has(row, "question_id")) it.id = str_field(row, {"question_id"});
      break;
    }
    case bench_id::gpqa: {
      if (!has(row, "question")) return missing("question");
      std::string ans = str_field(row, {"answer"});
      if (ans.empty()) return missing("answer");
      it.prompt = row["question"].get<std::string>() + std::string(kLetterSuffix);
      it.gold = std::string(1, char(std::toupper(static_cast<unsigned char>(ans[0]))));
      break;
    }
    case bench_id::mmmlu: {
      for (const char* k : {"Question", "A", "B", "C", "D", "Answer"})
        if (!has(row, k)) return missing(k);
      it.prompt = str_field(row, {"Question"}) + "\nA. " + str_field(row, {"A"}) + "\nB. " + str_field(row, {"B"}) +
                  "\nC. " + str_field(row, {"C"}) + "\nD. " + str_field(row, {"D"}) + std::string(kLetterSuffix);
      it.gold = str_field(row, {"Answer"}).substr(0, 1);
      break;
    }
    case bench_id::bbeh: {
      if (!has(row, "input")) return missing("input");
      if (!has(row, "target")) return missing("target");
      it.prompt = str_field(row, {"input"}) + "\n\nReason step by step, then end with 'Answer: <answer>'.";
      it.gold = str_field(row, {"target"});
      break;
    }
    case bench_id::aime:
    case bench_id::aime2026:
    case bench_id::hmmt:
    case bench_id::math500: {
      std::string q = str_field(row, {"problem", "question", "Problem"});
      if (q.empty()) return missing("problem");
      if (!has(row, "answer") && !has(row, "Answer")) return missing("answer");
      it.gold = str_field(row, {"answer", "Answer"});
      it.prompt = q + std::string(b.id == bench_id::aime
                                      ? "\n\nReason step by step, then put the final integer answer in \\boxed{}."
                                      : kBoxedSuffix);
      if (has(row, "unique_id")) it.id = str_field(row, {"unique_id"});
      else if (has(row, "id")) it.id = str_field(row, {"id"});
      break;
    }
    case bench_id::gsm8k: {
      if (!has(row, "question")) return missing("question");
      std::string a = str_field(row, {"answer"});
      size_t p = a.rfind("####");
      if (p == std::string::npos) return missing("answer ending '#### <number>'");
      std::string g = a.substr(p + 4);
      std::string clean;
      for (char c : g)
        if (c != ',' && !std::isspace(static_cast<unsigned char>(c))) clean += c;
      it.gold = clean;
      it.prompt = str_field(row, {"question"}) + "\n\nSolve step by step and end with 'The answer is <number>'.";
      break;
    }
    case bench_id::hle: {
      if (!has(row, "question")) return missing("question");
      if (!has(row, "answer")) return missing("answer");
      it.prompt = str_field(row, {"question"}) +
                  "\n\nReason step by step, then end your response with 'Answer: <final answer>' (for multiple-choice, "
                  "give the letter).";
      it.gold = str_field(row, {"answer"});
      it.extra["answer_type"] = str_field(row, {"answer_type"});
      if (has(row, "id")) it.id = str_field(row, {"id"});
      break;
    }
    case bench_id::humaneval: {
      for (const char* k : {"prompt", "test", "entry_point"})
        if (!has(row, k)) return missing(k);
      std::string pr = str_field(row, {"prompt"});
      it.prompt = "Complete this Python function. Reason if needed, then give the FULL function in a ```python code "
                  "block.\n\n```python\n" + pr + "```";
      it.extra = {{"prompt", pr}, {"test", str_field(row, {"test"})}, {"entry_point", str_field(row, {"entry_point"})}};
      if (has(row, "task_id")) it.id = str_field(row, {"task_id"});
      break;
    }
    case bench_id::mbpp: {
      if (!has(row, "prompt")) return missing("prompt");
      if (!has(row, "test_list") || !row["test_list"].is_array() || row["test_list"].empty()) return missing("test_list");
      std::string t0 = row["test_list"][0].get<std::string>();
      it.prompt = str_field(row, {"prompt"}) + "\nYour function must pass this test:\n" + t0 +
                  "\n\nWrite the Python function (use the exact name/signature the test expects). Give the FULL "
                  "function in a ```python code block.";
      it.extra = {{"test_list", row["test_list"]},
                  {"test_imports", has(row, "test_imports") ? row["test_imports"] : json::array()}};
      if (has(row, "task_id")) it.id = str_field(row, {"task_id"});
      break;
    }
    case bench_id::lcb: {
      std::string q = str_field(row, {"question_content"});
      if (q.empty()) return missing("question_content");
      if (!has(row, "public_test_cases") && !has(row, "private_test_cases")) return missing("test cases");
      size_t n_tests = 0;
      bool functional = false;
      for (const char* k : {"public_test_cases", "private_test_cases"}) {
        auto t = decode_lcb_tests(str_field(row, {k}), std::string(b.key) + ".jsonl line " + std::to_string(line) + " " + k);
        if (!t.ok()) return t.error();
        n_tests += t->size();
        if (!t->empty() && t->at(0).value("testtype", "") == "functional") functional = true;
      }
      if (n_tests == 0) return missing("test case (both lists are empty)");
      std::string starter = str_field(row, {"starter_code"});
      std::string func_name;
      if (has(row, "metadata")) {
        json meta = row["metadata"].is_string() ? json::parse(row["metadata"].get<std::string>(), nullptr, false) : row["metadata"];
        if (meta.is_object() && meta.contains("func_name") && meta["func_name"].is_string())
          func_name = meta["func_name"].get<std::string>();
      }
      if (functional && func_name.empty()) return missing("metadata.func_name (the tests are functional)");
      it.prompt = functional || !starter.empty()
                      ? q + "\n\nComplete the solution using EXACTLY this class/method signature:\n```python\n" +
                            starter + "\n```\n\nGive the COMPLETE solution in a ```python code block."
                      : q + "\n\nRead from stdin, write to stdout. Give the COMPLETE program in a ```python code block.";
      it.extra = {{"functional", functional},
                  {"func_name", func_name},
                  {"n_tests", n_tests},
                  {"public_test_cases", str_field(row, {"public_test_cases"})},
                  {"private_test_cases", str_field(row, {"private_test_cases"})}};
      if (has(row, "question_id")) it.id = str_field(row, {"question_id"});
      break;
    }
    case bench_id::mmmu:
    case bench_id::mmmu_pro:
    case bench_id::mathvision:
    case bench_id::medxpert: {
      const bool medx = b.id == bench_id::medxpert;
      std::string q = str_field(row, {"question"});
      if (q.empty()) return missing("question");
      if (!has(row, "images") || !row["images"].is_array() || row["images"].empty())
        return missing("images (a list of data:image/...;base64 URLs, docs/eval.md)");
      for (const json& im : row["images"]) {
        if (!im.is_string() || (im.get<std::string>().rfind("data:image/", 0) != 0 && im.get<std::string>().rfind("http", 0) != 0))
          return missing("images as data:image/... or http(s) URLs");
        if (it.images.size() < kMaxImages) it.images.push_back(im.get<std::string>());
      }
      std::vector<std::string> opts;
      if (medx && has(row, "options") && row["options"].is_object()) {
        for (auto& [k, v] : row["options"].items()) opts.push_back(v.is_string() ? v.get<std::string>() : v.dump());
      } else if (has(row, "options") && row["options"].is_array()) {
        for (const json& o : row["options"]) opts.push_back(o.is_string() ? o.get<std::string>() : o.dump());
      } else if (has(row, "options") && row["options"].is_string()) {
        RAZOR_ASSIGN_OR_RETURN(opts, parse_python_str_list(row["options"].get<std::string>(),
                                                           std::string(b.key) + ".jsonl line " + std::to_string(line) + " options"));
      }
      if (opts.size() > 26) return missing("options list of at most 26");
      it.gold = str_field(row, {medx ? "label" : "answer"});
      if (it.gold.empty()) return missing(medx ? "label" : "answer");
      it.extra["k"] = opts.size();
      if (!opts.empty()) {
        it.prompt = q + option_lines(opts) + std::string(kMmLetterSuffix);
        const int idx = std::toupper(static_cast<unsigned char>(it.gold[0])) - 'A';
        if (it.gold.size() != 1 || idx < 0 || idx >= int(opts.size())) return missing("answer letter within the options");
      } else {
        it.prompt = q + std::string(kBoxedSuffix);
      }
      if (has(row, "id")) it.id = str_field(row, {"id"});
      break;
    }
    default:
      return make_error(errc::unsupported, std::string(b.key) + ": `razor eval` does not run this benchmark (its results are only imported)");
  }
  return it;
}

result<std::vector<bench_item>> load_bench(const bench_info& b, const std::string& data_dir, int n) {
  std::string path = data_dir + "/" + std::string(b.key) + ".jsonl";
  // A FIFO or a device given as the dataset would block or never end: regular files only.
  if (auto fd = open_regular_file(path); fd.ok()) ::close(*fd);
  else if (fd.error().code() != errc::not_found) return fd.error();
  std::ifstream f(path);
  if (!f)
    return make_error(errc::not_found, path + ": cannot open (expected one JSON row per line with " +
                                           std::string(b.fields) + "; see docs/eval.md)");
  std::vector<bench_item> items;
  std::string line;
  size_t lineno = 0, used = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json_limits lim;
    lim.max_bytes = size_t(256) << 20;  // a row may carry an image (HLE)
    auto parsed = parse_json(line, path + " line " + std::to_string(lineno), lim);
    if (!parsed.ok()) return parsed.error();
    json& row = *parsed;
    // HLE: text-only, as the seed (rows with an image are dropped).
    if (b.id == bench_id::hle && row.is_object() && row.contains("image") && row["image"].is_string() &&
        !row["image"].get<std::string>().empty())
      continue;
    ++used;
    auto it = make_item(b, row, used);
    if (!it.ok()) return make_error(it.error().code(), path + ": " + it.error().message());
    items.push_back(std::move(it).value());
    if (n > 0 && int(items.size()) >= n) break;
  }
  return items;
}

grade_result grade(const bench_info& b, const bench_item& item, const std::string& output, const sandbox_limits& lim) {
  grade_result g;
  std::string post = post_think(output);
  auto letter = [&](int k) {
    int i = parse_letter(post, k);
    g.extracted = i < 0 ? "" : std::string(1, char('A' + i));
    g.correct = i >= 0 && !item.gold.empty() && g.extracted[0] == item.gold[0];
  };
  switch (b.id) {
    case bench_id::mmlu_pro: letter(item.extra.value("k", 10)); break;
    case bench_id::gpqa:
    case bench_id::mmmlu: letter(4); break;
    case bench_id::bbeh: {
      g.extracted = free_answer(output);
      g.correct = norm_free(g.extracted) == norm_free(item.gold);
      break;
    }
    case bench_id::aime:
    case bench_id::aime2026:
    case bench_id::hmmt:
    case bench_id::math500: {
      auto bx = extract_boxed(post);
      g.extracted = bx.value_or("");
      g.correct = math_eq(bx, item.gold);
      break;
    }
    case bench_id::gsm8k: {
      auto p = last_number(post);
      char* e = nullptr;
      double gold = std::strtod(item.gold.c_str(), &e);
      if (p) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.17g", *p);
        g.extracted = buf;
      }
      g.correct = p && e != item.gold.c_str() && std::fabs(*p - gold) < 1e-3;
      break;
    }
    case bench_id::hle: {
      if (item.extra.value("answer_type", "") == "multipleChoice") {
        int i = parse_letter(post, 26);
        g.extracted = i < 0 ? "" : std::string(1, char('A' + i));
        g.correct = i >= 0 && !item.gold.empty() &&
                    std::toupper(static_cast<unsigned char>(item.gold[0])) == 'A' + i;
      } else {
        auto bx = extract_boxed(post);
        std::string fa = free_answer(output);
        std::string ng = norm_free(item.gold);
        g.extracted = bx ? *bx : fa;
        g.correct = math_eq(bx, item.gold) || math_eq(fa, item.gold) || (!ng.empty() && norm_free(fa) == ng) ||
                    (bx && !ng.empty() && norm_free(*bx) == ng);
      }
      break;
    }
    case bench_id::humaneval: {
      std::string code = he_extract(post, item.extra.value("prompt", ""));
      g.extracted = code;
      std::string prog = code + "\n\n" + item.extra.value("test", "") + "\n\ncheck(" +
                         item.extra.value("entry_point", "") + ")\n";
      sandbox_limits l = lim;
      l.timeout_s = 10;
      g.correct = run_python(prog, l).passed;
      break;
    }
    case bench_id::mbpp: {
      std::string code = last_code_block(post);
      g.extracted = code;
      std::string prog;
      for (auto& imp : item.extra["test_imports"])
        if (imp.is_string()) prog += imp.get<std::string>() + "\n";
      prog += code + "\n\n";
      for (auto& t : item.extra["test_list"])
        if (t.is_string()) prog += t.get<std::string>() + "\n";
      sandbox_limits l = lim;
      l.timeout_s = 8;
      g.correct = run_python(prog, l).passed;
      break;
    }
    case bench_id::lcb: {
      std::string code = lcb_code(output);
      g.extracted = code;
      if (code.empty()) break;
      json tests = json::array();
      for (const char* k : {"public_test_cases", "private_test_cases"}) {
        auto t = decode_lcb_tests(item.extra.value(k, ""), item.id + " " + k);
        if (t.ok())
          for (auto& x : *t) tests.push_back(std::move(x));
      }
      g.correct = run_lcb(code, item.extra.value("functional", false), item.extra.value("func_name", ""), tests, lim)
                      .passed;
      break;
    }
    case bench_id::mmmu:
    case bench_id::mmmu_pro:
    case bench_id::mathvision:
    case bench_id::medxpert: {
      if (const int k = item.extra.value("k", 0); k > 0) {
        letter(k);
      } else {
        auto bx = extract_boxed(post);
        g.extracted = bx.value_or("");
        g.correct = math_eq(bx, item.gold);
      }
      break;
    }
    default: break;  // not run by `razor eval` (make_item refuses it)
  }
  return g;
}

}  // namespace razor::eval
