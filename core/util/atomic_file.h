// Outputs are written to a temporary name beside the final one and renamed only when complete
// (non-negotiable: a crash, a cancel or a full disk never leaves a partial file under the final name).
//
//   atomic_writer w;
//   RAZOR_TRY(w.open("out/model.safetensors"));   // writes out/.model.safetensors.partial-<pid>
//   RAZOR_TRY(w.write(bytes, n));
//   RAZOR_TRY(w.commit());                          // fsync + rename; without commit() the
//                                                   // destructor removes the temporary file
//
// Every temporary is registered with util/temp_registry.h (a SIGINT / SIGTERM removes it) and locked with
// flock while it is written, so that util/stale_partials.h tells a temporary another process still writes
// from one a dead process left. What an output may replace is util/output_guard.h's rule: atomic_dir applies
// it itself (open and again at commit); the callers of atomic_writer check a final file name before opening.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace razor {

class atomic_writer {
 public:
  atomic_writer() = default;
  ~atomic_writer();
  atomic_writer(const atomic_writer&) = delete;
  atomic_writer& operator=(const atomic_writer&) = delete;

  status open(const std::string& final_path);
  status write(const void* data, size_t n);
  status write_zeros(size_t n);
  // Advances past n bytes without writing them: they read as zeros and take no disk blocks (sparse).
  status skip(uint64_t n);
  uint64_t bytes_written() const { return written_; }
  status commit();
  void abort();  // removes the temporary file
  const std::string& temp_path() const { return tmp_; }
  const std::string& final_path() const { return final_; }

 private:
  int fd_ = -1;
  int reg_ = -1;  // temp_registry handle
  std::string final_, tmp_;
  uint64_t written_ = 0;
};

// Whole small file (JSON, text) written atomically.
status write_file_atomic(const std::string& path, const std::string& contents);
// A whole file of at most max_bytes; anything but a regular file (a FIFO, a device) is refused before reading
// (open_regular_file in mapped_file.h).
result<std::string> read_text_file(const std::string& path, size_t max_bytes = size_t(1) << 30);
// The last `max_lines` lines of a log file, read from its last `max_bytes` (a line cut there is dropped), without
// the trailing newline; "" when the file cannot be read. For error messages that quote a program's log.
std::string file_tail(const std::string& path, int max_lines, size_t max_bytes = 8192);

// Directory output: a whole directory is built under "<dir>.partial-<pid>" and renamed at the end.
// open() refuses (errc::invalid_argument, nothing touched) a final folder razor may not replace
// (check_output_dir: not razor's own, or one of `inputs`); commit() checks again, writes the marker that
// makes the folder razor's own (recording `command`), and swaps the new folder in with one atomic rename
// (renameat2 RENAME_EXCHANGE; two renames where the file system lacks it), then removes the old one.
class atomic_dir {
 public:
  ~atomic_dir();
  status open(const std::string& final_dir, const std::string& command = "razor",
              std::vector<std::string> inputs = {});
  const std::string& path() const { return tmp_; }  // write files here
  status commit();
  void abort();

 private:
  std::string final_, tmp_, command_;
  std::vector<std::string> inputs_;
  int reg_ = -1;      // temp_registry handle
  int lock_fd_ = -1;  // flock on the temporary folder while it is written
  bool open_ = false;
};

}  // namespace razor
