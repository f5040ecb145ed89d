// What a remote workbench may fetch from the server (docs/remote.md): the small artifacts it draws (probe HDF5,
// summaries, error grids, result JSON, imatrix, logs), never weights. `razor artifact info|send` wraps these;
// the workbench runs them through ssh (with compression) and keeps what it fetched in a cache keyed by the
// SHA-256 that `info` reports, so an unchanged file is fetched once.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "util/status.h"

namespace razor::jobs {

inline constexpr uint64_t kMaxArtifactBytes = 2ull << 30;  // larger files are not "artifacts to draw"

// Refuses (errc::unsupported) weights: *.safetensors, *.gguf, *.bin, *.pt, *.pth, *.ckpt, directories (a
// checkpoint), and files over `max_bytes`. Missing or unreadable files are errc::not_found / errc::io.
status check_fetchable(const std::string& path, uint64_t max_bytes = kMaxArtifactBytes);

// {"path": absolute, "bytes", "sha256", "mtime"} of a fetchable file.
result<nlohmann::json> artifact_info(const std::string& path, uint64_t max_bytes = kMaxArtifactBytes);

// Writes the file's bytes to `fd`.
status send_artifact(const std::string& path, int fd, uint64_t max_bytes = kMaxArtifactBytes);

// The other way: what the workbench uploads (a tensor-type or fake-quant recipe, calibration text, an imatrix
// chosen on the laptop). Reads `fd` to its end into `path` atomically (parent folders created); more than
// `max_bytes`, or a weights name, is refused and nothing is written.
inline constexpr uint64_t kMaxUploadBytes = 256ull << 20;
status receive_artifact(const std::string& path, int fd, uint64_t max_bytes = kMaxUploadBytes);

}  // namespace razor::jobs
