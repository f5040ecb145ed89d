// Read-only memory-mapped file. Opening never reads the data; pages come in as they are touched.
//
// A file truncated by someone else while it is mapped would kill the process with SIGBUS at the first read
// past its new end. Every mapping is registered in a fixed, lock-free table that a SIGBUS handler (installed
// on the first open, chained to any earlier one) consults: a fault inside a registered mapping maps zero pages
// over the rest of it (MAP_FIXED | MAP_ANONYMOUS) so the read completes, and marks the mapping truncated;
// check() then turns that into an error naming the file. Readers call check() after each tensor they read
// (checkpoint::check_mapped); the CLI and the worker check truncation_count() around every command / job. A
// SIGBUS anywhere else keeps its default action.
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
  // errc::io "<path> was truncated while being read (now N bytes, mapped M) ..." once a read ran past the
  // file's end (the bytes read there were zeros); ok otherwise. Cheap: one atomic load.
  status check() const;
  bool truncated() const;
  // A backstop for readers that do not call check(): the number of truncations met by any mapping of this
  // process so far, and an error naming the files when there were more than `mark` (the CLI and the worker
  // compare before and after each command / job, so a truncated input never ends in a success).
  static uint64_t truncation_count();
  static status check_since(uint64_t mark);

 private:
  void release();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  int slot_ = -1;  // entry in the SIGBUS table, -1 when not registered
};

}  // namespace razor
