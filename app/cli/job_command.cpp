#include "cli/job_command.h"

#include <cstdio>

#include "cli/commands.h"

namespace razor::cli {

using nlohmann::json;

setup_fn job_command_with_json(const std::string& method, const std::string& json_help, job_run_fn run) {
  return [method, json_help, run](CLI::App& sub) -> std::function<int()> {
    auto p = add_job_options(sub, method);
    auto json_out = std::make_shared<bool>(false);
    sub.add_flag("--json", *json_out, json_help);
    return [p, json_out, run] { return report(run(*p, *json_out)); };
  };
}

std::string option_name(const std::string& field) {
  std::string s = "--" + field;
  for (char& c : s)
    if (c == '_') c = '-';
  return s;
}

namespace {

std::string help_of(const jobs::field_def& f) {
  std::string h = f.help;
  if (!f.values.empty()) {
    std::string names;
    auto it = jobs::enums_json().find(f.values);
    if (it != jobs::enums_json().end())
      for (auto& v : *it) names += (names.empty() ? "" : ", ") + v.get<std::string>();
    h += "; one of: " + names;
  }
  if (!f.def.is_null() && !(f.def.is_boolean() && !f.def.get<bool>()))
    h += " (default " + (f.def.is_string() ? f.def.get<std::string>() : f.def.dump()) + ")";
  return h;
}

// "params.first_window" -> "--first-window" for the method's fields.
std::string cli_message(const jobs::method_def& m, const std::string& msg) {
  std::string out;
  size_t i = 0;
  while (i < msg.size()) {
    size_t k = msg.find("params.", i);
    if (k == std::string::npos) {
      out += msg.substr(i);
      break;
    }
    out += msg.substr(i, k - i);
    size_t e = k + 7;
    while (e < msg.size() && (std::islower(static_cast<unsigned char>(msg[e])) ||
                              std::isdigit(static_cast<unsigned char>(msg[e])) || msg[e] == '_'))
      ++e;
    const std::string name = msg.substr(k + 7, e - k - 7);
    const jobs::field_def* f = nullptr;
    for (auto& x : m.fields)
      if (x.name == name) f = &x;
    out += f ? (f->positional ? name : option_name(name)) : msg.substr(k, e - k);
    i = e;
  }
  return out;
}

}  // namespace

std::shared_ptr<json> add_job_options(CLI::App& sub, const std::string& method) {
  auto params = std::make_shared<json>(json::object());
  const jobs::method_def* m = jobs::find_method(method);
  if (!m) return params;  // a build error caught by the tests (every job command has a row)
  for (const auto& f : m->fields) {
    if (f.worker_only) continue;
    std::string names = f.positional ? f.name : option_name(f.name);
    if (!f.cli_alias.empty()) names += "," + f.cli_alias;
    const std::string key = f.name, help = help_of(f);
    CLI::Option* o = nullptr;
    switch (f.type) {
      case jobs::field_type::boolean:
        o = sub.add_flag_function(names, [params, key](int64_t n) { (*params)[key] = n > 0; }, help);
        break;
      case jobs::field_type::integer:
        o = sub.add_option_function<int64_t>(names, [params, key](const int64_t& v) { (*params)[key] = v; }, help);
        break;
      case jobs::field_type::number:
        o = sub.add_option_function<double>(names, [params, key](const double& v) { (*params)[key] = v; }, help);
        break;
      case jobs::field_type::string_list:
      case jobs::field_type::any:
        o = sub.add_option_function<std::vector<std::string>>(
            names,
            [params, key, list = f.type == jobs::field_type::string_list](const std::vector<std::string>& v) {
              if (!list && v.size() == 1) (*params)[key] = v[0];
              else (*params)[key] = v;
            },
            help);
        break;
      case jobs::field_type::object: continue;
      default:
        o = sub.add_option_function<std::string>(names, [params, key](const std::string& v) { (*params)[key] = v; }, help);
        if (!f.choices.empty()) o->check(CLI::IsMember(f.choices));
        break;
    }
    if (f.required) o->required();
  }
  return params;
}

result<json> run_job(const std::string& method, const json& params) {
  const jobs::method_def* m = jobs::find_method(method);
  if (!m) return make_error(errc::internal, "no job \"" + method + "\" in the registry");
  auto checked = jobs::apply_schema(*m, params);
  if (!checked.ok()) return status(checked.error().code(), cli_message(*m, checked.error().message()));
  stderr_progress prog(method);
  jobs::job_context ctx;
  ctx.progress = [&prog](double d, double t, const char* w) { return prog(d, t, w); };
  ctx.log = [&prog](std::string_view level, std::string_view msg) {
    std::fprintf(stderr, "%s%.*s\n", level == "warn" ? "warning: " : level == "error" ? "error: " : "", int(msg.size()),
                 msg.data());
  };
  ctx.emit_artifact = [](const jobs::artifact&) {};
  auto r = m->run(*checked, ctx);
  prog.finish();
  if (!r.ok()) return status(r.error().code(), cli_message(*m, r.error().message()));
  return r;
}

}  // namespace razor::cli
