// What an evaluation measured (issue 22), recorded in every `razor eval` result as "provenance": razor's
// version, each benchmark file's SHA-256, the endpoint and served name, the budget and sample counts, the
// server's command line when razor started it, and the artifact behind the server when named (`--artifact`): a
// GGUF's or a recipe's SHA-256, a checkpoint's shard fingerprints. The comparison view reads it back
// (results/bench_result.h: provenance_differences) and warns when two columns differ in more than the model.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "util/status.h"

namespace razor::eval {

// A file: {"path", "bytes", "sha256"}. A checkpoint folder: {"path", "shards": [{"name", "bytes",
// "header_sha256", "edges_sha256"}]}: each safetensors shard's size, the SHA-256 of its header (names, dtypes,
// shapes, offsets) and of its first and last MiB of data; hashing 245 GB of weights whole would take longer
// than most evaluations. Errors name the path.
result<nlohmann::json> artifact_fingerprint(const std::string& path);

}  // namespace razor::eval
