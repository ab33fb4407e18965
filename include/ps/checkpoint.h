// Checkpoints: the servers' state at a step every worker reached, kept in PS_CHECKPOINT_DIR,
// and the restart of a job from the latest complete one.
//
// Writing: every worker calls KVWorker::Checkpoint(step, app_state) at the same step, after
// waiting for its requests. The workers meet in a barrier; worker 0 asks the server answering
// for each key range to write that range's state (the handle's Snapshot, taken on the server's
// thread between requests), then writes the manifest, and the workers meet again, so that no
// push of the next step reaches a server before its snapshot. Steps that PS_CHECKPOINT_EVERY
// does not divide return at once. Only the PS_CHECKPOINT_KEEP newest complete checkpoints are
// kept (at least 2, so that a damaged latest one can fall back to the one before).
//
// Layout of PS_CHECKPOINT_DIR (one checkpointed app per folder):
//   step-<N>/range-<r>   the keys of key range r, with their state: a binary header (format
//                        version, key and value types, the range, counts), then the keys, the
//                        values and, for ragged values, the lengths, each padded to 8 bytes
//   step-<N>/MANIFEST    written last, so a checkpoint is complete once it exists: the job it
//                        belongs to (PS_JOB_ID, default the program's name), the app id, the key
//                        and value types, the step, the application's state, and per file its
//                        range, bytes and XXH3-64 checksum; its last line checksums the lines
//                        before it
// Every file is written atomically: a temporary file, flushed (fsync), renamed, and the folder
// flushed.
//
// Restart: a node that starts with PS_CHECKPOINT_DIR set looks for the latest complete
// checkpoint there. One that is damaged (a file missing, truncated or with a wrong checksum) or
// belongs to another job or key type is refused in one line naming the file, and the previous
// one is taken ("falling back to step-4"). When the folder holds checkpoints and none can be
// used, Start fails: a job asked to resume never silently starts from zero. An empty folder (or
// one that does not exist) is a fresh start. Each server loads the keys of every range it holds
// (its own, and under PS_REPLICATION=k the ranges it is a replica of) from all files of that
// checkpoint, whatever number of servers wrote it, before it handles its first request.
// Workers learn the step and their app state from LatestCheckpoint().
//
// After a restart every worker's requests are new (their timestamps start again), so a
// checkpoint holds no exactly-once bookkeeping: only the handles' state.
#ifndef PS_CHECKPOINT_H_
#define PS_CHECKPOINT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ps/base.h"

namespace ps {

class Postoffice;

// PS_CHECKPOINT_DIR, PS_CHECKPOINT_EVERY, PS_CHECKPOINT_KEEP and PS_JOB_ID as parsed.
struct CheckpointConfig {
  std::string dir;  // empty: checkpoints are off
  int every = 1;    // steps not divisible by it are not written
  int keep = 2;     // complete checkpoints kept
  std::string job;  // what a checkpoint belongs to: PS_JOB_ID, or the program's name
};

// One file of a checkpoint: the state of the keys of one key range.
struct CheckpointFile {
  std::string name;        // within the step's folder: "range-<r>"
  Key begin = 0, end = 0;  // the range [begin, end) (kMaxKey included when end is kMaxKey)
  uint64_t bytes = 0;
  uint64_t checksum = 0;  // XXH3-64 of the file's bytes
};

// A complete checkpoint, as its manifest describes it.
struct CheckpointInfo {
  int step = -1;
  std::string app_state;  // what the workers gave KVWorker::Checkpoint
  std::string path;       // the step's folder
  std::string job;
  std::string kind = "kv";  // what wrote it: "kv" (KVWorker::Checkpoint) or "ssp" (SSPWorker)
  int app_id = 0;
  int key_bytes = sizeof(Key);
  int val_type = 0;  // the DataType of the values
  std::vector<CheckpointFile> files;
};

// The checkpoint the default node resumes from: the latest complete and usable one in
// PS_CHECKPOINT_DIR when the node started (looked for now if it has not started yet), or none
// (checkpoints off, or none written yet). Thread-safe; blocks only to read the folder once.
// A folder holding only unusable checkpoints is an error that ends the process in one line
// (Postoffice::ResumeCheckpoint returns it instead).
std::optional<CheckpointInfo> LatestCheckpoint();

}  // namespace ps
#endif  // PS_CHECKPOINT_H_
