// What a GGUF output may replace (util/output_guard.h's rule for GGUF files): an output name "DIR/NAME.gguf" is
// the file itself and, when split, its shards "DIR/NAME-0000k-of-0000n.gguf" (gguf::writer::shard_path). Every
// existing file of that name must be razor's own GGUF (general.quantized_by "razor ...", or a later shard of a
// split whose first shard is) and none of the job's inputs; otherwise the pack is refused before it starts.
// After the new output is in place, the files of the earlier output it did not overwrite (old shards of a
// split into more parts, a single file replaced by a split or the other way round) are removed, so no stale
// shard is left beside the new ones.
#pragma once
#include <string>
#include <vector>

#include "util/status.h"

namespace razor::gguf {

// own_test (util/output_guard.h) for GGUF outputs.
status razor_gguf_file(const std::string& path);

// The existing files of the output name `path`, each checked with check_output_file(razor_gguf_file, inputs);
// the first refusal is returned as the error.
result<std::vector<std::string>> check_gguf_output(const std::string& path, const std::vector<std::string>& inputs);

// Removes the files of `earlier` (check_gguf_output's list) that are not in `written`; returns those removed.
std::vector<std::string> remove_stale_gguf_files(const std::vector<std::string>& earlier,
                                                 const std::vector<std::string>& written);

// own_test for importance-matrix outputs: an existing imatrix (GGUF general.type "imatrix", or a legacy .dat
// that reads as one). Other writers' imatrix files are replaced too: razor cannot tell them from its own.
status imatrix_file(const std::string& path);

}  // namespace razor::gguf
