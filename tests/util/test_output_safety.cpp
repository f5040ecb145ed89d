// Data safety of outputs (util/output_guard.h, util/atomic_file.h): razor never replaces what it did not write;
// temporaries go on SIGINT / SIGTERM (util/temp_registry.h, checked in a forked child that gets the signal);
// stale temporaries of dead processes are found and only those (util/stale_partials.h); a mapped file truncated
// under a reader is an error naming it, not a SIGBUS (util/mapped_file.h).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "util/atomic_file.h"
#include "util/mapped_file.h"
#include "util/output_guard.h"
#include "util/stale_partials.h"
#include "util/temp_registry.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

struct scratch : razor::test::scratch_dir {
  scratch() : scratch_dir("safety") {}
};

void put(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string get(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Writes a folder output with one file through atomic_dir.
status write_dir(const std::string& out, const std::string& text, std::vector<std::string> inputs = {}) {
  atomic_dir d;
  RAZOR_TRY(d.open(out, "test", std::move(inputs)));
  RAZOR_TRY(write_file_atomic(d.path() + "/weights.bin", text));
  return d.commit();
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> v;
  for (auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

// A pid that ran and has ended (reaped), for stale temporaries.
int64_t dead_pid() {
  pid_t p = fork();
  if (p == 0) _exit(0);
  int st = 0;
  waitpid(p, &st, 0);
  return int64_t(p);
}

}  // namespace

// ---- what an output may replace ----

TEST(OutputGuard, AFolderRazorDidNotWriteIsRefusedAndKept) {
  // The red team's reproduction: `razor quantize FIXTURE --out victim` deleted victim/thesis.txt.
  scratch s;
  put(s / "victim/thesis.txt", "x\n");
  status st = write_dir(s / "victim", "weights");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), errc::invalid_argument);
  EXPECT_NE(st.message().find(s / "victim"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("thesis.txt"), std::string::npos) << st.message();
  EXPECT_EQ(get(s / "victim/thesis.txt"), "x\n");
  EXPECT_EQ(names_in(s.dir), std::vector<std::string>{"victim"});  // no temporary left either
}

TEST(OutputGuard, AFileOrALinkIsNotReplacedByAFolder) {
  scratch s;
  put(s / "notes", "mine\n");
  status st = write_dir(s / "notes", "w");
  EXPECT_EQ(st.code(), errc::invalid_argument) << st.to_string();
  EXPECT_NE(st.message().find("is a file"), std::string::npos) << st.message();
  EXPECT_EQ(get(s / "notes"), "mine\n");
  fs::create_directory(s / "real");
  put(s / "real/keep.txt", "k");
  fs::create_directory_symlink(s / "real", s / "link");
  st = write_dir(s / "link", "w");
  EXPECT_EQ(st.code(), errc::invalid_argument) << st.to_string();
  EXPECT_EQ(get(s / "real/keep.txt"), "k");
  EXPECT_TRUE(fs::is_symlink(s / "link"));
}

TEST(OutputGuard, RazorsOwnFolderIsReplacedAndCarriesItsMarker) {
  scratch s;
  ASSERT_TRUE(write_dir(s / "out", "first").ok());
  auto marker = nlohmann::json::parse(get(s / "out/.razor-output"));
  EXPECT_EQ(marker["format"], "razor.output/1");
  EXPECT_EQ(marker["command"], "test");
  EXPECT_EQ(marker["files"], nlohmann::json::array({"weights.bin"}));
  EXPECT_EQ(marker["version"], RAZOR_VERSION);
  // Re-running replaces razor's own output without a flag.
  ASSERT_TRUE(write_dir(s / "out", "second").ok());
  EXPECT_EQ(get(s / "out/weights.bin"), "second");
  EXPECT_EQ(names_in(s.dir), std::vector<std::string>{"out"});  // the old one and the temporary are gone
  // An empty folder is a fine destination.
  fs::create_directory(s / "empty");
  EXPECT_TRUE(write_dir(s / "empty", "e").ok());
  EXPECT_EQ(get(s / "empty/weights.bin"), "e");
}

TEST(OutputGuard, RazorsFolderWithFilesAddedSinceIsRefused) {
  scratch s;
  ASSERT_TRUE(write_dir(s / "out", "first").ok());
  put(s / "out/my-eval-notes.md", "results\n");
  put(s / "out/sub/more.txt", "more\n");
  status st = write_dir(s / "out", "second");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("my-eval-notes.md"), std::string::npos) << st.message();
  EXPECT_EQ(get(s / "out/weights.bin"), "first");
  EXPECT_EQ(get(s / "out/my-eval-notes.md"), "results\n");
  // A marker that is not razor's does not make a folder razor's.
  fs::create_directory(s / "fake");
  put(s / "fake/.razor-output", "{\"format\": \"something/1\", \"files\": [\"a\"]}");
  put(s / "fake/a", "a");
  EXPECT_FALSE(write_dir(s / "fake", "w").ok());
  EXPECT_EQ(get(s / "fake/a"), "a");
}

TEST(OutputGuard, TheInputItsParentAndAFolderInsideItAreRefused) {
  scratch s;
  ASSERT_TRUE(write_dir(s / "model", "weights").ok());  // razor's own, so only the input rule protects it
  const std::string model = s / "model";
  for (const std::string& out : {model, model + "/", s.dir.string(), model + "/quantized"}) {
    status st = write_dir(out, "w", {model});
    EXPECT_EQ(st.code(), errc::invalid_argument) << out << ": " << st.to_string();
    EXPECT_NE(st.message().find("input"), std::string::npos) << st.message();
  }
  EXPECT_EQ(get(model + "/weights.bin"), "weights");
  // The same folder through a symbolic link is the same folder.
  fs::create_directory_symlink(model, s / "alias");
  EXPECT_FALSE(write_dir(s / "alias", "w", {model}).ok());
  // Beside the input is fine.
  EXPECT_TRUE(write_dir(s / "model-q", "w", {model}).ok());
}

TEST(OutputGuard, AFileAppearingDuringTheJobIsNotReplacedAtCommit) {
  scratch s;
  atomic_dir d;
  ASSERT_TRUE(d.open(s / "out", "test").ok());
  ASSERT_TRUE(write_file_atomic(d.path() + "/w.bin", "w").ok());
  put(s / "out/arrived.txt", "meanwhile");
  status st = d.commit();
  EXPECT_EQ(st.code(), errc::invalid_argument) << st.to_string();
  EXPECT_EQ(get(s / "out/arrived.txt"), "meanwhile");
  d.abort();
  EXPECT_EQ(names_in(s.dir), std::vector<std::string>{"out"});
}

TEST(OutputGuard, FileOutputsReplaceOnlyTheirOwnKind) {
  scratch s;
  auto json_own = [](const std::string& p) { return razor_json_file(p); };
  EXPECT_TRUE(check_output_file(s / "new.json", json_own).ok());
  put(s / "thesis.txt", "x\n");
  status st = check_output_file(s / "thesis.txt", json_own);
  EXPECT_EQ(st.code(), errc::invalid_argument);
  EXPECT_NE(st.message().find("thesis.txt"), std::string::npos) << st.message();
  put(s / "other.json", "{\"format\": \"someone-else/1\"}");
  EXPECT_FALSE(check_output_file(s / "other.json", json_own).ok());
  put(s / "ours.json", "{\"format\": \"razor.recipe/1\"}");
  EXPECT_TRUE(check_output_file(s / "ours.json", json_own).ok());
  EXPECT_FALSE(check_output_file(s / "ours.json", json_own, {s / "ours.json"}).ok());  // but never an input
  fs::create_directory(s / "adir");
  EXPECT_FALSE(check_output_file(s / "adir", json_own).ok());
  put(s / "r.txt", "# razor allocate --mode gguf\nblk=q4_K\n");
  EXPECT_TRUE(check_output_file(s / "r.txt", razor_text_file("# razor allocate")).ok());
  EXPECT_FALSE(check_output_file(s / "thesis.txt", razor_text_file("# razor allocate")).ok());
  // atomic_writer itself never renames over a folder.
  atomic_writer w;
  EXPECT_FALSE(w.open(s / "adir").ok());
}

// ---- temporaries removed on signals ----

TEST(TempRegistry, RemovesRegisteredFilesAndFoldersButNotClaimedOnes) {
  scratch s;
  put(s / "t.partial-1", "x");
  put(s / "d.partial-1/a/b/c.bin", "x");
  put(s / "d.partial-1/top.bin", "x");
  put(s / "kept.partial-1", "x");
  const int before = registered_temp_count();
  int f = register_temp(s / "t.partial-1", temp_kind::file);
  int d = register_temp(s / "d.partial-1", temp_kind::dir);
  int k = register_temp(s / "kept.partial-1", temp_kind::file);
  ASSERT_GE(f, 0);
  ASSERT_GE(d, 0);
  ASSERT_GE(k, 0);
  EXPECT_EQ(registered_temp_count(), before + 3);
  EXPECT_TRUE(claim_temp(k));  // being committed: the handler leaves it
  remove_registered_temps();
  EXPECT_FALSE(fs::exists(s / "t.partial-1"));
  EXPECT_FALSE(fs::exists(s / "d.partial-1"));
  EXPECT_TRUE(fs::exists(s / "kept.partial-1"));
  EXPECT_FALSE(claim_temp(f));  // the owner learns that the handler took it
  for (int h : {f, d, k}) unregister_temp(h);
  EXPECT_EQ(registered_temp_count(), before);
}

namespace {

// In a forked child: starts a folder output and a file output, tells the parent through `ready`, then waits
// for the signal the parent sends. Returns the child's pid.
pid_t child_writing_outputs(const scratch& s, int* ready_fd) {
  int p[2];
  if (pipe(p) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    ::close(p[0]);
    // As a foreground process: a shell that started the tests in the background may have them ignored, and
    // razor keeps an ignored signal ignored (nohup).
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);
    install_cleanup_signal_handlers();
    atomic_dir d;
    if (!d.open(s / "out", "test").ok()) _exit(10);
    if (!write_file_atomic(d.path() + "/done.bin", "complete").ok()) _exit(11);
    atomic_writer inner, beside;
    if (!inner.open(d.path() + "/big.bin").ok() || !inner.write("partial", 7).ok()) _exit(12);
    if (!beside.open(s / "model.gguf").ok() || !beside.write("GGUF", 4).ok()) _exit(13);
    char c = 'r';
    if (::write(p[1], &c, 1) != 1) _exit(14);
    for (;;) ::pause();
  }
  ::close(p[1]);
  *ready_fd = p[0];
  return pid;
}

}  // namespace

TEST(TempRegistry, SigtermAndSigintRemoveTheTemporariesAndEndWithTheSignal) {
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    scratch s;
    int ready = -1;
    pid_t pid = child_writing_outputs(s, &ready);
    ASSERT_GT(pid, 0);
    char c = 0;
    ASSERT_EQ(::read(ready, &c, 1), 1) << "the child failed before writing";
    ::close(ready);
    const std::string pidstr = std::to_string(pid);
    EXPECT_TRUE(fs::exists(s / ("out.partial-" + pidstr)));
    EXPECT_TRUE(fs::exists(s / (".model.gguf.partial-" + pidstr)));
    ASSERT_EQ(::kill(pid, sig), 0);
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(st)) << "exit status " << st;
    if (WIFSIGNALED(st)) EXPECT_EQ(WTERMSIG(st), sig);
    EXPECT_TRUE(names_in(s.dir).empty()) << "left behind: " << (names_in(s.dir).empty() ? "" : names_in(s.dir)[0]);
  }
}

// ---- stale temporaries ----

TEST(StalePartials, OnlyThoseOfDeadProcessesAreListedAndRemoved) {
  scratch s;
  const std::string dead = std::to_string(dead_pid());
  const std::string me = std::to_string(getpid());
  put(s / (".model.gguf.partial-" + dead), std::string(100, 'x'));
  put(s / ("out.partial-" + dead + "/model.safetensors"), std::string(50, 'y'));
  put(s / (".alive.gguf.partial-" + me), "x");  // this process runs
  put(s / "notes.txt", "mine");
  put(s / "v2.partial-draft", "a user's name, not a pid");
  put(s / ("old.old-" + dead + "/a"), "no marker: not razor's");
  put(s / ("prev.old-" + dead + "/.razor-output"), "{}");  // razor's, but "prev" is missing: the only copy
  put(s / ("done.old-" + dead + "/.razor-output"), "{}");  // razor's, and "done" is in place: garbage
  fs::create_directory(s / "done");
  // A temporary locked by a live writer (a process elsewhere on a shared file system, as far as we can tell)
  const std::string locked = s / (".locked.gguf.partial-" + dead);
  put(locked, "x");
  int lfd = ::open(locked.c_str(), O_RDWR);
  ASSERT_GE(lfd, 0);
  pid_t holder = fork();
  if (holder == 0) {  // holds the lock until killed
    if (::flock(lfd, LOCK_EX) != 0) _exit(1);
    for (;;) ::pause();
  }
  ::close(lfd);
  // The holder takes the lock asynchronously: wait until a non-blocking attempt fails.
  for (;;) {
    int fd = ::open(locked.c_str(), O_RDWR);
    bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0;
    ::close(fd);
    if (held) break;
    usleep(1000);
  }
  auto found = find_stale_partials(s.dir.string());
  ASSERT_TRUE(found.ok()) << found.error().to_string();
  std::set<std::string> paths;
  for (auto& p : *found) paths.insert(fs::path(p.path).filename().string());
  EXPECT_EQ(paths, (std::set<std::string>{".model.gguf.partial-" + dead, "out.partial-" + dead, "done.old-" + dead}));
  for (auto& p : *found) {
    if (fs::path(p.path).filename() == "done.old-" + dead) EXPECT_EQ(p.bytes, 2u);
    else if (p.is_dir) EXPECT_EQ(p.bytes, 50u);
    else EXPECT_EQ(p.bytes, 100u);
    EXPECT_TRUE(remove_stale_partial(p).ok());
  }
  ::kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
  EXPECT_EQ(names_in(s.dir), (std::vector<std::string>{".alive.gguf.partial-" + me, ".locked.gguf.partial-" + dead, "done",
                                                       "notes.txt", "old.old-" + dead, "prev.old-" + dead,
                                                       "v2.partial-draft"}));
  // Near a model folder: in it and beside it.
  put(s / ("m/.x.partial-" + dead), "x");
  EXPECT_EQ(stale_partials_near(s / "m").size(), 2u);  // m/.x.partial-D and, beside m, .locked...-D now free
}

// ---- a mapped file truncated under its reader ----

TEST(MappedFile, TruncationWhileMappedIsAnErrorNamingTheFileNotASigbus) {
  scratch s;
  const long page = sysconf(_SC_PAGESIZE);
  const std::string path = s / "shard.safetensors";
  put(path, std::string(size_t(16 * page), '\x5a'));
  const uint64_t mark = mapped_file::truncation_count();
  auto m = mapped_file::open(path);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_TRUE(m->check().ok());
  EXPECT_EQ(m->data()[3 * page], 0x5a);
  ASSERT_EQ(::truncate(path.c_str(), 2 * page), 0);
  // Past the new end: zeros instead of a SIGBUS, and check() says what happened.
  volatile uint8_t sum = 0;
  for (long i = 0; i < 16 * page; i += 512) sum = uint8_t(sum + m->data()[i]);
  EXPECT_EQ(m->data()[10 * page], 0);
  EXPECT_EQ(m->data()[page], 0x5a);  // before the new end the data are still the file's
  status st = m->check();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), errc::io);
  EXPECT_NE(st.message().find(path), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("truncated"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("now " + std::to_string(2 * page) + " bytes"), std::string::npos) << st.message();
  // Another mapping is not affected, and a moved mapping keeps its state.
  put(s / "other", std::string(size_t(page), 'o'));
  auto o = mapped_file::open(s / "other");
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE(o->check().ok());
  mapped_file moved = std::move(m).value();
  EXPECT_FALSE(moved.check().ok());
  // The backstop the CLI and the worker use around each command / job, also after the mapping is gone.
  { mapped_file gone = std::move(moved); }
  status since = mapped_file::check_since(mark);
  EXPECT_FALSE(since.ok());
  EXPECT_NE(since.message().find(path), std::string::npos) << since.message();
  EXPECT_TRUE(mapped_file::check_since(mapped_file::truncation_count()).ok());
}

TEST(MappedFile, AFifoIsRefusedWithoutBlocking) {
  scratch s;
  ASSERT_EQ(mkfifo((s / "fifo").c_str(), 0600), 0);
  auto m = mapped_file::open(s / "fifo");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message().find("not a regular file"), std::string::npos) << m.error().message();
}
