#include "jobs/remote_files.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "util/atomic_file.h"
#include "util/sha256.h"

namespace razor::jobs {

namespace fs = std::filesystem;

namespace {
bool is_weights_name(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  for (const char* w : {".safetensors", ".gguf", ".bin", ".pt", ".pth", ".ckpt"})
    if (ext == w) return true;
  return false;
}
}  // namespace

status check_fetchable(const std::string& path, uint64_t max_bytes) {
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return make_error(errc::not_found, path + ": no such file");
  if (fs::is_directory(st))
    return make_error(errc::unsupported, path + ": a directory (a checkpoint?) is never fetched; fetch its summary file");
  if (!fs::is_regular_file(st)) return make_error(errc::unsupported, path + ": not a regular file");
  if (is_weights_name(path)) return make_error(errc::unsupported, path + ": weights are never fetched to the workbench");
  uint64_t n = fs::file_size(path, ec);
  if (ec) return make_error(errc::io, path + ": " + ec.message());
  if (n > max_bytes)
    return make_error(errc::unsupported, path + ": " + std::to_string(n) + " bytes, more than the " +
                                             std::to_string(max_bytes) + " an artifact to draw may have");
  return {};
}

result<nlohmann::json> artifact_info(const std::string& path, uint64_t max_bytes) {
  RAZOR_TRY(check_fetchable(path, max_bytes));
  uint64_t bytes = 0;
  RAZOR_ASSIGN_OR_RETURN(auto hash, sha256_file(path, &bytes));
  struct stat st{};
  ::stat(path.c_str(), &st);
  std::error_code ec;
  return nlohmann::json{{"path", fs::absolute(path, ec).string()},
                        {"bytes", bytes},
                        {"sha256", hash},
                        {"mtime", int64_t(st.st_mtime)}};
}

status send_artifact(const std::string& path, int fd, uint64_t max_bytes) {
  RAZOR_TRY(check_fetchable(path, max_bytes));
  int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return make_error(errc::io, path + ": " + std::strerror(errno));
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(in);
      return make_error(errc::io, path + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(fd, buf + off, size_t(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        ::close(in);
        return make_error(errc::io, std::string("writing the artifact: ") + std::strerror(errno));
      }
      off += w;
    }
  }
  ::close(in);
  return {};
}

status receive_artifact(const std::string& path, int fd, uint64_t max_bytes) {
  if (is_weights_name(path)) return make_error(errc::unsupported, path + ": weights are not uploaded by the workbench");
  std::error_code ec;
  fs::path parent = fs::absolute(path, ec).parent_path();
  fs::create_directories(parent, ec);
  if (ec) return make_error(errc::io, parent.string() + ": " + ec.message());
  atomic_writer w;
  RAZOR_TRY(w.open(path));
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error(errc::io, std::string("reading the upload: ") + std::strerror(errno));
    if (n == 0) break;
    if (w.bytes_written() + uint64_t(n) > max_bytes)
      return make_error(errc::unsupported, path + ": more than the " + std::to_string(max_bytes) + " bytes an upload may have");
    RAZOR_TRY(w.write(buf, size_t(n)));
  }
  return w.commit();
}

}  // namespace razor::jobs
