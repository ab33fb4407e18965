// The files of a checkpoint (see ps/checkpoint.h): what KVWorker::Checkpoint and KVServer need
// to write, check and read them. Stateless functions; thread-safe.
#ifndef PS_INTERNAL_CHECKPOINT_IO_H_
#define PS_INTERNAL_CHECKPOINT_IO_H_

#include <climits>
#include <optional>
#include <string>
#include <vector>

#include "ps/checkpoint.h"
#include "ps/internal/env.h"
#include "ps/sarray.h"
#include "ps/status.h"

namespace ps {
namespace checkpoint {

// The SimpleApp head of the request that asks a server to write a key range (body "<step>
// <range>"; the answer's body is "<bytes> <checksum>"). Reserved on KVServer apps.
constexpr int kWriteHead = INT_MIN + 0x636b;

// Reads PS_CHECKPOINT_DIR, PS_CHECKPOINT_EVERY (>= 1, default 1), PS_CHECKPOINT_KEEP (>= 2,
// default 2) and PS_JOB_ID (no blanks; default the program's name).
Status ParseConfig(const Environment& env, CheckpointConfig* config);

// "<dir>/step-<step>".
std::string StepPath(const std::string& dir, int step);

// What a range file holds, from its header.
struct RangeHeader {
  int key_bytes = 0;
  int val_type = 0;
  Key begin = 0, end = 0;
  uint64_t num_keys = 0, num_vals = 0;
  bool has_lens = false;
};

// Writes the concatenation of "parts" (pointer, bytes) to "path" atomically, creating its
// folder. Fills "file" with its name, bytes and checksum.
Status WriteFile(const std::string& path, const std::vector<std::pair<const void*, size_t>>& parts,
                 CheckpointFile* file);

// The bytes and checksum of the file at "path", into "file".
Status DescribeFile(const std::string& path, CheckpointFile* file);

// Reads file "file" of checkpoint "info" whole, checking its size and checksum.
Status ReadFile(const CheckpointInfo& info, const CheckpointFile& file, SArray<char>* bytes);

// Writes a range file at "path" atomically: the header, then "keys" (num_keys keys), "vals"
// (num_vals values of val_type) and "lens" (num_keys ints, if has_lens). Fills "file" with its
// name, range, bytes and checksum.
Status WriteRange(const std::string& path, const RangeHeader& header, const void* keys,
                  const void* vals, const int* lens, CheckpointFile* file);

// Reads range file "file" of checkpoint "info", checking its size, checksum and header (keys
// of this build's type, values of info.val_type). The arrays share one buffer.
Status ReadRange(const CheckpointInfo& info, const CheckpointFile& file, RangeHeader* header,
                 SArray<char>* keys, SArray<char>* vals, SArray<int>* lens);

// Writes "info" as the manifest of its step folder (info.path), atomically.
Status WriteManifest(const CheckpointInfo& info);

// The latest complete checkpoint in config.dir that can be used (see ps/checkpoint.h), or none.
// Logs one line for each one refused; fails when checkpoints exist and none can be used.
Status FindLatest(const CheckpointConfig& config, std::optional<CheckpointInfo>* latest);

// Removes the complete checkpoints beyond the config.keep newest, and the incomplete ones
// older than "step" (left by a job that died while writing). Logs what it cannot remove.
void Prune(const CheckpointConfig& config, int step);

}  // namespace checkpoint
}  // namespace ps
#endif  // PS_INTERNAL_CHECKPOINT_IO_H_
