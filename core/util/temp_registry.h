// The process's live temporary outputs, so that SIGINT / SIGTERM / SIGHUP remove them before the process ends
// (non-negotiable: a cancelled or interrupted job leaves nothing behind, util/atomic_file.h).
//
// atomic_writer and atomic_dir register their temporaries here ("<dir>/.<name>.partial-<pid>",
// "<dir>.partial-<pid>") before creating them and unregister them once renamed or removed; code that writes a
// temporary some other way (HDF5) does the same. install_cleanup_signal_handlers() (razor's main) makes the
// three signals remove every registered path, files and folders alike, and then end the process with the same
// signal and its default action, so the exit status says what happened. A second signal while the first one's
// cleanup runs ends the process at once.
//
// The table is a fixed array of preallocated path buffers whose entries change state with atomic
// compare-and-swap only, so the handler reads it without locks or allocation: the handler claims an entry
// (registered -> being removed) before touching its path, and a commit claims it (registered -> committing)
// before renaming, so the two never act on the same temporary. Folders are removed with openat / getdents64
// / unlinkat (async-signal-safe), a bounded depth, several passes against a writer still adding files.
#pragma once
#include <string>

namespace razor {

enum class temp_kind { file, dir };

// Registers an absolute form of `path`. Returns a handle (>= 0), or -1 when the table is full or the path is
// longer than PATH_MAX: the temporary is then removed only by its owner, not by a signal.
int register_temp(const std::string& path, temp_kind kind);
// Takes the temporary away from the signal handler before its owner renames or removes it. False: a handler
// (or remove_registered_temps) took it first: the process is ending and the temporary is gone or going.
bool claim_temp(int handle);
// Forgets the entry (claimed or not). Safe on -1.
void unregister_temp(int handle);
// Removes every registered, unclaimed temporary now. Async-signal-safe. The worker's `kill` uses it before
// _exit; the handlers below call it.
void remove_registered_temps();
// Number of registered entries not yet claimed (tests).
int registered_temp_count();

// Registers a temporary for the lifetime of the object (for code that removes it itself on every path).
class scoped_temp {
 public:
  scoped_temp(const std::string& path, temp_kind kind) : h_(register_temp(path, kind)) {}
  ~scoped_temp() { unregister_temp(h_); }
  scoped_temp(const scoped_temp&) = delete;
  scoped_temp& operator=(const scoped_temp&) = delete;
  int handle() const { return h_; }

 private:
  int h_;
};

// SIGINT, SIGTERM, SIGHUP: remove_registered_temps(), then the signal's default action. Idempotent.
void install_cleanup_signal_handlers();

// Removes a file or a folder tree without allocating (the handler's algorithm, for tests and the worker).
void remove_tree_signal_safe(const char* path);

}  // namespace razor
