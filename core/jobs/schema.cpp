// The job registry's field schema (methods.h): the enumerations, the hello's schema, and the check of a
// request's params against its method's fields.
#include <algorithm>

#include "eval/benchmarks.h"
#include "ggml/types.h"
#include "gguf/ftype.h"
#include "jobs/methods.h"
#include "model/adapter.h"
#include "quant/allocate.h"

namespace razor::jobs {

using nlohmann::json;

std::string_view field_type_name(field_type t) {
  switch (t) {
    case field_type::string: return "string";
    case field_type::path: return "path";
    case field_type::integer: return "int";
    case field_type::number: return "number";
    case field_type::boolean: return "bool";
    case field_type::string_list: return "string_list";
    case field_type::object: return "object";
    case field_type::any: return "any";
  }
  return "any";
}

const json& enums_json() {
  static const json e = [] {
    json j;
    json types = json::array(), strategies = json::array(), saliences = json::array(), benchmarks = json::array(),
         roles = json::array(), ftypes = json::array();
    for (const auto& t : ggml::all_types()) types.push_back(std::string(t.name));
    for (const auto& s : quant::all_strategies()) strategies.push_back(std::string(s.name));
    for (auto k : {quant::salience_kind::output, quant::salience_kind::wmass, quant::salience_kind::asal,
                   quant::salience_kind::freq})
      saliences.push_back(std::string(quant::salience_name(k)));
    for (const auto& b : eval::bench_table()) benchmarks.push_back(std::string(b.key));
    for (int r = 0; r < n_roles; ++r) roles.push_back(std::string(role_name(tensor_role(r))));
    for (const auto& f : gguf::all_ftypes()) ftypes.push_back(std::string(f.name));
    j["ggml_types"] = types;
    j["strategies"] = strategies;
    j["saliences"] = saliences;
    j["benchmarks"] = benchmarks;
    j["roles"] = roles;
    j["ftypes"] = ftypes;
    return j;
  }();
  return e;
}

namespace {

json field_json(const field_def& f) {
  json j = {{"name", f.name}, {"type", std::string(field_type_name(f.type))}, {"help", f.help}};
  if (!f.def.is_null()) j["default"] = f.def;
  if (f.required) j["required"] = true;
  if (!f.values.empty()) j["values"] = f.values;
  if (!f.choices.empty()) j["choices"] = f.choices;
  if (f.positional) j["positional"] = true;
  return j;
}

// The allowed values of f (empty: any).
std::vector<std::string> allowed(const field_def& f) {
  if (!f.choices.empty()) return f.choices;
  std::vector<std::string> v;
  if (f.values.empty()) return v;
  auto it = enums_json().find(f.values);
  if (it == enums_json().end()) return v;
  for (auto& s : *it) v.push_back(s.get<std::string>());
  return v;
}

std::string join(const std::vector<std::string>& v, size_t max = 40) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < max; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > max) s += ", ...";
  return s;
}

// An enumeration's own parser decides (case, aliases and ids as its command accepts them): one table each.
status check_enum(const std::string& values, const std::string& v) {
  if (values == "ggml_types") return ggml::type_from_name(v).error();
  if (values == "ftypes") return gguf::ftype_from_name(v).error();
  if (values == "strategies") return quant::strategy_from_name(v).error();
  if (values == "saliences") return quant::salience_from_name(v).error();
  if (values == "benchmarks")
    return eval::find_bench(v) ? status() : make_error(errc::invalid_argument, "unknown benchmark '" + v + "' (known: " + eval::bench_keys() + ")");
  if (values == "roles") {
    tensor_role r;
    if (role_from_name(v, &r)) return {};
    return make_error(errc::invalid_argument, "unknown tensor role '" + v + "'");
  }
  return {};
}

status check_allowed(const field_def& f, const std::string& value, const std::string& key) {
  if (!f.values.empty()) {
    status st = check_enum(f.values, value);
    if (st.ok()) return st;
    return make_error(errc::invalid_argument, "params." + key + ": " + st.message());
  }
  auto a = allowed(f);
  if (a.empty() || std::find(a.begin(), a.end(), value) != a.end()) return {};
  return make_error(errc::invalid_argument, "params." + key + ": '" + value + "' is not one of: " + join(a));
}

}  // namespace

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> v;
  std::string cur;
  for (char ch : s + ",") {
    if (ch == ',') {
      if (!cur.empty()) v.push_back(cur);
      cur.clear();
    } else if (ch != ' ') {
      cur += ch;
    }
  }
  return v;
}

std::string method_def::params_line() const {
  if (open_params) return "any";
  std::string s;
  for (auto& f : fields) {
    s += (s.empty() ? "" : ", ") + f.name + " (" + std::string(field_type_name(f.type));
    if (f.required) s += ", required";
    else if (!f.def.is_null()) s += ", default " + (f.def.is_string() ? f.def.get<std::string>() : f.def.dump());
    if (!f.values.empty()) s += ", one of " + f.values;
    else if (!f.choices.empty()) s += ": " + join(f.choices, 8);
    s += ")";
  }
  return s.empty() ? "none" : s;
}

json schema_json() {
  json out = json::array();
  for (auto& m : method_table()) {
    json fields = json::array();
    for (auto& f : m.fields) fields.push_back(field_json(f));
    json j = {{"name", m.name}, {"help", m.help}, {"params", fields}};
    if (m.open_params) j["open"] = true;
    out.push_back(j);
  }
  return out;
}

result<json> apply_schema(const method_def& m, const json& params) {
  if (!params.is_object()) return make_error(errc::invalid_argument, "params must be an object");
  if (m.open_params) return params;
  json out = params;
  for (auto& [key, v] : params.items()) {
    auto it = std::find_if(m.fields.begin(), m.fields.end(), [&](const field_def& f) { return f.name == key; });
    if (it == m.fields.end()) {
      std::vector<std::string> names;
      for (auto& f : m.fields) names.push_back(f.name);
      return make_error(errc::invalid_argument, "params." + key + " is not a parameter of " + m.name +
                                                    " (it takes: " + join(names, 200) + ")");
    }
  }
  for (auto& f : m.fields) {
    auto it = out.find(f.name);
    if (it == out.end() || it->is_null()) {
      if (f.required) return make_error(errc::invalid_argument, "params." + f.name + " is required (" + f.help + ")");
      if (!f.def.is_null()) out[f.name] = f.def;
      else if (it != out.end()) out.erase(f.name);
      continue;
    }
    const json& v = *it;
    auto expect = [&](bool is, const char* want) {
      return is ? status{} : make_error(errc::invalid_argument, "params." + f.name + " must be " + want);
    };
    switch (f.type) {
      case field_type::string:
      case field_type::path:
        RAZOR_TRY(expect(v.is_string(), "a string"));
        RAZOR_TRY(check_allowed(f, v.get<std::string>(), f.name));
        break;
      case field_type::integer: RAZOR_TRY(expect(v.is_number_integer(), "an integer")); break;
      case field_type::number: RAZOR_TRY(expect(v.is_number(), "a number")); break;
      case field_type::boolean: RAZOR_TRY(expect(v.is_boolean(), "true or false")); break;
      case field_type::string_list:
        if (v.is_string()) {  // a comma-separated list
          for (auto& item : split_list(v.get<std::string>())) RAZOR_TRY(check_allowed(f, item, f.name));
          break;
        }
        RAZOR_TRY(expect(v.is_array(), "an array of strings or a comma-separated string"));
        for (auto& e : v) {
          RAZOR_TRY(expect(e.is_string(), "an array of strings"));
          RAZOR_TRY(check_allowed(f, e.get<std::string>(), f.name));
        }
        break;
      case field_type::object: RAZOR_TRY(expect(v.is_object(), "an object")); break;
      case field_type::any: break;
    }
  }
  return out;
}

}  // namespace razor::jobs
