// libFuzzer target: what a session worker and the `slurm` method read from outside: protocol request lines
// (any client that reaches the socket), and the text of `scontrol show job` / `sbatch --parsable` / array specs.
// Each input also becomes a deeply nested request: its first two bytes give a depth (up to 327,680: a line of
// about 650 KB, well under the worker's 16 MiB line limit) and the nesting brackets, around the rest in params;
// parse_request must answer it with an error or a request, never overflow the stack.
#include <cstddef>
#include <cstdint>
#include <string>

#include "jobs/protocol.h"
#include "jobs/slurm.h"

namespace {

void parse_line(const std::string& s) {
  std::optional<int64_t> id;
  auto r = razor::jobs::parse_request(s, &id);
  if (r.ok()) (void)razor::jobs::encode_request(*r);  // what parses re-encodes
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  parse_line(s);
  for (auto& rec : razor::jobs::parse_scontrol_jobs(s)) (void)razor::jobs::slurm_state_is_final(rec.state);
  (void)razor::jobs::parse_array_task_ids(s.substr(0, 64));  // a spec is short; a long one is only slower
  (void)razor::jobs::parse_sbatch_job_id(s);
  if (size >= 2) {
    const size_t depth = size_t(data[0] | (data[1] << 8)) * 5;
    const bool arrays = data[0] & 1;
    std::string line = R"({"t":"req","id":1,"method":"echo","params":{"x":)";
    line.reserve(line.size() + depth * 6 + size);
    for (size_t i = 0; i < depth; ++i) line += arrays ? "[" : R"({"a":)";
    line += s.size() > 2 ? nlohmann::json(s.substr(2)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                         : std::string("0");
    for (size_t i = 0; i < depth; ++i) line += arrays ? ']' : '}';
    line += "}}";
    parse_line(line);
  }
  return 0;
}
