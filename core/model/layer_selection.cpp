#include "model/layer_selection.h"

#include <algorithm>
#include <charconv>

namespace razor {

std::string layer_selection::to_string() const {
  if (all) return "all";
  std::string s;
  if (has_range()) s = std::to_string(first) + ":" + std::to_string(last);
  if (rest) s += s.empty() ? "rest" : ",rest";
  return s.empty() ? "none" : s;
}

namespace {

bool parse_int(const std::string& s, int* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size() && *out >= 0;
}

}  // namespace

result<layer_selection> parse_layer_selection(const std::string& text, int n_layers) {
  auto bad = [&](const std::string& why) {
    return make_error(errc::invalid_argument, "--layers '" + text + "': " + why +
                                                  " (expected A:B, rest, A:B,rest or all)");
  };
  layer_selection sel;
  if (text == "all") return sel;
  sel.all = false;
  bool have_range = false;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? text.size() + 1 : comma + 1;
    if (item == "rest") {
      if (sel.rest) return bad("'rest' given twice");
      sel.rest = true;
      continue;
    }
    size_t colon = item.find(':');
    if (colon == std::string::npos) return bad("'" + item + "' is not a range");
    if (have_range) return bad("only one range per task");
    int a = 0, b = 0;
    if (!parse_int(item.substr(0, colon), &a) || !parse_int(item.substr(colon + 1), &b))
      return bad("'" + item + "' is not two non-negative integers");
    if (b <= a) return bad("empty range (the end is exclusive)");
    if (n_layers > 0 && b > n_layers) return bad("the model has " + std::to_string(n_layers) + " layers");
    sel.first = a;
    sel.last = b;
    have_range = true;
  }
  if (!have_range && !sel.rest) return bad("nothing selected");
  return sel;
}

std::vector<layer_selection> split_layers(int n_layers, int tasks) {
  std::vector<layer_selection> out;
  if (n_layers <= 0) {
    layer_selection s;
    s.all = false;
    s.rest = true;
    out.push_back(s);
    return out;
  }
  tasks = std::max(1, std::min(tasks, n_layers));
  const int base = n_layers / tasks, extra = n_layers % tasks;
  int at = 0;
  for (int i = 0; i < tasks; ++i) {
    layer_selection s;
    s.all = false;
    s.first = at;
    s.last = at + base + (i < extra ? 1 : 0);
    s.rest = i == 0;
    at = s.last;
    out.push_back(s);
  }
  return out;
}

status check_cover(const std::vector<layer_selection>& parts, int n_layers) {
  std::vector<int> owner(size_t(std::max(n_layers, 0)), -1);
  int rest_owner = -1;
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto& p = parts[i];
    if (p.all) {
      if (parts.size() != 1) return make_error(errc::invalid_argument, "task " + std::to_string(i) + " selects all layers beside other tasks");
      return {};
    }
    if (p.rest) {
      if (rest_owner >= 0)
        return make_error(errc::invalid_argument, "tasks " + std::to_string(rest_owner) + " and " + std::to_string(i) +
                                                      " both hold the tensors outside the layers (rest)");
      rest_owner = int(i);
    }
    for (int l = p.first; l < p.last; ++l) {
      if (l >= n_layers)
        return make_error(errc::invalid_argument, "task " + std::to_string(i) + " names layer " + std::to_string(l) +
                                                      " beyond the model's " + std::to_string(n_layers));
      if (owner[size_t(l)] >= 0)
        return make_error(errc::invalid_argument, "layer " + std::to_string(l) + " is in tasks " +
                                                      std::to_string(owner[size_t(l)]) + " and " + std::to_string(i));
      owner[size_t(l)] = int(i);
    }
  }
  for (int l = 0; l < n_layers; ++l)
    if (owner[size_t(l)] < 0) return make_error(errc::invalid_argument, "layer " + std::to_string(l) + " is in no task");
  if (rest_owner < 0) return make_error(errc::invalid_argument, "no task holds the tensors outside the layers (rest)");
  return {};
}

}  // namespace razor
