// libFuzzer target: what a session worker and the `slurm` method read from outside: protocol request lines
// (any client that reaches the socket), and the text of `scontrol show job` / `sbatch --parsable` / array specs.
#include <cstddef>
#include <cstdint>
#include <string>

#include "jobs/protocol.h"
#include "jobs/slurm.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  std::optional<int64_t> id;
  auto r = razor::jobs::parse_request(s, &id);
  if (r.ok()) (void)razor::jobs::encode_request(*r);  // what parses re-encodes
  for (auto& rec : razor::jobs::parse_scontrol_jobs(s)) (void)razor::jobs::slurm_state_is_final(rec.state);
  (void)razor::jobs::parse_array_task_ids(s.substr(0, 64));  // a spec is short; a long one is only slower
  (void)razor::jobs::parse_sbatch_job_id(s);
  return 0;
}
