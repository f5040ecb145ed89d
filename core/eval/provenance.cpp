#include "eval/provenance.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "util/mapped_file.h"
#include "util/sha256.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace razor::eval {

namespace {

constexpr uint64_t kEdge = uint64_t(1) << 20;

result<json> shard_fingerprint(const fs::path& p) {
  RAZOR_ASSIGN_OR_RETURN(mapped_file m, mapped_file::open(p.string()));
  const uint8_t* d = m.data();
  const uint64_t n = m.size();
  if (n < 8) return make_error(errc::bad_format, p.string() + ": shorter than a safetensors header length");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | d[i];
  if (hlen > n - 8) return make_error(errc::bad_format, p.string() + ": header length " + std::to_string(hlen) + " past the end");
  const uint64_t data0 = 8 + hlen, data_n = n - data0;
  sha256 edges;
  edges.update(d + data0, size_t(std::min(kEdge, data_n)));
  if (data_n > kEdge) {
    const uint64_t tail = std::min(kEdge, data_n - kEdge);
    edges.update(d + n - tail, size_t(tail));
  }
  json j = {{"name", p.filename().string()},
            {"bytes", n},
            {"header_sha256", sha256_hex(std::string_view(reinterpret_cast<const char*>(d), size_t(data0)))},
            {"edges_sha256", sha256::hex(edges.finish())}};
  RAZOR_TRY(m.check());  // truncated while read
  return j;
}

}  // namespace

result<json> artifact_fingerprint(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<fs::path> shards;
    for (auto& e : fs::directory_iterator(path, ec))
      if (e.path().extension() == ".safetensors") shards.push_back(e.path());
    if (shards.empty()) return make_error(errc::not_found, path + ": a folder without .safetensors shards");
    std::sort(shards.begin(), shards.end());
    json list = json::array();
    for (auto& s : shards) {
      RAZOR_ASSIGN_OR_RETURN(json f, shard_fingerprint(s));
      list.push_back(std::move(f));
    }
    return json{{"path", path}, {"shards", list}};
  }
  uint64_t bytes = 0;
  RAZOR_ASSIGN_OR_RETURN(std::string digest, sha256_file(path, &bytes));
  return json{{"path", path}, {"bytes", bytes}, {"sha256", digest}};
}

}  // namespace razor::eval
