// A bundled fixture (resources/models/<name>) in a fresh temporary folder with its config.json edited, for the
// tests of what config.json may claim (model/config_check.h). The other files are hard-linked (copied where
// links fail); `weights_edit`, when given, rewrites model.safetensors' bytes in a real copy (e.g. its header).
// expect_mentions: an error message is there and names every part (file, key, value, tensor).
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace razor::test {

inline void expect_mentions(const std::string& msg, const std::vector<std::string>& parts) {
  EXPECT_FALSE(msg.empty()) << "accepted";
  for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

inline std::filesystem::path edited_fixture(const std::string& model, const std::string& tag,
                                            const std::function<void(nlohmann::json&)>& config_edit,
                                            const std::function<void(std::string&)>& weights_edit = nullptr) {
  namespace fs = std::filesystem;
  const fs::path src = fs::path(RAZOR_MODELS_DIR) / model;
  const fs::path dir = fs::temp_directory_path() / ("razor-cfg-" + tag + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(src)) {
    const fs::path to = dir / e.path().filename();
    const std::string name = e.path().filename().string();
    if (name == "config.json") continue;
    if (name == "model.safetensors" && weights_edit) {
      std::ifstream in(e.path(), std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string bytes = ss.str();
      weights_edit(bytes);
      std::ofstream(to, std::ios::binary) << bytes;
      continue;
    }
    std::error_code ec;
    fs::create_hard_link(e.path(), to, ec);
    if (ec) fs::copy_file(e.path(), to, fs::copy_options::overwrite_existing);
  }
  std::ifstream cf(src / "config.json");
  nlohmann::json j = nlohmann::json::parse(cf);
  config_edit(j);
  std::ofstream(dir / "config.json") << j.dump(2);
  return dir;
}

}  // namespace razor::test
