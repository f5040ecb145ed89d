// The job registry (core/jobs/methods.h): every method has a schema, the params are checked against it before a
// handler runs (defaults filled in; an unknown key, a wrong type, a value outside its enumeration named), the
// enumerations are read from their one tables, and the CLI commands built from the registry take exactly the
// registry's fields as options (--a-b for a_b), so `razor pack --output-tensor-type` and the worker's
// `output_tensor_type` cannot drift apart again.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "common/test_util.h"
#include "ggml/types.h"
#include "jobs/methods.h"
#include "quant/allocate.h"

using nlohmann::json;
using namespace razor;

TEST(Registry, EveryMethodHasASchemaAndTheHelloListsIt) {
  const json schema = jobs::schema_json();
  ASSERT_EQ(schema.size(), jobs::method_table().size());
  std::set<std::string> names;
  for (auto& m : schema) {
    names.insert(m["name"].get<std::string>());
    EXPECT_FALSE(m["help"].get<std::string>().empty()) << m["name"];
    for (auto& f : m["params"]) {
      EXPECT_FALSE(f["help"].get<std::string>().empty()) << m["name"] << "." << f["name"];
      if (f.contains("values")) EXPECT_TRUE(jobs::enums_json().contains(f["values"].get<std::string>())) << f.dump();
    }
  }
  for (const char* m : {"allocate", "probe", "eval-ppl", "pack", "validate-gguf", "gguf-info", "merge", "study"})
    EXPECT_TRUE(names.count(m)) << m;
  EXPECT_FALSE(names.count("allocate-gguf"));  // one allocate job, with a mode
}

TEST(Registry, EnumerationsComeFromTheirTables) {
  const json& e = jobs::enums_json();
  ASSERT_EQ(e["ggml_types"].size(), ggml::all_types().size());
  for (size_t i = 0; i < ggml::all_types().size(); ++i) EXPECT_EQ(e["ggml_types"][i], std::string(ggml::all_types()[i].name));
  ASSERT_EQ(e["strategies"].size(), quant::all_strategies().size());
  for (const char* k : {"ftypes", "saliences", "benchmarks", "roles"}) EXPECT_FALSE(e[k].empty()) << k;
}

TEST(Registry, ParamsAreCheckedAndCompleted) {
  const jobs::method_def* pack = jobs::find_method("pack");
  ASSERT_NE(pack, nullptr);
  auto ok = jobs::apply_schema(*pack, {{"model", "m"}, {"out", "o.gguf"}, {"type", "Q4_K"}});
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  EXPECT_EQ((*ok)["threads"], 0);  // a default filled in
  EXPECT_EQ((*ok)["dry_run"], false);
  // The old drift: the worker took output_type where the CLI took --output-tensor-type.
  auto drift = jobs::apply_schema(*pack, {{"model", "m"}, {"output_type", "q8_0"}});
  ASSERT_FALSE(drift.ok());
  EXPECT_EQ(drift.error().code(), errc::invalid_argument);
  EXPECT_NE(drift.error().message().find("params.output_type is not a parameter of pack"), std::string::npos);
  EXPECT_NE(drift.error().message().find("output_tensor_type"), std::string::npos);  // the list of what it takes
  auto bad_type = jobs::apply_schema(*pack, {{"model", "m"}, {"type", "q9_K"}});
  ASSERT_FALSE(bad_type.ok());
  EXPECT_NE(bad_type.error().message().find("params.type"), std::string::npos) << bad_type.error().message();
  auto missing = jobs::apply_schema(*pack, json::object());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("params.model is required"), std::string::npos);
  auto wrong = jobs::apply_schema(*jobs::find_method("probe"), {{"model", "m"}, {"tokens", "many"}});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message().find("params.tokens must be an integer"), std::string::npos);
  auto strat = jobs::apply_schema(*jobs::find_method("allocate"),
                                  {{"model", "m"}, {"target", "3bits"}, {"out", "r.json"}, {"strategy", "nope"}});
  ASSERT_FALSE(strat.ok());
  EXPECT_NE(strat.error().message().find("params.strategy"), std::string::npos);
  // echo takes anything.
  EXPECT_TRUE(jobs::apply_schema(*jobs::find_method("echo"), {{"anything", 1}}).ok());
}

// Every field of the jobs whose commands are built from the registry is an option of that command.
TEST(Registry, CliOptionsAreTheRegistryFields) {
  for (const char* name : {"inspect", "footprint", "quantize", "compare-methods", "synth", "gguf-info", "probe", "eval-ppl", "pack", "allocate",
                           "validate-gguf", "merge", "study"}) {
    const jobs::method_def* m = jobs::find_method(name);
    ASSERT_NE(m, nullptr) << name;
    auto r = razor::test::run_razor(std::string(name) + " --help");
    ASSERT_EQ(r.code, 0) << r.out;
    for (auto& f : m->fields) {
      if (f.worker_only) continue;
      std::string opt = f.name;
      if (!f.positional) {
        opt = "--" + f.name;
        for (char& c : opt)
          if (c == '_') c = '-';
      }
      EXPECT_NE(r.out.find(opt), std::string::npos) << name << ": " << opt << " missing from --help";
    }
  }
  // A value outside an enumeration is refused by the CLI with the option's name.
  auto r = razor::test::run_razor("pack " + std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe --type q4_K "
                                  "--output-tensor-type q9 --dry-run");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--output-tensor-type"), std::string::npos) << r.out;
}

// study: the registry job behind `razor study` (and the worker's method): two strategies at one budget on the
// tiny fixture, a probe of 256 tokens, one window of 64.
TEST(Registry, StudyRunsFromTheRegistry) {
  const std::string dir = ::testing::TempDir();
  const std::string model = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe";
  const std::string h5 = dir + "razor-registry-study-probe.h5", out = dir + "razor-registry-study.json";
  std::remove(h5.c_str());
  std::remove(out.c_str());
  auto r = razor::test::run_razor("probe " + model + " --tokens 256 --no-imatrix --out " + h5);
  ASSERT_EQ(r.code, 0) << r.out;
  r = razor::test::run_razor("study " + model + " --probe " + h5 +
                             " --budgets 3.0 --strategies solver,flat --windows 1 --ctx 64 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("| solver | 3.0 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| flat | 3.0 |"), std::string::npos) << r.out;
  auto j = nlohmann::json::parse(razor::test::slurp(out), nullptr, false);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["format"], "razor.study/1");
  EXPECT_EQ(j["rows"].size(), 2u);
  std::remove(h5.c_str());
  std::remove(out.c_str());
}
