// Read-only memory-mapped file. Opening never reads the data; pages come in as they are touched.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "util/status.h"

namespace razor {

// Opens a user's file for reading (O_CLOEXEC) and refuses anything but a regular file: a FIFO, a character
// device or a socket given as config.json or a GGUF would block or never end. The open itself does not wait
// (O_NONBLOCK, cleared once the file is known to be regular). Errors name the path and what it is instead.
// The caller closes the descriptor.
result<int> open_regular_file(const std::string& path);

class mapped_file {
 public:
  mapped_file() = default;
  ~mapped_file();
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  mapped_file(mapped_file&& o) noexcept;
  mapped_file& operator=(mapped_file&& o) noexcept;

  // Maps the whole file read-only (a regular file only: open_regular_file). A zero-length file maps to an
  // empty view.
  static result<mapped_file> open(const std::string& path);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Hint that [offset, offset+len) will be read soon / is no longer needed (madvise).
  void will_need(size_t offset, size_t len) const;
  void dont_need(size_t offset, size_t len) const;

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace razor
