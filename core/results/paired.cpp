#include "results/paired.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "util/mapped_file.h"

namespace razor::results {

namespace {
constexpr size_t kMaxLine = size_t(16) << 20;
constexpr uint64_t kMaxFile = uint64_t(4) << 30;
}  // namespace

std::string samples_path_for(const std::string& result_path) {
  const std::string ext = ".json";
  if (result_path.size() <= ext.size() || result_path.compare(result_path.size() - ext.size(), ext.size(), ext) != 0)
    return {};
  return result_path.substr(0, result_path.size() - ext.size()) + ".samples.jsonl";
}

result<sample_outcomes> read_sample_outcomes(const std::string& path) {
  RAZOR_ASSIGN_OR_RETURN(int fd, open_regular_file(path));  // a FIFO or a device is refused by name
  ::close(fd);
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(errc::io, path + ": cannot be opened");
  in.seekg(0, std::ios::end);
  const auto size = uint64_t(in.tellg());
  if (size > kMaxFile)
    return make_error(errc::invalid_argument, path + ": " + std::to_string(size) + " bytes, more than a samples file may hold");
  in.seekg(0);
  sample_outcomes out;
  std::string line;
  size_t no = 0;
  while (std::getline(in, line)) {
    ++no;
    const bool last = in.peek() == std::char_traits<char>::eof();
    if (line.size() > kMaxLine)
      return make_error(errc::invalid_argument, path + ":" + std::to_string(no) + ": line longer than 16 MiB");
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    const bool ok = !j.is_discarded() && j.is_object() && j.contains("bench") && j["bench"].is_string() &&
                    j.contains("id") && j["id"].is_string() && j.contains("correct") && j["correct"].is_boolean();
    if (!ok) {
      if (last) break;  // torn by a run that stopped while writing
      return make_error(errc::invalid_argument,
                        path + ":" + std::to_string(no) + ": not a sample record (needs string bench, string id, boolean correct)");
    }
    out[j["bench"].get<std::string>()][j["id"].get<std::string>()] = j["correct"].get<bool>();
  }
  return out;
}

double binomial_two_sided_p(int k, int n) {
  if (n <= 0) return 1.0;
  k = std::clamp(k, 0, n);
  const int m = std::min(k, n - k);
  // P(X <= m) summed in log space: n may be in the tens of thousands.
  const double ln_half_n = double(n) * std::log(0.5);
  double tail = 0.0;
  for (int i = 0; i <= m; ++i)
    tail += std::exp(std::lgamma(double(n) + 1) - std::lgamma(double(i) + 1) - std::lgamma(double(n - i) + 1) + ln_half_n);
  return std::min(1.0, 2.0 * tail);
}

paired_test mcnemar(const std::map<std::string, bool>& baseline, const std::map<std::string, bool>& candidate) {
  paired_test t;
  for (const auto& [id, right] : baseline) {
    auto it = candidate.find(id);
    if (it == candidate.end()) continue;
    ++t.n;
    if (right && !it->second) ++t.only_baseline;
    if (!right && it->second) ++t.only_candidate;
  }
  t.p = binomial_two_sided_p(t.only_candidate, t.only_baseline + t.only_candidate);
  return t;
}

}  // namespace razor::results
