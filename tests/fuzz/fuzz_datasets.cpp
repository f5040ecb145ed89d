// libFuzzer target: the eval benchmarks' JSONL loaders (core/eval/benchmarks.h; LiveCodeBench's decoding of
// base64 / zlib / pickled test cases, eval/lcb.h). The first line names the benchmark by key (else the first
// byte picks one); the rest is written as <key>.jsonl and loaded with load_bench. For the benchmarks graded by
// extraction (not the code ones, which run a sandbox), every loaded item is also graded against the input's
// last line as a model's answer. Never a crash, a hang or an unbounded allocation: items, or an error naming
// the file and line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "eval/benchmarks.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto table = razor::eval::bench_table();
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t first_nl = in.find('\n');
  const razor::eval::bench_info* named =
      first_nl == std::string_view::npos ? nullptr : razor::eval::find_bench(in.substr(0, first_nl));
  const razor::eval::bench_info& b = named ? *named : table[data[0] % table.size()];
  const std::string_view rest = named ? in.substr(first_nl + 1) : in.substr(1);
  const std::string& dir = razor::fuzz::scratch_dir();
  razor::fuzz::write_file(dir + "/" + std::string(b.key) + ".jsonl", rest);
  auto items = razor::eval::load_bench(b, dir, 0);
  if (!items.ok()) return 0;
  if (b.group == "code") return 0;  // graded by running the code
  const size_t nl = rest.rfind('\n');
  const std::string answer(nl == std::string_view::npos ? rest : rest.substr(nl + 1));
  razor::eval::sandbox_limits lim;
  for (auto& it : *items) (void)razor::eval::grade(b, it, answer, lim);
  return 0;
}
