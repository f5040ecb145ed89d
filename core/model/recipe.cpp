#include "model/recipe.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

#include "model/checkpoint.h"
#include "model/json_value.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"
#include "util/paths.h"
#include "util/printable.h"
#include "util/strformat.h"

namespace fs = std::filesystem;

namespace razor {

bool valid_bits(double b) {
  for (double v : kRecipeBits)
    if (b == v) return true;
  return false;
}

std::string recipe_bits_list() {
  std::string s;
  for (double v : kRecipeBits) s += (s.empty() ? "" : ", ") + bits_text(v);
  return s;
}

std::string bits_text(double b) { return strformat("%g", b); }

static double keep_norm(double b) { return b >= kKeepBits ? kKeepBits : b; }

static bool quantizable_shape(const tensor_entry& t) { return t.shape.size() >= 2; }

namespace {

// The first rule of `rules` whose pattern matches `name`; a limit reached is an error naming the rule.
result<const recipe::override_rule*> first_match(const recipe& r, const std::vector<recipe::override_rule>& rules,
                                                 const std::string& name) {
  for (auto& o : rules) {
    auto m = o.re.search(name);
    if (!m.ok())
      return make_error(errc::bad_recipe, (r.path.empty() ? r.name : r.path) + ": " + o.origin + ": " +
                                              m.error().message());
    if (*m) return &o;
  }
  return static_cast<const recipe::override_rule*>(nullptr);
}

}  // namespace

result<double> recipe::tensor_bits(const tensor_entry& t) const {
  RAZOR_ASSIGN_OR_RETURN(const override_rule* p, first_match(*this, protect, t.name));
  if (p) return kKeepBits;
  if (!role_is_quantizable(t.cls.role) || !quantizable_shape(t)) return kKeepBits;
  RAZOR_ASSIGN_OR_RETURN(const override_rule* o, first_match(*this, overrides, t.name));
  if (o) return keep_norm(o->bits);
  if (t.cls.role == tensor_role::routed_expert && !t.cls.fused && t.cls.expert >= 0) {
    auto it = expert_bits.find(t.cls.layer);
    if (it != expert_bits.end() && size_t(t.cls.expert) < it->second.size())
      return keep_norm(it->second[size_t(t.cls.expert)]);
  }
  auto r = role_bits.find(t.cls.role);
  return r == role_bits.end() ? kKeepBits : keep_norm(r->second);
}

result<double> recipe::expert_tag(const tensor_entry& t, int expert) const {
  if (t.cls.role == tensor_role::routed_expert && t.cls.fused) {
    RAZOR_ASSIGN_OR_RETURN(const override_rule* p, first_match(*this, protect, t.name));
    if (p) return kKeepBits;
    RAZOR_ASSIGN_OR_RETURN(const override_rule* o, first_match(*this, overrides, t.name));
    if (o) return keep_norm(o->bits);
    auto it = expert_bits.find(t.cls.layer);
    if (it != expert_bits.end() && expert >= 0 && size_t(expert) < it->second.size())
      return keep_norm(it->second[size_t(expert)]);
  }
  return tensor_bits(t);
}

result<bool> recipe::pinned(const std::string& name) const {
  RAZOR_ASSIGN_OR_RETURN(const override_rule* p, first_match(*this, protect, name));
  if (p) return true;
  RAZOR_ASSIGN_OR_RETURN(const override_rule* o, first_match(*this, overrides, name));
  return o != nullptr;
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

result<recipe::override_rule> make_override(const std::string& pattern, double bits, const std::string& origin,
                                            size_t max_pattern_bytes) {
  regex_options ro;
  ro.max_pattern_bytes = max_pattern_bytes;
  auto re = regex::compile(pattern, ro);
  if (!re.ok()) return make_error(errc::bad_recipe, origin + ": " + re.error().message());
  recipe::override_rule o;
  o.pattern = pattern;
  o.re = std::move(re).value();
  o.bits = bits;
  o.origin = origin;
  return o;
}

namespace {

std::string show(const nlohmann::json& v) { return printable_excerpt(json_excerpt(v)); }

result<int64_t> get_int(const nlohmann::json& v, const std::string& at, int64_t lo, int64_t hi) {
  return json_integer(v, lo, hi, errc::bad_recipe, at);
}

result<double> get_number(const nlohmann::json& v, const std::string& at, double lo, double hi) {
  if (!v.is_number()) return make_error(errc::bad_recipe, at + " = " + show(v) + " is not a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    return make_error(errc::bad_recipe, at + " = " + show(v) + " is out of range [" + show(nlohmann::json(lo)) + ", " +
                                            show(nlohmann::json(hi)) + "]");
  return d;
}

result<double> get_bits(const nlohmann::json& v, const std::string& at) {
  if (!v.is_number() || !valid_bits(v.get<double>()))
    return make_error(errc::bad_recipe, at + " = " + show(v) + " is not a bit width (one of " + recipe_bits_list() + ")");
  return v.get<double>();
}

result<std::string> get_string(const nlohmann::json& v, const std::string& at) {
  if (!v.is_string()) return make_error(errc::bad_recipe, at + " = " + show(v) + " is not a string");
  return v.get<std::string>();
}

}  // namespace

static result<recipe> parse_recipe_impl(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return make_error(errc::bad_recipe, where + ": a recipe is a JSON object");
  recipe r;
  r.path = where;
  const std::string w = where + ": ";
  static const std::set<std::string> known = {"format",  "name",      "description", "group",
                                              "clip_steps", "scale_bits", "roles",     "overrides",
                                              "protect", "expert_bits", "two_level"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key())) r.extra[it.key()] = it.value();
  if (j.contains("format") && j["format"] != "razor.recipe/1")
    return make_error(errc::bad_recipe, w + "format " + show(j["format"]) + " is not razor.recipe/1");
  r.name = fs::path(where).stem().string();
  if (auto it = j.find("name"); it != j.end()) {
    RAZOR_ASSIGN_OR_RETURN(r.name, get_string(*it, w + "name"));
  }
  if (auto it = j.find("description"); it != j.end()) {
    RAZOR_ASSIGN_OR_RETURN(r.description, get_string(*it, w + "description"));
  }
  if (auto it = j.find("group"); it != j.end()) {
    RAZOR_ASSIGN_OR_RETURN(int64_t g, get_int(*it, w + "group", 0, kMaxRecipeGroup));
    if (g != 0 && (g & (g - 1)) != 0 && g % 32 != 0)
      return make_error(errc::bad_recipe, w + "group = " + show(*it) +
                                              " must be 0 (whole row), a power of two or a multiple of 32");
    r.group = int(g);
  }
  if (auto it = j.find("clip_steps"); it != j.end()) {
    RAZOR_ASSIGN_OR_RETURN(int64_t c, get_int(*it, w + "clip_steps", 0, kMaxRecipeClipSteps));
    r.clip_steps = int(c);
  }
  if (auto it = j.find("scale_bits"); it != j.end()) {
    RAZOR_ASSIGN_OR_RETURN(r.scale_bits, get_number(*it, w + "scale_bits", 0, 64));
  }
  if (auto it = j.find("roles"); it != j.end()) {
    if (!it->is_object()) return make_error(errc::bad_recipe, w + "roles must be an object {role: bits}");
    for (auto rt = it->begin(); rt != it->end(); ++rt) {
      tensor_role role;
      if (!role_from_name(rt.key(), &role))
        return make_error(errc::bad_recipe, w + "roles: unknown role '" + printable_excerpt(rt.key()) + "'");
      RAZOR_ASSIGN_OR_RETURN(double b, get_bits(rt.value(), w + "roles." + rt.key()));
      r.role_bits[role] = b;
    }
  }
  if (auto it = j.find("overrides"); it != j.end()) {
    if (!it->is_array()) return make_error(errc::bad_recipe, w + "overrides must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const auto& o = (*it)[i];
      const std::string at = "overrides[" + std::to_string(i) + "]";
      if (!o.is_object() || !o.contains("pattern") || !o.contains("bits"))
        return make_error(errc::bad_recipe, w + at + " needs a pattern (string) and bits");
      RAZOR_ASSIGN_OR_RETURN(std::string pat, get_string(o["pattern"], w + at + ".pattern"));
      RAZOR_ASSIGN_OR_RETURN(double b, get_bits(o["bits"], w + at + ".bits"));
      auto rule = make_override(pat, b, at + ".pattern");
      if (!rule.ok()) return make_error(errc::bad_recipe, w + rule.error().message());
      r.overrides.push_back(std::move(rule).value());
    }
  }
  if (auto it = j.find("protect"); it != j.end()) {
    if (!it->is_array()) return make_error(errc::bad_recipe, w + "protect must be an array of patterns");
    for (size_t i = 0; i < it->size(); ++i) {
      const std::string at = "protect[" + std::to_string(i) + "]";
      RAZOR_ASSIGN_OR_RETURN(std::string pat, get_string((*it)[i], w + at));
      auto rule = make_override(pat, kKeepBits, at);
      if (!rule.ok()) return make_error(errc::bad_recipe, w + rule.error().message());
      r.protect.push_back(std::move(rule).value());
    }
  }
  if (auto it = j.find("expert_bits"); it != j.end()) {
    if (!it->is_object()) return make_error(errc::bad_recipe, w + "expert_bits must map layer -> [bits]");
    for (auto lt = it->begin(); lt != it->end(); ++lt) {
      const std::string at = "expert_bits[\"" + printable_excerpt(lt.key()) + "\"]";
      const std::string& k = lt.key();
      const bool digits = !k.empty() && k.size() <= 6 && std::all_of(k.begin(), k.end(), [](char c) {
                            return c >= '0' && c <= '9';
                          });
      if (!digits || std::stoi(k) > kMaxConfigLayers - 1)
        return make_error(errc::bad_recipe, w + at + ": the key must be a layer number (0 .. " +
                                                std::to_string(kMaxConfigLayers - 1) + ")");
      if (!lt.value().is_array()) return make_error(errc::bad_recipe, w + at + " must be an array of bits");
      if (lt.value().size() > size_t(kMaxConfigExperts))
        return make_error(errc::bad_recipe, w + at + " has " + std::to_string(lt.value().size()) +
                                                " entries, more than " + std::to_string(kMaxConfigExperts) + " experts");
      std::vector<double> v;
      for (size_t e = 0; e < lt.value().size(); ++e) {
        RAZOR_ASSIGN_OR_RETURN(double bb, get_bits(lt.value()[e], w + at + "[" + std::to_string(e) + "]"));
        v.push_back(bb);
      }
      r.expert_bits[std::stoi(k)] = std::move(v);
    }
  }
  if (auto it = j.find("two_level"); it != j.end()) {
    if (!it->is_object() || !it->contains("target"))
      return make_error(errc::bad_recipe, w + "two_level needs {\"target\": bits[, \"lo\", \"hi\"]}");
    if (auto lo = it->find("lo"); lo != it->end()) {
      RAZOR_ASSIGN_OR_RETURN(r.two_level_lo, get_bits(*lo, w + "two_level.lo"));
    }
    if (auto hi = it->find("hi"); hi != it->end()) {
      RAZOR_ASSIGN_OR_RETURN(r.two_level_hi, get_bits(*hi, w + "two_level.hi"));
    }
    if (r.two_level_hi <= r.two_level_lo)
      return make_error(errc::bad_recipe, w + "two_level: lo (" + show(nlohmann::json(r.two_level_lo)) +
                                              ") must be below hi (" + show(nlohmann::json(r.two_level_hi)) + ")");
    RAZOR_ASSIGN_OR_RETURN(r.two_level_target,
                           get_number((*it)["target"], w + "two_level.target", r.two_level_lo, r.two_level_hi));
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
