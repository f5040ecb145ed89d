#include "model/recipe.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

#include "model/checkpoint.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"
#include "util/paths.h"
#include "util/printable.h"

namespace fs = std::filesystem;

namespace razor {

bool valid_bits(double b) {
  return b == 2 || b == 3 || b == 4 || b == 8 || b == kKeepBits || std::abs(b - 1.58) < 0.3 || b > kKeepBits;
}

static double keep_norm(double b) { return b >= kKeepBits ? kKeepBits : b; }

static bool quantizable_shape(const tensor_entry& t) { return t.shape.size() >= 2; }

double recipe::tensor_bits(const tensor_entry& t) const {
  for (auto& p : protect)
    if (std::regex_search(t.name, *p.re)) return kKeepBits;
  if (!role_is_quantizable(t.cls.role) || !quantizable_shape(t)) return kKeepBits;
  for (auto& o : overrides)
    if (std::regex_search(t.name, *o.re)) return keep_norm(o.bits);
  if (t.cls.role == tensor_role::routed_expert && !t.cls.fused && t.cls.expert >= 0) {
    auto it = expert_bits.find(t.cls.layer);
    if (it != expert_bits.end() && size_t(t.cls.expert) < it->second.size())
      return keep_norm(it->second[size_t(t.cls.expert)]);
  }
  auto r = role_bits.find(t.cls.role);
  return r == role_bits.end() ? kKeepBits : keep_norm(r->second);
}

double recipe::expert_tag(const tensor_entry& t, int expert) const {
  if (t.cls.role == tensor_role::routed_expert && t.cls.fused) {
    for (auto& p : protect)
      if (std::regex_search(t.name, *p.re)) return kKeepBits;
    for (auto& o : overrides)
      if (std::regex_search(t.name, *o.re)) return keep_norm(o.bits);
    auto it = expert_bits.find(t.cls.layer);
    if (it != expert_bits.end() && expert >= 0 && size_t(expert) < it->second.size())
      return keep_norm(it->second[size_t(expert)]);
  }
  return tensor_bits(t);
}

nlohmann::json recipe::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = "razor.recipe/1";
  j["name"] = name;
  j["description"] = description;
  j["group"] = group;
  j["clip_steps"] = clip_steps;
  j["scale_bits"] = scale_bits;
  nlohmann::ordered_json roles = nlohmann::ordered_json::object();
  for (auto& [r, b] : role_bits) roles[std::string(role_name(r))] = b;
  j["roles"] = roles;
  nlohmann::ordered_json ov = nlohmann::ordered_json::array();
  for (auto& o : overrides) ov.push_back({{"pattern", o.pattern}, {"bits", o.bits}});
  j["overrides"] = ov;
  nlohmann::ordered_json pr = nlohmann::ordered_json::array();
  for (auto& p : protect) pr.push_back(p.pattern);
  j["protect"] = pr;
  nlohmann::ordered_json eb = nlohmann::ordered_json::object();
  for (auto& [l, v] : expert_bits) eb[std::to_string(l)] = v;
  j["expert_bits"] = eb;
  if (two_level_target > 0)
    j["two_level"] = {{"target", two_level_target}, {"lo", two_level_lo}, {"hi", two_level_hi}};
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  return nlohmann::json::parse(dump_json(j));
}

static result<std::shared_ptr<std::regex>> compile(const std::string& pat, const std::string& where) {
  try {
    return std::make_shared<std::regex>(pat, std::regex::ECMAScript | std::regex::optimize);
  } catch (const std::regex_error& e) {
    return make_error(errc::bad_recipe, where + ": bad regex '" + pat + "': " + e.what());
  }
}

static result<double> get_bits(const nlohmann::json& v, const std::string& where) {
  if (!v.is_number()) return make_error(errc::bad_recipe, where + ": bits must be a number");
  double b = v.get<double>();
  if (!valid_bits(b))
    return make_error(errc::bad_recipe, where + ": " + std::to_string(b) + " bits is not one of 1.58, 2, 3, 4, 8, 16");
  return b;
}

static result<recipe> parse_recipe_impl(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return make_error(errc::bad_recipe, where + ": a recipe is a JSON object");
  recipe r;
  r.path = where;
  static const std::set<std::string> known = {"format",  "name",      "description", "group",
                                              "clip_steps", "scale_bits", "roles",     "overrides",
                                              "protect", "expert_bits", "two_level"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key())) r.extra[it.key()] = it.value();
  if (j.contains("format") && j["format"] != "razor.recipe/1")
    return make_error(errc::bad_recipe, where + ": format " + printable(dump_json(j["format"]), 200) +
                                            " is not razor.recipe/1");
  r.name = j.value("name", fs::path(where).stem().string());
  r.description = j.value("description", "");
  r.group = j.value("group", 128);
  if (r.group < 0 || (r.group != 0 && (r.group & (r.group - 1)) != 0 && r.group % 32 != 0))
    return make_error(errc::bad_recipe, where + ": group must be 0 (whole row) or a positive multiple of 32");
  r.clip_steps = j.value("clip_steps", 16);
  if (r.clip_steps < 0 || r.clip_steps > 256) return make_error(errc::bad_recipe, where + ": clip_steps out of range");
  r.scale_bits = j.value("scale_bits", 16.0);
  if (auto it = j.find("roles"); it != j.end()) {
    if (!it->is_object()) return make_error(errc::bad_recipe, where + ": roles must be an object");
    for (auto rt = it->begin(); rt != it->end(); ++rt) {
      tensor_role role;
      if (!role_from_name(rt.key(), &role))
        return make_error(errc::bad_recipe, where + ": unknown role '" + printable(rt.key(), 200) + "'");
      RAZOR_ASSIGN_OR_RETURN(double b, get_bits(rt.value(), where + ": roles." + rt.key()));
      r.role_bits[role] = b;
    }
  }
  if (auto it = j.find("overrides"); it != j.end()) {
    if (!it->is_array()) return make_error(errc::bad_recipe, where + ": overrides must be an array");
    for (auto& o : *it) {
      if (!o.is_object() || !o.contains("pattern") || !o["pattern"].is_string() || !o.contains("bits"))
        return make_error(errc::bad_recipe, where + ": each override needs a pattern (string) and bits");
      RAZOR_ASSIGN_OR_RETURN(double b, get_bits(o["bits"], where + ": override " + printable(o["pattern"].get<std::string>(), 200)));
      RAZOR_ASSIGN_OR_RETURN(auto re, compile(o["pattern"].get<std::string>(), where));
      r.overrides.push_back({o["pattern"].get<std::string>(), re, b});
    }
  }
  if (auto it = j.find("protect"); it != j.end()) {
    if (!it->is_array()) return make_error(errc::bad_recipe, where + ": protect must be an array of regexes");
    for (auto& p : *it) {
      if (!p.is_string()) return make_error(errc::bad_recipe, where + ": protect entries are strings");
      RAZOR_ASSIGN_OR_RETURN(auto re, compile(p.get<std::string>(), where));
      r.protect.push_back({p.get<std::string>(), re, kKeepBits});
    }
  }
  if (auto it = j.find("expert_bits"); it != j.end()) {
    if (!it->is_object()) return make_error(errc::bad_recipe, where + ": expert_bits must map layer -> [bits]");
    for (auto lt = it->begin(); lt != it->end(); ++lt) {
      int layer = -1;
      try {
        layer = std::stoi(lt.key());
      } catch (...) {
      }
      if (layer < 0 || !lt.value().is_array())
        return make_error(errc::bad_recipe, where + ": expert_bits key '" + printable(lt.key(), 200) + "' must be a layer number");
      std::vector<double> v;
      for (auto& b : lt.value()) {
        RAZOR_ASSIGN_OR_RETURN(double bb, get_bits(b, where + ": expert_bits[" + lt.key() + "]"));
        v.push_back(bb);
      }
      r.expert_bits[layer] = std::move(v);
    }
  }
  if (auto it = j.find("two_level"); it != j.end()) {
    if (!it->is_object() || !it->contains("target"))
      return make_error(errc::bad_recipe, where + ": two_level needs {\"target\": bits[, \"lo\", \"hi\"]}");
    r.two_level_target = it->value("target", 0.0);
    r.two_level_lo = it->value("lo", 1.58);
    r.two_level_hi = it->value("hi", 4.0);
    if (!valid_bits(r.two_level_lo) || !valid_bits(r.two_level_hi) || r.two_level_hi <= r.two_level_lo ||
        r.two_level_target <= 0)
      return make_error(errc::bad_recipe, where + ": two_level lo/hi must be valid bit widths with lo < hi");
  }
  return r;
}

// Keys of the wrong JSON type make nlohmann::json throw: turned into a value at the API boundary.
result<recipe> parse_recipe(const nlohmann::json& j, const std::string& where) {
  try {
    return parse_recipe_impl(j, where);
  } catch (const nlohmann::json::exception& e) {
    return make_error(errc::bad_recipe, where + ": a key has the wrong type (" + std::string(e.what()) + ")");
  }
}

void recipe::resolve(const model_config& cfg) {
  if (two_level_target <= 0 || cfg.num_experts <= 0) return;
  const double frac = std::clamp((two_level_target - two_level_lo) / (two_level_hi - two_level_lo), 0.0, 1.0);
  const int64_t E = cfg.num_experts;
  const int64_t n_hi = std::llround(frac * double(E));
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    if (!cfg.layer_is_moe(l) || expert_bits.count(int(l))) continue;
    std::vector<double> v(size_t(E), two_level_lo);
    for (int64_t e = E - n_hi; e < E; ++e) v[size_t(e)] = two_level_hi;
    expert_bits[int(l)] = std::move(v);
  }
}

std::vector<std::string> recipe_search_path() {
  std::vector<std::string> out;
  if (const char* e = std::getenv("RAZOR_RECIPES")) out.push_back(e);
  for (auto& d : data_dirs("recipes")) out.push_back(d);
  return out;
}

result<recipe> load_recipe(const std::string& path_or_name) {
  std::string path = path_or_name;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    for (auto& dir : recipe_search_path()) {
      for (auto cand : {fs::path(dir) / (path_or_name + ".json"), fs::path(dir) / path_or_name}) {
        if (fs::exists(cand, ec)) {
          path = cand.string();
          break;
        }
      }
      if (path != path_or_name) break;
    }
  }
  json_limits lim;
  lim.max_bytes = 64u << 20;
  lim.code = errc::bad_recipe;
  RAZOR_ASSIGN_OR_RETURN(nlohmann::json j, read_json_file(path, lim));
  return parse_recipe(j, path);
}

status save_recipe(const recipe& r, const std::string& path) {
  return write_file_atomic(path, dump_json(r.to_json(), 2) + "\n");
}

}  // namespace razor
