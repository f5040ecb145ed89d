// A scripted stand-in for `razor worker`, for the WorkerClient / WorkerPool tests. No dependencies.
//
//   fake_worker SCENARIO [args the pool appends...]
// Scenarios (how it starts):
//   normal     hello (protocol 1), then serves requests by method (below)
//   version    hello with protocol 99, then waits
//   nohello    never says hello (waits on stdin)
//   notworker  prints "Hello, world!" and a JSON object that is not a hello, then waits
//   exit       writes to stderr and exits with code 3 before the hello
// Methods of "normal":
//   echo       3 progress, a log, an artifact, then result {"method","params_seen","cuda_visible","args","pid"}
//   flood      params.n progress lines as fast as it can (no throttle), then the result
//   garbage    non-JSON, binary, a JSON array, an object without "t", an over-long line of params.long_bytes
//              bytes, an error without id, then a valid result
//   slow       a progress every 20 ms for params.ms, cooperative: a cancel ends it with error "cancelled"
//   hang       one progress, then ignores everything (cancel too) forever: a hung worker
//   crash      creates "<params.out>.partial-<pid>/part.bin" when params.out is given, one progress, then
//              kills itself with SIGKILL
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

void out(const std::string& s) {
  std::string line = s + "\n";
  const char* p = line.data();
  size_t n = line.size();
  while (n > 0) {
    ssize_t w = write(1, p, n);
    if (w <= 0) _exit(1);
    p += w;
    n -= size_t(w);
  }
}

std::string g_args;

void hello(int proto) {
  out("{\"t\":\"hello\",\"proto\":" + std::to_string(proto) + ",\"version\":\"fake-0\",\"pid\":" +
      std::to_string(getpid()) + ",\"role\":\"cpu\",\"gpus\":[],\"methods\":[\"echo\"],\"max_line\":16777216}");
}

// Reads one line from stdin; false at end of input. With timeout_ms >= 0, returns true with an empty line
// when nothing arrived in time.
bool read_line(std::string& line, int timeout_ms = -1) {
  static std::string buf;
  line.clear();
  for (;;) {
    auto nl = buf.find('\n');
    if (nl != std::string::npos) {
      line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      return true;
    }
    if (timeout_ms >= 0) {
      pollfd p{0, POLLIN, 0};
      if (poll(&p, 1, timeout_ms) <= 0) return true;
    }
    char chunk[65536];
    ssize_t n = read(0, chunk, sizeof chunk);
    if (n <= 0) return false;
    buf.append(chunk, size_t(n));
  }
}

// Crude field extraction from the client's compact JSON (good enough for the fixed messages of the tests).
std::string str_field(const std::string& line, const std::string& key) {
  auto k = line.find("\"" + key + "\":\"");
  if (k == std::string::npos) return {};
  k += key.size() + 4;
  auto e = line.find('"', k);
  return line.substr(k, e - k);
}

long long num_field(const std::string& line, const std::string& key, long long def = -1) {
  auto k = line.find("\"" + key + "\":");
  if (k == std::string::npos) return def;
  return std::atoll(line.c_str() + k + key.size() + 3);
}

std::string progress(long long id, double done, double total) {
  return "{\"t\":\"progress\",\"id\":" + std::to_string(id) + ",\"done\":" + std::to_string(done) +
         ",\"total\":" + std::to_string(total) + ",\"what\":\"step\"}";
}

std::string result(long long id, const std::string& body) {
  return "{\"t\":\"result\",\"id\":" + std::to_string(id) + ",\"result\":" + body + ",\"seconds\":0.001}";
}

void serve() {
  std::string line;
  while (read_line(line)) {
    if (line.find("\"t\":\"shutdown\"") != std::string::npos) {
      out("{\"t\":\"bye\"}");
      return;
    }
    if (line.find("\"t\":\"req\"") == std::string::npos) continue;  // cancels of finished jobs
    const long long id = num_field(line, "id");
    const std::string method = str_field(line, "method");
    if (method == "echo") {
      for (int i = 1; i <= 3; ++i) out(progress(id, i, 3));
      out("{\"t\":\"log\",\"id\":" + std::to_string(id) + ",\"level\":\"info\",\"msg\":\"echo log\"}");
      out("{\"t\":\"artifact\",\"id\":" + std::to_string(id) +
          ",\"path\":\"/tmp/fake.bin\",\"kind\":\"file\",\"dtype\":\"f32\",\"shape\":[2,3]}");
      const char* cvd = getenv("CUDA_VISIBLE_DEVICES");
      out(result(id, std::string("{\"method\":\"echo\",\"cuda_visible\":\"") + (cvd ? cvd : "<unset>") +
                         "\",\"args\":\"" + g_args + "\",\"pid\":" + std::to_string(getpid()) + "}"));
    } else if (method == "flood") {
      const long long n = num_field(line, "n", 100000);
      std::string chunk;
      for (long long i = 1; i <= n; ++i) {
        chunk += progress(id, double(i), double(n)) + "\n";
        if (chunk.size() > 60000 || i == n) {
          chunk.pop_back();
          out(chunk);
          chunk.clear();
        }
      }
      out(result(id, "{\"flooded\":" + std::to_string(n) + "}"));
    } else if (method == "garbage") {
      const long long long_bytes = num_field(line, "long_bytes", 2 << 20);
      out("this is not json");
      out(std::string("\x01\x02\xff\xfe binary \x00 junk", 20));
      out("[1,2,3]");
      out("{\"no_t\":1}");
      out(std::string(size_t(long_bytes), 'x'));
      out("{\"t\":\"error\",\"id\":null,\"code\":\"bad_request\",\"message\":\"fake refusal\"}");
      out(result(id, "{\"survived\":true}"));
    } else if (method == "slow") {
      const long long ms = num_field(line, "ms", 5000);
      bool cancelled = false;
      for (long long t = 0; t < ms && !cancelled; t += 20) {
        out(progress(id, double(t), double(ms)));
        std::string in;
        if (!read_line(in, 20)) return;
        if (in.find("\"t\":\"cancel\"") != std::string::npos && num_field(in, "id") == id) cancelled = true;
        if (in.find("\"t\":\"shutdown\"") != std::string::npos) return;
      }
      if (cancelled)
        out("{\"t\":\"error\",\"id\":" + std::to_string(id) + ",\"code\":\"cancelled\",\"message\":\"slow cancelled\"}");
      else out(result(id, "{\"slept\":" + std::to_string(ms) + "}"));
    } else if (method == "hang") {
      out(progress(id, 1, 100));
      for (;;) pause();  // ignores cancel and shutdown alike
    } else if (method == "crash") {
      const std::string o = str_field(line, "out");
      if (!o.empty()) {
        std::string partial = o + ".partial-" + std::to_string(getpid());
        mkdir(partial.c_str(), 0755);
        if (FILE* f = fopen((partial + "/part.bin").c_str(), "wb")) {
          fputs("half written", f);
          fclose(f);
        }
      }
      out(progress(id, 1, 10));
      fprintf(stderr, "fake worker: about to die\n");
      fflush(stderr);
      raise(SIGKILL);
    } else {
      out("{\"t\":\"error\",\"id\":" + std::to_string(id) + ",\"code\":\"unknown_method\",\"message\":\"no method " +
          method + "\"}");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const std::string scenario = argc > 1 ? argv[1] : "normal";
  for (int i = 2; i < argc; ++i) g_args += (i > 2 ? " " : "") + std::string(argv[i]);
  std::string line;
  if (scenario == "normal") {
    hello(1);
    serve();
  } else if (scenario == "version") {
    hello(99);
    while (read_line(line)) {
    }
  } else if (scenario == "nohello") {
    while (read_line(line)) {
    }
  } else if (scenario == "notworker") {
    out("Hello, world!");
    out("{\"t\":\"result\",\"id\":1,\"result\":{}}");
    while (read_line(line)) {
    }
  } else if (scenario == "exit") {
    fprintf(stderr, "fake worker: cannot initialise\n");
    return 3;
  }
  return 0;
}
