// Bad dataset files give a clear error naming the file, the line and the missing field; nothing crashes.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "eval/benchmarks.h"

namespace fs = std::filesystem;
using namespace razor;

TEST(EvalDatasets, MissingFieldsAreClearErrors) {
  auto dir = fs::temp_directory_path() / ("razor_eval_data_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto* b = eval::find_bench("mmlu_pro");
  ASSERT_NE(b, nullptr);
  {
    std::ofstream f(dir / "mmlu_pro.jsonl");
    f << R"({"question":"2+2?","options":["3","4"],"answer_index":1})" << "\n";
    f << R"({"options":["a","b"],"answer_index":0})" << "\n";  // no question
  }
  auto items = eval::load_bench(*b, dir.string(), 0);
  ASSERT_FALSE(items.ok());
  EXPECT_EQ(items.error().code(), errc::bad_format);
  EXPECT_NE(items.error().message().find("line 2"), std::string::npos) << items.error().message();
  EXPECT_NE(items.error().message().find("question"), std::string::npos) << items.error().message();
  {
    std::ofstream f(dir / "mmlu_pro.jsonl");
    f << "{not json\n";
  }
  items = eval::load_bench(*b, dir.string(), 0);
  ASSERT_FALSE(items.ok());
  fs::remove(dir / "mmlu_pro.jsonl");
  items = eval::load_bench(*b, dir.string(), 0);
  ASSERT_FALSE(items.ok()) << "a missing dataset file is an error";
  EXPECT_NE(items.error().message().find("mmlu_pro"), std::string::npos) << items.error().message();
  fs::remove_all(dir);
}

TEST(EvalDatasets, DeepRowsAndFifosAreClearErrors) {
  auto dir = fs::temp_directory_path() / ("razor_eval_limits_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto* b = eval::find_bench("mmlu_pro");
  ASSERT_NE(b, nullptr);
  {  // a row nested 200,000 deep: refused by depth, naming the file and line (nlohmann's DOM would recurse)
    std::ofstream f(dir / "mmlu_pro.jsonl");
    f << R"({"question":"2+2?","options":["3","4"],"answer_index":1})" << "\n";
    f << R"({"question":)" << std::string(200000, '[') << "\n";
  }
  auto items = eval::load_bench(*b, dir.string(), 0);
  ASSERT_FALSE(items.ok());
  EXPECT_NE(items.error().message().find("mmlu_pro.jsonl line 2: JSON nested deeper than 64"), std::string::npos)
      << items.error().message();
  // A FIFO as the dataset: refused, not waited on.
  fs::remove(dir / "mmlu_pro.jsonl");
  ASSERT_EQ(::mkfifo((dir / "mmlu_pro.jsonl").c_str(), 0600), 0);
  items = eval::load_bench(*b, dir.string(), 0);
  ASSERT_FALSE(items.ok());
  EXPECT_NE(items.error().message().find("is a FIFO"), std::string::npos) << items.error().message();
  fs::remove_all(dir);
}
